"""Training: a frozen config, plain step functions, ``fit()`` and the chapters' ``train_or_load``.

Design:

* :class:`TrainConfig` is a frozen dataclass of primitives; it is stored in every checkpoint
  (``to_dict`` / ``from_dict``) and is all that is needed to rebuild the networks;
* one optimisation step is a plain function: :func:`pretrain_step` (generator alone, no
  adversarial term) and :func:`gan_step` = :func:`discriminator_update` (fake detached) then
  :func:`generator_update` (discriminator frozen). A *batch* is an ``(L, real_ab)`` pair or a
  list of them (micro-batches whose gradients are accumulated into one step);
* :func:`fit` runs the config's stages in order, each with a step and/or time budget, and
  keeps a per-step loss history, periodic validation metrics and a few sample colourisations.
  It checkpoints every ``checkpoint_every`` steps, at stage ends and on Ctrl-C (the interrupt is
  deferred to the end of the running step, so a checkpoint is always a step boundary), resumes
  bit-exactly on CPU with ``num_workers=0`` (RNG states and the data position are saved), stops
  on a non-finite loss without touching the last good checkpoint, and runs unchanged under
  ``torchrun`` (DDP; see :mod:`colorlib.distributed`);
* :func:`train_or_load` is fit with a cache: the chapters call it, so a chapter trains only when
  no finished checkpoint of the same config exists.

>>> config = TrainConfig(model="unet", model_kwargs={"base_channels": 32},
...                      stages=(Stage("pretrain", max_minutes=5), Stage("gan", max_minutes=10)))
>>> result = train_or_load(config, "pix2pix-pretrained", train_set, val_set)
>>> result.generator(L)  # (B, 2, H, W)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib import distributed as ddp
from colorlib.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from colorlib.color import L_ab_to_rgb
from colorlib.losses import (
    GAN_MODES,
    DDColorObjective,
    Pix2PixObjective,
    discriminator_fake_loss,
    discriminator_real_loss,
)
from colorlib.runtime import checkpoint_dir, get_device, seed_everything

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

STAGE_NAMES = ("pretrain", "gan")
OBJECTIVES = ("pix2pix", "ddcolor")
#: optimiser recipes: pix2pix's Adam and DDColor's AdamW
OPTIMIZERS = {
    "adam": {"lr": 2e-4, "betas": (0.5, 0.999), "weight_decay": 0.0},
    "adamw": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.01},
}
SAMPLE_SIZE = 128  # side of the stored sample colourisations (kept small for checkpoints)
# fields that change neither the weights nor the data order: a checkpoint may differ in them
RUNTIME_FIELDS = ("num_workers", "checkpoint_every", "val_every", "num_val_images")


def _canonical(value, where: str):
    """Primitives only (tuples become lists), so configs survive a weights_only round trip."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_canonical(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _canonical(v, where) for k, v in value.items()}
    raise TypeError(f"{where} must hold only primitives, lists and dicts, got {value!r}")


