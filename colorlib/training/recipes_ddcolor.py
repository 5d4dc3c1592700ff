"""DDColor's training recipes: the paper's objective and optimiser, sized by the run profile.

Design (the configs only: :mod:`colorlib.training.recipes` names them "ddcolor" and
"ddcolor-ablation-<variant>" and trains them):

* :func:`ddcolor_recipe` is DDColor as Kang et al. (ICCV 2023) train it, sized by a
  :class:`~colorlib.runtime.Profile`: the profile's DDColor preset (``micro`` / ``cpu`` /
  ``tiny``), the four-term objective (pixel L1 0.1, VGG16-BN perceptual 5.0, adversarial 1.0,
  colourfulness 0.5; :class:`~colorlib.training.losses.DDColorObjective`), a 70x70 PatchGAN critic
  (``ndf`` from the profile, as the pix2pix recipes), AdamW (lr 1e-4, betas (0.9, 0.99),
  weight decay 0.01) and one "gan" stage: every loss from the first step, as in the paper.
  Except on the ``cpu`` profile, where measurement says otherwise (:data:`TRAINING`): a
  "pretrain" stage of every term but the critic's first, then the "gan" stage, as chapter 6
  does for the U-Net, both at a constant learning rate (the paper's rate for its first 80k
  steps; our thousand are all early training).
* ``losses`` names a variant for ablations (:data:`LOSS_VARIANTS`): a term left out gets weight
  0; without the adversarial term there is no discriminator and the stage is "pretrain".
* Budgets: a stage ends at the tighter of the profile's (``stage_steps``, ``stage_minutes``)
  and DDColor's own per profile (:data:`TRAINING`, :data:`ABLATION`; a DDColor step costs
  several pix2pix steps, so the ``cpu`` profile halves the batch and the ablation trains at
  64 px). The paper halves the learning rate at 80k of 400k iterations and every 40k after;
  :func:`scaled_milestones` puts the halvings at the same fractions of the step budget
  (:attr:`Budget.schedule`; not on ``cpu``). On a machine where the time limit ends the stage
  first, the later halvings never happen.
* Measured for the ``cpu`` budget (DDColor-lite, EfficientNet-Lite0 encoder and perceptual
  features offline, 128 px, batch 8; 64 held-back COCO photos, gray: 22.80 dB, real photos'
  colourfulness 39.4): every term from the first step, 600 steps, ends at 22.09 dB and
  colourfulness 23.9 (the paper's schedule; constant lr: 20.69 dB, 38.8: colour, wrong hues);
  500 steps without the critic then 500 with it, the schedule in the second stage: 23.18 dB,
  colourfulness 22.5 (the lr halved 8 times in 500 steps: the critic's colour stops growing
  after 200); doubling the colourfulness weight there (1.0): 22.80 dB, colourfulness 23.6,
  that term's weight is not what keeps it dull. The same two stages at a constant rate, the
  recipe, measured idle (1000 steps in 12.6 min): 22.52 dB, colourfulness 27.4 and still
  rising (21.6, 25.5, 27.4 at steps 800, 900, 1000). (An earlier constant-rate run on a busy
  machine got 415 critic steps and ended at 22.21 dB, 22.8.) With the colourfulness weight
  doubled as well: 21.66 dB, colourfulness 32.1: the colour the GAN U-Net has (30.9), at
  1.1 dB under gray, where the U-Net is 0.3 under; so the paper's 0.5 stays. pix2pix's
  betas (0.5, 0.999) for both networks instead of the paper's (0.9, 0.99) (1000 steps in
  10.9 min): 22.01 dB, colourfulness 31.3 (22.61, 24.9 at step 800): more colour per step,
  on the same trade-off as the doubled weight (PSNR for colour), so the paper's betas stay.
  In the ablation's single constant-rate stage at 64 px, 500 steps, colourfulness weights 2
  and 5 overshoot the real photos' 38.5: 44.7 at 19.07 dB, 42.7 at 19.79 dB, against the
  paper's 0.5: 26.4 at 21.86 dB. A step costs 1.5 s of one core (the random VGG16-BN the ``cpu``
  recipe ran offline before cost 3.3 s of a 4.6 s step).

>>> config = ddcolor_recipe(get_profile("cpu"))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from colorlib.models.ddcolor import PRESETS
from colorlib.runtime import Profile
from colorlib.training.config import Stage, TrainConfig

__all__ = [
    "LOSS_WEIGHTS",
    "LOSS_VARIANTS",
    "PAPER_ITERATIONS",
    "PAPER_MILESTONES",
    "Budget",
    "TRAINING",
    "ABLATION",
    "scaled_milestones",
    "ddcolor_recipe",
    "ablation_profile",
    "ablation_recipe",
]

#: DDColor's loss weights (paper and released configuration)
LOSS_WEIGHTS = {"pixel": 0.1, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5}
#: variant name -> the terms it keeps (the others get weight 0)
LOSS_VARIANTS: dict[str, tuple[str, ...]] = {
    "full": ("pixel", "perceptual", "adversarial", "colorfulness"),
    "no-colorfulness": ("pixel", "perceptual", "adversarial"),
    "no-adversarial": ("pixel", "perceptual", "colorfulness"),
    "no-perceptual": ("pixel", "adversarial", "colorfulness"),
    "pixel": ("pixel",),
}
#: the paper's schedule: 400k iterations, lr halved at 80k and every 40k after
PAPER_ITERATIONS = 400_000
PAPER_MILESTONES = tuple(range(80_000, PAPER_ITERATIONS, 40_000))
#: below this many steps a schedule means nothing: constant learning rate
MIN_SCHEDULED_STEPS = 100


@dataclass(frozen=True)
class Budget:
    """DDColor's sizes and budget on one kind of machine (None: the profile's value).

    Attributes:
        image_size, batch_size: training crops and batch (None: the profile's).
        max_steps, max_minutes: DDColor's own stage budget; the stage ends at the tighter of
            this and the profile's ``stage_steps`` / ``stage_minutes``.
        pretrain_steps: steps of a first stage without the critic (the other three terms)
            before the "gan" stage, budgeted like it; 0: every term from the first step.
        val_every: steps between validations (0: at the end only).
        schedule: halve the learning rate at the paper's fractions of the budget
            (:func:`scaled_milestones`); False: a constant rate, as the paper's first 80k
            steps (a budget of a thousand steps is all "early training").
    """

    image_size: int | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    pretrain_steps: int = 0
    val_every: int = 250
    schedule: bool = True


#: the main training run, per profile name (other names: the profile's values)
TRAINING: dict[str, Budget] = {
    # smoke trains in two stages as cpu does, so that CI runs that path (chapter 8 plots both)
    "smoke": Budget(val_every=0, pretrain_steps=2),
    "cpu": Budget(batch_size=8, pretrain_steps=500, max_steps=500, val_every=100, schedule=False),
    "gpu": Budget(max_steps=10_000, val_every=500),
}
#: the loss ablation's shorter runs, per profile name
ABLATION: dict[str, Budget] = {
    "smoke": Budget(val_every=0, pretrain_steps=2),  # = TRAINING: the full variant is the main run
    # measured idle, 64 held-back photos at 64 px: 60 steps (0.3 min) left every variant gray
    # (colourfulness about 3); at 500 steps full 26.4 / no-colourfulness 25.5 / pixel 8.8, PSNR
    # 21.86 / 21.11 / 23.52 (real photos 38.5), in 2.6 / 2.6 / 1.4 min
    "cpu": Budget(image_size=64, batch_size=8, max_steps=500, max_minutes=3.0, val_every=0),
    "gpu": Budget(max_steps=1_000, max_minutes=5.0, val_every=0),
}


def _model_kwargs(preset: str) -> dict:
    """The generator's ``model_kwargs``: the preset, and ``encoder="auto"`` spelled out where
    the preset resolves its encoder when built (so the config says so, and runs of the earlier
    ``cpu`` preset, a random-init ConvNeXt, are not taken for runs of this one)."""
    if preset in PRESETS and PRESETS[preset].encoder == "auto":
        return {"preset": preset, "encoder": "auto"}
    return {"preset": preset}


def _tighter(a, b):
    return b if a is None else a if b is None else min(a, b)


def scaled_milestones(total_steps: int | None) -> tuple[int, ...]:
    """The paper's learning-rate halvings at the same fractions of ``total_steps``.

    Returns:
        ``()`` for no (or fewer than :data:`MIN_SCHEDULED_STEPS`) steps; else 8 steps, e.g.
        ``(80, 120, ..., 360)`` for 400.
    """
    if total_steps is None or total_steps < MIN_SCHEDULED_STEPS:
        return ()
    return tuple(round(m * total_steps / PAPER_ITERATIONS) for m in PAPER_MILESTONES)


def _variant(losses: str) -> tuple[str, ...]:
    if losses not in LOSS_VARIANTS:
        raise ValueError(f"unknown loss variant {losses!r}; choose one of {list(LOSS_VARIANTS)}")
    return LOSS_VARIANTS[losses]


def _config(profile: Profile, budget: Budget, losses: str, seed: int, grad_checkpointing):
    kept = _variant(losses)
    weights = {f"{k}_weight": (w if k in kept else 0.0) for k, w in LOSS_WEIGHTS.items()}
    adversarial = "adversarial" in kept
    steps = _tighter(profile.stage_steps, budget.max_steps)
    minutes = _tighter(profile.stage_minutes, budget.max_minutes)
    stages = (Stage("gan" if adversarial else "pretrain", max_steps=steps, max_minutes=minutes),)
    warmup = _tighter(profile.stage_steps, budget.pretrain_steps) if adversarial else 0
    if warmup:
        stages = (Stage("pretrain", max_steps=warmup, max_minutes=minutes), *stages)
    if grad_checkpointing is None:  # measured: not needed on a 16 GB card (see ddcolor_recipe)
        grad_checkpointing = False
    return TrainConfig(
        model="ddcolor",
        model_kwargs=_model_kwargs(profile.ddcolor_preset),
        discriminator="patchgan" if adversarial else None,
        discriminator_kwargs={"base_channels": profile.unet_base_channels} if adversarial else {},
        image_size=budget.image_size or profile.image_size,
        batch_size=budget.batch_size or profile.batch_size,
        objective="ddcolor",
        gan_mode="vanilla",
        **weights,
        perceptual_pretrained=True,
        optimizer="adamw",
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0.01,
        lr_milestones=tuple(warmup + m for m in scaled_milestones(steps))
        if budget.schedule
        else (),
        lr_gamma=0.5,
        stages=stages,
        val_every=budget.val_every,
        num_val_images=profile.eval_images,
        seed=seed,
        grad_checkpointing=bool(grad_checkpointing),
        num_workers=profile.num_workers,
    )


def ddcolor_recipe(
    profile: Profile, losses: str = "full", seed: int = 0, grad_checkpointing: bool | None = None
) -> TrainConfig:
    """DDColor's training run for ``profile`` (see the module docstring).

    Args:
        profile: supplies the preset (``ddcolor_preset``), sizes, ``ndf`` of the critic
            (``unet_base_channels``), the validation photos and the stage budget.
        losses: a key of :data:`LOSS_VARIANTS` (``"full"``: the paper's objective).
        seed: seeds initialisation and the data order.
        grad_checkpointing: recompute activations in backward (None: off). Measured on an
            H100 (``benchmarks/fit_memory.py``): the full objective at the ``gpu`` profile's
            256 px and batch 16 peaks at 7.3 GiB with fp16 AMP (9.8 GiB in fp32), well inside
            a 16 GB Colab T4 or Kaggle P100; checkpointing cuts that to 4.7 GiB but makes each
            step 2.1x slower, so it is for smaller cards or bigger batches.

    Returns:
        A :class:`~colorlib.training.config.TrainConfig`: one "gan" stage, or (``cpu`` and
        ``smoke``) a "pretrain" stage and then the "gan" stage.

    Raises:
        ValueError: an unknown ``losses`` variant.
    """
    budget = TRAINING.get(profile.name, Budget())
    return _config(profile, budget, losses, seed, grad_checkpointing)


def ablation_profile(profile: Profile) -> Profile:
    """``profile`` with the ablation's image and batch size (for ``load_datasets``)."""
    budget = ABLATION.get(profile.name, Budget())
    return profile.with_overrides(
        image_size=budget.image_size or profile.image_size,
        batch_size=budget.batch_size or profile.batch_size,
    )


def ablation_recipe(profile: Profile, losses: str = "full", seed: int = 0) -> TrainConfig:
    """A short run of loss variant ``losses`` for the ablation (:data:`ABLATION` budget).

    Every variant of one profile shares sizes, budget, seed (so initial weights and data
    order), optimiser and gradient checkpointing (as :func:`ddcolor_recipe`): only the
    objective differs. The learning rate is constant: the runs are too short for the paper's
    halvings (the paper's first 80k steps are at a constant rate too).

    Raises:
        ValueError: an unknown ``losses`` variant.
    """
    budget = ABLATION.get(profile.name, Budget())
    config = _config(profile, budget, losses, seed, grad_checkpointing=None)
    return config.replace(lr_milestones=())  # short runs: a constant rate (as measured, above)
