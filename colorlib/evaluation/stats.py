"""Numbers that carry their uncertainty: bootstrap intervals, KID, ab-histogram intersection.

A table of means over a few dozen photos says little unless it says how sure it is:

* :func:`bootstrap_ci` gives a percentile bootstrap interval of a statistic over photos
  (resampled with replacement, seeded); :func:`compare` turns two models' per-photo values
  into a verdict that says "better" or "worse" only when the interval of their paired
  difference excludes zero, else "not distinguishable on N photos";
* :func:`kid` is the Kernel Inception Distance (Binkowski et al., ICLR 2018): the unbiased
  squared MMD between two sets of features with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1) ** 3``, averaged over random subsets, with its standard
  deviation over them. Unlike FID it is unbiased, so it is meaningful on tens of photos;
* :func:`ab_histogram_intersection` is pix2pix's colour-distribution measure: the overlap of
  the predicted and the real (a, b) histograms (1: the same distribution, 0: disjoint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Interval",
    "resample_counts",
    "percentile_interval",
    "bootstrap_ci",
    "verdict",
    "compare",
    "kid",
    "ab_histogram_intersection",
    "ab_histograms",
]


@dataclass(frozen=True)
class Interval:
    """A statistic and its confidence interval."""

    value: float
    low: float
    high: float
    confidence: float
    count: int

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _values(values, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size < 2 or not np.isfinite(array).all():
        raise ValueError(f"{name} must hold at least 2 finite numbers, got {array.size}")
    return array


def resample_counts(count: int, num_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """How often each of ``count`` photos is drawn in each bootstrap resample.

    Returns:
        ``(num_resamples, count)`` integer weights, each row summing to ``count``: the same
        resamples (for one seed) as :func:`bootstrap_ci` draws, so a statistic that is a
        weighted sum over photos (a pooled ratio, a set mean) can be resampled with one matrix
        product, and two statistics computed on the same rows are paired.
    """
    if count < 2:
        raise ValueError(f"a bootstrap needs at least 2 photos, got {count}")
    draws = np.random.default_rng(seed).integers(0, count, size=(num_resamples, count))
    return np.stack([np.bincount(row, minlength=count) for row in draws])


def percentile_interval(
    value: float, resampled: np.ndarray, confidence: float = 0.95, count: int = 0
) -> Interval:
    """:class:`Interval` of ``value`` from its bootstrap replicates ``resampled`` (percentiles).

    Replicates that are not finite (a ratio whose resample drew no pixel) are dropped; when
    none is finite and they are all the same infinity (the PSNR of a perfect prediction on
    every photo), the interval is that infinity.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    replicates = np.asarray(resampled, dtype=np.float64)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        same = replicates.size and np.isinf(replicates).all() and np.unique(replicates).size == 1
        bound = float(replicates[0]) if same else float("nan")
        return Interval(float(value), bound, bound, confidence, count)
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(float(value), float(low), float(high), confidence, count)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over per-photo ``values``.

    Raises:
        ValueError: fewer than 2 values, non-finite values, or a confidence outside (0, 1).
    """
    array = _values(values)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, array.size, size=(num_resamples, array.size))
    stats = np.array([statistic(array[row]) for row in draws])
    return percentile_interval(statistic(array), stats, confidence, array.size)


def verdict(interval: Interval, higher_is_better: bool = True) -> str:
    """``"better"`` / ``"worse"`` when the interval of a difference A - B excludes 0, else
    ``"not distinguishable on N photos"``."""
    if interval.low > 0 or interval.high < 0:
        ahead = interval.low > 0
        return "better" if ahead == higher_is_better else "worse"
    return f"not distinguishable on {interval.count} photos"


def compare(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True, **kwargs):
    """``(verdict, interval)`` for model A against model B on the same photos (paired).

    The verdict is ``"better"`` or ``"worse"`` (for A) when the bootstrap interval of the mean
    per-photo difference A - B excludes 0, else ``"not distinguishable on N photos"``.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same length, got {a.size} and {b.size}")
    interval = bootstrap_ci(a - b, **kwargs)
    return verdict(interval, higher_is_better), interval


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    n, m = len(x), len(y)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(
    pred_features, real_features, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance ``(mean, std over subsets)`` of two feature sets ``(n, d)``.

    Each subset draws ``min(subset_size, n, m)`` rows of each set without replacement; with
    fewer rows than ``subset_size`` every subset is the whole set, so the std is 0.

    Raises:
        ValueError: fewer than 2 rows in a set, or different feature sizes.
    """
    x = np.asarray(pred_features, dtype=np.float64)
    y = np.asarray(real_features, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"need two (n >= 2, d) feature arrays, got {x.shape} and {y.shape}")
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y):
        return _mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    values = [
        _mmd2_unbiased(
            x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def ab_histograms(ab: Tensor, bin_size: float = 10.0) -> np.ndarray:
    """Per-image (a, b) histograms: ``(B, 2, H, W)`` normalised ab -> ``(B, bins)`` pixel counts.

    Bins are ``bin_size`` Lab units wide over [-110, 110] on each axis (pix2pix's
    colour-distribution comparison); summing rows pools photos, so a bootstrap over photos is
    a weighted sum of rows.
    """
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (B, 2, H, W), got {tuple(ab.shape)}")
    if not bin_size > 0:
        raise ValueError(f"bin_size must be positive, got {bin_size}")
    edges = int(np.ceil(220 / bin_size))
    lab = (ab.detach().double().clamp(-1, 1) * 110 + 110) / bin_size  # [0, edges]
    index = lab.floor().long().clamp(0, edges - 1)
    flat = (index[:, 0] * edges + index[:, 1]).flatten(1)  # (B, H*W)
    counts = torch.zeros(len(ab), edges * edges, dtype=torch.float64)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    return counts.numpy()


def ab_histogram_intersection(pred_ab: Tensor, real_ab: Tensor, bin_size: float = 10.0) -> float:
    """Overlap of the (a, b) histograms of two image sets, pooled over their pixels.

    Args:
        pred_ab, real_ab: ``(B, 2, H, W)`` normalised ab (``ab / 110``), as colorlib predicts.
        bin_size: width of a bin in Lab units (pix2pix's colour-distribution comparison).

    Returns:
        ``sum(min(p, q))`` of the two normalised histograms: 1 for the same distribution, 0 for
        disjoint ones.
    """
    pred = ab_histograms(pred_ab, bin_size).sum(0)
    real = ab_histograms(real_ab, bin_size).sum(0)
    return float(np.minimum(pred / pred.sum(), real / real.sum()).sum())
