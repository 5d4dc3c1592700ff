"""Training configuration: the frozen :class:`TrainConfig`, its stages, and the builders.

Design:

* :class:`TrainConfig` is a frozen dataclass of primitives, normalised once in
  ``__post_init__`` (tuples, the optimiser recipe's defaults filled in) and validated there; it is
  stored in every checkpoint (``to_dict`` / ``from_dict``) and is all that is needed to rebuild
  the networks. :class:`Stage` is one training stage and its step and/or time budget;
* :func:`config_differences` says whether a checkpoint belongs to the same experiment (runtime
  fields such as workers and logging intervals, and stage budgets, may differ);
* the builders turn a config into objects: :func:`build_generator`,
  :func:`build_discriminator` (through the lazy :func:`colorlib.models.build_model` registry,
  gradient checkpointing passed to networks that support it), :func:`build_objective` (the
  "classification" one reads the training photos),
  :func:`build_optimizers` (pix2pix's Adam or DDColor's AdamW) and :func:`learning_rate` (step
  decay). A checkpoint's generator is rebuilt by :func:`colorlib.checkpoint.rebuild_generator`.

Nothing here trains: the step functions are in :mod:`colorlib.training.steps`, the loop in
:mod:`colorlib.training.loop`.

>>> config = TrainConfig(model="unet", model_kwargs={"base_channels": 32},
...                      stages=(Stage("pretrain", max_steps=100), Stage("gan", max_minutes=10)))
>>> generator = build_generator(config)  # L (B, 1, H, W) -> ab (B, 2, H, W)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from colorlib.models import build_model
from colorlib.training.classification import build_classification_objective
from colorlib.training.losses import (
    GAN_MODES,
    PIXEL_LOSSES,
    DDColorObjective,
    Pix2PixObjective,
)

__all__ = [
    "Stage",
    "TrainConfig",
    "config_differences",
    "build_generator",
    "build_discriminator",
    "build_objective",
    "build_optimizers",
    "learning_rate",
    "apply_learning_rate",
    "to_primitives",
]

STAGE_NAMES = ("pretrain", "gan")
OBJECTIVES = ("pix2pix", "ddcolor", "classification")
#: optimiser recipes: pix2pix's Adam and DDColor's AdamW
OPTIMIZERS = {
    "adam": {"lr": 2e-4, "betas": (0.5, 0.999), "weight_decay": 0.0},
    "adamw": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.01},
}
# fields that change neither the weights nor the data order: a checkpoint may differ in them
RUNTIME_FIELDS = (
    "num_workers",
    "checkpoint_every",
    "checkpoint_minutes",
    "val_every",
    "num_val_images",
)


def to_primitives(value, where: str):
    """Primitives only (tuples become lists), so configs survive a weights_only round trip."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [to_primitives(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_primitives(v, where) for k, v in value.items()}
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
        objective: ``"pix2pix"`` (uses ``lambda_l1`` and ``pixel_loss``, ``"l1"`` or
            ``"smooth-l1"``) or ``"ddcolor"`` (uses ``pixel_weight``,
            ``perceptual_weight``, ``adversarial_weight``, ``colorfulness_weight``,
            ``perceptual_pretrained``); both use ``gan_mode`` (``"vanilla"`` or ``"lsgan"``).
            ``"classification"``: Zhang et al.'s rebalanced cross-entropy on the bin logits of
            a ``"classifier"`` model, "pretrain" stages only; ``rebalance_lambda`` is its
            uniform share (the paper's lambda, 0.5; 1 turns rebalancing off), the weights
            come from the training photos (:mod:`colorlib.training.classification`).
        optimizer: ``"adam"`` (pix2pix: lr 2e-4, betas (0.5, 0.999)) or ``"adamw"`` (DDColor:
            lr 1e-4, betas (0.9, 0.99), weight decay 0.01); ``lr``, ``betas``,
            ``weight_decay`` override the recipe (None: the recipe's value, filled in).
        lr_milestones, lr_gamma: step decay, lr times ``lr_gamma`` at each milestone (global
            steps; DDColor halves at 80k and every 40k after).
        stages: the :class:`Stage` s, run in order.
        val_every: validate every this many steps (0: only at stage ends).
        num_val_images, num_sample_images: validation photos for metrics / kept samples.
        checkpoint_every: steps between checkpoints (0: only at stage ends and on Ctrl-C).
        checkpoint_minutes: minutes of training between checkpoints, whichever of the two
            comes first (0 or None: steps only), so that a hard kill loses little work; on a
            disk so slow that a save takes over 2 % of that, they come less often.
        seed: seeds initialisation, the data order and augmentation.
        amp: mixed precision where the hardware runs it fast: float16 autocast + GradScaler on
            CUDA, bfloat16 autocast on a CPU that runs bf16 fast (else float32); weights and
            losses stay float32. ``COLORLIB_PRECISION`` overrides it on a machine
            (:mod:`colorlib.training.precision`).
        channels_last: NHWC memory for the networks and batches, on CUDA and CPU.
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
    pixel_loss: str = "l1"
    gan_mode: str = "vanilla"
    pixel_weight: float = 0.1
    perceptual_weight: float = 5.0
    adversarial_weight: float = 1.0
    colorfulness_weight: float = 0.5
    perceptual_pretrained: bool = True
    rebalance_lambda: float = 0.5
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
    checkpoint_minutes: float | None = 2.0
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    grad_checkpointing: bool = False
    accumulate_steps: int = 1
    num_workers: int | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "model_kwargs", to_primitives(dict(self.model_kwargs), "model_kwargs"))
        put(self, "discriminator_kwargs", to_primitives(dict(self.discriminator_kwargs), "kwargs"))
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
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(
                f"unknown pixel_loss {self.pixel_loss!r}; choose one of {list(PIXEL_LOSSES)}"
            )
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}; choose one of {list(GAN_MODES)}")
        if not self.stages:
            raise ValueError("stages must hold at least one Stage")
        if self.objective == "classification" and any(s.name == "gan" for s in self.stages):
            raise ValueError("the 'classification' objective trains 'pretrain' stages only")
        if not 0 < self.rebalance_lambda <= 1:
            raise ValueError(f"rebalance_lambda must be in (0, 1], got {self.rebalance_lambda!r}")
        if self.discriminator is None and any(s.name == "gan" for s in self.stages):
            raise ValueError("a 'gan' stage needs a discriminator (e.g. discriminator='patchgan')")
        for name in ("image_size", "batch_size", "accumulate_steps", "num_val_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("val_every", "checkpoint_every", "num_sample_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {getattr(self, name)!r}")
        minutes = self.checkpoint_minutes
        number = isinstance(minutes, int | float) and not isinstance(minutes, bool)
        if minutes is not None and not (number and minutes >= 0):
            raise ValueError(f"checkpoint_minutes must be >= 0 or None, got {minutes!r}")

    def to_dict(self) -> dict:
        """Primitives only (what checkpoints store)."""
        out = {
            f.name: to_primitives(getattr(self, f.name), f.name)
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


def build_generator(config: TrainConfig, pretrained: bool | None = None) -> nn.Module:
    """The config's generator (``pretrained`` overrides the encoder-weights flag if it has one)."""
    kwargs = dict(config.model_kwargs)
    stored = kwargs.pop("pretrained", None)  # the override wins over the config's flag
    return build_model(
        config.model,
        pretrained=stored if pretrained is None else pretrained,
        grad_checkpointing=config.grad_checkpointing,
        **kwargs,
    )


def build_discriminator(config: TrainConfig) -> nn.Module | None:
    """The config's discriminator, or None."""
    if config.discriminator is None:
        return None
    return build_model(config.discriminator, **config.discriminator_kwargs)


def build_objective(config: TrainConfig, train_set=None) -> nn.Module:
    """The generator objective the config names, with its weights.

    ``train_set`` (``(L, ab)`` pairs) is read by the ``"classification"`` objective only: its
    bin weights come from a seeded sample of the training photos (unless
    ``rebalance_lambda == 1``).
    """
    if config.objective == "classification":
        return build_classification_objective(
            train_set,
            config.model_kwargs.get("centres"),
            seed=config.seed,
            lam=config.rebalance_lambda,
        )
    if config.objective == "pix2pix":
        return Pix2PixObjective(
            lambda_l1=config.lambda_l1, gan_mode=config.gan_mode, pixel_loss=config.pixel_loss
        )
    return DDColorObjective(
        pixel=config.pixel_weight,
        perceptual=config.perceptual_weight,
        adversarial=config.adversarial_weight,
        colorfulness=config.colorfulness_weight,
        gan_mode=config.gan_mode,
        perceptual_pretrained=config.perceptual_pretrained,
    )


def build_optimizers(
    config: TrainConfig, generator: nn.Module, discriminator=None, fused: bool | None = None
):
    """``(g_optimizer, d_optimizer or None)`` from the config's recipe.

    ``fused``: one Adam/AdamW kernel for all parameters (None: when they are all on CUDA or
    all on the CPU, where torch has that kernel; False: the per-tensor loop).
    """
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW

    def make(module):
        params = [p for p in module.parameters() if p.requires_grad]
        devices = {p.device.type for p in params}
        use = (len(devices) == 1 and devices <= {"cuda", "cpu"}) if fused is None else fused
        return kind(
            params,
            lr=config.lr,
            betas=config.betas,
            weight_decay=config.weight_decay,
            fused=bool(use and params),
        )

    return make(generator), (make(discriminator) if discriminator is not None else None)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The step-decayed learning rate at global ``step`` (0-based)."""
    return config.lr * config.lr_gamma ** sum(step >= m for m in config.lr_milestones)


def apply_learning_rate(config: TrainConfig, step: int, *optimizers) -> None:
    """Set every param group of ``optimizers`` (None skipped) to :func:`learning_rate`; a
    config without milestones leaves them untouched."""
    if not config.lr_milestones:
        return
    lr = learning_rate(config, step)
    for optimizer in optimizers:
        for group in [] if optimizer is None else optimizer.param_groups:
            group["lr"] = lr
