"""colorlib.evaluation.hint_curve: PSNR against the number of simulated hints, for a hint model
and the paste-in baseline, with bootstrap intervals."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from colorlib.evaluation.hint_curve import (
    CurvePoint,
    HintCurve,
    curve_drops,
    hint_curve,
    hint_predictions,
    hint_tensor,
    paste_hints,
    photo_psnr,
    propagate_into,
    rises_monotonically,
    simulated_hints,
)
from colorlib.evaluation.stats import Interval
from colorlib.evaluation.validation import predict_ab

SIZE, BLOCK = 32, 8


def _block_photos(n=6, seed=0):
    """``n`` photos whose ``ab`` is constant on each ``BLOCK x BLOCK`` block."""
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(n, 1, SIZE, SIZE, generator=g) * 1.2 - 0.6
    blocks = torch.rand(n, 2, SIZE // BLOCK, SIZE // BLOCK, generator=g) * 0.6 - 0.3
    return L, F.interpolate(blocks, scale_factor=BLOCK, mode="nearest")


class BlockPropagation(nn.Module):
    """A perfect propagating hint model for block photos: every block that holds a hint takes
    the hints' colour, the others stay gray."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        ab_hint, mask = x[:, 1:3], x[:, 3:]
        total, hits = F.avg_pool2d(ab_hint, BLOCK), F.avg_pool2d(mask, BLOCK)
        mean = torch.where(hits > 0, total / hits.clamp_min(1e-12), torch.zeros_like(total))
        return F.interpolate(mean, scale_factor=BLOCK, mode="nearest") + 0 * self.unused


class Automatic(nn.Module):
    """An automatic model ``L -> ab`` (a fixed 1x1 convolution)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.2, -0.1]).view(2, 1, 1, 1))
            self.conv.bias.zero_()

    def forward(self, L):
        return self.conv(L[:, :1])


class Recorder(nn.Module):
    """A hint model that keeps every input it is given and predicts gray."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return torch.zeros_like(x[:, :2]) + 0 * self.unused


def test_a_perfect_propagation_model_rises_with_the_hints_and_beats_pasting():
    L, real_ab = _block_photos()
    counts = (0, 1, 2, 5, 10, 20)
    rows = {"propagate": BlockPropagation()}, {"paste-in": Automatic()}
    curve = hint_curve(L, real_ab, *rows, counts=counts, sides=(1,), num_resamples=200)
    assert curve.models() == ("propagate", "paste-in") and curve.counts() == counts
    assert rises_monotonically(curve, "propagate") and curve_drops(curve, "propagate") == []
    means = curve.means("propagate")
    assert means[-1] > means[0] + 3  # many blocks coloured exactly: several dB better
    pasted = curve.means("paste-in")
    assert all(p > q for p, q in zip(means[2:], pasted[2:], strict=True))


def test_the_paste_in_baseline_is_the_prediction_outside_the_patches_and_the_hint_inside():
    L, real_ab = _block_photos(n=3)
    prediction = predict_ab(Automatic(), L)
    hints = simulated_hints(real_ab, 10, seed=1)
    encoded = hint_tensor(hints, SIZE, SIZE)
    pasted = paste_hints(prediction, encoded)
    mask = encoded[:, 2:].bool().expand(-1, 2, -1, -1)
    assert mask.any() and (~mask).any()
    assert torch.equal(pasted[~mask], prediction[~mask])
    assert torch.equal(pasted[mask], encoded[:, :2][mask])
    for photo, photo_hints in enumerate(hints):  # the last hint wins where patches meet
        last = photo_hints[-1]
        top, left, bottom, right = last.box()
        patch = pasted[photo, :, max(top, 0) : bottom, max(left, 0) : right]
        expected = torch.tensor(last.ab).view(2, 1, 1).expand_as(patch)
        assert torch.allclose(patch, expected)


