"""PSNR against the number of colour hints: the key figure of Zhang, Zhu, Isola et al. (2017).

A hint model should get better with every click, and much better than simply pasting the
clicked colours into an automatic colorization: that gap is what the network's *propagation*
of a hint to the rest of its region is worth.

Design:

* **Simulated clicks.** For each photo ``i`` of held-back ``(L, real_ab)`` and each count ``k``
  (:data:`DEFAULT_COUNTS`: 0, 1, 2, 5, 10, 20, 50, 100), :func:`simulated_hints` takes the
  hints that :class:`~colorlib.data.hints.HintPairs` with ``seed`` and ``num_points=k`` gives
  item ``i`` (the paper's simulated user: patch colour = the patch's mean true ``ab``). The
  generator is seeded by ``(seed, i)`` alone and a fixed count draws no count, so the ``k``
  hints are the first ``k`` of every larger count: the curve adds clicks, it never redraws
  them. Every model sees exactly the same hints at a given count.
* **Rows.** A *hint model* gets ``cat(L, hints)``; an *automatic* model is run once on ``L``
  and becomes the **paste-in baseline** (:func:`paste_hints`): its ``ab`` overwritten by the
  hint colour inside each hint patch, unchanged elsewhere (at 0 hints: the automatic model).
* **Numbers.** Per photo the PSNR of ``L_ab_to_rgb(L, ab)`` against the real photo
  (:func:`colorlib.evaluation.metrics.psnr`); per (row, count) the mean over photos with a
  percentile bootstrap interval. All rows and counts share the same resamples
  (:func:`~colorlib.evaluation.stats.resample_counts`), so differences are paired.
* **Result.** A frozen :class:`HintCurve` of :class:`CurvePoint` s; :func:`curve_drops` and
  :func:`rises_monotonically` say whether a row's mean PSNR rises with the count.

>>> rows = {"hints": hint_model}, {"paste-in": auto_model}
>>> curve = hint_curve(L, real_ab, *rows)  # doctest: +SKIP
>>> print(curve)  # doctest: +SKIP
>>> rises_monotonically(curve, "hints")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from colorlib.color import L_ab_to_rgb
from colorlib.data.hints import (
    HINT_CHANNELS,
    PATCH_SIDES,
    Hint,
    HintPairs,
    hint_channels,
    join_hints,
)
from colorlib.evaluation.metrics import psnr
from colorlib.evaluation.stats import Interval, percentile_interval, resample_counts
from colorlib.evaluation.validation import predict_ab
from colorlib.models.hint_pyramid import propagate_hints

__all__ = [
    "DEFAULT_COUNTS",
    "CurvePoint",
    "HintCurve",
    "simulated_hints",
    "hint_tensor",
    "paste_hints",
    "propagate_into",
    "photo_psnr",
    "hint_predictions",
    "hint_curve",
    "curve_drops",
    "rises_monotonically",
]

#: numbers of hints of the curve (the paper's figure uses a similar log-like spacing)
DEFAULT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class CurvePoint:
    """One row of the curve at one count: ``psnr`` is the mean over photos, with its interval."""

    model: str
    num_hints: int
    psnr: Interval


@dataclass(frozen=True)
class HintCurve:
    """Mean PSNR (dB) per row and number of hints, with bootstrap intervals over photos.

    Attributes:
        points: one :class:`CurvePoint` per (row, count), rows in the order given, counts
            ascending within a row.
        num_photos: photos per mean.
        seed: the hints' seed (:func:`simulated_hints`).
    """

    points: tuple[CurvePoint, ...]
    num_photos: int
    seed: int

    def models(self) -> tuple[str, ...]:
        """The rows' names, in order."""
        return tuple(dict.fromkeys(point.model for point in self.points))

    def counts(self) -> tuple[int, ...]:
        """The numbers of hints, ascending."""
        return tuple(sorted({point.num_hints for point in self.points}))

    def curve(self, model: str) -> tuple[Interval, ...]:
        """Row ``model``'s intervals, one per count (:meth:`counts` order)."""
        if model not in self.models():
            raise ValueError(f"unknown row {model!r}; the curve has {list(self.models())}")
        return tuple(point.psnr for point in self.points if point.model == model)

    def means(self, model: str) -> tuple[float, ...]:
        """Row ``model``'s mean PSNR per count."""
        return tuple(interval.value for interval in self.curve(model))

    def __str__(self) -> str:
        models = self.models()
        width = max(24, *(len(m) + 2 for m in models))
        lines = [f"{'hints':>6}" + "".join(f"{m:>{width}}" for m in models)]
        for column, count in enumerate(self.counts()):
            cells = "".join(f"{_cell(self.curve(m)[column]):>{width}}" for m in models)
            lines.append(f"{count:>6}{cells}")
        level = self.points[0].psnr.confidence * 100 if self.points else 95
        lines.append(f"PSNR (dB), mean [{level:g} % bootstrap] over {self.num_photos} photos")
        return "\n".join(lines)


