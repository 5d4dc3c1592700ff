"""The hint pyramid: colour hints handed to every step of a U-Net decoder.

Zhang, Zhu, Isola et al. (2017) feed the hints to the network's first layer only; with days
of training the network learns to carry a clicked colour through the encoder to the whole
object. On a laptop budget (a few hundred steps) it barely does: measured in chapter 10, the
ImageNet-encoder U-Net with stem-only hints gained +0.75 dB at 10 hints, when spreading the
same hints' colours with a plain Gaussian (sigma 16 px, no network at all) over the automatic
model's colours gains +1.1. The network has the photo's edges; what it lacks is the hints
where its decoder decides the colours. This module gives them there.

Design:

* :func:`spread_hints` turns the 3-channel encoding ``(ab_hint * mask, mask)`` into what the
  hints say at a coarser grid ``(h, w)``: average-pool to ``(h, w)`` (so each cell holds the
  hinted share of its pixels and their summed colour), then a ``reach x reach`` box sum
  (stride 1, zero padding), then a *normalised convolution* (Knutsson & Westin 1993): the
  colour is the box's hinted colour sum over its hinted share, and a third channel says
  whether the box holds any hint. Output ``(B, 3, h, w)``: ``(a, b, present)``, all exactly 0
  where no hint is within reach, so "no hints" (all-zero hints) gives all zeros.
* :func:`propagate_hints` spreads the hints along the photo's lightness, as the classic
  edge-aware colorizations do (Levin, Lischinski and Weiss 2004 solve for it; here a one-shot
  joint-bilateral normalised convolution): on a ``grid x grid`` lattice of cells, each cell
  ``p`` takes the mean hint colour of the hinted cells ``q``, weighted by their hinted share
  times ``exp(-|x_p - x_q|^2 / 2 s^2 - (L_p - L_q)^2 / 2 r^2)`` (``s`` a share of the image
  side, ``r`` in L's [-1, 1] units, ``L_q`` the lightness of the hinted pixels); a third
  channel is the confidence ``W / (W + w0)`` of the summed weight ``W``. Measured without any
  network (chapter 10's 64 held-back photos at 128 px, 10 simulated hints, the result blended
  as ``confidence * colour + (1 - confidence) * ab_auto`` with the automatic L1 model's
  ``ab_auto``): ``s = 1/4``, ``r = 0.2`` turns its 23.66 dB into 25.72 on the default 16 x 16
  lattice (25.79 on 32 x 32 at 18 times the cost; per pixel and per hint, 26.13). Without the
  lightness term (a plain Gaussian, per pixel) it is 25.15. Weighting the hinted cells
  equally instead of by their hinted share (so a 1-pixel hint counts as much as a 9 x 9 one;
  prior weight 0.2) lifts the rule alone from 25.74 to 25.91 (with the patches pasted, as
  :func:`~colorlib.evaluation.hint_curve.propagate_into` does), but a network trained with
  it (592 steps) was no better at 10 hints (25.78 dB, against 25.80) and worse without hints
  (23.40 against 23.54), so the share stays. Cost: ``grid^4`` weights per photo (65 k at
  16), whatever the image size.
* :class:`HintPyramid` holds one 3x3 convolution (no bias, zero-initialised) per decoder step;
  ``forward(level, x, hints, propagated)`` adds ``conv_level`` of the six channels
  ``(spread_hints, propagate_hints)`` at ``x``'s size to ``x``. At 1/16 of a 128 px input a
  3-cell box reaches 24 px either side; at full resolution, 1 px: coarse levels say "this
  region was clicked red", fine ones place the colour exactly; the propagation says where
  the photo's lightness carries it.
* **Guarantees** (tested): zero hints add exactly zero at any time (no bias, zero input);
  an untrained pyramid adds exactly zero for any hints (zero weights), so a hint model with
  it starts as the model without it; it is differentiable in its weights.

>>> pyramid = HintPyramid((256, 128, 64, 32, 16))
>>> L, hints = torch.zeros(1, 1, 128, 128), torch.zeros(1, 3, 128, 128)
>>> pyramid(0, torch.zeros(1, 256, 8, 8), hints, pyramid.propagate(L, hints)).shape
torch.Size([1, 256, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "PRIOR_WEIGHT",
    "REACH",
    "GRID",
    "SIGMA_SPACE",
    "SIGMA_RANGE",
    "spread_hints",
    "propagate_hints",
    "HintPyramid",
]

#: side of the box (in cells of the level's grid) over which a hint is spread
REACH = 3
#: :func:`propagate_hints`' lattice side, spatial scale (share of the side), lightness scale
GRID, SIGMA_SPACE, SIGMA_RANGE = 16, 0.25, 0.2
#: the weight against which the hints' summed weight is a confidence
PRIOR_WEIGHT = 0.05


def spread_hints(hints: Tensor, size: tuple[int, int], reach: int = REACH) -> Tensor:
    """What the hints say on an ``size`` grid: ``(B, 3, H, W) -> (B, 3, h, w)`` (see module doc).

    Args:
        hints: ``(ab_hint * mask, mask)``, ``(B, 3, H, W)``, the mask in [0, 1].
        size: the grid ``(h, w)``; ``H`` and ``W`` must be multiples of ``h`` and ``w``.
        reach: odd box side in cells (1: the cell alone).

    Returns:
        ``(a, b, present)``: the mean hint colour within the box around each cell (0 where the
        box holds no hint) and 1 where it holds one, else 0.

    Raises:
        ValueError: a bad shape, a grid that does not divide the input, or a bad ``reach``.
    """
    if hints.dim() != 4 or hints.shape[1] != 3:
        raise ValueError(f"hints must be (B, 3, H, W), got {tuple(hints.shape)}")
    h, w = (int(s) for s in size)
    height, width = hints.shape[-2:]
    if h < 1 or w < 1 or height % h or width % w or height // h != width // w:
        raise ValueError(f"grid {size} does not divide the hints' {height}x{width} evenly")
    if isinstance(reach, bool) or not isinstance(reach, int) or reach < 1 or reach % 2 == 0:
        raise ValueError(f"reach must be an odd int >= 1, got {reach!r}")
    cells = F.avg_pool2d(hints, height // h) if height != h else hints  # (B, 3, h, w)
    if reach > 1:
        cells = F.avg_pool2d(cells, reach, stride=1, padding=reach // 2)  # box sum / reach^2
    colour_sum, share = cells[:, :2], cells[:, 2:]  # (B, 2, h, w), (B, 1, h, w)
    present = share > 0
    colour = torch.where(present, colour_sum / share.clamp_min(1e-12), torch.zeros_like(colour_sum))
    return torch.cat((colour, present.to(hints.dtype)), dim=1)  # (B, 3, h, w)


def propagate_hints(
    L: Tensor,
    hints: Tensor,
    grid: int | None = None,
    sigma_space: float = SIGMA_SPACE,
    sigma_range: float = SIGMA_RANGE,
) -> Tensor:
    """Hints spread along the lightness: ``L (B, 1, H, W), hints (B, 3, H, W) -> (B, 3, g, g)``.

    Args:
        L: lightness in [-1, 1].
        hints: ``(ab_hint * mask, mask)``, the mask in [0, 1].
        grid: lattice side ``g``; ``H`` and ``W`` must be multiples of it (None: :data:`GRID`,
            or the image's shorter side when that is smaller).
        sigma_space: spatial scale, as a share of the image side.
        sigma_range: lightness scale, in ``L``'s units.

    Returns:
        ``(a, b, confidence)`` per cell (see the module doc); all zeros for no hints.

    Raises:
        ValueError: bad shapes, or a grid that does not divide the image.
    """
    if L.dim() != 4 or L.shape[1] != 1 or hints.dim() != 4 or hints.shape[1] != 3:
        raise ValueError(
            f"need L (B, 1, H, W) and hints (B, 3, H, W), got {tuple(L.shape)}, "
            f"{tuple(hints.shape)}"
        )
    if L.shape[0] != hints.shape[0] or L.shape[-2:] != hints.shape[-2:]:
        raise ValueError(f"L {tuple(L.shape)} and hints {tuple(hints.shape)} do not match")
    height, width = L.shape[-2:]
    grid = min(GRID, height, width) if grid is None else grid
    if grid < 1 or height % grid or width % grid or sigma_space <= 0 or sigma_range <= 0:
        raise ValueError(f"grid {grid} must divide {height}x{width}; scales must be > 0")
    hints = hints.to(L.dtype)
    cells = F.adaptive_avg_pool2d(torch.cat((hints, L * hints[:, 2:], L), 1), grid)
    colour_sum, share = cells[:, :2].flatten(2), cells[:, 2:3].flatten(2)  # (B, 2|1, g*g)
    hinted = share > 0
    L_hint = torch.where(hinted, cells[:, 3:4].flatten(2) / share.clamp_min(1e-12), 0)
    L_cell = cells[:, 4:5].flatten(2)  # (B, 1, g*g): each cell's mean lightness
    centres = (torch.arange(grid, device=L.device, dtype=L.dtype) + 0.5) / grid
    yx = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).view(-1, 2)
    space = torch.cdist(yx, yx).square() / (2 * sigma_space**2)  # (g*g, g*g), p by q
    light = (L_cell.transpose(1, 2) - L_hint).square() / (2 * sigma_range**2)  # (B, g*g, g*g)
    weights = torch.exp(-space - light) * hinted  # (B, p, q); 0 from cells without hints
    total = (weights * share).sum(-1, keepdim=True)  # (B, p, 1)
    colour = weights @ colour_sum.transpose(1, 2)  # (B, p, 2): share-weighted colour sums
    colour = torch.where(total > 0, colour / total.clamp_min(1e-30), 0)
    confidence = total / (total + PRIOR_WEIGHT)
    out = torch.cat((colour, confidence), -1).transpose(1, 2)  # (B, 3, g*g)
    return out.reshape(L.shape[0], 3, grid, grid)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Average down or bilinearly up to ``size``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-1] > size[-1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class HintPyramid(nn.Module):
    """One zero-initialised 3x3 convolution per decoder step, adding the spread hints.

    Args:
        widths: the decoder steps' output channels, coarsest first.
        reach: box side of :func:`spread_hints`.
    """

    def __init__(self, widths: Sequence[int], reach: int = REACH) -> None:
        super().__init__()
        if not widths or min(int(c) for c in widths) < 1:
            raise ValueError(f"widths must be positive channel counts, got {list(widths)}")
        self.reach = reach
        self.convs = nn.ModuleList(nn.Conv2d(6, int(c), 3, padding=1, bias=False) for c in widths)
        for conv in self.convs:
            nn.init.zeros_(conv.weight)

    def propagate(self, L: Tensor, hints: Tensor) -> Tensor:
        """:func:`propagate_hints` (once per forward pass; :meth:`forward` resizes it)."""
        return propagate_hints(L, hints)

    def forward(self, level: int, x: Tensor, hints: Tensor, propagated: Tensor) -> Tensor:
        """``x (B, C_level, h, w)`` plus what ``hints (B, 3, H, W)`` and ``propagated`` (from
        :meth:`propagate`) say at ``(h, w)``."""
        size = tuple(x.shape[-2:])
        spread = spread_hints(hints.to(x.dtype), size, self.reach)  # (B, 3, h, w)
        features = torch.cat((spread, _resize(propagated.to(x.dtype), size)), 1)  # (B, 6, h, w)
        return x + self.convs[level](features)  # (B, C_level, h, w)
