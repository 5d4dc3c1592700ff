"""Training loop: ``fit()`` through a config's stages.

Design:

* :func:`fit` runs the stages of a :class:`~colorlib.training.config.TrainConfig` in order,
  each with a step and/or time budget, calling one step function per optimiser step
  (:func:`~colorlib.training.steps.pretrain_step` or :func:`~colorlib.training.steps.gan_step`,
  fed ``accumulate_steps`` micro-batches from a seeded, resumable sampler). It keeps a per-step
  loss history, periodic validation metrics and a few sample colourisations;
* it checkpoints every ``checkpoint_every`` steps or ``checkpoint_minutes``, whichever comes
  first, at stage ends and on Ctrl-C (the interrupt is deferred to the end of the running step,
  so a checkpoint is always a step boundary), resumes bit-exactly on CPU with ``num_workers=0``
  (RNG states and the data position are saved), stops on a non-finite loss without touching
  the last good checkpoint, holds ``<checkpoint>.lock`` against a second process
  (:mod:`colorlib.training.lock`) and runs unchanged under ``torchrun`` (DDP).

Where the rest lives: see :mod:`colorlib.training` (config, steps, run state and
``TrainResult``, console, ``train_or_load``), :mod:`colorlib.training.precision` (autocast,
channels-last and the fused optimiser on this machine, printed as the run's first line),
:mod:`colorlib.checkpoint` (the file) and :mod:`colorlib.evaluation.validation`.

>>> config = TrainConfig(model="unet", model_kwargs={"base_channels": 32},
...                      stages=(Stage("pretrain", max_minutes=5), Stage("gan", max_minutes=10)))
>>> result = fit(config, train_set, val_set, checkpoint_path="pix2pix.pt")
>>> result.generator(L)  # (B, 2, H, W)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from colorlib.checkpoint import rebuild_generator
from colorlib.data.datasets import make_loader
from colorlib.evaluation.validation import validate, validation_pairs
from colorlib.runtime import get_device, seed_everything
from colorlib.training import distributed as ddp
from colorlib.training.config import (
    Stage,
    TrainConfig,
    apply_learning_rate,
    build_discriminator,
    build_generator,
    build_objective,
    build_optimizers,
)
from colorlib.training.console import (
    Interrupt,
    deferred_interrupt,
    postfix,
    print_main,
    progress_bar,
    training_banner,
)
from colorlib.training.lock import CheckpointLock
from colorlib.training.precision import StepSettings, load_optimizer_state, step_settings
from colorlib.training.runstate import (
    Progress,
    TrainResult,
    architecture_of,
    checkpoint_due,
    decode_samples,
    get_rng_state,
    init_state,
    is_complete,
    minutes_left,
    quantise,
    resolve_init,
    resume_state,
    set_rng_state,
    stage_over_everywhere,
    write_checkpoint,
)
from colorlib.training.steps import NonFiniteLossError, gan_step, pretrain_step

__all__ = ["fit"]


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
    progress: Progress
    settings: StepSettings
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
    saved_elapsed: float = 0.0  # progress.elapsed at the last checkpoint
    save_seconds: float = 0.0  # how long the last checkpoint took to write


def _build_networks(config, device, state, init_from, settings: StepSettings):
    seed_everything(config.seed)  # identical initial weights on every rank
    source = state  # resume: the run's own weights; else maybe another run's
    if source is None and init_from is not None:
        source = init_state(init_from, config)
        step = source["progress"]["step"]
        print_main(f"initialised from {resolve_init(init_from)} (step {step})")
    if source is None:
        generator = build_generator(config)
    else:
        generator = rebuild_generator(source, grad_checkpointing=config.grad_checkpointing)
    generator = generator.to(device)
    discriminator = build_discriminator(config)
    if discriminator is not None:
        if source is not None and source.get("discriminator") is not None:
            discriminator.load_state_dict(source["discriminator"])
        discriminator = discriminator.to(device)
    return settings.layout(generator), settings.layout(discriminator)


def _prepare(config, train_set, val_set, device, info, path, resume, init_from) -> _Run:
    state = resume_state(config, path, resume, init_from)
    settings = step_settings(config, device, lambda fast: not ddp.any_rank(not fast, device))
    print_main(training_banner(device, settings))
    generator, discriminator = _build_networks(config, device, state, init_from, settings)
    g_optimizer, d_optimizer = build_optimizers(
        config, generator, discriminator, fused=settings.fused_optimizer
    )
    # the classification objective weighs its colour bins by the training photos
    data = (train_set,) if config.objective == "classification" else ()
    run = _Run(
        config=config,
        info=info,
        device=device,
        generator=ddp.wrap(generator, info, device),
        discriminator=None if discriminator is None else ddp.wrap(discriminator, info, device),
        g_optimizer=g_optimizer,
        d_optimizer=d_optimizer,
        objective=build_objective(config, *data).to(device),
        scaler=torch.amp.GradScaler(device.type) if settings.grad_scaler else None,
        progress=Progress(len(config.stages)),
        settings=settings,
        checkpoint_path=None if path is None else Path(path),
        init_from=None if init_from is None else str(init_from),
    )
    run.sampler = ddp.EpochSampler(
        len(train_set), config.batch_size, config.seed, info.rank, info.world_size
    )
    run.loader = make_loader(
        train_set, config.batch_size, True, device, config.num_workers, run.sampler
    )
    run.val_L, run.val_ab = validation_pairs(val_set, config.num_val_images)
    k = config.num_sample_images
    if k:
        run.samples = {
            "L": quantise(run.val_L[:k, :1]),  # the lightness, without hint channels
            "real_ab": quantise(run.val_ab[:k]),
            "steps": [],
            "stages": [],
            "ab": [],
        }
    if state is None:
        seed_everything(config.seed + info.rank)  # each rank its own augmentation stream
    else:
        _restore(run, state)
    return run


def _restore(run: _Run, state: dict) -> None:
    load_optimizer_state(run.g_optimizer, state["g_optimizer"])
    if run.d_optimizer is not None and state.get("d_optimizer") is not None:
        load_optimizer_state(run.d_optimizer, state["d_optimizer"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.progress = Progress(**state["progress"])
    run.history = list(state.get("history", []))
    run.validations = list(state.get("validations", []))
    run.samples = state.get("samples") or run.samples
    run.saved_step, run.saved_elapsed = run.progress.step, run.progress.elapsed
    set_rng_state(state["rng"])  # last: nothing may draw random numbers after this
    print_main(f"resuming from {run.checkpoint_path} at step {run.progress.step}")


def _validate(run: _Run, stage: Stage) -> None:
    """Validation metrics and sample colourisations into the run's records (rank 0 only)."""
    if not run.info.is_main:
        return
    k = run.config.num_sample_images if run.samples else 0
    metrics, sample_ab = validate(
        ddp.unwrap(run.generator),
        run.val_L,
        run.val_ab,
        run.config.batch_size,
        run.settings.precision,
        run.device,
        k,
    )
    p = run.progress
    run.validations.append(
        {"step": p.step, "stage": stage.name, "time": p.elapsed, "metrics": metrics}
    )
    if k:
        run.samples["steps"].append(p.step)
        run.samples["stages"].append(stage.name)
        run.samples["ab"].append(quantise(sample_ab))