def _cell(interval: Interval) -> str:
    return f"{interval.value:.2f} [{interval.low:.2f}, {interval.high:.2f}]"


def _check_pairs(L: Tensor, real_ab: Tensor) -> None:
    if L.dim() != 4 or L.shape[1] != 1 or real_ab.shape != (len(L), 2, *L.shape[-2:]):
        raise ValueError(
            f"need L (n, 1, S, S) and real_ab (n, 2, S, S) of the same photos, got "
            f"{tuple(L.shape)} and {tuple(real_ab.shape)}"
        )


def _check_counts(counts: Sequence[int]) -> tuple[int, ...]:
    ok = all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in counts)
    if not counts or not ok or len(set(counts)) != len(counts):
        raise ValueError(f"counts must be distinct ints >= 0, got {counts!r}")
    return tuple(sorted(counts))


def simulated_hints(
    real_ab: Tensor,
    num_points: int,
    seed: int = 0,
    *,
    locations: str = "gaussian",
    sides: Sequence[int] = PATCH_SIDES,
) -> list[list[Hint]]:
    """The simulated user's ``num_points`` hints for each photo (see the module doc).

    Args:
        real_ab: ``(n, 2, S, S)`` true normalised chroma.
        num_points: hints per photo, >= 0.
        seed: photo ``i`` draws from a generator seeded with ``(seed, i)``: the hints at a
            smaller count are the first ones of a larger count, the same for every model.
        locations, sides: see :func:`colorlib.data.hints.sample_hint_points`.

    Returns:
        ``n`` lists of :class:`~colorlib.data.hints.Hint` at the ``S x S`` resolution.
    """
    photos = list(zip(torch.zeros(len(real_ab)), real_ab, strict=True))  # HintPairs wants pairs
    pairs = HintPairs(photos, seed, num_points=num_points, locations=locations, sides=sides)
    return [pairs.hints(i, ab) for i, ab in enumerate(real_ab)]


def hint_tensor(hints: Sequence[Sequence[Hint]], height: int, width: int) -> Tensor:
    """Per-photo hint lists painted into the encoding: ``(n, 3, height, width)``."""
    if not hints:
        raise ValueError("need the hints of at least one photo, got none")
    return torch.stack([hint_channels(one, height, width) for one in hints])


def paste_hints(ab: Tensor, hints: Tensor) -> Tensor:
    """The paste-in baseline: ``ab`` with each hint patch overwritten by its hint colour.

    Args:
        ab: ``(*, 2, H, W)`` a prediction (normalised).
        hints: ``(*, 3, H, W)`` the encoding ``(ab_hint * mask, mask)``
            (:func:`colorlib.data.hints.hint_channels`).

    Returns:
        ``ab * (1 - mask) + ab_hint * mask``: the prediction outside the patches, the hint
        colour inside; ``ab`` itself (values) where there is no hint.
    """
    if ab.shape[-3] != 2 or hints.shape[-3] != HINT_CHANNELS or ab.shape[-2:] != hints.shape[-2:]:
        raise ValueError(
            f"need ab (*, 2, H, W) and hints (*, {HINT_CHANNELS}, H, W) of the same size, got "
            f"{tuple(ab.shape)} and {tuple(hints.shape)}"
        )
    hints = hints.to(ab)
    mask = hints[..., 2:, :, :]
    return ab * (1 - mask) + hints[..., :2, :, :]


