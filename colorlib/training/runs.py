"""Finished training runs: :class:`TrainResult`, reading one back, and :func:`train_or_load`.

:func:`colorlib.train.fit` returns a :class:`TrainResult`; :func:`result_from_checkpoint`
rebuilds one from a saved checkpoint state (networks in eval mode, history, validations and
samples), and :func:`train_or_load` is ``fit`` with a cache: the chapters call it, so a chapter
trains only when no finished checkpoint of the same config exists, resumes a partial one, and
retrains one of another config. ``colorlib.train`` re-exports all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from colorlib.checkpoint import (
    CheckpointError,
    _decode_samples,
    _is_complete,
    _Progress,
    load_checkpoint,
)
from colorlib.config import TrainConfig, build_discriminator, config_differences, rebuild_generator
from colorlib.console import print_main
from colorlib.runtime import checkpoint_dir, get_device

__all__ = ["TrainResult", "result_from_checkpoint", "train_or_load"]


@dataclass
class TrainResult:
    """What :func:`fit` and :func:`train_or_load` return.

    Attributes:
        config: the run's :class:`TrainConfig`.
        generator, discriminator: the trained networks (no DDP wrapper, eval mode).
        history: one row per step: ``{"step", "stage", "time" (s), "losses": {name: float}}``.
        validations: ``{"step", "stage", "time", "metrics": {"psnr", "ssim", "colorfulness",
            "colorfulness_real"}}`` per validation (averaged over the validation photos).
        samples: ``{"L": (n, 1, s, s), "real_ab": (n, 2, s, s), "steps": [int],
            "stages": [str], "ab": [(n, 2, s, s) per validation]}``, float tensors, ``s <= 128``.
        checkpoint_path: where the run is saved (None without a checkpoint).
        loaded: True when :func:`train_or_load` found a finished run and did not train.
        complete: every stage used up its budget.
    """

    config: TrainConfig
    generator: nn.Module
    discriminator: nn.Module | None
    history: list[dict]
    validations: list[dict]
    samples: dict
    checkpoint_path: Path | None = None
    loaded: bool = False
    complete: bool = True

    def loss_rows(self, stage: str | None = None) -> list[dict]:
        """Flat ``{"step", name: value}`` rows (for :func:`colorlib.viz.plot_history`)."""
        return [
            {"step": r["step"], **r["losses"]}
            for r in self.history
            if stage is None or r["stage"] == stage
        ]

    def metric_rows(self, stage: str | None = None) -> list[dict]:
        """Flat ``{"step", metric: value}`` rows of the validations."""
        return [
            {"step": r["step"], **r["metrics"]}
            for r in self.validations
            if stage is None or r["stage"] == stage
        ]


def result_from_checkpoint(state: dict, path: Path, device=None) -> TrainResult:
    """The :class:`TrainResult` of a checkpoint ``state`` (read from ``path``), on ``device``."""
    config = TrainConfig.from_dict(state["config"])
    device = get_device(None if device is None else str(device))
    generator = rebuild_generator(config, state)
    discriminator = build_discriminator(config)
    if discriminator is not None and state.get("discriminator") is not None:
        discriminator.load_state_dict(state["discriminator"])
        discriminator = discriminator.to(device).eval()
    progress = _Progress(**state["progress"])
    return TrainResult(
        config=config,
        generator=generator.to(device).eval(),
        discriminator=discriminator,
        history=list(state.get("history", [])),
        validations=list(state.get("validations", [])),
        samples=_decode_samples(state.get("samples") or {}),
        checkpoint_path=path,
        loaded=True,
        complete=_is_complete(config, progress),
    )


def train_or_load(
    config: TrainConfig,
    name: str,
    train_set,
    val_set,
    device=None,
    force: bool = False,
    init_from=None,
    progress: bool = True,
) -> TrainResult:
    """Load the finished run ``name`` if it matches ``config``, else train (or resume) it.

    The checkpoint is ``colorlib.runtime.checkpoint_dir() / f"{name}.pt"``. A run *matches*
    when its config differs at most in runtime fields (workers, logging and checkpoint
    intervals) and stage budgets; it is *finished* when every stage of ``config`` has used up
    its budget. A partial run is resumed; one of another config is trained again and replaced.

    Args:
        force: retrain from scratch even if a finished checkpoint exists.
        init_from: name or path of a run whose weights start this one (see :func:`fit`), e.g.
            ``train_or_load(gan_config, "pix2pix-pretrained-gan", ..., init_from="unet-l1")``
            keeps both the L1-only and the GAN result.

    Example:
        >>> result = train_or_load(config, "pix2pix", train_set, val_set)
        loaded 'pix2pix' from ~/.cache/colorlib/checkpoints/pix2pix.pt (3000 steps)
    """
    path = checkpoint_dir() / f"{name}.pt"
    resume = not force
    if path.exists() and not force:
        try:
            state = load_checkpoint(path)
            saved = TrainConfig.from_dict(state["config"])
        except (CheckpointError, TypeError, ValueError) as err:
            print_main(f"ignoring {path} ({err}); training from scratch")
            resume = False
        else:
            diffs = config_differences(saved, config)
            if state.get("init_from") != (None if init_from is None else str(init_from)):
                diffs.append("init_from")
            if diffs:
                print_main(f"{path} was trained with another config ({diffs}); training again")
                resume = False
            elif _is_complete(config, _Progress(**state["progress"])):
                steps = state["progress"]["step"]
                print_main(f"loaded '{name}' from {path} ({steps} steps; force=True retrains)")
                return result_from_checkpoint(state, path, device)
    from colorlib.train import fit  # fit returns a TrainResult: imported when called

    return fit(
        config,
        train_set,
        val_set,
        device=device,
        checkpoint_path=path,
        resume=resume,
        progress=progress,
        init_from=init_from,
    )
