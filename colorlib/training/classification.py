"""The loss of colorization as classification: class-rebalanced soft cross-entropy (Zhang 2016).

Design:

* :class:`ClassificationObjective` follows the objective interface of
  :mod:`colorlib.training.losses`, ``objective(L, real_ab, prediction, None) -> {"total", ...}``,
  except that its prediction is the classifier's ``(B, Q, h, w)`` logits, not ab. It says so
  with ``prediction = "logits"``, and :func:`colorlib.training.steps.pretrain_step` then asks the
  generator for ``generator(L, return_logits=True)`` (through a DDP wrapper's forward, so
  gradients are still synchronised). Micro-batches, autocast and the gradient scaler are
  therefore those of every other pretraining run;
* the loss is the paper's eq. 2: per pixel, ``-w[q*] sum_q Z_q log softmax(z)_q``, averaged
  over pixels, with ``Z`` the soft encoding of the true ab on its 5 nearest bins (sigma 5) and
  ``w[q*]`` the rebalancing weight of the true colour's nearest bin;
* logits at a lower resolution than the photo (the classifier predicts at 1/4, as in the
  paper) are scored against the true ab *average-pooled* to their size, as the paper
  downsamples its ground truth: the soft encoding is that of the mean colour of each cell;
* the weights come from the *training photos*: :func:`photo_rebalance_weights` takes the
  nearest-bin histogram of a seeded sample of at most :data:`REBALANCE_PHOTOS` of them (under a
  forked torch RNG, so random crops neither depend on nor disturb the run's random state: the
  weights are the same on a fresh start, a resume and every DDP rank), then
  :func:`colorlib.ab_bins.rebalance_weights`. :func:`build_classification_objective` is what
  :func:`colorlib.training.config.build_objective` calls.

>>> objective = build_classification_objective(train_set, centres, seed=0)
>>> losses = objective(L, real_ab, generator(L, return_logits=True), None)
>>> losses["total"], losses["ce"]  # rebalanced, and plain cross-entropy
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.ab_bins import bin_distribution, gamut_bins, nearest_bins, rebalance_weights
from colorlib.runtime import say

__all__ = [
    "REBALANCE_PHOTOS",
    "ClassificationObjective",
    "photo_rebalance_weights",
    "build_classification_objective",
]

#: training photos whose colours set the rebalancing weights (a seeded sample)
REBALANCE_PHOTOS = 256


class ClassificationObjective(nn.Module):
    """Rebalanced soft cross-entropy on bin logits: ``{"total": rebalanced, "ce": plain}``.

    Args:
        centres: ``(Q, 2)`` bin centres in Lab units (the classifier's ``centres``).
        class_weights: ``(Q,)`` positive weights of the true colour's nearest bin (None: all 1,
            no rebalancing).
        k: bins of the soft target (5 in the paper).
        sigma: its Gaussian width in Lab units (5 in the paper).

    Attributes:
        prediction: ``"logits"``: the step passes the generator's logits, not its ab.
    """

    prediction = "logits"

    def __init__(
        self, centres: Tensor, class_weights: Tensor | None = None, k: int = 5, sigma: float = 5.0
    ) -> None:
        super().__init__()
        centres = torch.as_tensor(centres, dtype=torch.float32)
        if centres.dim() != 2 or centres.shape[1] != 2:
            raise ValueError(f"centres must have shape (Q, 2), got {tuple(centres.shape)}")
        if class_weights is None:
            class_weights = torch.ones(len(centres))
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        if class_weights.shape != (len(centres),) or not (class_weights > 0).all():
            raise ValueError(
                f"class_weights must be {len(centres)} positive values (one per bin), got "
                f"shape {tuple(class_weights.shape)}"
            )
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(centres):
            raise ValueError(f"k must be an int in [1, {len(centres)}], got {k!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 (Lab units), got {sigma!r}")
        self.register_buffer("centres", centres)
        self.register_buffer("class_weights", class_weights)
        self.k, self.sigma = k, float(sigma)

    def forward(
        self, L: Tensor, real_ab: Tensor, logits: Tensor, fake_logits: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The loss terms, float32 scalars.

        Args:
            L: ``(B, 1, H, W)`` (unused; the interface of every objective).
            real_ab: ``(B, 2, H, W)`` normalised true chroma.
            logits: ``(B, Q, h, w)`` the classifier's bin scores; ``h``, ``w`` divide ``H``,
                ``W`` (equal: per pixel; smaller: ``real_ab`` is average-pooled to ``(h, w)``
                before the soft encoding, as the paper downsamples the ground truth).
            fake_logits: must be None (no adversarial term).

        Raises:
            ValueError: mismatched shapes, sizes that do not divide exactly, or discriminator
                logits given.
        """
        if fake_logits is not None:
            raise ValueError("ClassificationObjective has no adversarial term: pass None")
        Q = len(self.centres)
        if logits.dim() != 4 or logits.shape[1] != Q:
            raise ValueError(f"logits must be (B, {Q}, H, W), got {tuple(logits.shape)}")
        (h, w), (H, W) = logits.shape[-2:], real_ab.shape[-2:]
        if real_ab.dim() != 4 or real_ab.shape[:2] != (logits.shape[0], 2) or H % h or W % w:
            raise ValueError(
                f"real_ab {tuple(real_ab.shape)} must be (B, 2, H, W) with H, W multiples of "
                f"the logits' size, for logits {tuple(logits.shape)}"
            )
        with torch.no_grad():
            if (H, W) != (h, w):  # the paper's downsampled ground truth: mean ab per cell
                real_ab = F.avg_pool2d(real_ab, kernel_size=(H // h, W // w))
            target, index = nearest_bins(real_ab, self.centres, self.k, self.sigma)  # (B,k,h,w)
        log_probs = torch.log_softmax(logits.float(), dim=1)  # (B, Q, h, w)
        ce = -(target * log_probs.gather(1, index)).sum(dim=1)  # (B, h, w)
        weight = self.class_weights[index[:, 0]]  # (B, h, w): of the nearest bin q*
        return {"total": (weight * ce).mean(), "ce": ce.mean()}

    def extra_repr(self) -> str:
        return f"num_bins={len(self.centres)}, k={self.k}, sigma={self.sigma:g}"


def photo_rebalance_weights(
    train_set,
    centres: Tensor,
    *,
    seed: int = 0,
    max_photos: int = REBALANCE_PHOTOS,
    sigma: float = 5.0,
    lam: float = 0.5,
) -> Tensor:
    """Rebalancing weights from a seeded sample of training photos: ``(Q,)``.

    Args:
        train_set: a dataset of ``(L (1, S, S), ab (2, S, S))`` pairs.
        centres: ``(Q, 2)`` bin centres in Lab units.
        seed: picks the photos and their random crops (the global RNG is left untouched).
        max_photos: at most this many photos are read.
        sigma, lam: as in :func:`colorlib.ab_bins.rebalance_weights` (5 and 0.5).

    Raises:
        ValueError: an empty ``train_set``.
    """
    if len(train_set) == 0:
        raise ValueError("train_set is empty: no colours to weigh the bins with")
    count = min(len(train_set), max_photos)
    say(f"classification: weighing {len(centres)} colour bins by {count} training photos")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order = torch.randperm(len(train_set))[:count].tolist()
        p = bin_distribution((train_set[i][1] for i in order), centres)
    return rebalance_weights(p, centres, sigma=sigma, lam=lam)


def build_classification_objective(
    train_set, centres=None, *, seed: int = 0, lam: float = 0.5
) -> ClassificationObjective:
    """The paper's objective, its weights from ``train_set`` (what ``build_objective`` calls).

    Args:
        train_set: ``(L, ab)`` pairs; unused (may be None) when ``lam == 1``, no rebalancing.
        centres: the classifier's ``(Q, 2)`` Lab-unit centres (tensor or nested lists); None:
            :func:`colorlib.ab_bins.gamut_bins`, the classifier's default.
        seed: picks the photos (the config's seed).
        lam: uniform share of the rebalancing, in (0, 1] (0.5 in the paper).

    Raises:
        ValueError: ``train_set`` is None or empty while ``lam < 1``.
    """
    centres = gamut_bins() if centres is None else torch.as_tensor(centres, dtype=torch.float32)
    if lam == 1.0:
        return ClassificationObjective(centres)
    if train_set is None:
        raise ValueError("the classification objective needs train_set to weigh its bins")
    return ClassificationObjective(
        centres, photo_rebalance_weights(train_set, centres, seed=seed, lam=lam)
    )
