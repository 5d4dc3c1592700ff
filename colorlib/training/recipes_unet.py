"""The U-Net recipes of chapters 5 and 6: pix2pix, and the pretraining trick's two stages.

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
* :func:`gan_lesson`: chapter 5's look at GAN dynamics, two short pix2pix runs that differ
  only in the objective: ``"healthy"`` (the baseline, ``L_cGAN + 100 L1``) and ``"no-l1"``
  (``L_cGAN`` alone: nothing ties the colours to the photo's own, the failure the L1 anchor
  prevents). Same networks, seed and data order; each stage lasts
  :data:`GAN_LESSON_MINUTES` (the profile's own budget where a profile is not listed, or
  where it is shorter).

These build configs only; :mod:`colorlib.training.recipes` names them and trains them.
"""

from __future__ import annotations

import math
from dataclasses import replace

from colorlib.runtime import Profile
from colorlib.training.config import TrainConfig

__all__ = [
    "LAMBDA_L1",
    "PIX2PIX_OPTIMIZER",
    "PRETRAIN_OPTIMIZER",
    "VAL_EVERY",
    "GAN_LESSON_VARIANTS",
    "GAN_LESSON_MINUTES",
    "pix2pix_baseline",
    "pretrained_unet",
    "gan_lesson",
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
#: chapter 5's GAN-dynamics runs: variant -> its weight of the L1 term
GAN_LESSON_VARIANTS = {"healthy": LAMBDA_L1, "no-l1": 0.0}
#: minutes of each GAN-dynamics run, per profile name (others: the profile's stage budget)
GAN_LESSON_MINUTES = {"cpu": 2.0, "gpu": 3.0}


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
        A one-stage ("gan") :class:`~colorlib.training.config.TrainConfig`.

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
        A one-stage :class:`~colorlib.training.config.TrainConfig`. Both stages build the same
        generator
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


def gan_lesson(profile: Profile, variant: str = "healthy", seed: int = 0) -> TrainConfig:
    """A short pix2pix run of chapter 5's GAN-dynamics lesson (see the module doc).

    Args:
        profile: sizes and the validation photos; the stage lasts the shorter of the
            profile's ``stage_minutes`` and :data:`GAN_LESSON_MINUTES` (with the profile's
            ``stage_steps`` cap).
        variant: a key of :data:`GAN_LESSON_VARIANTS`.
        seed: seeds initialisation and the data order (the same for both variants).

    Returns:
        :func:`pix2pix_baseline`'s config with the variant's ``lambda_l1`` and the short stage.

    Raises:
        ValueError: an unknown ``variant``.
    """
    if variant not in GAN_LESSON_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(GAN_LESSON_VARIANTS)}")
    minutes = min(profile.stage_minutes, GAN_LESSON_MINUTES.get(profile.name, math.inf))
    config = pix2pix_baseline(profile.with_overrides(stage_minutes=minutes), seed)
    return replace(config, lambda_l1=GAN_LESSON_VARIANTS[variant])
