"""The book's named training recipes, and the one way the chapters compare their results.

A *recipe* is a name ("pix2pix", "pretrained-l1", "pretrained-gan") for a function
``(profile, seed) -> TrainConfig``, plus the recipe whose finished weights start it. The
chapters, the command line and the evaluation chapter all ask this module, so "the pix2pix
baseline" is the same run everywhere:

* :func:`pix2pix_baseline`: Isola et al. (CVPR 2017). U-Net generator whose bottleneck is 1x1
  at the profile's image size (``num_downs = log2(image_size)``), ``ngf`` from the profile;
  70x70 PatchGAN with ``ndf = ngf`` (64 and 64 in the paper, and in the ``gpu`` profile);
  ``L_cGAN + 100 L1`` with the vanilla (BCE) GAN loss; Adam, lr 2e-4, betas (0.5, 0.999);
  one "gan" stage with the profile's budget.
* :func:`pretrained_unet`: the report's "pretraining trick". A U-Net on an ImageNet encoder
  (:class:`~colorlib.models.resnet_unet.ResNetUNet`, ``encoder="auto"``: ResNet18 when its
  weights can be had, else EfficientNet-Lite0), first trained with L1 alone (stage
  "pretrain", no discriminator; Adam with pix2pix's lr 2e-4 but the usual betas
  (0.9, 0.999), since there is no adversary to keep stable), then as a pix2pix generator
  (stage "gan", the baseline's objective and optimiser) starting from the pretrained weights
  (``init_from``). Each stage has the profile's budget. (A lower rate, 1e-4, spends about
  the first hundred steps of a short CPU budget undoing the untrained decoder's noisy colours.)
* :func:`checkpoint_name` gives each (recipe, profile, seed) its own
  :func:`~colorlib.train.train_or_load` name, so smoke, cpu and gpu runs never overwrite
  one another; :func:`train_recipe` trains (or loads) a recipe after its prerequisite.

For comparisons, :func:`validation_pairs` takes the first validation photos (deterministic
centre crops), :func:`predict_ab` runs a generator on them and :func:`evaluate_predictions`
scores any number of predictions with the same metrics, next to the gray baseline (``ab = 0``)
and the real photos' colourfulness.

>>> from colorlib import recipes
>>> result = recipes.train_recipe("pretrained-gan", profile, train_set, val_set)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorlib.color import L_ab_to_rgb, gray_ab_like
from colorlib.runtime import Profile
from colorlib.train import TrainConfig, TrainResult, pretrain_step, train_or_load

__all__ = [
    "Recipe",
    "RECIPES",
    "LAMBDA_L1",
    "pix2pix_baseline",
    "pretrained_unet",
    "recipe_config",
    "checkpoint_name",
    "train_recipe",
    "train_briefly",
    "validation_pairs",
    "predict_ab",
    "evaluate_predictions",
]

#: pix2pix's weight of the L1 term (lambda in ``L_cGAN + lambda L1``)
LAMBDA_L1 = 100.0
#: pix2pix's optimiser for both networks (Isola et al. 2017, section 3.3)
PIX2PIX_OPTIMIZER = {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}
#: the L1 pretraining of the pretrained-encoder U-Net
PRETRAIN_OPTIMIZER = {"optimizer": "adam", "lr": 2e-4, "betas": (0.9, 0.999)}
#: steps between validations, per profile (0: only at stage ends); other names: 250
VAL_EVERY = {"smoke": 0, "cpu": 100, "gpu": 500}
PRETRAINED_STAGES = ("pretrain", "gan")


def _common(profile: Profile, seed: int) -> dict:
    return {"seed": seed, "val_every": VAL_EVERY.get(profile.name, 250)}


def _patchgan_kwargs(profile: Profile) -> dict:
    return {"base_channels": profile.unet_base_channels}  # ndf = ngf, as in the paper


def pix2pix_baseline(profile: Profile, seed: int = 0) -> TrainConfig:
    """pix2pix as in the paper, sized by ``profile``: U-Net + PatchGAN, ``L_cGAN + 100 L1``.

    Args:
        profile: supplies image size, batch size, ``unet_base_channels`` (ngf, and ndf), the
            stage budget (``stage_minutes`` / ``stage_steps``) and the validation photos.
        seed: seeds initialisation and the data order.

    Returns:
        A one-stage ("gan") :class:`~colorlib.train.TrainConfig`.

    Raises:
        ValueError: ``profile.image_size`` is not a power of two (the U-Net needs a 1x1
            bottleneck).
    """
    size = profile.image_size
    if isinstance(size, bool) or size < 2 or size & (size - 1):
        raise ValueError(f"the pix2pix U-Net needs a power-of-two image size, got {size!r}")
    unet = {"base_channels": profile.unet_base_channels, "num_downs": int(math.log2(size))}
    return TrainConfig.from_profile(
        profile,
        ("gan",),
        model="unet",
        model_kwargs=unet,
        discriminator="patchgan",
        discriminator_kwargs=_patchgan_kwargs(profile),
        objective="pix2pix",
        lambda_l1=LAMBDA_L1,
        gan_mode="vanilla",
        **PIX2PIX_OPTIMIZER,
        **_common(profile, seed),
    )


def pretrained_unet(profile: Profile, stage: str = "pretrain", seed: int = 0) -> TrainConfig:
    """One stage of the pretraining trick: a U-Net on an ImageNet encoder.

    Args:
        profile: supplies sizes and the stage budget (each stage gets the whole budget).
        stage: ``"pretrain"`` (L1 only, no discriminator) or ``"gan"`` (pix2pix objective; to be
            started from the finished "pretrain" run, see :func:`train_recipe`).
        seed: seeds initialisation and the data order.

    Returns:
        A one-stage :class:`~colorlib.train.TrainConfig`. Both stages build the same generator
        (``model_kwargs`` are equal), which ``init_from`` requires.

    Raises:
        ValueError: an unknown ``stage``.
    """
    if stage not in PRETRAINED_STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {list(PRETRAINED_STAGES)}")
    generator = {"model": "resnet-unet", "model_kwargs": {"encoder": "auto"}}
    if stage == "pretrain":
        return TrainConfig.from_profile(
            profile,
            ("pretrain",),
            discriminator=None,
            objective="pix2pix",
            lambda_l1=LAMBDA_L1,  # without a discriminator the objective is 100 * L1
            **generator,
            **PRETRAIN_OPTIMIZER,
            **_common(profile, seed),
        )
    return TrainConfig.from_profile(
        profile,
        ("gan",),
        discriminator="patchgan",
        discriminator_kwargs=_patchgan_kwargs(profile),
        objective="pix2pix",
        lambda_l1=LAMBDA_L1,
        gan_mode="vanilla",
        **generator,
        **PIX2PIX_OPTIMIZER,
        **_common(profile, seed),
    )


@dataclass(frozen=True)
class Recipe:
    """A named training run.

    Attributes:
        name: the recipe's name (a key of :data:`RECIPES`).
        summary: one line for tables and the command line.
        build: ``(profile, seed) -> TrainConfig``.
        init_from: the recipe whose finished generator starts this one, or None.
    """

    name: str
    summary: str
    build: Callable[[Profile, int], TrainConfig]
    init_from: str | None = None


RECIPES: dict[str, Recipe] = {
    "pix2pix": Recipe(
        "pix2pix",
        "pix2pix from scratch: U-Net + 70x70 PatchGAN, L_cGAN + 100 L1",
        pix2pix_baseline,
    ),
    "pretrained-l1": Recipe(
        "pretrained-l1",
        "U-Net on an ImageNet encoder, trained with L1 alone",
        lambda profile, seed=0: pretrained_unet(profile, "pretrain", seed),
    ),
    "pretrained-gan": Recipe(
        "pretrained-gan",
        "the L1-pretrained U-Net fine-tuned as a pix2pix generator",
        lambda profile, seed=0: pretrained_unet(profile, "gan", seed),
        init_from="pretrained-l1",
    ),
}


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, profile: Profile, seed: int = 0) -> TrainConfig:
    """The :class:`~colorlib.train.TrainConfig` of recipe ``name`` for ``profile``."""
    return _recipe(name).build(profile, seed)


def checkpoint_name(recipe: str, profile: Profile, seed: int = 0) -> str:
    """The ``train_or_load`` name of a recipe's run: ``"<recipe>-<profile>"`` (``-seed<n>``
    appended for a seed other than 0), e.g. ``"pix2pix-cpu"``.

    Raises:
        ValueError: an unknown recipe.
    """
    _recipe(recipe)
    suffix = f"-seed{seed}" if seed else ""
    return f"{recipe}-{profile.name}{suffix}"


def train_recipe(
    name: str,
    profile: Profile,
    train_set,
    val_set,
    device=None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Load the finished run of recipe ``name``, or train it (after its prerequisite).

    A recipe with ``init_from`` first trains or loads that recipe, then starts from its
    weights. When the prerequisite had to be (re)trained, this run is retrained too: its old
    checkpoint started from other weights.

    Args:
        name: a key of :data:`RECIPES`.
        profile: sizes and budgets (see :func:`colorlib.runtime.get_profile`).
        train_set, val_set: ``(L, ab)`` datasets, e.g. from :func:`colorlib.data.load_datasets`.
        device: where to train (None: the best available).
        seed: the runs' seed (part of the checkpoint names).
        force: retrain this recipe (not its prerequisite) even if a finished run exists.
        progress: show progress bars.

    Returns:
        The :class:`~colorlib.train.TrainResult` of recipe ``name``.
    """
    recipe = _recipe(name)
    init_from = None
    if recipe.init_from is not None:
        before = train_recipe(
            recipe.init_from, profile, train_set, val_set, device, seed, progress=progress
        )
        force = force or not before.loaded
        init_from = checkpoint_name(recipe.init_from, profile, seed)
    return train_or_load(
        recipe.build(profile, seed),
        checkpoint_name(name, profile, seed),
        train_set,
        val_set,
        device=device,
        force=force,
        init_from=init_from,
        progress=progress,
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
    """The chapters' side experiments: :func:`~colorlib.train.pretrain_step` until a budget ends.

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
    from colorlib.data import make_loader
    from colorlib.runtime import get_device

    if max_steps is None and minutes is None:
        raise ValueError("train_briefly needs max_steps and/or minutes")
    if (max_steps is not None and max_steps < 1) or (minutes is not None and not minutes >= 0):
        raise ValueError(f"need max_steps >= 1 and minutes >= 0, got {max_steps}, {minutes}")
    if len(train_set) == 0:
        raise ValueError("train_set is empty: nothing to train on")
    device = get_device(None if device is None else str(device))
    generator.to(device).train()
    lr, betas = PIX2PIX_OPTIMIZER["lr"], PIX2PIX_OPTIMIZER["betas"]
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


# ----------------------------------------------------------------------------- comparisons


def validation_pairs(val_set, num_images: int) -> tuple[Tensor, Tensor]:
    """The first ``num_images`` validation pairs, stacked: ``(L (n, 1, S, S), ab (n, 2, S, S))``.

    Raises:
        ValueError: ``num_images < 1`` or an empty validation set.
    """
    n = min(int(num_images), len(val_set))
    if num_images < 1 or n < 1:
        raise ValueError(f"need num_images >= 1 and a non-empty val_set, got {num_images}, {n}")
    pairs = [val_set[i] for i in range(n)]
    return torch.stack([L for L, _ in pairs]), torch.stack([ab for _, ab in pairs])


@torch.no_grad()
def predict_ab(generator: nn.Module, L: Tensor, batch_size: int = 16) -> Tensor:
    """Run ``generator`` in eval mode on ``L (n, 1, S, S)``: ``ab (n, 2, S, S)`` on the CPU.

    The generator stays where it is (inputs are moved to its device); its training flag is
    restored afterwards.
    """
    device = next(generator.parameters()).device
    training = generator.training
    generator.eval()
    try:
        parts = [
            generator(L[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(L), batch_size)
        ]
    finally:
        generator.train(training)
    return torch.cat(parts)


def evaluate_predictions(
    predictions: Mapping[str, Tensor], L: Tensor, real_ab: Tensor
) -> dict[str, dict[str, float]]:
    """Score predictions against the real photos, next to the gray baseline.

    Args:
        predictions: row name -> ``ab (n, 2, S, S)`` for the photos ``L``.
        L, real_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)`` (e.g. from :func:`validation_pairs`).

    Returns:
        Rows ``{name: {"psnr", "ssim", "colorfulness", "delta_colorfulness"}}`` (means over the
        photos; PSNR in dB, colourfulness on the 0-255 scale) for every prediction and for
        ``"gray baseline"`` (``ab = 0``), then ``"real photos"`` with its colourfulness alone.
    """
    from colorlib.metrics import MetricAccumulator

    real_rgb = L_ab_to_rgb(L, real_ab)
    rows: dict[str, dict[str, float]] = {}
    truth = 0.0
    for name, ab in {**predictions, "gray baseline": gray_ab_like(L)}.items():
        if ab.shape != real_ab.shape:
            raise ValueError(
                f"prediction {name!r} has shape {tuple(ab.shape)}, expected {tuple(real_ab.shape)}"
            )
        accumulator = MetricAccumulator()
        accumulator.update(L_ab_to_rgb(L, ab.to(L.dtype)), real_rgb)
        summary = accumulator.compute()
        truth = summary["colorfulness_gt"]
        keys = ("psnr", "ssim", "colorfulness", "delta_colorfulness")
        rows[name] = {k: summary[k] for k in keys}
    rows["real photos"] = {"colorfulness": truth}
    return rows
