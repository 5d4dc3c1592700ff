"""The hint pyramid: spread hints (normalised convolution) and their zero-start decoder path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorlib.models.hint_pyramid import (
    PRIOR_WEIGHT,
    REACH,
    HintPyramid,
    propagate_hints,
    spread_hints,
)
from colorlib.models.resnet_unet import ResNetUNet


def _hints(size=32, patches=((4, 4, 2, 0.5, -0.25),)):
    """Hints ``(B=1, 3, size, size)``: square patches (row, col, side, a, b)."""
    hints = torch.zeros(1, 3, size, size)
    for row, col, side, a, b in patches:
        hints[0, :, row : row + side, col : col + side] = torch.tensor([a, b, 1.0]).view(3, 1, 1)
    return hints


def test_spread_hints_is_a_normalised_box_average_by_hand():
    # two hints in the 4x4 grid's cells (0, 0) and (0, 1) (cells of 8 px), different sizes
    hints = _hints(32, ((0, 0, 2, 0.5, -0.25), (0, 8, 4, -1.0, 1.0)))
    out = spread_hints(hints, (4, 4), reach=3)
    assert out.shape == (1, 3, 4, 4)
    # cell (1, 0): its 3x3 box holds both patches: 4 px of (0.5, -0.25), 16 px of (-1, 1)
    a, b = (4 * 0.5 + 16 * -1.0) / 20, (4 * -0.25 + 16 * 1.0) / 20
    torch.testing.assert_close(out[0, :, 1, 0], torch.tensor([a, b, 1.0]))
    # cell (1, 2) reaches cell (0, 1) only: its colour exactly
    torch.testing.assert_close(out[0, :, 1, 2], torch.tensor([-1.0, 1.0, 1.0]))
    # cell (3, 3) is out of reach of both: exactly zero in every channel
    assert torch.equal(out[0, :, 3, 3], torch.zeros(3))
    # reach 1: each cell alone
    alone = spread_hints(hints, (4, 4), reach=1)
    assert torch.equal(alone[0, 2], torch.tensor([[1.0, 1, 0, 0]] + [[0.0] * 4] * 3))


def test_spread_hints_at_full_resolution_keeps_a_lone_hint_and_no_hints_give_zeros():
    hints = _hints(16, ((5, 5, 1, 0.3, 0.7),))
    out = spread_hints(hints, (16, 16), reach=1)
    assert torch.equal(out, hints)  # a 1 px grid and a 1-cell box: the encoding itself
    assert torch.equal(spread_hints(torch.zeros(2, 3, 64, 64), (4, 4)), torch.zeros(2, 3, 4, 4))


def test_spread_hints_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        spread_hints(torch.zeros(1, 4, 8, 8), (2, 2))
    with pytest.raises(ValueError, match="does not divide"):
        spread_hints(torch.zeros(1, 3, 8, 8), (3, 3))
    with pytest.raises(ValueError, match="reach must be an odd int"):
        spread_hints(torch.zeros(1, 3, 8, 8), (2, 2), reach=2)


def _propagate_by_loops(L, hints, grid, s, r):
    """The module doc's formula, cell by cell in NumPy (float64)."""
    L, hints = L[0, 0].double().numpy(), hints[0].double().numpy()
    f = L.shape[0] // grid
    cells = lambda x: x.reshape(grid, f, grid, f).mean(axis=(1, 3))  # noqa: E731
    share, L_cell = cells(hints[2]), cells(L)
    colour_sum = np.stack([cells(hints[0]), cells(hints[1])])
    L_hint = np.divide(cells(L * hints[2]), share, out=np.zeros_like(share), where=share > 0)
    out = np.zeros((3, grid, grid))
    for p in np.ndindex(grid, grid):
        total, colour = 0.0, np.zeros(2)
        for q in zip(*np.nonzero(share), strict=True):
            d2 = ((np.array(p) - np.array(q)) / grid) @ ((np.array(p) - np.array(q)) / grid)
            w = np.exp(-d2 / (2 * s * s) - (L_cell[p] - L_hint[q]) ** 2 / (2 * r * r))
            total += w * share[q]
            colour += w * colour_sum[:, q[0], q[1]]
        out[:2][:, p[0], p[1]] = colour / total if total > 0 else 0
        out[2][p] = total / (total + PRIOR_WEIGHT)
    return torch.from_numpy(out)


