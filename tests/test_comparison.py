"""colorlib.evaluation.comparison and region_stats: per-photo scores, intervals, verdicts."""

import numpy as np
import pytest
import torch

from colorlib.color import rgb_to_L_ab
from colorlib.evaluation import regions
from colorlib.evaluation.comparison import compare_models, interval_table, score_photos
from colorlib.evaluation.region_stats import region_compare, region_intervals
from colorlib.evaluation.stats import (
    ab_histogram_intersection,
    bootstrap_ci,
    percentile_interval,
    resample_counts,
)
from colorlib.evaluation.validation import evaluate_predictions


def _photos(n=12, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth colour fields (in gamut by construction: they come from sRGB)
    rgb = torch.rand(n, 3, 4, 4, generator=g)
    rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear")
    return rgb_to_L_ab(rgb)


def test_resample_counts_are_bootstrap_ci_s_resamples():
    values = np.random.default_rng(0).normal(size=30)
    counts = resample_counts(30, 500, seed=4)
    assert counts.shape == (500, 30) and (counts.sum(1) == 30).all()
    by_weights = percentile_interval(values.mean(), counts @ values / 30, count=30)
    direct = bootstrap_ci(values, num_resamples=500, seed=4)
    assert by_weights.low == pytest.approx(direct.low) and by_weights.high == pytest.approx(
        direct.high
    )
    with pytest.raises(ValueError, match="at least 2"):
        resample_counts(1)


def test_score_photos_agree_with_the_mean_table_and_the_pooled_histogram():
    L, real_ab = _photos()
    pred = real_ab * 0.5
    scores = score_photos({"half": pred, "perfect": real_ab}, L, real_ab)
    table = interval_table(scores, num_resamples=300)
    means = evaluate_predictions({"half": pred}, L, real_ab)
    for key in ("psnr", "ssim", "colorfulness", "delta_colorfulness"):
        assert table["half"][key].value == pytest.approx(means["half"][key], rel=1e-5)
        assert table["gray baseline"][key].value == pytest.approx(
            means["gray baseline"][key], rel=1e-5, abs=1e-9
        )
    assert table["real photos"]["colorfulness"].value == pytest.approx(
        means["real photos"]["colorfulness"], rel=1e-5
    )
    # a perfect prediction: no ab error beyond sRGB rounding, full histogram overlap
    assert table["perfect"]["ab_error"].value < 0.05
    assert table["perfect"]["histogram_intersection"].value == pytest.approx(1.0)
    # the gray baseline's ab error is the photos' mean chroma (a, b measured from 0)
    chroma = (real_ab * 110).square().sum(1).sqrt().flatten(1).mean(1).mean()
    assert table["gray baseline"]["ab_error"].value == pytest.approx(float(chroma), rel=0.02)
    assert table["half"]["histogram_intersection"].value == pytest.approx(
        ab_histogram_intersection(pred, real_ab), abs=0.05
    )
    # a perfect prediction's PSNR is infinite on every photo: so are its value and interval
    # (a photo left out of a resample must add 0, not 0 * inf = NaN)
    perfect_psnr = table["perfect"]["psnr"]
    assert perfect_psnr.value == perfect_psnr.low == perfect_psnr.high == float("inf")
    for name, row in table.items():
        if name == "perfect":
            continue  # its PSNR is infinite
        for interval in row.values():
            assert interval.low <= interval.value + 1e-9 <= interval.high + 2e-9


def test_compare_models_is_paired_and_says_better_only_when_sure():
    L, real_ab = _photos(n=20)
    scores = score_photos({"close": real_ab * 0.9, "far": real_ab * 0.2}, L, real_ab)
    verdict, interval = compare_models(scores, "close", "far", "ab_error", num_resamples=300)
    assert verdict == "better" and interval.high < 0  # lower ab error is better
    assert compare_models(scores, "far", "close", "psnr", num_resamples=300)[0] == "worse"
    same, zero = compare_models(scores, "close", "close", "psnr", num_resamples=300)
    assert same == "not distinguishable on 20 photos" and zero.low == zero.high == 0
    with pytest.raises(ValueError, match="no better direction"):
        compare_models(scores, "close", "far", "colorfulness")
    with pytest.raises(ValueError, match="unknown model"):
        compare_models(scores, "close", "nobody", "psnr")
    with pytest.raises(ValueError, match="shape"):
        score_photos({"bad": real_ab[:, :, :8]}, L, real_ab)


def _row(model, image_id, group, area, error, real, pred, edge=2.0, inner=1.0):
    return {
        "model": model,
        "image_id": image_id,
        "group": group,
        "category": group,
        "area": area,
        "ab_error": error,
        "real_chroma": real,
        "pred_chroma": pred,
        "boundary_error": edge,
        "interior_error": inner,
    }


def test_region_intervals_match_summarise_and_compare_is_paired():
    rng = np.random.default_rng(0)
    rows = []
    for image_id in range(30):
        for group, pred in (("head", 5.0), ("background", 20.0)):
            area = float(rng.integers(50, 500))
            real = 25.0 + rng.normal()
            rows.append(_row("m", image_id, group, area, rng.uniform(5, 15), real, pred))
            rows.append(_row("gray", image_id, group, area, real, real, 0.0, edge=1.0))
    table = region_intervals(rows, num_resamples=300)
    pooled = regions.summarise(rows, by="group")
    for model in ("m", "gray"):
        for group in ("head", "background"):
            for key in ("chroma_ratio", "ab_error", "bleeding"):
                cell = table[model][group][key]
                assert cell.value == pytest.approx(pooled[model][group][key])
                assert cell.low <= cell.value <= cell.high
                assert cell.count == 30
    answer, diff = region_compare(rows, ("m", "head"), ("m", "background"), "chroma_ratio")
    assert answer == "lower" and diff.high < 0  # 5 / 25 against 20 / 25
    assert region_compare(rows, ("m", "head"), ("gray", "head"), "bleeding")[0] == "higher"
    same = region_compare(rows, ("m", "head"), ("m", "head"), "ab_error")[0]
    assert same == "not distinguishable on 30 photos"
    with pytest.raises(ValueError, match="no region rows"):
        region_compare(rows, ("m", "sky"), ("m", "head"), "ab_error")
    with pytest.raises(ValueError, match="unknown region measure"):
        region_compare(rows, ("m", "head"), ("m", "head"), "hue")
    with pytest.raises(ValueError, match="no region rows to resample"):
        region_intervals([])


def test_format_interval_table_aligns_value_and_interval_cells():
    from colorlib.evaluation.stats import Interval
    from colorlib.tables import format_interval_table

    rows = {
        "U-Net": {"psnr": Interval(22.456, 21.9, 23.01, 0.95, 64)},
        "gray baseline": {"psnr": Interval(23.0, 22.5, 23.5, 0.95, 64), "fid": None},
    }
    lines = format_interval_table(rows).splitlines()
    assert lines[1].startswith("U-Net") and "22.5 [21.9, 23]" in lines[1]
    assert lines[2].rstrip().endswith("-")  # U-Net has no fid: a dash, same width
    assert len({len(line) for line in lines}) == 1
    assert format_interval_table(rows, ["fid"]).splitlines()[0].strip() == "fid"
