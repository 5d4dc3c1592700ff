"""colorlib.ab_bins: the quantised ab plane of Zhang et al. (2016), against independent
references (scikit-image for the gamut, NumPy for the encodings, decodings and weights)."""

import warnings

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from colorlib import ab_bins
from colorlib.color import AB_SCALE, rgb8_to_L_ab

# 229 sRGB-displayable centres on the grid of 10 (the paper's 313 came from ImageNet's pixels
# and covers more than sRGB: even every 8-bit sRGB colour's cell only makes 261). Pinned so
# that a change in colorlib.color's conversion or in the sweep shows up here.
NUM_GAMUT_BINS = 229


@pytest.fixture(scope="module")
def centres():
    return ab_bins.gamut_bins()


def _numpy_nearest(ab: np.ndarray, centres: np.ndarray, k: int, sigma: float):
    """Brute force: ``(P, 2)`` normalised ab -> ``(P, k)`` weights and indices, nearest first."""
    d2 = ((ab[:, None, :] * AB_SCALE - centres[None]) ** 2).sum(-1)  # (P, Q)
    index = np.argsort(d2, axis=1, kind="stable")[:, :k]
    g = np.exp(-np.take_along_axis(d2, index, 1) / (2 * sigma**2))
    return g / g.sum(1, keepdims=True), index


def test_gamut_bins_are_the_centres_scikit_image_can_display(centres):
    assert centres.shape == (NUM_GAMUT_BINS, 2) and centres.dtype == torch.float32
    grid = np.stack(np.meshgrid(*2 * [np.arange(-120, 121, 10.0)], indexing="ij"), -1)
    grid = grid.reshape(-1, 2)  # (625, 2)
    L = np.linspace(0, 100, 1001)
    lab = np.concatenate(
        [
            np.broadcast_to(L[:, None, None], (len(L), len(grid), 1)),
            np.broadcast_to(grid[None], (len(L), len(grid), 2)),
        ],
        axis=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative Z it clips
        back = rgb2lab(lab2rgb(lab))  # lab2rgb clips: an out-of-gamut colour comes back changed
    reachable = (np.abs(back - lab).max(-1) < 1e-2).any(0)  # some L survives the round trip
    expected = {tuple(ab) for ab in grid[reachable].tolist()}
    assert {tuple(c) for c in centres.tolist()} == expected
    assert (120.0, -120.0) not in expected and (0.0, 0.0) in expected


def test_gamut_bins_are_sorted_multiples_of_the_grid(centres):
    keys = [tuple(c) for c in centres.tolist()]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert torch.equal(centres, torch.round(centres / 10) * 10)
    coarse = ab_bins.gamut_bins(grid=20.0)
    assert 40 < len(coarse) < NUM_GAMUT_BINS  # a coarser grid keeps fewer bins


def test_photo_bins_are_the_cells_the_pixels_fall_into():
    lab = torch.tensor([[3.0, 4.0], [-14.0, 26.0], [96.0, -104.0], [4.9, -4.9]])  # (4, 2)
    ab = (lab / AB_SCALE).T.reshape(1, 2, 2, 2)
    got = ab_bins.photo_bins([ab, ab[0]])  # a batch and a single image
    assert got.tolist() == [[-10.0, 30.0], [0.0, 0.0], [100.0, -100.0]]
    # (0, 0) was hit by 2 pixels per image (4 in all), the others by 1 per image (2 in all)
    assert ab_bins.photo_bins([ab, ab[0]], min_count=3).tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="at least one ab batch"):
        ab_bins.photo_bins([])


def test_every_8_bit_colour_falls_in_261_cells_that_hold_every_gamut_bin(centres):
    values = torch.arange(256, dtype=torch.uint8)
    g, b = torch.meshgrid(values, values, indexing="ij")

    def planes():  # the whole 8-bit RGB cube, one red level at a time: (1, 2, 256, 256)
        for r in range(256):
            yield rgb8_to_L_ab(torch.stack((torch.full_like(g, r), g, b))[None])[1]

    cells = {tuple(c) for c in ab_bins.photo_bins(planes()).tolist()}
    assert len(cells) == 261  # the module doc's count; the paper's 313 is larger still
    assert {tuple(c) for c in centres.tolist()} <= cells


