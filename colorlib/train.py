"""Training loop: ``fit()`` through a config's stages, and the chapters' ``train_or_load``.

Design:

* :func:`fit` runs the stages of a :class:`~colorlib.config.TrainConfig` in order, each with a
  step and/or time budget, calling one step function per optimiser step
  (:func:`~colorlib.steps.pretrain_step` or :func:`~colorlib.steps.gan_step`, fed
  ``accumulate_steps`` micro-batches from a seeded, resumable sampler). It keeps a per-step loss
  history, periodic validation metrics and a few sample colourisations;
* it checkpoints every ``checkpoint_every`` steps, at stage ends and on Ctrl-C (the interrupt is
  deferred to the end of the running step, so a checkpoint is always a step boundary), resumes
  bit-exactly on CPU with ``num_workers=0`` (RNG states and the data position are saved), stops
  on a non-finite loss without touching the last good checkpoint, and runs unchanged under
  ``torchrun`` (DDP; see :mod:`colorlib.distributed`);
* :func:`train_or_load` is fit with a cache: the chapters call it, so a chapter trains only when
  no finished checkpoint of the same config exists. Both return a :class:`TrainResult`.

Where the rest lives: the config and the builders in :mod:`colorlib.config`, the step functions
in :mod:`colorlib.steps`, the checkpoint format and the run state it holds (progress counters,
quantised samples, which checkpoint fits a config) in :mod:`colorlib.checkpoint`. Every name they
used to share with this module is re-exported here, so ``from colorlib.train import TrainConfig,
Stage, gan_step`` keeps working.

>>> config = TrainConfig(model="unet", model_kwargs={"base_channels": 32},
...                      stages=(Stage("pretrain", max_minutes=5), Stage("gan", max_minutes=10)))
>>> result = train_or_load(config, "pix2pix-pretrained", train_set, val_set)
>>> result.generator(L)  # (B, 2, H, W)
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from colorlib import distributed as ddp
from colorlib.checkpoint import SAMPLE_SIZE as SAMPLE_SIZE
from colorlib.checkpoint import (
    CheckpointError,
    _decode_samples,
    _init_state,
    _is_complete,
    _Progress,
    _quantise,
    _resolve_init,
    _resume_state,
    _stage_over,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from colorlib.color import L_ab_to_rgb
from colorlib.config import OBJECTIVES as OBJECTIVES
from colorlib.config import OPTIMIZERS as OPTIMIZERS
from colorlib.config import RUNTIME_FIELDS as RUNTIME_FIELDS
from colorlib.config import STAGE_NAMES as STAGE_NAMES
from colorlib.config import (
    Stage,
    TrainConfig,
    _architecture,
    build_discriminator,
    build_generator,
    build_objective,
    build_optimizers,
    config_differences,
    learning_rate,
    rebuild_generator,
)
from colorlib.runtime import checkpoint_dir, get_device, seed_everything
from colorlib.steps import FULL_PRECISION as FULL_PRECISION
from colorlib.steps import (
    NonFiniteLossError,
    Precision,
    discriminator_update,
    frozen,
    gan_step,
    generator_update,
    pretrain_step,
)

__all__ = [
    "Stage",
    "TrainConfig",
    "Precision",
    "NonFiniteLossError",
    "TrainResult",
    "build_generator",
    "build_discriminator",
    "build_objective",
    "build_optimizers",
    "rebuild_generator",
    "learning_rate",
    "config_differences",
    "frozen",
    "pretrain_step",
    "discriminator_update",
    "generator_update",
    "gan_step",
    "fit",
    "train_or_load",
]


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


@dataclass
class _Run:
    """Everything one call of :func:`fit` works with."""

    config: TrainConfig
    info: ddp.DistInfo
    device: torch.device
    generator: nn.Module
    discriminator: nn.Module | None
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer | None
    objective: nn.Module
    scaler: torch.amp.GradScaler | None
    precision: Precision
    progress: _Progress
    checkpoint_path: Path | None = None
    init_from: str | None = None
    loader: object = None
    sampler: ddp.EpochSampler | None = None
    val_L: Tensor | None = None
    val_ab: Tensor | None = None
    history: list = field(default_factory=list)
    validations: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    saved_step: int = -1


def _make_loader(dataset, batch_size, train, device, num_workers, sampler):
    from colorlib.data import make_loader

    return make_loader(
        dataset, batch_size, train, device=device, num_workers=num_workers, sampler=sampler
    )


def _fork_rng(device: torch.device):
    """Run side work (validation) without moving the training random streams."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type)