def propagate_into(L: Tensor, ab: Tensor, hints: Tensor) -> Tensor:
    """The no-learning baseline: ``ab`` with the hints spread along the lightness.

    :func:`colorlib.models.hint_pyramid.propagate_hints` (a joint-bilateral normalised
    convolution of the hints, on a lattice) upsampled bilinearly to ``ab``'s size, blended as
    ``confidence * colour + (1 - confidence) * ab``; the hint patches themselves are then
    pasted in (:func:`paste_hints`). What a hand-made propagation, with no training, makes of
    an automatic model's colours and the same hints.

    Args:
        L: ``(n, 1, H, W)`` lightness in [-1, 1].
        ab: ``(n, 2, H, W)`` an automatic prediction (normalised).
        hints: ``(n, 3, H, W)`` the encoding.

    Returns:
        ``(n, 2, H, W)``; ``ab`` itself (values) where no hint is anywhere.
    """
    if L.dim() != 4 or ab.dim() != 4 or ab.shape[1] != 2 or L.shape[-2:] != ab.shape[-2:]:
        raise ValueError(
            f"need L (n, 1, H, W) and ab (n, 2, H, W), got {tuple(L.shape)}, {tuple(ab.shape)}"
        )
    hints = hints.to(L.dtype)
    with torch.no_grad():
        spread = F.interpolate(
            propagate_hints(L, hints), size=L.shape[-2:], mode="bilinear", align_corners=False
        )  # (n, 3, H, W)
    confidence = spread[:, 2:]
    return paste_hints(confidence * spread[:, :2] + (1 - confidence) * ab.to(L.dtype), hints)


def photo_psnr(L: Tensor, ab: Tensor, real_ab: Tensor) -> np.ndarray:
    """Per-photo PSNR (dB) of ``L_ab_to_rgb(L, ab)`` against ``L_ab_to_rgb(L, real_ab)``:
    ``(n,)`` float64 (``inf`` for a perfect prediction)."""
    with torch.no_grad():
        values = psnr(L_ab_to_rgb(L, ab.to(L.dtype)), L_ab_to_rgb(L, real_ab))
    return values.double().cpu().numpy()


def hint_predictions(
    L: Tensor,
    hints: Tensor,
    hint_models: Mapping[str, nn.Module],
    automatic_ab: Mapping[str, Tensor],
    batch_size: int = 16,
) -> dict[str, Tensor]:
    """Every row's ``ab`` for one set of hints.

    Args:
        L: ``(n, 1, S, S)`` lightness.
        hints: ``(n, 3, S, S)`` the encoding (:func:`hint_tensor`).
        hint_models: row name -> a model of ``cat(L, hints)`` (it must have a parameter:
            :func:`~colorlib.evaluation.validation.predict_ab` runs it where it is).
        automatic_ab: row name -> an automatic model's ``ab (n, 2, S, S)``, pasted into.

    Returns:
        ``{row: ab (n, 2, S, S)}`` on the CPU, hint models first.
    """
    hints = hints.to(L.dtype)
    out = {
        name: predict_ab(model, join_hints(L, hints), batch_size).to(L.dtype)
        for name, model in hint_models.items()
    }
    out |= {name: paste_hints(ab.to(L.dtype), hints) for name, ab in automatic_ab.items()}
    return out