def _save(run: _Run) -> None:
    """Checkpoint the run (rank 0, when a path is set and something changed since the last)."""
    p = run.progress
    if run.checkpoint_path is None or not run.info.is_main or run.saved_step == p.step:
        return
    discriminator = ddp.unwrap(run.discriminator)
    state = {
        "config": run.config.to_dict(),
        "complete": is_complete(run.config, p),
        "init_from": run.init_from,
        "progress": p.to_dict(),
        "generator": ddp.unwrap(run.generator).state_dict(),
        "generator_kwargs": architecture_of(run.generator, run.config.model_kwargs),
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
    run.save_seconds = write_checkpoint(run.checkpoint_path, state)
    run.saved_step, run.saved_elapsed = p.step, p.elapsed


def _batches(run: _Run):
    """Endless ``(L, real_ab)`` micro-batches on the device, in the seeded, resumable order."""
    p, sampler, loader = run.progress, run.sampler, run.loader

    def move(x: Tensor) -> Tensor:
        return run.settings.layout(x.to(run.device, non_blocking=True))

    while True:
        sampler.set_epoch(p.epoch, min(p.batch_in_epoch, sampler.batches_per_epoch))
        loader.generator = sampler.generator()  # worker seeds too: no draw from the global RNG
        for L, real_ab in loader:
            p.batch_in_epoch += 1
            yield move(L), move(real_ab)
        p.epoch, p.batch_in_epoch = p.epoch + 1, 0


def _step_function(run: _Run, stage: Stage):
    common = {"scaler": run.scaler, "precision": run.settings.precision}
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


def _nan_message(run: _Run, index: int, err: Exception) -> str:
    stage, p = run.config.stages[index], run.progress
    where = f"training stopped at step {p.step + 1} (stage {index + 1} '{stage.name}')"
    if run.checkpoint_path is not None and run.checkpoint_path.exists():
        kept = f"the last good checkpoint {run.checkpoint_path} was left untouched"
    else:
        kept = "no checkpoint was written"
    return f"{where}: non-finite loss {err}; {kept}"


def _run_stage(run: _Run, index: int, show: bool, interrupt: Interrupt) -> None:
    config, p = run.config, run.progress
    stage = config.stages[index]
    p.stage_index, step_function = index, _step_function(run, stage)
    batches, last = _batches(run), time.perf_counter()
    initial = run.progress.stage_steps[index]
    bar = progress_bar(config.stages, index, initial, show and run.info.is_main)
    try:
        while not stage_over_everywhere(config, p, index, run.device):
            group = [next(batches) for _ in range(config.accumulate_steps)]
            apply_learning_rate(config, p.step, run.g_optimizer, run.d_optimizer)
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
            bar.set_postfix(postfix(losses, minutes_left(config, p, index)), refresh=False)
            bar.update()
            if config.val_every and p.step % config.val_every == 0:
                _validate(run, stage)
            if checkpoint_due(config, p.step, p.elapsed - run.saved_elapsed, run.save_seconds):
                _save(run)  # ranks need not agree: only rank 0 saves, with no collective
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
        checkpoint_path: where to checkpoint (None: nowhere); ``<checkpoint_path>.lock``
            is held while ``fit`` runs, against a second process training into it.
        resume: continue from ``checkpoint_path`` when it holds a run of the same config
            (stage budgets may have grown); a different config raises ``CheckpointError``.
        progress: show a progress bar with the live losses (rank 0).
        init_from: checkpoint path or ``train_or_load`` name whose weights start this run
            (fresh optimisers), e.g. a finished L1 pretraining.

    Returns:
        A :class:`TrainResult`.

    Raises:
        NonFiniteLossError: a loss became NaN/inf; the message names the step and the loss.
        CheckpointLockedError: another live process is training into ``checkpoint_path``.
        KeyboardInterrupt: after Ctrl-C, once the running step ended and was checkpointed.
    """
    info, device = ddp.init_from_env(get_device(None if device is None else str(device)))
    lock = CheckpointLock(checkpoint_path, info, device)
    try:
        lock.acquire()  # before reading the checkpoint: no other process writes it meanwhile
        run = _prepare(config, train_set, val_set, device, info, checkpoint_path, resume, init_from)
        try:
            with deferred_interrupt(not info.enabled) as interrupt:
                for index in range(run.progress.stage_index, len(config.stages)):
                    _run_stage(run, index, progress, interrupt)
                if interrupt.hit:  # Ctrl-C during the last validation or save: still honour it
                    raise KeyboardInterrupt(f"interrupted after step {run.progress.step}")
        except KeyboardInterrupt:
            _save(run)
            where = run.checkpoint_path or "nowhere (no checkpoint_path)"
            print_main(f"interrupted at step {run.progress.step}; saved to {where}")
            raise
        ddp.broadcast_buffers(run.generator)
        ddp.broadcast_buffers(run.discriminator)
    finally:
        lock.release()
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
        samples=decode_samples(run.samples),
        checkpoint_path=run.checkpoint_path,
        loaded=loaded,
        complete=is_complete(run.config, run.progress),
    )
