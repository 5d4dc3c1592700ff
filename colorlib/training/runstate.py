"""A run's state: what ``fit`` saves in a checkpoint and reads back, and its result.

A training run is more than weights. To stop and resume exactly, :func:`colorlib.training.loop.fit`
saves, beside the networks and optimisers (:mod:`colorlib.checkpoint` is the file format):

* :class:`Progress`, the counters (steps, stages, epochs, seconds) and, with the config's
  budgets, whether a stage or the whole run is over (:func:`stage_over`, :func:`is_complete`)
  and whether a checkpoint is due (:func:`checkpoint_due`, by steps or by minutes);
* the sample colourisations, quantised to uint8 (:func:`quantise`, :func:`decode_samples`);
* the random-number states of Python, NumPy and torch (:func:`get_rng_state`);
* the generator's own architecture (:func:`architecture_of`).

It also decides which checkpoint a run continues from: its own, when the config is the same
experiment (:func:`resume_state`), or another run's weights to start from
(:func:`init_state`, e.g. the L1-pretrained generator of the pretraining trick). And it turns a
finished checkpoint back into the :class:`TrainResult` that ``fit`` returns
(:func:`result_from_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rebuild_generator,
    save_checkpoint,
)
from colorlib.runtime import checkpoint_dir, get_device
from colorlib.training import distributed as ddp
from colorlib.training.config import (
    TrainConfig,
    build_discriminator,
    config_differences,
    to_primitives,
)

__all__ = [
    "SAMPLE_SIZE",
    "Progress",
    "stage_over",
    "stage_over_everywhere",
    "is_complete",
    "minutes_left",
    "MAX_SAVE_SHARE",
    "checkpoint_due",
    "write_checkpoint",
    "quantise",
    "decode_samples",
    "get_rng_state",
    "set_rng_state",
    "architecture_of",
    "resolve_init",
    "init_state",
    "resume_state",
    "TrainResult",
    "result_from_checkpoint",
]

SAMPLE_SIZE = 128  # side of the stored sample colourisations (kept small for checkpoints)
#: the most of the training time that checkpoints by minutes may take (the interval stretches)
MAX_SAVE_SHARE = 0.02


@dataclass
class Progress:
    """Counters saved in checkpoints: where the run is, in steps, stages, epochs and time."""

    num_stages: int
    step: int = 0
    stage_index: int = 0
    stage_steps: list = field(default_factory=list)
    stage_seconds: list = field(default_factory=list)
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        self.stage_steps = list(self.stage_steps) or [0] * self.num_stages
        self.stage_seconds = list(self.stage_seconds) or [0.0] * self.num_stages

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stage_over(config: TrainConfig, progress: Progress, index: int) -> bool:
    stage = config.stages[index]
    steps = stage.max_steps is not None and progress.stage_steps[index] >= stage.max_steps
    minutes = progress.stage_seconds[index] / 60.0
    return steps or (stage.max_minutes is not None and minutes >= stage.max_minutes)


def stage_over_everywhere(config: TrainConfig, progress: Progress, index: int, device) -> bool:
    """:func:`stage_over`, agreed by every rank under ``torchrun`` (a time budget runs out at
    different moments on different ranks; step budgets agree without asking)."""
    over = stage_over(config, progress, index)
    if config.stages[index].max_minutes is None:
        return over
    return ddp.any_rank(over, device)


def minutes_left(config: TrainConfig, progress: Progress, index: int) -> float | None:
    """Minutes left in stage ``index``'s time budget (None: the stage has none)."""
    stage = config.stages[index]
    if stage.max_minutes is None:
        return None
    return stage.max_minutes - progress.stage_seconds[index] / 60


def checkpoint_due(
    config: TrainConfig, step: int, seconds_since_save: float, save_seconds: float = 0.0
) -> bool:
    """Whether ``fit`` checkpoints after global ``step``: every ``checkpoint_every`` steps or
    once ``checkpoint_minutes`` of training have passed since the last save, whichever comes
    first. The minutes stretch to ``save_seconds / MAX_SAVE_SHARE`` when the last save took
    ``save_seconds`` (a slow disk): saving by minutes costs at most 2 % of training time."""
    if config.checkpoint_every and step % config.checkpoint_every == 0:
        return True
    if not config.checkpoint_minutes:
        return False
    interval = max(60.0 * config.checkpoint_minutes, save_seconds / MAX_SAVE_SHARE)
    return seconds_since_save >= interval


