"""colorlib.evaluation.stats: bootstrap intervals, verdicts, KID, ab-histogram intersection."""

import numpy as np
import pytest
import torch

from colorlib.evaluation.stats import ab_histogram_intersection, bootstrap_ci, compare, kid


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_photos():
    rng = np.random.default_rng(0)
    small, large = rng.normal(20, 2, 30), rng.normal(20, 2, 3000)
    a, b = bootstrap_ci(small), bootstrap_ci(large)
    assert a.low < a.value < a.high and a.value == pytest.approx(small.mean())
    assert (b.high - b.low) < (a.high - a.low) / 5  # about sqrt(100) = 10 times narrower
    # the normal-theory interval, an independent reference: mean +- 1.96 sd / sqrt(n)
    half = 1.96 * large.std(ddof=1) / np.sqrt(large.size)
    assert b.low == pytest.approx(large.mean() - half, abs=0.02)
    assert b.high == pytest.approx(large.mean() + half, abs=0.02)
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)  # seeded
    with pytest.raises(ValueError, match="at least 2 finite"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(small, confidence=1.5)


def test_compare_says_better_only_when_the_interval_excludes_zero():
    rng = np.random.default_rng(1)
    base = rng.normal(22, 1, 40)
    verdict, interval = compare(base + 0.5, base)  # every photo 0.5 dB better
    assert verdict == "better" and interval.low > 0
    assert compare(base - 0.5, base)[0] == "worse"
    assert compare(base - 0.5, base, higher_is_better=False)[0] == "better"  # e.g. delta-CF
    noisy = base + rng.normal(0, 1, 40)
    assert compare(noisy, base)[0] == "not distinguishable on 40 photos"
    with pytest.raises(ValueError, match="same length"):
        compare(base, base[:10])


def _mmd2_by_loops(x, y):
    """The unbiased estimator written as its definition: an independent reference."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, (7, 5)), rng.normal(0.5, 1, (7, 5))
    value, spread = kid(x, y)
    assert value == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10) and spread == 0.0


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    same = [kid(rng.normal(0, 1, (200, 8)), rng.normal(0, 1, (200, 8)), subset_size=50)[0]]
    shifted, spread = kid(rng.normal(0, 1, (200, 8)), rng.normal(1, 1, (200, 8)), subset_size=50)
    assert abs(same[0]) < 0.05 < shifted and spread > 0
    with pytest.raises(ValueError, match="feature arrays"):
        kid(np.zeros((5, 3)), np.zeros((5, 4)))


def test_ab_histogram_intersection_is_one_for_the_same_colours_and_zero_for_disjoint():
    torch.manual_seed(0)
    ab = torch.rand(2, 2, 16, 16) * 0.6 - 0.3
    assert ab_histogram_intersection(ab, ab) == pytest.approx(1.0)
    assert ab_histogram_intersection(ab, ab.flip(0)) == pytest.approx(1.0)  # order-free
    red, green = torch.full((1, 2, 4, 4), 0.5), torch.full((1, 2, 4, 4), -0.5)
    assert ab_histogram_intersection(red, green) == 0.0
    half = torch.cat([red[..., :2], green[..., 2:]], dim=-1)
    assert ab_histogram_intersection(half, red) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        ab_histogram_intersection(ab[:, :1], ab)