def test_propagation_carries_a_hint_over_its_own_lightness_only():
    # left half dark, right half light; one hint on the dark side; automatic colour (0.1, 0.1)
    L = torch.full((1, 1, SIZE, SIZE), -0.8)
    L[..., SIZE // 2 :] = 0.8
    ab = torch.full((1, 2, SIZE, SIZE), 0.1)
    hints = torch.zeros(1, 3, SIZE, SIZE)
    hints[0, :, 14:17, 6:9] = torch.tensor([0.6, -0.4, 1.0]).view(3, 1, 1)
    out = propagate_into(L, ab, hints)
    assert torch.equal(out[0, :, 14:17, 6:9], hints[0, :2, 14:17, 6:9])  # the patch: pasted
    dark = out[0, 0, :, : SIZE // 2 - 2]  # away from the boundary's bilinear blend
    assert (dark > 0.35).all() and (dark <= 0.6).all()  # pulled towards the hint
    torch.testing.assert_close(out[0, :, :, SIZE // 2 + 2 :], ab[0, :, :, SIZE // 2 + 2 :])
    assert torch.equal(propagate_into(L, ab, torch.zeros_like(hints)), ab)  # no hints
    with pytest.raises(ValueError, match=r"need L \(n, 1, H, W\) and ab"):
        propagate_into(L, ab[:, :1], hints)


def test_at_zero_hints_the_paste_in_baseline_is_the_automatic_model():
    L, real_ab = _block_photos(n=4)
    model = Automatic()
    automatic = predict_ab(model, L)
    none = hint_tensor(simulated_hints(real_ab, 0), SIZE, SIZE)
    assert torch.equal(none, torch.zeros(4, 3, SIZE, SIZE))
    rows = hint_predictions(L, none, {}, {"paste-in": automatic})
    assert torch.equal(rows["paste-in"], automatic)
    curve = hint_curve(L, real_ab, paste_in={"paste-in": model}, counts=(0, 5), num_resamples=50)
    expected = photo_psnr(L, automatic, real_ab).mean()
    assert curve.curve("paste-in")[0].value == pytest.approx(expected)


def test_intervals_contain_the_mean():
    L, real_ab = _block_photos(n=8, seed=3)
    rows = {"propagate": BlockPropagation()}, {"paste-in": Automatic()}
    curve = hint_curve(L, real_ab, *rows, counts=(0, 1, 10, 50), num_resamples=300)
    assert len(curve.points) == 8 and curve.num_photos == 8
    for point in curve.points:
        interval = point.psnr
        assert interval.low <= interval.value <= interval.high
        assert interval.confidence == 0.95 and interval.count == 8
    assert "paste-in" in str(curve) and "over 8 photos" in str(curve)


def test_same_seed_same_hints_nested_across_counts_and_shared_by_every_model():
    _, real_ab = _block_photos(n=3)
    ten = simulated_hints(real_ab, 10, seed=7)
    assert ten == simulated_hints(real_ab, 10, seed=7)
    assert ten != simulated_hints(real_ab, 10, seed=8)
    assert [one[:5] for one in ten] == simulated_hints(real_ab, 5, seed=7)  # clicks are added
    L, _ = _block_photos(n=3)
    first, second = Recorder(), Recorder()
    hint_curve(L, real_ab, {"a": first, "b": second}, counts=(0, 3, 10), seed=7, num_resamples=20)
    assert len(first.inputs) == len(second.inputs) == 3
    for x, y in zip(first.inputs, second.inputs, strict=True):
        assert torch.equal(x, y)
    expected = hint_tensor(ten, SIZE, SIZE)
    assert torch.equal(first.inputs[-1][:, 1:], expected)


def test_curve_drops_names_where_a_row_falls():
    def point(count, value):
        return CurvePoint("m", count, Interval(value, value - 1, value + 1, 0.95, 5))

    curve = HintCurve((point(0, 20.0), point(1, 22.0), point(5, 21.5), point(10, 25.0)), 5, 0)
    assert curve_drops(curve, "m") == [(1, 5, pytest.approx(0.5))]
    assert not rises_monotonically(curve, "m")
    assert rises_monotonically(curve, "m", tolerance=0.6)
    with pytest.raises(ValueError, match="unknown row 'x'"):
        curve.curve("x")
    with pytest.raises(ValueError, match="tolerance"):
        curve_drops(curve, "m", tolerance=-1)


def test_bad_inputs_are_named():
    L, real_ab = _block_photos(n=3)
    model = Automatic()
    with pytest.raises(ValueError, match="distinct ints >= 0"):
        hint_curve(L, real_ab, paste_in={"p": model}, counts=(0, -1))
    with pytest.raises(ValueError, match="distinct ints >= 0"):
        hint_curve(L, real_ab, paste_in={"p": model}, counts=(1, 1))
    with pytest.raises(ValueError, match="at least one"):
        hint_curve(L, real_ab)
    with pytest.raises(ValueError, match=r"used twice: \['p'\]"):
        hint_curve(L, real_ab, {"p": BlockPropagation()}, {"p": model})
    with pytest.raises(ValueError, match="real_ab"):
        hint_curve(L, real_ab[:2], paste_in={"p": model})
    with pytest.raises(ValueError, match="at least 2 photos"):
        hint_curve(L[:1], real_ab[:1], paste_in={"p": model})
    with pytest.raises(ValueError, match=r"hints \(\*, 3, H, W\)"):
        paste_hints(real_ab, real_ab)


def test_perfect_rows_give_an_infinite_mean_not_nan():
    L, real_ab = _block_photos(n=3)

    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return real_ab[: len(x)] + 0 * self.unused

    curve = hint_curve(L, real_ab, {"oracle": Oracle()}, counts=(0,), num_resamples=20)
    interval = curve.curve("oracle")[0]
    assert np.isinf(interval.value) and np.isinf(interval.low) and np.isinf(interval.high)
