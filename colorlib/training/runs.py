"""Ways to run training: ``train_or_load`` (``fit`` with a cache) and ``train_briefly``.

:func:`train_or_load` is what the chapters call: a chapter trains only when no finished
checkpoint of the same config exists, resumes a partial one, and retrains one of another config.
:func:`train_briefly` is the chapters' side experiment: a generator trained in place with one
objective for a short budget (no discriminator, no checkpoint, no validation).
"""

from __future__ import annotations

import itertools
import math
import time

import torch
from torch import nn

from colorlib.checkpoint import CheckpointError, load_checkpoint
from colorlib.data.datasets import make_loader
from colorlib.runtime import Profile, checkpoint_dir, get_device
from colorlib.training.config import OPTIMIZERS, TrainConfig, config_differences
from colorlib.training.console import print_main
from colorlib.training.loop import fit
from colorlib.training.runstate import Progress, TrainResult, is_complete, result_from_checkpoint
from colorlib.training.steps import pretrain_step

__all__ = ["train_or_load", "train_briefly"]


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
            elif is_complete(config, Progress(**state["progress"])):
                steps = state["progress"]["step"]
                print_main(f"loaded '{name}' from {path} ({steps} steps; force=True retrains)")
                return result_from_checkpoint(state, path, device)
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


def train_briefly(
    generator: nn.Module,
    objective,
    train_set,
    profile: Profile,
    device=None,
    *,
    max_steps: int | None = None,
    minutes: float | None = None,
) -> int:
    """The chapters' side experiments: :func:`~colorlib.training.steps.pretrain_step` until a
    budget ends.

    No discriminator, no checkpoint, no validation: a fresh ``generator`` is trained in place
    with ``objective`` alone (any callable ``(L, real_ab, fake_ab, None) -> {"total": ...}``),
    with pix2pix's optimiser (Adam, lr 2e-4, betas (0.5, 0.999)), on batches of
    ``profile.batch_size`` drawn from ``train_set``, epoch after epoch.

    Args:
        generator: the network to train (moved to ``device``).
        objective: the loss, e.g. ``Pix2PixObjective(lambda_l1=1)``.
        train_set: ``(L, ab)`` pairs.
        profile: supplies the batch size and the data-loading workers.
        device: where to train (None: the best available).
        max_steps, minutes: the budget; the first one reached ends training (at least one
            step is taken).

    Returns:
        The number of steps taken.

    Raises:
        ValueError: neither ``max_steps`` nor ``minutes`` given, a negative budget, or an
            empty ``train_set``.
    """
    if max_steps is None and minutes is None:
        raise ValueError("train_briefly needs max_steps and/or minutes")
    if (max_steps is not None and max_steps < 1) or (minutes is not None and not minutes >= 0):
        raise ValueError(f"need max_steps >= 1 and minutes >= 0, got {max_steps}, {minutes}")
    if len(train_set) == 0:
        raise ValueError("train_set is empty: nothing to train on")
    device = get_device(None if device is None else str(device))
    generator.to(device).train()
    lr, betas = OPTIMIZERS["adam"]["lr"], OPTIMIZERS["adam"]["betas"]
    optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    loader = make_loader(
        train_set, profile.batch_size, train=True, device=device, num_workers=profile.num_workers
    )
    batches = (batch for _ in itertools.count() for batch in loader)  # epoch after epoch
    start, limit = time.perf_counter(), math.inf if minutes is None else 60.0 * minutes
    for step, (L, real_ab) in enumerate(batches, start=1):
        pretrain_step(generator, optimizer, objective, (L.to(device), real_ab.to(device)))
        if step == max_steps or time.perf_counter() - start >= limit:
            return step
    raise AssertionError("unreachable: the batches never end")
