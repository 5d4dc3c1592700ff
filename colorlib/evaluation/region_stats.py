"""Bootstrap intervals over photos for the COCO region measures of :mod:`.regions`.

:func:`colorlib.evaluation.regions.summarise` pools instance rows into a chroma ratio, an ab
error and a bleeding ratio per model and group. Those are ratios of sums over instances, and
instances of one photo are not independent (one badly coloured photo moves every instance in
it), so the resampling unit is the *photo*:

* each group's statistic is written as a ratio of per-photo sums (pixel-weighted chroma and
  error; bleeding as the sum of per-instance boundary/interior ratios over their count),
  exactly as ``summarise`` pools them;
* a bootstrap resample is a weight per photo
  (:func:`~colorlib.evaluation.stats.resample_counts`), so every resampled statistic is one
  matrix product, and all models and groups share the same resamples (paired);
* :func:`region_intervals` gives ``{model: {group: {key: Interval}}}``;
  :func:`region_compare` the verdict on ``A - B`` for two (model, group) cells, e.g. a
  model's head chroma ratio against its background one, or a model's bleeding against the
  gray baseline's on people.

>>> intervals = region_intervals(rows, by="group")  # doctest: +SKIP
>>> region_compare(rows, ("U-Net", "person"), ("gray baseline", "person"), "bleeding")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from colorlib.evaluation.stats import Interval, percentile_interval, resample_counts, verdict

__all__ = ["REGION_KEYS", "region_intervals", "region_compare"]

#: the pooled measures, and whether higher is better (None: no direction, e.g. a ratio to 1)
REGION_KEYS = {"chroma_ratio": None, "ab_error": False, "bleeding": False}


def _photo_sums(rows: Sequence[Mapping], photos: dict[int, int], by: str):
    """``{(model, group): {name: (P,) per-photo sums}}`` of the pieces of each measure."""
    sums: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for row in rows:
        cell = sums.setdefault(
            (row["model"], row[by]),
            {k: np.zeros(len(photos)) for k in ("area", "error", "real", "pred", "ratio", "n")},
        )
        i = photos[row["image_id"]]
        area = float(row["area"])
        cell["area"][i] += area
        cell["error"][i] += area * row["ab_error"]
        cell["real"][i] += area * row["real_chroma"]
        cell["pred"][i] += area * row["pred_chroma"]
        inner, edge = row["interior_error"], row["boundary_error"]
        if np.isfinite(inner) and np.isfinite(edge) and inner > 0:
            cell["ratio"][i] += edge / inner
            cell["n"][i] += 1
    return sums


def _measures(cell: Mapping[str, np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
    """The pooled measures under photo ``weights`` ``(R, P)``: ``{key: (R,)}`` (NaN when empty)."""
    w = {k: weights @ v for k, v in cell.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "chroma_ratio": np.where(w["real"] > 0, w["pred"] / w["real"], np.nan),
            "ab_error": np.where(w["area"] > 0, w["error"] / w["area"], np.nan),
            "bleeding": np.where(w["n"] > 0, w["ratio"] / w["n"], np.nan),
        }


def _prepare(rows: Sequence[Mapping], by: str, num_resamples: int, seed: int):
    if not rows:
        raise ValueError("no region rows to resample")
    photos = {image_id: i for i, image_id in enumerate(sorted({r["image_id"] for r in rows}))}
    sums = _photo_sums(rows, photos, by)
    weights = resample_counts(len(photos), num_resamples, seed)
    return sums, weights, len(photos)


def region_intervals(
    rows: Sequence[Mapping],
    by: str = "group",
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Interval]]]:
    """Chroma ratio, ab error and bleeding per model and ``by`` group, with photo-bootstrap
    intervals (the point values equal :func:`~colorlib.evaluation.regions.summarise`'s).

    Args:
        rows: region rows with ``"model"`` and ``by`` keys (``evaluate_regions`` output, with
            groups added by ``with_groups`` for ``by="group"``).

    Returns:
        ``{model: {group: {"chroma_ratio" | "ab_error" | "bleeding": Interval}}}``; an
        Interval's ``count`` is the number of photos with that group.
    """
    sums, weights, count = _prepare(rows, by, num_resamples, seed)
    table: dict[str, dict[str, dict[str, Interval]]] = {}
    for (model, group), cell in sums.items():
        point = _measures(cell, np.ones((1, count)))
        resampled = _measures(cell, weights)
        photos = int((cell["area"] > 0).sum())
        table.setdefault(model, {})[group] = {
            k: percentile_interval(point[k][0], resampled[k], confidence, photos)
            for k in REGION_KEYS
        }
    return table


def region_compare(
    rows: Sequence[Mapping],
    a: tuple[str, str],
    b: tuple[str, str],
    key: str,
    by: str = "group",
    confidence: float = 0.95,
    num_resamples: int = 2000,
    seed: int = 0,
) -> tuple[str, Interval]:
    """Is cell ``a = (model, group)`` lower than cell ``b`` on ``key``? Paired over photos.

    Returns:
        ``(answer, interval of a - b)`` where the answer is ``"lower"`` or ``"higher"`` when the
        interval excludes 0, else ``"not distinguishable on N photos"`` (N: photos in the
        resamples).

    Raises:
        ValueError: an unknown key, or a cell with no rows.
    """
    if key not in REGION_KEYS:
        raise ValueError(f"unknown region measure {key!r}; choose one of {list(REGION_KEYS)}")
    sums, weights, count = _prepare(rows, by, num_resamples, seed)
    for cell in (a, b):
        if tuple(cell) not in sums:
            raise ValueError(f"no region rows for (model, {by}) = {cell!r}")
    ones = np.ones((1, count))
    point = _measures(sums[tuple(a)], ones)[key][0] - _measures(sums[tuple(b)], ones)[key][0]
    resampled = _measures(sums[tuple(a)], weights)[key] - _measures(sums[tuple(b)], weights)[key]
    difference = percentile_interval(point, resampled, confidence, count)
    answer = verdict(difference, higher_is_better=True)
    return {"better": "higher", "worse": "lower"}.get(answer, answer), difference
