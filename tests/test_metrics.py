"""colorlib.evaluation.metrics: skimage / numpy / closed-form references, the accumulator."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorlib.evaluation import metrics

RED_CF = 0.3 * np.hypot(255.0, 127.5)  # a uniform saturated red: only the mean term counts


pytestmark = pytest.mark.usefixtures("offline_empty_hub")


def _rgb(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _pair(batch=3, size=(24, 30), seed=0, dtype=torch.float64):
    """A target with structure (smooth ramps) and a noisy prediction of it, both in [0, 1]."""
    h, w = size
    ramp = torch.linspace(0, 1, w, dtype=dtype).expand(batch, 3, h, w)
    target = (0.6 * ramp + 0.4 * _rgb(batch, 3, h, w, seed=seed, dtype=dtype)).clamp(0, 1)
    noise = 0.15 * (_rgb(batch, 3, h, w, seed=seed + 1, dtype=dtype) - 0.5)
    return (target + noise).clamp(0, 1), target


def _np(x):  # (3, H, W) tensor -> (H, W, 3) array
    return x.permute(1, 2, 0).numpy()


def _numpy_colorfulness(image, signed):
    r, g, b = (255.0 * image.astype(np.float64)).transpose(2, 0, 1)
    rg, yb = r - g, 0.5 * (r + g) - b
    if not signed:
        rg, yb = np.abs(rg), np.abs(yb)
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def _uniform(rgb, size=16):
    return torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, size, size)


# --- PSNR / SSIM ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_psnr_matches_skimage(dtype):
    pred, target = _pair(dtype=dtype)
    ours = metrics.psnr(pred, target)
    assert ours.shape == (3,)
    for i in range(3):
        ref = peak_signal_noise_ratio(_np(target[i]), _np(pred[i]), data_range=1.0)
        assert abs(ours[i].item() - ref) < 1e-4


def test_psnr_known_values_and_data_range():
    zeros = torch.zeros(1, 3, 4, 4)
    assert torch.allclose(metrics.psnr(zeros, zeros + 0.1), torch.tensor([20.0]))
    assert torch.allclose(metrics.psnr(zeros, zeros + 25.5, data_range=255.0), torch.tensor([20.0]))
    assert torch.isinf(metrics.psnr(zeros, zeros)).all()


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-7), (torch.float32, 1e-4)])
def test_ssim_matches_skimage(dtype, tolerance):
    pred, target = _pair(dtype=dtype)
    ours = metrics.ssim(pred, target)
    for i in range(3):
        ref = structural_similarity(
            _np(target[i]).astype(np.float64),
            _np(pred[i]).astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=2,
            data_range=1.0,
        )
        assert abs(ours[i].item() - ref) < tolerance


def test_ssim_data_range_and_identity():
    pred, target = _pair(batch=1)
    ref = structural_similarity(
        _np(target[0] * 255),
        _np(pred[0] * 255),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=2,
        data_range=255.0,
    )
    assert abs(metrics.ssim(pred * 255, target * 255, data_range=255.0).item() - ref) < 1e-7
    assert torch.allclose(metrics.ssim(target, target), torch.ones(1, dtype=torch.float64))


def test_ssim_is_differentiable():
    pred, target = (x[:, :1] for x in _pair(batch=1, size=(11, 12)))  # one channel is enough
    pred.requires_grad_(True)
    torch.autograd.gradcheck(lambda p: metrics.ssim(p, target), (pred,))


def test_psnr_and_ssim_reject_bad_inputs():
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32))
    with pytest.raises(ValueError, match="differ"):
        metrics.psnr(torch.rand(1, 3, 16, 16), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metrics.psnr(torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(TypeError, match="floating point"):
        metrics.ssim(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16))


# --- colourfulness ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant,signed", [("ddcolor", False), ("hasler", True)])
def test_colorfulness_matches_a_numpy_transcription(variant, signed):
    rgb = _rgb(4, 3, 16, 20)
    rgb[1] = rgb[1].round(decimals=1)  # and an 8-bit-like image
    ours = metrics.colorfulness(rgb, variant=variant)
    for i in range(4):
        assert abs(ours[i].item() - _numpy_colorfulness(_np(rgb[i]), signed)) < 1e-9


def test_colorfulness_known_cases():
    gray = _rgb(2, 1, 16, 16).expand(2, 3, 16, 16)
    for variant in ("ddcolor", "hasler"):
        assert torch.equal(metrics.colorfulness(gray, variant), torch.zeros(2, dtype=gray.dtype))
        red = metrics.colorfulness(_uniform((1.0, 0.0, 0.0)), variant)
        assert abs(red.item() - RED_CF) < 1e-9
        blue = metrics.colorfulness(_uniform((0.0, 0.0, 1.0)), variant)
        assert abs(blue.item() - 0.3 * 255) < 1e-9
    half = torch.cat((_uniform((1.0, 0.0, 0.0)), _uniform((0.0, 1.0, 0.0))), dim=-1)
    # |rg| = 255 everywhere for "ddcolor"; the signed rg flips between +255 and -255 for "hasler"
    assert abs(metrics.colorfulness(half, "ddcolor").item() - RED_CF) < 1e-9
    assert abs(metrics.colorfulness(half, "hasler").item() - (255 + 0.3 * 127.5)) < 1e-9


def test_colorfulness_gradients():
    rgb = (0.1 + 0.8 * _rgb(1, 3, 6, 6)).requires_grad_(True)
    for variant in ("ddcolor", "hasler"):
        torch.autograd.gradcheck(lambda x, v=variant: metrics.colorfulness(x, v), (rgb,))
    gray = _rgb(1, 1, 8, 8).expand(1, 3, 8, 8).clone().requires_grad_(True)
    metrics.colorfulness(gray).sum().backward()
    assert torch.isfinite(gray.grad).all()


def test_colorfulness_rejects_bad_inputs():
    with pytest.raises(ValueError, match="variant"):
        metrics.colorfulness(torch.rand(1, 3, 8, 8), variant="abs")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metrics.colorfulness(torch.rand(1, 2, 8, 8))


def test_delta_colorfulness_is_the_difference_of_set_means():
    red, gray = _uniform((1.0, 0.0, 0.0)), _uniform((0.5, 0.5, 0.5))
    pred, target = torch.cat((red, gray)), torch.cat((gray, red))
    assert metrics.delta_colorfulness(pred, target).item() == 0.0  # per-image |diff| would be 85.5
    assert abs(metrics.delta_colorfulness(torch.cat((red, red)), target).item() - RED_CF / 2) < 1e-9
    a, b = _rgb(3, 3, 8, 8, seed=1), _rgb(3, 3, 8, 8, seed=2) ** 2
    expected = abs(metrics.colorfulness(a).mean() - metrics.colorfulness(b).mean())
    assert torch.allclose(metrics.delta_colorfulness(a, b), expected)


# --- Fréchet distance -------------------------------------------------------------------------


def test_summarize_averages_over_images():
    out = metrics.summarize([{"psnr": torch.tensor([20.0, 30.0])}, {"psnr": torch.tensor([40.0])}])
    assert out == {"psnr": 30.0, "count": 3}
    with pytest.raises(ValueError, match="same images"):
        metrics.summarize([{"psnr": torch.ones(2), "ssim": torch.ones(3)}])
    with pytest.raises(ValueError, match="per-image"):
        metrics.summarize([])


def test_metric_accumulator_matches_one_big_batch():
    pred, target = _pair(batch=5, size=(16, 16), dtype=torch.float32)
    accumulator = metrics.MetricAccumulator()
    with pytest.raises(ValueError, match="before any update"):
        accumulator.compute()
    accumulator.update(pred[:2], target[:2])
    accumulator.update(pred[2:], target[2:])
    out = accumulator.compute()
    assert out["count"] == len(accumulator) == 5
    assert out["psnr"] == pytest.approx(metrics.psnr(pred, target).mean().item(), rel=1e-6)
    assert out["ssim"] == pytest.approx(metrics.ssim(pred, target).mean().item(), rel=1e-6)
    cf_pred, cf_gt = metrics.colorfulness(pred).mean(), metrics.colorfulness(target).mean()
    assert out["colorfulness"] == pytest.approx(cf_pred.item(), rel=1e-6)
    assert out["colorfulness_real"] == pytest.approx(cf_gt.item(), rel=1e-6)
    expected_delta = metrics.delta_colorfulness(pred, target).item()
    assert out["delta_colorfulness"] == pytest.approx(expected_delta, rel=1e-4, abs=1e-4)
