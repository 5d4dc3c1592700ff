"""Models compared on the same photos, with the uncertainty the photo count leaves.

Chapters 6, 7 and 9 compare colorizers on a few dozen held-back photos. A mean over 64 photos
moves by tenths of a dB when other photos are drawn, so every number here comes with a
bootstrap interval over photos, and a comparison says "better" or "worse" only when the
interval of the *paired* difference excludes zero:

* :func:`score_photos` turns predictions into per-photo numbers: PSNR, SSIM, colourfulness,
  the ab error (mean Euclidean (a, b) distance in Lab units between what the reader sees and
  the real photo, both converted from sRGB) and per-photo ab histograms;
* :func:`interval_table` gives, per model, the mean of each per-photo metric and the set
  statistics (delta-CF ``|mean CF - mean real CF|``, pix2pix's ab-histogram intersection)
  with percentile intervals. All statistics of all models use the same resamples
  (:func:`~colorlib.evaluation.stats.resample_counts`: each resample is a weight per photo),
  so set statistics cost one matrix product and comparisons are paired;
* :func:`compare_models` is the verdict of model A against B on one metric.

Choices: 2000 resamples and 95 % percentile intervals (Efron and Tibshirani 1993) by default;
the resample seed is fixed, so a table is reproducible. The intervals describe photo-sampling
noise only, not run-to-run training noise (another seed trains another model).

>>> scores = score_photos({"U-Net": ab}, L, real_ab)  # doctest: +SKIP
>>> table = interval_table(scores)  # {"U-Net": {"psnr": Interval, ...}, "gray baseline": ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from colorlib.color import L_ab_to_rgb, gray_ab_like, rgb_to_lab
from colorlib.evaluation.metrics import colorfulness, psnr, ssim
from colorlib.evaluation.stats import (
    Interval,
    ab_histograms,
    percentile_interval,
    resample_counts,
    verdict,
)

__all__ = [
    "PHOTO_METRICS",
    "SET_METRICS",
    "HIGHER_IS_BETTER",
    "PhotoScores",
    "score_photos",
    "interval_table",
    "compare_models",
]

#: per-photo metrics, averaged over photos
PHOTO_METRICS = ("psnr", "ssim", "colorfulness", "ab_error")
#: statistics of the whole set of photos (not a mean of per-photo values)
SET_METRICS = ("delta_colorfulness", "histogram_intersection")
#: the direction in which each metric improves (colourfulness itself has none)
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "ab_error": False,
    "delta_colorfulness": False,
    "histogram_intersection": True,
}


@dataclass(frozen=True)
class PhotoScores:
    """Per-photo numbers of every model on the same ``n`` photos.

    Attributes:
        metrics: ``{model: {metric: (n,) array}}`` for :data:`PHOTO_METRICS`; the gray baseline
            is the row ``"gray baseline"``.
        histograms: ``{model: (n, bins)}`` ab-histogram pixel counts per photo.
        real_colorfulness: ``(n,)`` colourfulness of the real photos.
        real_histograms: ``(n, bins)`` of the real photos.
    """

    metrics: dict[str, dict[str, np.ndarray]]
    histograms: dict[str, np.ndarray]
    real_colorfulness: np.ndarray
    real_histograms: np.ndarray

    @property
    def count(self) -> int:
        return len(self.real_colorfulness)


def _ab_error(pred_rgb: Tensor, real_lab: Tensor) -> Tensor:
    ab = rgb_to_lab(pred_rgb)[:, 1:]
    return (ab - real_lab[:, 1:]).square().sum(1).sqrt().flatten(1).mean(1)


def score_photos(
    predictions: Mapping[str, Tensor], L: Tensor, real_ab: Tensor, gray: bool = True
) -> PhotoScores:
    """Per-photo scores of ``predictions`` (and the gray baseline) against the real photos.

    Args:
        predictions: model name -> ``ab (n, 2, S, S)`` in [-1, 1] for the photos ``L``.
        L, real_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)``, e.g. from
            :func:`~colorlib.evaluation.validation.validation_pairs`.
        gray: add the row ``"gray baseline"`` (``ab = 0``).

    Raises:
        ValueError: a prediction of another shape, or fewer than 2 photos.
    """
    if len(L) < 2:
        raise ValueError(f"scoring needs at least 2 photos, got {len(L)}")
    real_rgb = L_ab_to_rgb(L, real_ab)
    real_lab = rgb_to_lab(real_rgb)
    rows = dict(predictions)
    if gray:
        rows["gray baseline"] = gray_ab_like(L)
    metrics, histograms = {}, {}
    with torch.no_grad():
        for name, ab in rows.items():
            if ab.shape != real_ab.shape:
                raise ValueError(
                    f"prediction {name!r} has shape {tuple(ab.shape)}, "
                    f"expected {tuple(real_ab.shape)}"
                )
            rgb = L_ab_to_rgb(L, ab.to(L.dtype))
            values = {
                "psnr": psnr(rgb, real_rgb),
                "ssim": ssim(rgb, real_rgb),
                "colorfulness": colorfulness(rgb),
                "ab_error": _ab_error(rgb, real_lab),
            }
            metrics[name] = {k: v.double().cpu().numpy() for k, v in values.items()}
            histograms[name] = ab_histograms(rgb_to_lab(rgb)[:, 1:] / 110)
        real_cf = colorfulness(real_rgb).double().cpu().numpy()
    return PhotoScores(metrics, histograms, real_cf, ab_histograms(real_lab[:, 1:] / 110))


def _intersection(pred_counts: np.ndarray, real_counts: np.ndarray) -> np.ndarray:
    """Row-wise overlap of normalised histograms: ``(..., bins)`` pairs -> ``(...)``."""
    p = pred_counts / pred_counts.sum(-1, keepdims=True)
    q = real_counts / real_counts.sum(-1, keepdims=True)
    return np.minimum(p, q).sum(-1)


def _weighted_sum(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``weights @ values``, where a photo left out of a resample (weight 0) adds 0 even when
    its value is infinite (a perfect prediction's PSNR), instead of 0 * inf = NaN."""
    if np.isfinite(values).all():
        return weights @ values
    with np.errstate(invalid="ignore"):  # the 0 * inf products are replaced just below
        return np.where(weights > 0, weights * values, 0.0).sum(1)


