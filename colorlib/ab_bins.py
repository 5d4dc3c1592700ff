"""Colour as a class: the quantised ab plane of "Colorful Image Colorization" (Zhang et al. 2016).

Design:

* the ab plane is cut into square cells of side 10 (Lab units); a *bin* is the centre of a cell,
  a multiple of 10. :func:`gamut_bins` keeps the centres that are displayable: some L in
  [0, 100] (a sweep of 1001 values) gives an sRGB colour inside [0, 1]. That leaves
  **Q = 229** bins, fewer than the paper's 313: even counting every cell that some 8-bit sRGB
  colour falls into (what :func:`photo_bins` gives for the whole RGB cube) there are only 261,
  so the paper's 313 covers more than the sRGB gamut. :func:`photo_bins` gives the cells
  that a set of photos actually hits, to show beside them;
* naming, as everywhere in colorlib: ``ab`` is *normalised* (Lab a, b divided by
  :data:`colorlib.color.AB_SCALE`), ``centres`` are ``(Q, 2)`` in *Lab units*; every function
  here takes and returns ``ab`` in the normalised scale and converts to Lab units inside;
* the target of a pixel is a soft encoding (:func:`soft_encode`, :func:`nearest_bins`): Gaussian
  weights (sigma 5) on its 5 nearest bins. Rare, saturated bins are up-weighted in the loss by
  :func:`rebalance_weights` of the empirical bin distribution (:func:`bin_distribution`);
* predictions are decoded by the *annealed mean* (:func:`annealed_mean`): the mean of the bin
  centres under ``softmax(log p / T)``; ``T = 1`` is the mean (gray, safe), ``T -> 0`` the mode
  (:func:`mode_ab`, vivid but patchy); the paper's ``T = 0.38`` sits between.

Pure torch; distances are computed in chunks of pixels so memory stays bounded.

>>> centres = gamut_bins()  # (229, 2), Lab units
>>> weights = soft_encode(ab, centres)  # (B, 229, H, W), sums to 1 over the bins
>>> fake_ab = annealed_mean(logits, centres, 0.38)  # (B, 2, H, W), normalised
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from colorlib.color import AB_SCALE, lab_to_rgb

__all__ = [
    "GRID",
    "gamut_bins",
    "photo_bins",
    "nearest_bins",
    "soft_encode",
    "bin_distribution",
    "rebalance_weights",
    "annealed_mean",
    "mode_ab",
]

#: side of an ab cell, in Lab units (the paper's grid size)
GRID = 10.0
# centres are searched within [-EXTENT, EXTENT]^2: the sRGB gamut's a and b lie in [-108, 99]
_EXTENT = 120.0
# sRGB values this far outside [0, 1] still count as displayable (float64 rounding at L = 100)
_TOLERANCE = 1e-6
# distances held at once (pixels x bins): 16 MiB of float32 per temporary
_CHUNK_DISTANCES = 1 << 22


def _grid_centres(grid: float, dtype=torch.float64) -> Tensor:
    """Every multiple of ``grid`` in ``[-EXTENT, EXTENT]^2``: ``(N, 2)``, sorted by a, then b."""
    steps = int(_EXTENT // grid)
    values = torch.arange(-steps, steps + 1, dtype=dtype) * grid
    a, b = torch.meshgrid(values, values, indexing="ij")
    return torch.stack((a.flatten(), b.flatten()), dim=1)


def gamut_bins(grid: float = GRID, num_L: int = 1001) -> Tensor:
    """The ab bin centres that some lightness makes a displayable sRGB colour.

    A centre ``(a, b)`` is kept when some ``L`` in ``linspace(0, 100, num_L)`` gives an
    ``(L, a, b)`` whose unclipped sRGB lies in [0, 1] (float64, tolerance 1e-6).

    Args:
        grid: cell side in Lab units (10 in the paper).
        num_L: lightness values swept (1001 and 4001 give the same bins at grid 10).

    Returns:
        ``(Q, 2)`` float32 centres in Lab units, sorted by a, then b; Q = 229 at grid 10.

    Raises:
        ValueError: ``grid`` not in (0, 120] or ``num_L < 2``.
    """
    if not 0 < grid <= _EXTENT:
        raise ValueError(f"grid must be in (0, {_EXTENT:g}] Lab units, got {grid!r}")
    if not isinstance(num_L, int) or num_L < 2:
        raise ValueError(f"num_L must be an int >= 2, got {num_L!r}")
    centres = _grid_centres(grid)  # (N, 2)
    L = torch.linspace(0.0, 100.0, num_L, dtype=torch.float64)
    kept = torch.zeros(len(centres), dtype=torch.bool)
    for part in L.split(256):  # (n, ) lightness values at a time: (3, n, N) sRGB
        lab = torch.stack(
            (
                part[:, None].expand(-1, len(centres)),
                centres[None, :, 0].expand(len(part), -1),
                centres[None, :, 1].expand(len(part), -1),
            )
        )
        rgb = lab_to_rgb(lab, clip=False)
        inside = ((rgb >= -_TOLERANCE) & (rgb <= 1.0 + _TOLERANCE)).all(dim=0)  # (n, N)
        kept |= inside.any(dim=0)
    return centres[kept].float()


def _check_ab(ab: Tensor, name: str = "ab") -> None:
    if not isinstance(ab, Tensor) or not ab.is_floating_point():
        raise TypeError(f"{name} must be a floating point torch.Tensor, got {ab!r:.60}")
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"{name} must have shape (B, 2, H, W), got {tuple(ab.shape)}")


def _check_centres(centres: Tensor) -> None:
    if not isinstance(centres, Tensor) or centres.dim() != 2 or centres.shape[1] != 2:
        shape = tuple(centres.shape) if isinstance(centres, Tensor) else type(centres).__name__
        raise ValueError(f"centres must have shape (Q, 2) in Lab units, got {shape}")
    if len(centres) < 1:
        raise ValueError("centres must hold at least one bin, got 0")


def _pixels(ab: Tensor) -> Tensor:
    """Normalised ``(B, 2, H, W)`` -> Lab-unit ``(B * H * W, 2)``, float32."""
    return ab.detach().float().permute(0, 2, 3, 1).reshape(-1, 2) * AB_SCALE


def photo_bins(ab_batches: Iterable[Tensor], grid: float = GRID, min_count: int = 1) -> Tensor:
    """The bins whose cells the pixels of some photos fall into.

    Args:
        ab_batches: normalised ``ab`` tensors, each ``(B, 2, H, W)`` or ``(2, H, W)``.
        grid: cell side in Lab units; a pixel belongs to the cell of its nearest multiple.
        min_count: pixels a cell needs to be kept.

    Returns:
        ``(Q', 2)`` float32 centres in Lab units, sorted by a, then b, as :func:`gamut_bins`.

    Raises:
        ValueError: no batches, a badly shaped one, or a bad ``grid`` / ``min_count``.
    """
    if not 0 < grid <= _EXTENT or min_count < 1:
        raise ValueError(
            f"need 0 < grid <= {_EXTENT:g} and min_count >= 1, got {grid}, {min_count}"
        )
    steps = int(_EXTENT // grid)
    side = 2 * steps + 1
    counts = torch.zeros(side * side, dtype=torch.int64)
    seen = 0
    for ab in ab_batches:
        ab = ab.unsqueeze(0) if isinstance(ab, Tensor) and ab.dim() == 3 else ab
        _check_ab(ab, "each ab batch")
        cells = torch.round(_pixels(ab).double() / grid).long().clamp(-steps, steps) + steps
        counts += torch.bincount(cells[:, 0] * side + cells[:, 1], minlength=side * side).cpu()
        seen += 1
    if not seen:
        raise ValueError("photo_bins needs at least one ab batch, got none")
    return _grid_centres(grid)[counts >= min_count].float()


def nearest_bins(
    ab: Tensor, centres: Tensor, k: int = 5, sigma: float = 5.0
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest bins of every pixel and their Gaussian weights (the sparse soft encoding).

    Args:
        ab: ``(B, 2, H, W)`` normalised chroma.
        centres: ``(Q, 2)`` bin centres in Lab units.
        k: bins per pixel (5 in the paper), at most Q.
        sigma: width of the Gaussian on the Lab-unit distance (5 in the paper).

    Returns:
        ``(weights, index)``, both ``(B, k, H, W)``: float32 weights summing to 1 over ``k``, and
        the bins' indices into ``centres`` (int64), nearest first.

    Raises:
        ValueError: bad shapes, ``k`` not in [1, Q] or ``sigma <= 0``.
    """
    _check_ab(ab)
    _check_centres(centres)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(centres):
        raise ValueError(f"k must be an int in [1, {len(centres)}] (the number of bins), got {k!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (Lab units), got {sigma!r}")
    B, _, H, W = ab.shape
    points, bins = _pixels(ab), centres.to(ab.device, torch.float32)
    distances, indices = [], []
    for part in points.split(max(1, _CHUNK_DISTANCES // len(centres))):  # (n, 2)
        squared = (part[:, :1] - bins[:, 0]).square() + (part[:, 1:] - bins[:, 1]).square()
        nearest = squared.topk(k, dim=1, largest=False, sorted=True)
        distances.append(nearest.values)
        indices.append(nearest.indices)
    squared, index = torch.cat(distances), torch.cat(indices)  # (B * H * W, k)
    # softmax of -d^2 / (2 sigma^2): the normalised Gaussian, stable for far-away pixels
    weights = torch.softmax(-squared / (2.0 * sigma**2), dim=1)

    def image(x: Tensor) -> Tensor:  # (B * H * W, k) -> (B, k, H, W)
        return x.view(B, H, W, k).permute(0, 3, 1, 2).contiguous()

    return image(weights), image(index)


def soft_encode(ab: Tensor, centres: Tensor, k: int = 5, sigma: float = 5.0) -> Tensor:
    """The paper's soft target: Gaussian weights on each pixel's ``k`` nearest bins.

    Args:
        ab: ``(B, 2, H, W)`` normalised chroma.
        centres: ``(Q, 2)`` bin centres in Lab units.
        k, sigma: as in :func:`nearest_bins` (5 and 5 in the paper).

    Returns:
        ``(B, Q, H, W)`` float32, ``k`` non-zero weights per pixel summing to 1. (Dense: for a
        loss, :func:`nearest_bins`'s sparse form avoids the Q-fold memory.)
    """
    weights, index = nearest_bins(ab, centres, k, sigma)
    out = weights.new_zeros(ab.shape[0], len(centres), *ab.shape[2:])
    return out.scatter_(1, index, weights)


def bin_distribution(ab_batches: Iterable[Tensor], centres: Tensor) -> Tensor:
    """The empirical distribution of the pixels' nearest bins: ``p (Q,)``, summing to 1.

    Args:
        ab_batches: normalised ``ab`` tensors, each ``(B, 2, H, W)`` or ``(2, H, W)``.
        centres: ``(Q, 2)`` bin centres in Lab units.

    Raises:
        ValueError: no pixels, or badly shaped inputs.
    """
    _check_centres(centres)
    counts = torch.zeros(len(centres), dtype=torch.float64)
    for ab in ab_batches:
        ab = ab.unsqueeze(0) if isinstance(ab, Tensor) and ab.dim() == 3 else ab
        _, index = nearest_bins(ab, centres, k=1)
        counts += torch.bincount(index.flatten().cpu(), minlength=len(centres)).double()
    if counts.sum() == 0:
        raise ValueError("bin_distribution needs at least one pixel, got none")
    return (counts / counts.sum()).float()


def rebalance_weights(p: Tensor, centres: Tensor, sigma: float = 5.0, lam: float = 0.5) -> Tensor:
    """Class-rebalancing weights (the paper's eq. 4): rare colours count more.

    ``p`` is smoothed by a Gaussian over the bin centres (each bin spreads its mass to its
    neighbours, so the smoothed ``p~`` still sums to 1), mixed with the uniform distribution, and
    inverted: ``w ∝ 1 / ((1 - lam) p~ + lam / Q)``, scaled so that ``sum_q p_q w_q = 1`` (a
    pixel's expected weight under the empirical distribution is 1, so the loss keeps its scale).

    Args:
        p: ``(Q,)`` empirical bin distribution (non-negative, not all zero).
        centres: ``(Q, 2)`` bin centres in Lab units.
        sigma: Gaussian width in Lab units (5 in the paper).
        lam: weight of the uniform distribution, in (0, 1] (0.5 in the paper; 1: no
            rebalancing, every weight 1).

    Returns:
        ``(Q,)`` float32 weights, positive.

    Raises:
        ValueError: mismatched shapes, a negative or all-zero ``p``, ``sigma <= 0``, ``lam``
            outside (0, 1].
    """
    _check_centres(centres)
    if not isinstance(p, Tensor) or p.shape != (len(centres),):
        shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"p must have shape ({len(centres)},), one value per bin, got {shape}")
    if (p < 0).any() or not p.sum() > 0:
        raise ValueError("p must be non-negative and not all zero (a distribution over bins)")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (Lab units), got {sigma!r}")
    if not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1] (the uniform share), got {lam!r}")
    p = p.double() / p.sum()
    bins = centres.to(p.device, torch.float64)
    kernel = torch.exp(-torch.cdist(bins, bins).square() / (2.0 * sigma**2))  # (Q, Q)
    smooth = kernel @ (p / kernel.sum(dim=0))  # column r spreads p_r over its neighbours
    weights = 1.0 / ((1.0 - lam) * smooth + lam / len(p))
    return (weights / (p * weights).sum()).float()


def _check_logits(logits: Tensor, centres: Tensor) -> None:
    _check_centres(centres)
    if not isinstance(logits, Tensor) or logits.dim() != 4 or logits.shape[1] != len(centres):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"logits must have shape (B, Q, H, W) with Q = {len(centres)} bins, got {shape}"
        )