def test_propagate_hints_matches_its_formula_computed_by_loops():
    torch.manual_seed(0)
    L = torch.rand(1, 1, 24, 24) * 2 - 1
    hints = _hints(24, ((1, 1, 3, 0.6, -0.3), (14, 17, 5, -0.8, 0.4), (20, 2, 1, 0.1, 0.9)))
    for grid, s, r in ((6, 0.25, 0.2), (8, 0.1, 0.5), (24, 0.3, 0.1)):
        got = propagate_hints(L, hints, grid, s, r)[0].double()  # computed in float32
        expected = _propagate_by_loops(L, hints, grid, s, r)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_propagate_hints_follows_lightness_and_gives_zeros_without_hints():
    # left half dark, right half light; one red hint on the dark side, one blue on the light
    L = torch.full((1, 1, 32, 32), -0.8)
    L[..., 16:] = 0.8
    hints = _hints(32, ((14, 10, 3, 0.7, 0.2), (14, 20, 3, -0.5, -0.6)))
    a = propagate_hints(L, hints, grid=8)[0, 0]
    assert (a[:, :4] > 0.69).all() and (a[:, 4:] < -0.49).all()  # each side keeps its own
    confidence = propagate_hints(L, hints, grid=8)[0, 2]
    assert confidence[3, 2] > confidence[0, 0] > 0  # near a hint > far from it
    assert torch.equal(propagate_hints(L, torch.zeros_like(hints)), torch.zeros(1, 3, 16, 16))


def test_propagate_hints_rejects_bad_arguments():
    L, hints = torch.zeros(1, 1, 32, 32), torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"need L \(B, 1, H, W\)"):
        propagate_hints(hints, hints)
    with pytest.raises(ValueError, match="do not match"):
        propagate_hints(L, torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="grid 12 must divide 32x32"):
        propagate_hints(L, hints, grid=12)
    with pytest.raises(ValueError, match="scales must be > 0"):
        propagate_hints(L, hints, sigma_range=0)


def test_pyramid_starts_at_zero_adds_nothing_for_no_hints_and_learns():
    pyramid = HintPyramid((8, 4))
    assert pyramid.reach == REACH
    x, hints = torch.randn(2, 8, 4, 4), _hints(32).expand(2, -1, -1, -1)
    L = torch.rand(2, 1, 32, 32) * 2 - 1
    propagated, none = pyramid.propagate(L, hints), pyramid.propagate(L, torch.zeros_like(hints))
    assert torch.equal(pyramid(0, x, hints, propagated), x)  # zero weights: nothing added
    with torch.no_grad():
        for conv in pyramid.convs:
            conv.weight.normal_()
    assert torch.equal(pyramid(0, x, torch.zeros_like(hints), none), x)  # no bias, zero input
    out = pyramid(0, x, hints, propagated)
    assert not torch.allclose(out, x)
    out.square().mean().backward()
    assert pyramid.convs[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="positive channel counts"):
        HintPyramid((8, 0))


def _models(**extra):
    kwargs = dict(pretrained=False, encoder="efficientnet-lite0", decoder_channels=(8,) * 5)
    torch.manual_seed(0)
    plain = ResNetUNet(hint_channels=3, **kwargs).eval()
    torch.manual_seed(0)
    return plain, ResNetUNet(hint_channels=3, hint_decoder=True, **kwargs, **extra).eval()


def test_resnet_unet_hint_decoder_starts_as_the_stem_only_model_and_travels():
    plain, pyramid = _models()
    assert pyramid.model_kwargs["hint_decoder"] is True
    assert "hint_decoder" not in plain.model_kwargs  # older hint checkpoints rebuild as before
    x = torch.cat([torch.rand(2, 1, 64, 64) * 2 - 1, _hints(64).expand(2, -1, -1, -1)], 1)
    with torch.no_grad():
        pyramid.hint_conv.weight.normal_()
        plain.hint_conv.weight.copy_(pyramid.hint_conv.weight)
        # same process, same shapes: an all-zero pyramid adds exactly zero
        assert torch.equal(pyramid(x), plain(x))
        for conv in pyramid.hint_pyramid.convs:
            conv.weight.normal_()
        assert not torch.allclose(pyramid(x), plain(x))
        assert torch.equal(pyramid(x[:, :1]), plain(x[:, :1]))  # L alone: no hints at all
    again = ResNetUNet(pretrained=False, **pyramid.model_kwargs)
    again.load_state_dict(pyramid.state_dict())  # strict: the pyramid's weights included
    with torch.no_grad():
        assert torch.equal(again.eval()(x), pyramid(x))
    pyramid.train()(x).square().mean().backward()
    assert all(c.weight.grad.abs().sum() > 0 for c in pyramid.hint_pyramid.convs)


def test_hint_decoder_needs_hint_channels():
    with pytest.raises(ValueError, match="True only with hint_channels=3"):
        ResNetUNet(pretrained=False, hint_decoder=True)