@dataclass(frozen=True)
class Stage:
    """One training stage and its budget; it ends at whichever limit comes first.

    Attributes:
        name: ``"pretrain"`` (generator alone, no adversarial term) or ``"gan"``.
        max_steps: optimiser steps in this stage, or None.
        max_minutes: wall-clock minutes in this stage (validation included), or None.
    """

    name: str
    max_steps: int | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.name not in STAGE_NAMES:
            raise ValueError(f"unknown stage {self.name!r}; choose one of {list(STAGE_NAMES)}")
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError(f"stage {self.name!r} needs max_steps and/or max_minutes")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 0
        ):
            raise ValueError(f"max_steps must be an int >= 0 or None, got {self.max_steps!r}")
        if self.max_minutes is not None and not self.max_minutes >= 0:
            raise ValueError(f"max_minutes must be >= 0 or None, got {self.max_minutes!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoints).

    Attributes:
        model, model_kwargs: generator registry name and keyword arguments
            (:func:`colorlib.models.build_model`).
        discriminator, discriminator_kwargs: ``"patchgan"`` or None (pretraining only).
        image_size, batch_size: training crop side and per-process batch.
        objective: ``"pix2pix"`` (uses ``lambda_l1``) or ``"ddcolor"`` (uses ``pixel_weight``,
            ``perceptual_weight``, ``adversarial_weight``, ``colorfulness_weight``,
            ``perceptual_pretrained``); both use ``gan_mode`` (``"vanilla"`` or ``"lsgan"``).
        optimizer: ``"adam"`` (pix2pix: lr 2e-4, betas (0.5, 0.999)) or ``"adamw"`` (DDColor:
            lr 1e-4, betas (0.9, 0.99), weight decay 0.01); ``lr``, ``betas``,
            ``weight_decay`` override the recipe (None: the recipe's value, filled in).
        lr_milestones, lr_gamma: step decay, lr times ``lr_gamma`` at each milestone (global
            steps; DDColor halves at 80k and every 40k after).
        stages: the :class:`Stage` s, run in order.
        val_every: validate every this many steps (0: only at stage ends).
        num_val_images, num_sample_images: validation photos for metrics / kept samples.
        checkpoint_every: steps between checkpoints (0: only at stage ends and on Ctrl-C).
        seed: seeds initialisation, the data order and augmentation.
        amp, channels_last: float16 autocast + GradScaler and NHWC memory, CUDA only.
        grad_checkpointing: passed to networks that support it.
        accumulate_steps: micro-batches per optimiser step.
        num_workers: data-loading workers (None: the loader's default).
    """

    model: str = "unet"
    model_kwargs: dict = field(default_factory=dict)
    discriminator: str | None = "patchgan"
    discriminator_kwargs: dict = field(default_factory=dict)
    image_size: int = 256
    batch_size: int = 16
    objective: str = "pix2pix"
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"
    pixel_weight: float = 0.1
    perceptual_weight: float = 5.0
    adversarial_weight: float = 1.0
    colorfulness_weight: float = 0.5
    perceptual_pretrained: bool = True
    optimizer: str = "adam"
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    stages: tuple[Stage, ...] = (Stage("gan", max_minutes=10.0),)
    val_every: int = 500
    num_val_images: int = 16
    num_sample_images: int = 4
    checkpoint_every: int = 500
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    grad_checkpointing: bool = False
    accumulate_steps: int = 1
    num_workers: int | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "model_kwargs", _canonical(dict(self.model_kwargs), "model_kwargs"))
        put(self, "discriminator_kwargs", _canonical(dict(self.discriminator_kwargs), "kwargs"))
        stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        put(self, "stages", stages)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {list(OPTIMIZERS)}"
            )
        for name, default in OPTIMIZERS[self.optimizer].items():
            value = default if getattr(self, name) is None else getattr(self, name)
            put(self, name, tuple(float(b) for b in value) if name == "betas" else float(value))
        put(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))
        self._validate()

    def _validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; choose one of {list(OBJECTIVES)}"
            )
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}; choose one of {list(GAN_MODES)}")
        if not self.stages:
            raise ValueError("stages must hold at least one Stage")
        if self.discriminator is None and any(s.name == "gan" for s in self.stages):
            raise ValueError("a 'gan' stage needs a discriminator (e.g. discriminator='patchgan')")
        for name in ("image_size", "batch_size", "accumulate_steps", "num_val_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("val_every", "checkpoint_every", "num_sample_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """Primitives only (what checkpoints store)."""
        out = {
            f.name: _canonical(getattr(self, f.name), f.name)
            for f in dataclasses.fields(self)
            if f.name != "stages"
        }
        out["stages"] = [dataclasses.asdict(s) for s in self.stages]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}")
        data = dict(data)
        if data.get("betas") is not None:
            data["betas"] = tuple(data["betas"])
        data["stages"] = tuple(Stage(**s) for s in data.get("stages", ()))
        return cls(**data)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (configs are frozen)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_profile(cls, profile, stages=("gan",), **fields) -> TrainConfig:
        """Sizes and budgets from a :class:`colorlib.runtime.Profile`, one stage per name.

        Without explicit ``model_kwargs``, the U-Net gets the profile's ``base_channels`` and
        one level per halving of ``image_size`` (a 1x1 bottleneck), DDColor the profile's
        preset. Other ``fields`` are passed through.

        Example:
            >>> TrainConfig.from_profile(get_profile("smoke"), stages=("pretrain", "gan"))
        """
        budget = {"max_steps": profile.stage_steps, "max_minutes": profile.stage_minutes}
        values = {
            "image_size": profile.image_size,
            "batch_size": profile.batch_size,
            "num_workers": profile.num_workers,
            "num_val_images": profile.eval_images,
            "stages": tuple(Stage(name, **budget) for name in stages),
        }
        model = fields.get("model", "unet")
        if model == "unet" and "model_kwargs" not in fields:
            levels = max(1, int(math.log2(fields.get("image_size", profile.image_size))))
            values["model_kwargs"] = {
                "base_channels": profile.unet_base_channels,
                "num_downs": levels,
            }
        elif model == "ddcolor" and "model_kwargs" not in fields:
            values["model_kwargs"] = {"preset": profile.ddcolor_preset}
        return cls(**{**values, **fields})


def config_differences(a: TrainConfig, b: TrainConfig, ignore=RUNTIME_FIELDS) -> list[str]:
    """Fields in which two configs differ; ``stages`` differ only in names or order."""
    diffs = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in ignore:
            continue
        if f.name == "stages":
            if [s.name for s in a.stages] != [s.name for s in b.stages]:
                diffs.append("stages")
        elif getattr(a, f.name) != getattr(b, f.name):
            diffs.append(f.name)
    return diffs


# ----------------------------------------------------------------------------- building


def _factory(name: str):
    from colorlib.models import MODELS

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    module, attribute = MODELS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def _accepts(factory, argument: str) -> bool:
    try:
        return argument in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


_CHECKPOINTING_ARGUMENTS = ("grad_checkpointing", "gradient_checkpointing")


def _build(name: str, kwargs: dict, pretrained: bool | None, grad_checkpointing: bool):
    from colorlib.models import build_model

    factory, kwargs = _factory(name), dict(kwargs)
    if pretrained is not None and _accepts(factory, "pretrained"):
        kwargs["pretrained"] = pretrained
    argument = next((a for a in _CHECKPOINTING_ARGUMENTS if _accepts(factory, a)), None)
    if grad_checkpointing and argument is not None:
        kwargs[argument] = True
    model = build_model(name, **kwargs)
    if grad_checkpointing and argument is None:
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            warnings.warn(f"{name!r} does not support gradient checkpointing", stacklevel=3)
    return model


def build_generator(config: TrainConfig, pretrained: bool | None = None) -> nn.Module:
    """The config's generator (``pretrained`` overrides the encoder-weights flag if it has one)."""
    return _build(config.model, config.model_kwargs, pretrained, config.grad_checkpointing)


def build_discriminator(config: TrainConfig) -> nn.Module | None:
    """The config's discriminator, or None."""
    if config.discriminator is None:
        return None
    return _build(config.discriminator, config.discriminator_kwargs, None, False)


def build_objective(config: TrainConfig) -> nn.Module:
    """The generator objective the config names, with its weights."""
    if config.objective == "pix2pix":
        return Pix2PixObjective(lambda_l1=config.lambda_l1, gan_mode=config.gan_mode)
    return DDColorObjective(
        pixel=config.pixel_weight,
        perceptual=config.perceptual_weight,
        adversarial=config.adversarial_weight,
        colorfulness=config.colorfulness_weight,
        gan_mode=config.gan_mode,
        perceptual_pretrained=config.perceptual_pretrained,
    )


def build_optimizers(config: TrainConfig, generator: nn.Module, discriminator=None):
    """``(g_optimizer, d_optimizer or None)`` from the config's recipe (fused on CUDA)."""
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW

    def make(module):
        params = [p for p in module.parameters() if p.requires_grad]
        fused = bool(params) and all(p.is_cuda for p in params)
        return kind(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=fused
        )

    return make(generator), (make(discriminator) if discriminator is not None else None)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The step-decayed learning rate at global ``step`` (0-based)."""
    return config.lr * config.lr_gamma ** sum(step >= m for m in config.lr_milestones)


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Precision:
    """Autocast settings: ``dtype`` None means full precision."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


FULL_PRECISION = Precision()


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stopped before the optimiser step."""


def _micro_batches(batch) -> list:
    if isinstance(batch, tuple | list) and len(batch) == 2 and isinstance(batch[0], Tensor):
        return [tuple(batch)]
    batches = list(batch)
    if not batches:
        raise ValueError("a step needs at least one (L, real_ab) batch")
    return batches


def _values(losses: dict[str, Tensor], module: nn.Module) -> dict[str, float]:
    """Loss tensors -> floats (one device sync); raise if any is NaN/inf (agreed across ranks).

    Called after backward and before the optimiser step, so a bad loss changes no weight.
    """
    names = list(losses)
    values = torch.stack([losses[k].detach().float() for k in names]).tolist()
    bad = [(k, v) for k, v in zip(names, values, strict=True) if not math.isfinite(v)]
    if isinstance(module, nn.parallel.DistributedDataParallel):
        if ddp.any_rank(bool(bad), next(module.parameters()).device) and not bad:
            raise NonFiniteLossError("a loss became non-finite on another process")
    if bad:
        raise NonFiniteLossError(f"{bad[0][0]} = {bad[0][1]}")
    return dict(zip(names, values, strict=True))


def _mean(logs: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(log[k] for log in logs) / len(logs) for k in logs[0]}


def _backward(loss: Tensor, scaler) -> None:
    (loss if scaler is None else scaler.scale(loss)).backward()


def _step(optimizer, scaler) -> None:
    optimizer.step() if scaler is None else scaler.step(optimizer)


def pretrain_step(
    generator, optimizer, objective, batch, *, scaler=None, precision=FULL_PRECISION
) -> dict[str, float]:
    """One generator update without a discriminator: ``objective(L, real, fake, None)``.

    Args:
        batch: ``(L, real_ab)`` (``(B, 1, H, W)``, ``(B, 2, H, W)``) or a list of them
            (micro-batches accumulated into this one step).
        scaler: a ``torch.amp.GradScaler`` under float16 autocast, else None.

    Returns:
        The objective's terms as floats, averaged over micro-batches (``"total"``, ``"l1"``...).

    Raises:
        NonFiniteLossError: a loss is NaN/inf (before any weight changes).
    """
    batches = _micro_batches(batch)
    optimizer.zero_grad(set_to_none=True)
    logs = []
    for i, (L, real_ab) in enumerate(batches):
        with ddp.sync_grads(generator, i == len(batches) - 1):
            with precision.autocast():
                losses = objective(L, real_ab, generator(L), None)
            _backward(losses["total"] / len(batches), scaler)
        logs.append(_values(losses, generator))
    _step(optimizer, scaler)
    if scaler is not None:
        scaler.update()
    return _mean(logs)


def discriminator_update(
    discriminator, optimizer, batches, gan_mode: str, *, scaler=None, precision=FULL_PRECISION
) -> dict[str, float]:
    """One discriminator update on real and generated pairs (the fakes are detached here).

    Real and fake pairs go through the discriminator separately (BatchNorm sees pure batches,
    as in pix2pix), each followed by its own backward pass (which DDP requires).

    Args:
        batches: list of ``(L, real_ab, fake_ab)`` micro-batches.

    Returns:
        ``{"real", "fake", "total"}`` as in :func:`colorlib.losses.discriminator_loss`, floats.
    """
    optimizer.zero_grad(set_to_none=True)
    logs, n = [], len(batches)
    for i, (L, real_ab, fake_ab) in enumerate(batches):
        with ddp.sync_grads(discriminator, False):
            with precision.autocast():
                real = discriminator_real_loss(discriminator(L, real_ab), gan_mode)
            _backward(0.5 * real / n, scaler)
        with ddp.sync_grads(discriminator, i == n - 1):
            with precision.autocast():
                fake = discriminator_fake_loss(discriminator(L, fake_ab.detach()), gan_mode)
            _backward(0.5 * fake / n, scaler)
        logs.append({"real": real, "fake": fake, "total": 0.5 * (real + fake)})
    logs = [_values(log, discriminator) for log in logs]
    _step(optimizer, scaler)
    return _mean(logs)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Context: ``requires_grad=False`` on every parameter, restored afterwards."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def generator_update(
    generator,
    discriminator,
    optimizer,
    objective,
    batches,
    *,
    fakes=None,
    scaler=None,
    precision=FULL_PRECISION,
) -> dict[str, float]:
    """One generator update through a frozen discriminator: ``objective(L, real, fake, D(fake))``.

    Args:
        batches: list of ``(L, real_ab)`` micro-batches.
        fakes: the generator's outputs for ``batches`` with their graphs, if already computed
            (saves a forward pass); otherwise the generator is run here.

    Returns:
        The objective's terms as floats (``"total"``, ``"adversarial"``, ``"l1"``...).
    """
    critic = ddp.unwrap(discriminator)  # frozen: no DDP gradient sync needed for it
    optimizer.zero_grad(set_to_none=True)
    logs, n = [], len(batches)
    with frozen(critic):
        for i, (L, real_ab) in enumerate(batches):
            with ddp.sync_grads(generator, i == n - 1):
                with precision.autocast():
                    fake_ab = generator(L) if fakes is None else fakes[i]
                    losses = objective(L, real_ab, fake_ab, critic(L, fake_ab))
                _backward(losses["total"] / n, scaler)
            logs.append(_values(losses, generator))
    _step(optimizer, scaler)
    return _mean(logs)


def gan_step(
    generator,
    discriminator,
    g_optimizer,
    d_optimizer,
    objective,
    batch,
    *,
    scaler=None,
    precision=FULL_PRECISION,
) -> dict[str, float]:
    """One pix2pix iteration: update D on real/fake pairs, then G through the updated, frozen D.

    With one micro-batch the generator runs once (its output is detached for D and reused,
    graph and all, for G); with several it runs without gradients for D and again for G, so
    memory stays that of one micro-batch.

    Returns:
        ``d_real``, ``d_fake``, ``d_total`` and ``g_<term>`` for each generator term, floats.
    """
    batches = _micro_batches(batch)
    keep = len(batches) == 1
    fakes = []
    for L, _ in batches:
        with torch.set_grad_enabled(keep), precision.autocast():
            fakes.append(generator(L))
    d_batches = [(L, ab, fake.detach()) for (L, ab), fake in zip(batches, fakes, strict=True)]
    d_logs = discriminator_update(
        discriminator,
        d_optimizer,
        d_batches,
        objective.gan_mode,
        scaler=scaler,
        precision=precision,
    )
    g_logs = generator_update(
        generator,
        discriminator,
        g_optimizer,
        objective,
        batches,
        fakes=fakes if keep else None,
        scaler=scaler,
        precision=precision,
    )
    if scaler is not None:
        scaler.update()
    return {**{f"d_{k}": v for k, v in d_logs.items()}, **{f"g_{k}": v for k, v in g_logs.items()}}


# ----------------------------------------------------------------------------- fit


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
class _Progress:
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


def _stage_over(config: TrainConfig, progress: _Progress, index: int) -> bool:
    stage = config.stages[index]
    steps = stage.max_steps is not None and progress.stage_steps[index] >= stage.max_steps
    minutes = progress.stage_seconds[index] / 60.0
    return steps or (stage.max_minutes is not None and minutes >= stage.max_minutes)


def _is_complete(config: TrainConfig, progress: _Progress) -> bool:
    return all(_stage_over(config, progress, i) for i in range(len(config.stages)))


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


def _quantise(x: Tensor) -> Tensor:
    """Normalised [-1, 1] values -> uint8 (samples are small in checkpoints)."""
    if x.shape[-1] > SAMPLE_SIZE:
        x = F.interpolate(x.float(), size=(SAMPLE_SIZE, SAMPLE_SIZE), mode="area")
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def _dequantise(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def _decode_samples(samples: dict) -> dict:
    if not samples:
        return {}
    out = {k: samples[k] for k in ("steps", "stages")}
    out.update({k: _dequantise(samples[k]) for k in ("L", "real_ab")})
    out["ab"] = [_dequantise(ab) for ab in samples["ab"]]
    return out


def _resolve_init(init_from: str | Path) -> Path:
    path = Path(init_from)
    if path.suffix == ".pt" or path.exists():
        return path
    return checkpoint_dir() / f"{init_from}.pt"


def _init_state(init_from, config: TrainConfig) -> dict:
    """The checkpoint a run starts from (e.g. a finished L1 pretraining), checked to fit."""
    path = _resolve_init(init_from)
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
    _print_main(f"initialised from {path} (step {state['progress']['step']})")
    return state


def _build_spec(name, kwargs: dict):
    return name, {k: v for k, v in kwargs.items() if k != "pretrained"}


def rebuild_generator(config: TrainConfig, state: dict, grad_checkpointing=None) -> nn.Module:
    """The generator of a checkpoint ``state``, weights loaded (``pretrained=False``).

    Built from the architecture the network reported when it was saved
    (``state["generator_kwargs"]``, e.g. ResNetUNet's resolved ``encoder="auto"``), else from
    the config.
    """
    kwargs = state.get("generator_kwargs") or config.model_kwargs
    changes = {"model_kwargs": kwargs}
    if grad_checkpointing is not None:
        changes["grad_checkpointing"] = grad_checkpointing
    generator = build_generator(config.replace(**changes), pretrained=False)
    generator.load_state_dict(state["generator"])
    return generator


def _architecture(module: nn.Module, fallback: dict) -> dict:
    """The keyword arguments that rebuild ``module`` (its ``model_kwargs`` when it has them)."""
    kwargs = getattr(ddp.unwrap(module), "model_kwargs", None)
    try:
        return _canonical(dict(kwargs), "model_kwargs") if isinstance(kwargs, dict) else fallback
    except TypeError:
        return fallback


def _resume_state(config, path, resume: bool, init_from) -> dict | None:
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


def _build_networks(config, device, state, init_from):
    seed_everything(config.seed)  # identical initial weights on every rank
    source = state  # resume: the run's own weights; else maybe another run's
    if source is None and init_from is not None:
        source = _init_state(init_from, config)
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
