"""colorlib.color, in the kornia manner: smoke, shapes, golden values, round trip, gradcheck."""

import itertools

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorlib import color

CORNERS = torch.tensor(list(itertools.product((0.0, 1.0), repeat=3)), dtype=torch.float64)


def _to_hwc(x):
    return x.movedim(-3, -1).numpy()


def _random_rgb(*shape, dtype=torch.float64, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_rgb_to_lab_matches_skimage_on_random_colours():
    rgb = _random_rgb(4, 3, 16, 16)
    ours = _to_hwc(color.rgb_to_lab(rgb))
    ref = skcolor.rgb2lab(_to_hwc(rgb))
    assert np.abs(ours - ref).max() < 1e-3


def test_rgb_to_lab_matches_skimage_on_gamut_corners():
    rgb = CORNERS.T.reshape(3, 8, 1)  # the 8 corners of the sRGB cube as an 8x1 image
    ours = _to_hwc(color.rgb_to_lab(rgb))
    ref = skcolor.rgb2lab(_to_hwc(rgb))
    assert np.abs(ours - ref).max() < 1e-3
    # skimage's rounded matrix leaves white a few thousandths off neutral, as here
    white = color.rgb_to_lab(torch.ones(3, 1, 1, dtype=torch.float64)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=1e-2)


def test_lab_to_rgb_matches_skimage():
    rgb = _random_rgb(2, 3, 8, 8, seed=1)
    lab = skcolor.rgb2lab(_to_hwc(rgb))
    # perturb into colours that are partly out of gamut: both must clip the same way
    lab[..., 1:] *= 1.3
    ours = _to_hwc(color.lab_to_rgb(torch.from_numpy(lab).movedim(-1, -3)))
    ref = skcolor.lab2rgb(lab)
    assert np.abs(ours - ref).max() < 1e-5


def test_round_trip_float32_and_float64():
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        rgb = _random_rgb(2, 5, 3, 7, 9, dtype=dtype)  # two leading batch dims
        back = color.lab_to_rgb(color.rgb_to_lab(rgb))
        assert back.shape == rgb.shape and back.dtype == dtype
        assert (back - rgb).abs().max() < tol


def test_normalised_round_trip_and_ranges():
    rgb = _random_rgb(3, 3, 8, 8)
    L, ab = color.rgb_to_L_ab(rgb)
    assert L.shape == (3, 1, 8, 8) and ab.shape == (3, 2, 8, 8)
    assert torch.allclose(color.L_ab_to_rgb(L, ab), rgb, atol=1e-9)
    assert L.min() >= -1 and L.max() <= 1


def test_ab_scale_covers_the_srgb_gamut():
    # every 8-bit-ish sRGB colour (a 33^3 grid incl. corners) must land inside [-1, 1]
    grid = torch.linspace(0, 1, 33, dtype=torch.float64)
    rgb = torch.stack(torch.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1, 1)
    _, ab = color.rgb_to_L_ab(rgb)
    assert ab.abs().max() < 1.0
    assert ab.abs().max() > 0.95  # and 110 is not wastefully large


def test_gray_has_zero_ab():
    gray = torch.full((1, 3, 4, 4), 0.37, dtype=torch.float64)
    _, ab = color.rgb_to_L_ab(gray)
    assert ab.abs().max() < 1e-4  # < 0.011 Lab units: the rounded D65 matrix, as in skimage
    assert color.gray_ab_like(torch.zeros(2, 1, 4, 5)).shape == (2, 2, 4, 5)


def test_gradcheck_rgb_to_lab():
    rgb = _random_rgb(1, 3, 3, 3).clamp(0.05, 0.95).requires_grad_()
    assert torch.autograd.gradcheck(color.rgb_to_lab, (rgb,))


def test_gradcheck_lab_to_rgb():
    lab = color.rgb_to_lab(_random_rgb(1, 3, 3, 3).clamp(0.1, 0.9)).requires_grad_()
    assert torch.autograd.gradcheck(color.lab_to_rgb, (lab,))


def test_gradient_flows_from_rgb_loss_to_ab():
    L = torch.zeros(1, 1, 4, 4)
    ab = (0.1 * torch.randn(1, 2, 4, 4)).requires_grad_()
    color.L_ab_to_rgb(L, ab).sum().backward()
    assert ab.grad is not None and ab.grad.abs().sum() > 0


def test_modules_equal_functions():
    rgb = _random_rgb(2, 3, 4, 4, dtype=torch.float32)
    lab = color.RgbToLab()(rgb)
    assert torch.equal(lab, color.rgb_to_lab(rgb))
    assert torch.equal(color.LabToRgb()(lab), color.lab_to_rgb(lab))


@pytest.mark.parametrize("bad", [torch.rand(3, 4), torch.rand(2, 4, 5, 5), torch.rand(1, 2, 4, 4)])
def test_bad_shapes_raise_value_error(bad):
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        color.rgb_to_lab(bad)
    with pytest.raises(ValueError, match="shape"):
        color.lab_to_rgb(bad)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="floating point"):
        color.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        color.rgb_to_lab(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="agree"):
        color.L_ab_to_lab(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match=r"\(\*, 2, H, W\)"):
        color.L_ab_to_lab(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rgb = _random_rgb(2, 3, 8, 8, dtype=torch.float32)
    assert torch.allclose(color.rgb_to_lab(rgb.cuda()).cpu(), color.rgb_to_lab(rgb), atol=1e-3)


def test_rgb8_fast_path_equals_the_float_path():
    rgb8 = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    rgb8[0, :, 0, 0] = 0  # black and white are in the table's corners
    rgb8[0, :, 0, 1] = 255
    L, ab = color.rgb8_to_L_ab(rgb8)
    L_ref, ab_ref = color.rgb_to_L_ab(rgb8.double() / 255)
    assert L.dtype == torch.float32 and L.shape == (2, 1, 16, 16) and ab.shape == (2, 2, 16, 16)
    assert (L - L_ref).abs().max() < 1e-5 and (ab - ab_ref).abs().max() < 1e-5
    with pytest.raises(TypeError, match="uint8"):
        color.rgb8_to_L_ab(rgb8.float())
    with pytest.raises(ValueError, match="shape"):
        color.rgb8_to_L_ab(rgb8[:, :2])