def _build_networks(config, device, state, init_from):
    seed_everything(config.seed)  # identical initial weights on every rank
    source = state  # resume: the run's own weights; else maybe another run's
    if source is None and init_from is not None:
        source = _init_state(init_from, config)
        step = source["progress"]["step"]
        _print_main(f"initialised from {_resolve_init(init_from)} (step {step})")
    if source is None:
        generator = build_generator(config)
    else:
        generator = rebuild_generator(config, source)
    generator = generator.to(device)
    discriminator = build_discriminator(config)
    if discriminator is not None:
        if source is not None and source.get("discriminator") is not None:
            discriminator.load_state_dict(source["discriminator"])
        discriminator = discriminator.to(device)
    if config.channels_last and device.type == "cuda":
        generator = generator.to(memory_format=torch.channels_last)
        if discriminator is not None:
            discriminator = discriminator.to(memory_format=torch.channels_last)
    return generator, discriminator


def _prepare(config, train_set, val_set, device, info, path, resume, init_from) -> _Run:
    state = _resume_state(config, path, resume, init_from)
    generator, discriminator = _build_networks(config, device, state, init_from)
    g_optimizer, d_optimizer = build_optimizers(config, generator, discriminator)
    amp = config.amp and device.type == "cuda"
    run = _Run(
        config=config,
        info=info,
        device=device,
        generator=ddp.wrap(generator, info, device),
        discriminator=None if discriminator is None else ddp.wrap(discriminator, info, device),
        g_optimizer=g_optimizer,
        d_optimizer=d_optimizer,
        objective=build_objective(config).to(device),
        scaler=torch.amp.GradScaler("cuda") if amp else None,
        precision=Precision(device.type, torch.float16 if amp else None),
        progress=_Progress(len(config.stages)),
        checkpoint_path=None if path is None else Path(path),
        init_from=None if init_from is None else str(init_from),
    )
    run.sampler = ddp.EpochSampler(
        len(train_set), config.batch_size, config.seed, info.rank, info.world_size
    )
    run.loader = _make_loader(
        train_set, config.batch_size, True, device, config.num_workers, run.sampler
    )
    _load_validation_set(run, val_set)
    if state is None:
        seed_everything(config.seed + info.rank)  # each rank its own augmentation stream
    else:
        _restore(run, state)
    return run