def _weighted_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``weights @ values / n`` where a photo left out (weight 0) adds 0 even if its value is
    ``inf`` (a perfect photo), not ``0 * inf = nan``."""
    with np.errstate(invalid="ignore"):
        total = np.where(weights > 0, weights * values, 0.0).sum(1)
    return total / weights.sum(1)


def hint_curve(
    L: Tensor,
    real_ab: Tensor,
    hint_models: Mapping[str, nn.Module] | None = None,
    paste_in: Mapping[str, nn.Module] | None = None,
    counts: Sequence[int] = DEFAULT_COUNTS,
    seed: int = 0,
    *,
    locations: str = "gaussian",
    sides: Sequence[int] = PATCH_SIDES,
    batch_size: int = 16,
    confidence: float = 0.95,
    num_resamples: int = 2000,
    bootstrap_seed: int = 0,
) -> HintCurve:
    """Mean PSNR against the number of simulated hints, for hint models and paste-in baselines.

    Args:
        L, real_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)`` held-back photos, ``n >= 2`` (e.g.
            :func:`~colorlib.evaluation.validation.validation_pairs`).
        hint_models: row name -> a hint model (``cat(L, hints) (B, 4, S, S) -> ab``).
        paste_in: row name -> an automatic model (``L -> ab``), run once; its row is its
            prediction with the hint patches pasted in (:func:`paste_hints`).
        counts: numbers of hints per photo (distinct, >= 0).
        seed: the hints' seed (:func:`simulated_hints`).
        locations, sides: the simulated user (:func:`colorlib.data.hints.sample_hint_points`).
        batch_size: photos per forward pass.
        confidence, num_resamples, bootstrap_seed: the percentile bootstrap over photos.

    Returns:
        A :class:`HintCurve`: hint models' rows first, then the paste-in rows.

    Raises:
        ValueError: bad shapes, fewer than 2 photos, no rows, a name used twice, bad counts.
    """
    _check_pairs(L, real_ab)
    counts = _check_counts(counts)
    hint_models, paste_in = dict(hint_models or {}), dict(paste_in or {})
    if not hint_models and not paste_in:
        raise ValueError("give at least one hint model or one automatic model (paste_in)")
    if set(hint_models) & set(paste_in):
        raise ValueError(f"row names used twice: {sorted(set(hint_models) & set(paste_in))}")
    weights = resample_counts(len(L), num_resamples, bootstrap_seed)  # checks n >= 2
    automatic = {name: predict_ab(model, L, batch_size) for name, model in paste_in.items()}
    values: dict[str, list[Interval]] = {name: [] for name in (*hint_models, *paste_in)}
    for count in counts:
        hints = hint_tensor(
            simulated_hints(real_ab, count, seed, locations=locations, sides=sides),
            *L.shape[-2:],
        )
        for name, ab in hint_predictions(L, hints, hint_models, automatic, batch_size).items():
            scores = photo_psnr(L, ab, real_ab)
            interval = percentile_interval(
                float(scores.mean()), _weighted_means(weights, scores), confidence, len(L)
            )
            values[name].append(interval)
    points = tuple(
        CurvePoint(name, count, interval)
        for name, intervals in values.items()
        for count, interval in zip(counts, intervals, strict=True)
    )
    return HintCurve(points, len(L), seed)


def curve_drops(
    curve: HintCurve, model: str, tolerance: float = 0.0
) -> list[tuple[int, int, float]]:
    """Where row ``model``'s mean PSNR falls from one count to the next by more than
    ``tolerance`` dB: ``[(count, next count, fall in dB), ...]`` (empty: it rises)."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of dB >= 0, got {tolerance!r}")
    counts, means = curve.counts(), curve.means(model)
    return [
        (counts[i], counts[i + 1], means[i] - means[i + 1])
        for i in range(len(means) - 1)
        if means[i + 1] < means[i] - tolerance
    ]


def rises_monotonically(curve: HintCurve, model: str, tolerance: float = 0.0) -> bool:
    """Whether row ``model``'s mean PSNR never falls (by more than ``tolerance`` dB) as hints
    are added (a flat step counts as rising; see :func:`curve_drops` for where it falls)."""
    return not curve_drops(curve, model, tolerance)