def test_soft_encoding_puts_gaussian_weights_on_the_five_nearest_bins(centres):
    g = torch.Generator().manual_seed(0)
    ab = (torch.rand(2, 2, 3, 4, generator=g) - 0.5) * 1.4  # (B, 2, H, W), Lab about +-77
    encoded = ab_bins.soft_encode(ab, centres)
    assert encoded.shape == (2, NUM_GAMUT_BINS, 3, 4)
    torch.testing.assert_close(encoded.sum(1), torch.ones(2, 3, 4))
    assert ((encoded > 0).sum(1) == 5).all()
    pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()
    weights, index = _numpy_nearest(pixels, centres.double().numpy(), 5, 5.0)
    dense = np.zeros((len(pixels), len(centres)))
    np.put_along_axis(dense, index, weights, 1)
    got = encoded.permute(0, 2, 3, 1).reshape(-1, len(centres)).double().numpy()
    np.testing.assert_allclose(got, dense, atol=1e-5)


def test_a_pixel_on_a_centre_weighs_that_centre_most(centres):
    chosen = [0, 57, 114, NUM_GAMUT_BINS - 1]
    ab = (centres[chosen] / AB_SCALE).T.reshape(1, 2, 1, len(chosen))
    weights, index = ab_bins.nearest_bins(ab, centres)
    assert index[0, 0, 0].tolist() == chosen  # nearest first
    encoded = ab_bins.soft_encode(ab, centres)
    assert encoded.argmax(1)[0, 0].tolist() == chosen
    # its 4 grid neighbours at distance 10 weigh exp(-100 / 50) = e^-2 of it each (inner bins)
    inner = weights[0, :, 0, 2]
    torch.testing.assert_close(inner[1:] / inner[0], torch.full((4,), np.exp(-2.0)).float())


def test_chunked_distances_match_one_pass(centres, monkeypatch):
    ab = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.3
    whole = ab_bins.nearest_bins(ab, centres)
    monkeypatch.setattr(ab_bins, "_CHUNK_DISTANCES", 7 * len(centres))  # 7 pixels at a time
    chunked = ab_bins.nearest_bins(ab, centres)
    torch.testing.assert_close(chunked[0], whole[0])
    assert torch.equal(chunked[1], whole[1])


def test_bin_distribution_counts_nearest_bins(centres):
    gray = torch.zeros(1, 2, 4, 4)
    blue = torch.zeros(1, 2, 2, 2)
    blue[:, 0], blue[:, 1] = 21.0 / AB_SCALE, -58.0 / AB_SCALE  # nearest centre (20, -60)
    p = ab_bins.bin_distribution([gray, blue[0]], centres)
    assert p.shape == (NUM_GAMUT_BINS,) and float(p.sum()) == pytest.approx(1.0)
    keys = [tuple(c) for c in centres.tolist()]
    assert p[keys.index((0.0, 0.0))] == pytest.approx(16 / 20)
    assert p[keys.index((20.0, -60.0))] == pytest.approx(4 / 20)
    assert int((p > 0).sum()) == 2


def _numpy_rebalance(p, centres, sigma, lam):
    d2 = ((centres[:, None] - centres[None]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma**2))
    smooth = (kernel / kernel.sum(0, keepdims=True)) @ p
    w = 1 / ((1 - lam) * smooth + lam / len(p))
    return w / (p * w).sum()