def write_checkpoint(path: Path, state: dict) -> float:
    """:func:`colorlib.checkpoint.save_checkpoint`, timed: the seconds the save took."""
    start = time.perf_counter()
    save_checkpoint(path, state)
    return time.perf_counter() - start


def is_complete(config: TrainConfig, progress: Progress) -> bool:
    return all(stage_over(config, progress, i) for i in range(len(config.stages)))


def quantise(x: Tensor) -> Tensor:
    """Normalised [-1, 1] values -> uint8 (samples are small in checkpoints)."""
    if x.shape[-1] > SAMPLE_SIZE:
        x = F.interpolate(x.float(), size=(SAMPLE_SIZE, SAMPLE_SIZE), mode="area")
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def dequantise(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def decode_samples(samples: dict) -> dict:
    if not samples:
        return {}
    out = {k: samples[k] for k in ("steps", "stages")}
    out.update({k: dequantise(samples[k]) for k in ("L", "real_ab")})
    out["ab"] = [dequantise(ab) for ab in samples["ab"]]
    return out


def resolve_init(init_from: str | Path) -> Path:
    path = Path(init_from)
    if path.suffix == ".pt" or path.exists():
        return path
    return checkpoint_dir() / f"{init_from}.pt"


def init_state(init_from, config: TrainConfig) -> dict:
    """The checkpoint a run starts from (e.g. a finished L1 pretraining), checked to fit."""
    path = resolve_init(init_from)
    state = load_checkpoint(path)
    source = TrainConfig.from_dict(state["config"])
    if _build_spec(source.model, source.model_kwargs) != _build_spec(
        config.model, config.model_kwargs
    ):
        raise ValueError(
            f"init_from {path} holds a {source.model!r} generator with {source.model_kwargs}; "
            f"this config builds {config.model!r} with {config.model_kwargs}"
        )
    same_critic = _build_spec(source.discriminator, source.discriminator_kwargs) == _build_spec(
        config.discriminator, config.discriminator_kwargs
    )
    if not same_critic:
        state = {**state, "discriminator": None}  # a different critic starts fresh
    return state


def _build_spec(name, kwargs: dict):
    return name, {k: v for k, v in kwargs.items() if k != "pretrained"}


def resume_state(config, path, resume: bool, init_from) -> dict | None:
    """The checkpoint to continue from, or None; refuses one of a different experiment."""
    if path is None or not resume or not Path(path).exists():
        return None
    state = load_checkpoint(path)
    diffs = config_differences(TrainConfig.from_dict(state["config"]), config)
    if state.get("init_from") != (None if init_from is None else str(init_from)):
        diffs.append("init_from")
    if diffs:
        raise CheckpointError(
            f"{path} belongs to a run with a different config (fields {diffs}); "
            "pass resume=False to start again and overwrite it"
        )
    return state


def get_rng_state() -> dict:
    """Python, NumPy and torch (CPU and every CUDA device) random states, as safe types."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where devices match)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def architecture_of(module: nn.Module, fallback: dict) -> dict:
    """The keyword arguments that rebuild ``module`` (its ``model_kwargs`` when it has them)."""
    kwargs = getattr(ddp.unwrap(module), "model_kwargs", None)
    try:
        return to_primitives(dict(kwargs), "model_kwargs") if isinstance(kwargs, dict) else fallback
    except TypeError:
        return fallback


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
    generator = rebuild_generator(state, grad_checkpointing=config.grad_checkpointing)
    discriminator = build_discriminator(config)
    if discriminator is not None and state.get("discriminator") is not None:
        discriminator.load_state_dict(state["discriminator"])
        discriminator = discriminator.to(device).eval()
    progress = Progress(**state["progress"])
    return TrainResult(
        config=config,
        generator=generator.to(device).eval(),
        discriminator=discriminator,
        history=list(state.get("history", [])),
        validations=list(state.get("validations", [])),
        samples=decode_samples(state.get("samples") or {}),
        checkpoint_path=path,
        loaded=True,
        complete=is_complete(config, progress),
    )