def _set_statistics(scores: PhotoScores, model: str, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of ``model`` under photo ``weights`` ``(R, n)``: ``{metric: (R,)}``."""
    total = weights.sum(1)
    out = {k: _weighted_sum(weights, v) / total for k, v in scores.metrics[model].items()}
    real_cf = weights @ scores.real_colorfulness / total
    out["delta_colorfulness"] = np.abs(out["colorfulness"] - real_cf)
    out["histogram_intersection"] = _intersection(
        weights @ scores.histograms[model], weights @ scores.real_histograms
    )
    return out


def _statistics(scores: PhotoScores, model: str, num_resamples: int, seed: int):
    if model not in scores.metrics:
        raise ValueError(f"unknown model {model!r}; scored: {list(scores.metrics)}")
    point = _set_statistics(scores, model, np.ones((1, scores.count)))
    resampled = _set_statistics(scores, model, resample_counts(scores.count, num_resamples, seed))
    return point, resampled


def interval_table(
    scores: PhotoScores, confidence: float = 0.95, num_resamples: int = 2000, seed: int = 0
) -> dict[str, dict[str, Interval]]:
    """Every model's metrics with percentile bootstrap intervals over the photos.

    Returns:
        ``{model: {metric: Interval}}`` for :data:`PHOTO_METRICS` and :data:`SET_METRICS`, then
        ``"real photos"`` with its ``colorfulness`` alone.
    """
    table: dict[str, dict[str, Interval]] = {}
    for model in scores.metrics:
        point, resampled = _statistics(scores, model, num_resamples, seed)
        table[model] = {
            k: percentile_interval(point[k][0], resampled[k], confidence, scores.count)
            for k in (*PHOTO_METRICS, *SET_METRICS)
        }
    weights = resample_counts(scores.count, num_resamples, seed)
    real = weights @ scores.real_colorfulness / scores.count
    table["real photos"] = {
        "colorfulness": percentile_interval(
            scores.real_colorfulness.mean(), real, confidence, scores.count
        )
    }
    return table


def compare_models(
    scores: PhotoScores,
    a: str,
    b: str,
    metric: str,
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> tuple[str, Interval]:
    """``(verdict, interval of A - B)`` on ``metric``, paired over the same resampled photos.

    Raises:
        ValueError: an unknown model, or a metric without a direction (see
            :data:`HIGHER_IS_BETTER`).
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(
            f"metric {metric!r} has no better direction; use one of {list(HIGHER_IS_BETTER)}"
        )
    point_a, resampled_a = _statistics(scores, a, num_resamples, seed)
    point_b, resampled_b = _statistics(scores, b, num_resamples, seed)
    difference = percentile_interval(
        point_a[metric][0] - point_b[metric][0],
        resampled_a[metric] - resampled_b[metric],
        confidence,
        scores.count,
    )
    return verdict(difference, HIGHER_IS_BETTER[metric]), difference