def _restore(run: _Run, state: dict) -> None:
    run.g_optimizer.load_state_dict(state["g_optimizer"])
    if run.d_optimizer is not None and state.get("d_optimizer") is not None:
        run.d_optimizer.load_state_dict(state["d_optimizer"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.progress = _Progress(**state["progress"])
    run.history = list(state.get("history", []))
    run.validations = list(state.get("validations", []))
    run.samples = state.get("samples") or run.samples
    run.saved_step = run.progress.step
    set_rng_state(state["rng"])  # last: nothing may draw random numbers after this
    _print_main(f"resuming from {run.checkpoint_path} at step {run.progress.step}")


def _load_validation_set(run: _Run, val_set) -> None:
    n = min(run.config.num_val_images, len(val_set))
    if n == 0:
        raise ValueError("the validation set is empty")
    subset = torch.utils.data.Subset(val_set, range(n))
    loader = _make_loader(subset, run.config.batch_size, False, run.device, 0, None)
    with _fork_rng(torch.device("cpu")):
        pairs = list(loader)
    run.val_L = torch.cat([L for L, _ in pairs])
    run.val_ab = torch.cat([ab for _, ab in pairs])
    k = run.config.num_sample_images
    if k and not run.samples:
        run.samples = {
            "L": _quantise(run.val_L[:k]),
            "real_ab": _quantise(run.val_ab[:k]),
            "steps": [],
            "stages": [],
            "ab": [],
        }


def _print_main(message: str) -> None:
    if ddp.rank_from_env() == 0:
        print(message)


def _metric_sums(pred_rgb: Tensor, real_rgb: Tensor) -> dict[str, float]:
    """Per-batch sums of the validation metrics (per-image values, or a batch mean times B)."""
    from colorlib import metrics

    values = {
        "psnr": metrics.psnr(pred_rgb, real_rgb),
        "ssim": metrics.ssim(pred_rgb, real_rgb),
        "colorfulness": metrics.colorfulness(pred_rgb),
        "colorfulness_real": metrics.colorfulness(real_rgb),
    }
    batch = pred_rgb.shape[0]
    return {k: float(v.float().sum()) if v.dim() else float(v) * batch for k, v in values.items()}


def _validate(run: _Run, stage: Stage) -> None:
    """Metrics on the validation photos and the sample colourisations (rank 0 only)."""
    if not run.info.is_main:
        return
    generator, size, keep = ddp.unwrap(run.generator), run.config.batch_size, []
    training = generator.training
    generator.eval()
    sums: dict[str, float] = {}
    with torch.no_grad(), _fork_rng(run.device):
        for start in range(0, len(run.val_L), size):
            L = run.val_L[start : start + size].to(run.device)
            real_ab = run.val_ab[start : start + size].to(run.device)
            with run.precision.autocast():
                fake_ab = generator(L).float()
            batch = _metric_sums(L_ab_to_rgb(L, fake_ab), L_ab_to_rgb(L, real_ab))
            sums = {k: sums.get(k, 0.0) + v for k, v in batch.items()}
            if start < run.config.num_sample_images:
                keep.append(fake_ab)
    generator.train(training)
    p = run.progress
    metrics = {k: v / len(run.val_L) for k, v in sums.items()}
    row = {"step": p.step, "stage": stage.name, "time": p.elapsed, "metrics": metrics}
    run.validations.append(row)
    if run.samples:
        run.samples["steps"].append(p.step)
        run.samples["stages"].append(stage.name)
        run.samples["ab"].append(_quantise(torch.cat(keep)[: run.config.num_sample_images]))


def _save(run: _Run) -> None:
    """Checkpoint the run (rank 0, when a path is set and something changed since the last)."""
    p = run.progress
    if run.checkpoint_path is None or not run.info.is_main or run.saved_step == p.step:
        return
    discriminator = ddp.unwrap(run.discriminator)
    state = {
        "config": run.config.to_dict(),
        "complete": _is_complete(run.config, p),
        "init_from": run.init_from,
        "progress": p.to_dict(),
        "generator": ddp.unwrap(run.generator).state_dict(),
        "generator_kwargs": _architecture(run.generator, run.config.model_kwargs),
        "encoder_source": getattr(ddp.unwrap(run.generator), "encoder_source", None),
        "discriminator": None if discriminator is None else discriminator.state_dict(),
        "g_optimizer": run.g_optimizer.state_dict(),
        "d_optimizer": None if run.d_optimizer is None else run.d_optimizer.state_dict(),
        "scaler": None if run.scaler is None else run.scaler.state_dict(),
        "rng": get_rng_state(),
        "history": run.history,
        "validations": run.validations,
        "samples": run.samples,
    }
    save_checkpoint(run.checkpoint_path, state)
    run.saved_step = p.step


def _batches(run: _Run):
    """Endless ``(L, real_ab)`` micro-batches on the device, in the seeded, resumable order."""
    p, sampler, loader = run.progress, run.sampler, run.loader
    nhwc = run.config.channels_last and run.device.type == "cuda"

    def move(x: Tensor) -> Tensor:
        x = x.to(run.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if nhwc else x

    while True:
        sampler.set_epoch(p.epoch, min(p.batch_in_epoch, sampler.batches_per_epoch))
        loader.generator = sampler.generator()  # worker seeds too: no draw from the global RNG
        for L, real_ab in loader:
            p.batch_in_epoch += 1
            yield move(L), move(real_ab)
        p.epoch, p.batch_in_epoch = p.epoch + 1, 0


def _set_learning_rate(run: _Run) -> None:
    if not run.config.lr_milestones:
        return
    lr = learning_rate(run.config, run.progress.step)
    for optimizer in (run.g_optimizer, run.d_optimizer):
        for group in [] if optimizer is None else optimizer.param_groups:
            group["lr"] = lr


def _step_function(run: _Run, stage: Stage):
    common = {"scaler": run.scaler, "precision": run.precision}
    if stage.name == "pretrain":
        return lambda batch: pretrain_step(
            run.generator, run.g_optimizer, run.objective, batch, **common
        )
    return lambda batch: gan_step(
        run.generator,
        run.discriminator,
        run.g_optimizer,
        run.d_optimizer,
        run.objective,
        batch,
        **common,
    )


def _progress_bar(run: _Run, index: int, show: bool):
    from tqdm.auto import tqdm

    stage = run.config.stages[index]
    return tqdm(
        total=stage.max_steps,
        initial=run.progress.stage_steps[index],
        desc=f"stage {index + 1}/{len(run.config.stages)} {stage.name}",
        unit="step",
        disable=not (show and run.info.is_main),
        dynamic_ncols=True,
    )


def _postfix(run: _Run, index: int, losses: dict[str, float]) -> dict[str, str]:
    shown = {k: f"{v:.3g}" for k, v in losses.items() if k.endswith("total") or k == "g_l1"}
    stage = run.config.stages[index]
    if stage.max_minutes is not None:
        left = stage.max_minutes - run.progress.stage_seconds[index] / 60
        shown["min left"] = f"{max(left, 0):.1f}"
    return shown


class _Interrupt:
    hit = False


@contextlib.contextmanager
def _deferred_interrupt(enabled: bool):
    """Ctrl-C sets a flag that the loop checks after each step (a second Ctrl-C stops at once)."""
    flag = _Interrupt()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.hit:
            raise KeyboardInterrupt
        flag.hit = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _stage_over_everywhere(run: _Run, index: int) -> bool:
    over = _stage_over(run.config, run.progress, index)
    if run.config.stages[index].max_minutes is None:
        return over  # step budgets agree on every rank without asking
    return ddp.any_rank(over, run.device)


def _nan_message(run: _Run, index: int, err: Exception) -> str:
    stage, p = run.config.stages[index], run.progress
    where = f"training stopped at step {p.step + 1} (stage {index + 1} '{stage.name}')"
    if run.checkpoint_path is not None and run.checkpoint_path.exists():
        kept = f"the last good checkpoint {run.checkpoint_path} was left untouched"
    else:
        kept = "no checkpoint was written"
    return f"{where}: non-finite loss {err}; {kept}"


def _run_stage(run: _Run, index: int, show: bool, interrupt: _Interrupt) -> None:
    config, p = run.config, run.progress
    stage = config.stages[index]
    p.stage_index, step_function = index, _step_function(run, stage)
    batches, bar, last = _batches(run), _progress_bar(run, index, show), time.perf_counter()
    try:
        while not _stage_over_everywhere(run, index):
            group = [next(batches) for _ in range(config.accumulate_steps)]
            _set_learning_rate(run)
            try:
                losses = step_function(group)
            except NonFiniteLossError as err:
                raise NonFiniteLossError(_nan_message(run, index, err)) from None
            now = time.perf_counter()
            p.step, p.stage_steps[index] = p.step + 1, p.stage_steps[index] + 1
            p.stage_seconds[index] += now - last
            p.elapsed, last = p.elapsed + now - last, now
            run.history.append(
                {"step": p.step, "stage": stage.name, "time": p.elapsed, "losses": losses}
            )
            bar.set_postfix(_postfix(run, index, losses), refresh=False)
            bar.update()
            if config.val_every and p.step % config.val_every == 0:
                _validate(run, stage)
            if config.checkpoint_every and p.step % config.checkpoint_every == 0:
                _save(run)
            if interrupt.hit:
                raise KeyboardInterrupt(f"interrupted after step {p.step}")
    finally:
        bar.close()
    if not run.validations or run.validations[-1]["step"] != p.step:
        _validate(run, stage)
    _save(run)


def fit(
    config: TrainConfig,
    train_set,
    val_set,
    device=None,
    checkpoint_path=None,
    resume: bool = True,
    progress: bool = True,
    init_from=None,
) -> TrainResult:
    """Train the config's networks through its stages; resumable, checkpointed, DDP-ready.

    Args:
        config: what to train and how (:class:`TrainConfig`).
        train_set, val_set: datasets of ``(L (1, S, S), ab (2, S, S))`` pairs.
        device: ``"cuda"``, ``"cpu"``... (None: :func:`colorlib.runtime.get_device`). Under
            ``torchrun`` each process uses ``cuda:LOCAL_RANK``.
        checkpoint_path: where to checkpoint (None: nowhere).
        resume: continue from ``checkpoint_path`` when it holds a run of the same config
            (stage budgets may have grown); a different config raises ``CheckpointError``.
        progress: show a progress bar with the live losses (rank 0).
        init_from: checkpoint path or ``train_or_load`` name whose weights start this run
            (fresh optimisers), e.g. a finished L1 pretraining.

    Returns:
        A :class:`TrainResult`.

    Raises:
        NonFiniteLossError: a loss became NaN/inf; the message names the step and the loss.
        KeyboardInterrupt: after Ctrl-C, once the running step ended and was checkpointed.
    """
    info, device = ddp.init_from_env(get_device(None if device is None else str(device)))
    try:
        run = _prepare(config, train_set, val_set, device, info, checkpoint_path, resume, init_from)
        try:
            with _deferred_interrupt(not info.enabled) as interrupt:
                for index in range(run.progress.stage_index, len(config.stages)):
                    _run_stage(run, index, progress, interrupt)
                if interrupt.hit:  # Ctrl-C during the last validation or save: still honour it
                    raise KeyboardInterrupt(f"interrupted after step {run.progress.step}")
        except KeyboardInterrupt:
            _save(run)
            where = run.checkpoint_path or "nowhere (no checkpoint_path)"
            _print_main(f"interrupted at step {run.progress.step}; saved to {where}")
            raise
        ddp.broadcast_buffers(run.generator)
        ddp.broadcast_buffers(run.discriminator)
    finally:
        if info.owns_group:
            torch.distributed.destroy_process_group()
    return _result(run, loaded=False)


def _result(run: _Run, loaded: bool) -> TrainResult:
    discriminator = ddp.unwrap(run.discriminator)
    return TrainResult(
        config=run.config,
        generator=ddp.unwrap(run.generator).eval(),
        discriminator=None if discriminator is None else discriminator.eval(),
        history=run.history,
        validations=run.validations,
        samples=_decode_samples(run.samples),
        checkpoint_path=run.checkpoint_path,
        loaded=loaded,
        complete=_is_complete(run.config, run.progress),
    )


def _load_result(state: dict, path: Path, device) -> TrainResult:
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
            _print_main(f"ignoring {path} ({err}); training from scratch")
            resume = False
        else:
            diffs = config_differences(saved, config)
            if state.get("init_from") != (None if init_from is None else str(init_from)):
                diffs.append("init_from")
            if diffs:
                _print_main(f"{path} was trained with another config ({diffs}); training again")
                resume = False
            elif _is_complete(config, _Progress(**state["progress"])):
                steps = state["progress"]["step"]
                _print_main(f"loaded '{name}' from {path} ({steps} steps; force=True retrains)")
                return _load_result(state, path, device)
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
