"""The colour-hints recipe: user-guided colorization (Zhang, Zhu, Isola et al., SIGGRAPH 2017).

Design:

* :func:`hints_recipe` is the "pretrained-l1" config
  (:func:`colorlib.training.recipes_unet.pretrained_unet`, stage "pretrain") with what the
  paper changes: the generator's ``hint_channels=3``, and its loss, a smooth L1 (Huber) with
  ``delta`` = 1 Lab unit (``pixel_loss="smooth-l1"``: ``delta = 1/110`` on the normalised
  ``ab``, on L1's scale, so the weight 100 keeps its meaning); and what a laptop budget
  needs, the hints at every decoder step too (``hint_decoder=True``,
  :mod:`colorlib.models.hint_pyramid`: spread in boxes and along the lightness). The
  ImageNet-encoder U-Net
  (``encoder="auto"``), image size, batch, Adam (lr 2e-4, betas (0.9, 0.999)), validation
  cadence and stage budget are the L1 run's, so the two compare like for like;
* ``stage="gan"`` is the option of a GAN stage after it (the "pretrained-gan" config with the
  same two changes, started from the finished hint run: the "hints-gan" recipe); the
  discriminator judges ``(L, ab)`` pairs, never the hints
  (:func:`~colorlib.training.steps.lightness`);
* measured for the ``cpu`` budget (64 held-back COCO photos, 128 px, 10 minutes; the L1
  model: 23.66 dB; pasting 10 hints into its colours: 23.73), PSNR with 0 / 10 / 100
  simulated hints:

  - hints at the stem only, as the paper (662 steps): 23.70 / 24.45 / 25.04. A hint branch
    10 times stronger (its output scaled by 10, so its Adam steps count 10 times more) gave
    24.44 at 10 hints: the branch's learning rate is not what holds the curve back. Starting
    from the finished "pretrained-l1" weights (the branch at zero) gave 23.69: a decoder
    trained without hints learns to use them far more slowly than one trained with them;
  - plus the box-spread hints at every decoder step (542 steps, on a busier machine):
    23.59 / 24.82 / 26.29;
  - plus the lightness-guided propagation too, the recipe (541 steps; a step costs a fifth
    more): 23.54 / 25.80 / 27.12, +2.25 dB at 10 hints where the stem alone gave +0.75;
  - the recipe started from the finished "pretrained-l1" weights (hint layers at zero; 645
    steps): 23.56 / 25.38 / 26.84, worse at 10 hints again: a decoder trained without hints
    is slow to take them up, even at every step;
  - the pyramid fed three propagations (``(s, r)`` = (1/4, 0.2), (1/8, 0.1), (1/2, 0.4):
    picking the best of the three per photo lifts the rule alone from 25.74 to 26.11; 617
    steps): 23.50 / 25.84 / 27.43, the same at 10 hints, so the recipe keeps one;
  - the recipe at lr 5e-4 instead of 2e-4 (616 steps): 23.37 / 25.70 / 27.30. In ten
    minutes the network learns to use the propagation, not to beat it (the rule alone, on
    the L1 model's colours: 25.74 at 10 hints). Nor does a rule that also knows what the
    encoder sees: adding the cosine similarity of the L1 model's encoder features (1/16 or
    1/8 of the side) to the lightness term gives at best 25.84 at 10 hints;
* the hints are data, not configuration: the training photos go through
  :class:`~colorlib.data.hints.HintPairs` (simulated clicks, fresh at every access), which
  :func:`hint_datasets` does for a ``(train_set, val_set)`` pair before ``fit`` /
  ``train_or_load`` / ``train_recipe``. The validation set stays ``(L, ab)`` by default, so
  the run is validated on automatic colorization (a hint model takes ``L`` alone as "no
  hints"); ``val_hints=True`` gives validation pairs with fixed seeded hints, which ``fit``'s
  validation also takes (it scores the lightness channel), as does
  :func:`colorlib.evaluation.validation.predict_ab` (score with their ``L[:, :1]``).

This builds a config only; :mod:`colorlib.training.recipes` names it.

>>> config = hints_recipe(get_profile("cpu"))  # doctest: +SKIP
>>> result = fit(config, *hint_datasets(train_set, val_set))  # doctest: +SKIP
"""

from __future__ import annotations

from colorlib.data.hints import HINT_CHANNELS, HintPairs
from colorlib.runtime import Profile
from colorlib.training.config import TrainConfig
from colorlib.training.recipes_unet import pretrained_unet

__all__ = ["PIXEL_LOSS", "hints_recipe", "hint_datasets"]

#: the paper's loss: Huber with delta = 1 Lab unit
PIXEL_LOSS = "smooth-l1"


def hints_recipe(profile: Profile, seed: int = 0, stage: str = "pretrain") -> TrainConfig:
    """User-guided colorization on the "pretrained-l1" trunk and budget.

    Args:
        profile: supplies sizes and the stage budget (``stage_minutes`` / ``stage_steps``).
        seed: seeds initialisation, the data order and the simulated hints.
        stage: ``"pretrain"`` (smooth L1 alone) or ``"gan"`` (pix2pix's objective with the
            smooth L1; start it from the finished ``"pretrain"`` run).

    Returns:
        A one-stage :class:`~colorlib.training.config.TrainConfig` whose ``"resnet-unet"``
        generator has ``hint_channels=3`` and ``hint_decoder=True`` and whose pixel loss is
        ``"smooth-l1"``; train it on :func:`hint_datasets`.

    Raises:
        ValueError: an unknown ``stage``.
    """
    base = pretrained_unet(profile, stage, seed)
    return base.replace(
        model_kwargs={**base.model_kwargs, "hint_channels": HINT_CHANNELS, "hint_decoder": True},
        pixel_loss=PIXEL_LOSS,
    )


def hint_datasets(
    train_set,
    val_set,
    seed: int = 0,
    *,
    val_hints: bool = False,
    val_points: int | None = None,
    **options,
) -> tuple[HintPairs, object]:
    """The ``(train, val)`` datasets a hint model trains on.

    Args:
        train_set, val_set: ``(L, ab)`` datasets (e.g. from
            :func:`colorlib.data.datasets.load_datasets`).
        seed: the validation hints' seed (with ``val_hints``); the training hints come from
            torch's global RNG, which ``fit`` seeds with the config's seed.
        val_hints: also wrap ``val_set`` with fixed hints (item ``i`` always the same); off by
            default: the run is then validated on automatic colorization.
        val_points: with ``val_hints``, exactly this many points per validation photo (None:
            the training law, seeded).
        **options: :class:`~colorlib.data.hints.HintPairs`' sampling options (``p``,
            ``no_hint_share``, ``locations``, ``sides``), for both sets.

    Returns:
        ``(HintPairs(train_set), val_set)``, or with ``val_hints``
        ``(HintPairs(train_set), HintPairs(val_set, seed))``: items ``(cat(L, hints), ab)``.
    """
    train = HintPairs(train_set, None, **options)
    if not val_hints:
        return train, val_set
    return train, HintPairs(val_set, seed, num_points=val_points, **options)