def annealed_mean(logits: Tensor, centres: Tensor, temperature: float = 0.38) -> Tensor:
    """Decode bin logits into ab: the mean of the centres under ``softmax(log p / T)``.

    ``log_softmax(z) / T`` re-normalised is ``softmax(z / T)``: ``T = 1`` is the plain mean
    of the predicted distribution, smaller ``T`` sharpens it towards the mode
    (:func:`mode_ab`, its ``T -> 0`` limit). Computed in float32 with element-wise products,
    so autocast does not round the centres to half precision.

    Args:
        logits: ``(B, Q, H, W)`` unnormalised scores.
        centres: ``(Q, 2)`` bin centres in Lab units.
        temperature: ``T > 0`` (0.38 in the paper).

    Returns:
        ``(B, 2, H, W)`` normalised ab (float32), inside the hull of the centres.

    Raises:
        ValueError: ``temperature <= 0`` or mismatched shapes.
    """
    _check_logits(logits, centres)
    if isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use mode_ab for T -> 0), got {temperature!r}")
    probs = torch.softmax(logits.float() / temperature, dim=1)  # (B, Q, H, W)
    bins = centres.to(probs.device, torch.float32) / AB_SCALE
    a = (probs * bins[:, 0].view(1, -1, 1, 1)).sum(dim=1)  # (B, H, W)
    b = (probs * bins[:, 1].view(1, -1, 1, 1)).sum(dim=1)
    return torch.stack((a, b), dim=1)


def mode_ab(logits: Tensor, centres: Tensor) -> Tensor:
    """Decode bin logits by their most likely bin: ``(B, Q, H, W) -> (B, 2, H, W)`` normalised."""
    _check_logits(logits, centres)
    bins = centres.to(logits.device, torch.float32) / AB_SCALE
    return bins[logits.argmax(dim=1)].permute(0, 3, 1, 2).contiguous()  # (B, 2, H, W)