def test_rebalancing_weights_have_expectation_one_and_favour_rare_bins(centres):
    radius = centres.norm(dim=1)
    p = torch.exp(-radius / 15)  # common grays, rare saturated colours
    p /= p.sum()
    w = ab_bins.rebalance_weights(p, centres)
    assert float((p * w).sum()) == pytest.approx(1.0, abs=1e-5)
    assert (w > 0).all()
    assert w[radius.argmax()] > 10 * w[radius.argmin()]
    expected = _numpy_rebalance(p.double().numpy(), centres.double().numpy(), 5.0, 0.5)
    np.testing.assert_allclose(w.double().numpy(), expected, rtol=1e-5)
    flat = ab_bins.rebalance_weights(p, centres, lam=1.0)  # all uniform: no rebalancing
    torch.testing.assert_close(flat, torch.ones_like(flat))


def test_annealed_mean_matches_numpy(centres):
    logits = torch.randn(2, len(centres), 3, 2, generator=torch.Generator().manual_seed(2)) * 3
    T = 0.38
    z = logits.double().numpy() / T
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    expected = np.einsum("bqhw,qc->bchw", probs, centres.double().numpy()) / AB_SCALE
    got = ab_bins.annealed_mean(logits, centres, T)
    assert got.shape == (2, 2, 3, 2) and got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), expected, atol=1e-5)


def test_temperature_one_is_the_mean_and_small_temperatures_the_mode(centres):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, len(centres), 4, 4, generator=g)
    mean = torch.einsum("bqhw,qc->bchw", logits.softmax(1), centres) / AB_SCALE
    torch.testing.assert_close(ab_bins.annealed_mean(logits, centres, 1.0), mean)
    winner = torch.randint(len(centres), (1, 1, 4, 4), generator=g)
    logits = logits.scatter(1, winner, logits.amax(1, keepdim=True) + 1.0)  # a clear mode
    mode = ab_bins.mode_ab(logits, centres)
    torch.testing.assert_close(mode, (centres[winner[0, 0]] / AB_SCALE).permute(2, 0, 1)[None])
    torch.testing.assert_close(ab_bins.annealed_mean(logits, centres, 0.02), mode)
    far = (ab_bins.annealed_mean(logits, centres, 1.0) - mode).abs().max()
    near = (ab_bins.annealed_mean(logits, centres, 0.38) - mode).abs().max()
    assert near < far  # annealing moves the mean towards the mode


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_annealed_mean_rejects_a_non_positive_temperature(centres, temperature):
    with pytest.raises(ValueError, match=f"temperature must be > 0.*got {temperature}"):
        ab_bins.annealed_mean(torch.zeros(1, len(centres), 1, 1), centres, temperature)


def test_bad_shapes_and_parameters_raise_naming_the_value(centres):
    ab = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 229\].*got 0"):
        ab_bins.soft_encode(ab, centres, k=0)
    with pytest.raises(ValueError, match="k must be an int.*got 300"):
        ab_bins.nearest_bins(ab, centres, k=300)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ab_bins.soft_encode(ab, centres, sigma=0.0)
    with pytest.raises(ValueError, match=r"ab must have shape \(B, 2, H, W\), got \(1, 3, 2, 2\)"):
        ab_bins.soft_encode(torch.zeros(1, 3, 2, 2), centres)
    with pytest.raises(ValueError, match=r"Q = 229 bins, got \(1, 10, 2, 2\)"):
        ab_bins.annealed_mean(torch.zeros(1, 10, 2, 2), centres)
    with pytest.raises(ValueError, match=r"centres must have shape \(Q, 2\)"):
        ab_bins.mode_ab(torch.zeros(1, 3, 1, 1), torch.zeros(3, 3))
    p = torch.full((len(centres),), 1.0 / len(centres))
    with pytest.raises(ValueError, match=r"p must have shape \(229,\).*got \(5,\)"):
        ab_bins.rebalance_weights(p[:5], centres)
    with pytest.raises(ValueError, match=r"lam must be in \(0, 1\].*got 0.0"):
        ab_bins.rebalance_weights(p, centres, lam=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        ab_bins.rebalance_weights(-p, centres)
    with pytest.raises(ValueError, match="grid must be in"):
        ab_bins.gamut_bins(grid=0.0)
