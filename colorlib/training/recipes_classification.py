"""The classification recipe: Zhang et al. (ECCV 2016) against the L1 model, same size, same budget.

Design:

* :func:`classification_recipe` starts from the "pretrained-l1" config
  (:func:`colorlib.training.recipes_unet.pretrained_unet`, stage "pretrain") and changes only
  what the method changes: the generator becomes a ``"classifier"`` over the same trunk (the
  ImageNet-encoder U-Net with ``encoder="auto"``, ending in ``num_features`` channels,
  average-pooled by :data:`DOWNSAMPLE` = 4, and a 1x1 head to Q = 229 bin logits at 1/4 of the
  resolution, as in the paper), and the objective becomes the rebalanced cross-entropy
  (``"classification"``, lambda 0.5). Image size, batch, optimiser, validation cadence, seed
  and the stage budget stay those of "pretrained-l1", so the two runs compare like for like;
* the paper's decoding temperature (0.38) is the classifier's default; the cross-entropy's
  soft targets (5 bins, sigma 5) are the objective's.

This builds a config only; :mod:`colorlib.training.recipes` names it ("classification").
"""

from __future__ import annotations

from colorlib.runtime import Profile
from colorlib.training.config import TrainConfig
from colorlib.training.recipes_unet import pretrained_unet

__all__ = ["DOWNSAMPLE", "NUM_FEATURES", "REBALANCE_LAMBDA", "classification_recipe"]

#: channels of the trunk's output, the 1x1 head's input (the paper's conv8 has 256). The trunk
#: paints them at full resolution before the pooling, so they cost: at the cpu profile's sizes
#: (128 px, batch 16, one thread, median of 5) a step took 3.23 s with 128, 2.76 s with 64,
#: 2.54 s with 32, against 2.23 s for the L1 model; 64 keeps most of the steps and a head of
#: 64 x 229 weights
NUM_FEATURES = 64
#: the paper's uniform share in the rebalancing weights
REBALANCE_LAMBDA = 0.5
#: the bin distribution is predicted at 1/4 of the input resolution and the decoded ab
#: upsampled, as in Zhang, Isola & Efros (ECCV 2016: a quarter of each side, the ground truth
#: downsampled to match). Set explicitly, so that a checkpoint trained at full
#: resolution (before this setting existed) is another config, retrained rather than loaded.
DOWNSAMPLE = 4


def classification_recipe(profile: Profile, seed: int = 0) -> TrainConfig:
    """Colorization as classification on the "pretrained-l1" trunk and budget.

    Args:
        profile: supplies sizes and the stage budget (``stage_minutes`` / ``stage_steps``).
        seed: seeds initialisation, the data order and the photos behind the class weights.

    Returns:
        A one-stage ("pretrain") :class:`~colorlib.training.config.TrainConfig` with model
        ``"classifier"`` and objective ``"classification"``.
    """
    l1 = pretrained_unet(profile, "pretrain", seed)
    classifier = {
        "trunk": l1.model,
        "trunk_kwargs": dict(l1.model_kwargs),
        "num_features": NUM_FEATURES,
        "downsample": DOWNSAMPLE,
    }
    return l1.replace(
        model="classifier",
        model_kwargs=classifier,
        objective="classification",
        rebalance_lambda=REBALANCE_LAMBDA,
    )
