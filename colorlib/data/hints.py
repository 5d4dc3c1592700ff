"""Colour hints (Zhang, Zhu, Isola et al., SIGGRAPH 2017): encoding, simulation, datasets.

"Real-Time User-Guided Image Colorization with Learned Deep Priors" gives the network, beside
the lightness, a few user-chosen colours: sparse points, each a small square patch of one
``ab``. Here they travel as extra input channels at the model's resolution.

Design:

* **Encoding.** Hints are 3 channels: ``ab_hint * mask`` (2, normalised ``ab`` = ab/110) and
  ``mask`` (1, in {0, 1}); the network input is ``cat(L, ab_hint * mask, mask)``, shape
  ``(B, 4, H, W)``. No hints at all is all zeros (the reference code shifts the mask to
  {-0.5, 0.5}; keeping 0 means "no hints" adds exactly nothing to a first convolution without
  bias, see :class:`~colorlib.models.resnet_unet.ResNetUNet`). A :class:`Hint` is one point:
  centre ``(row, col)``, its ``ab`` and the patch ``size``; :func:`hint_channels` paints a
  list of them, :func:`join_hints` / :func:`split_hints` build and take apart the input.
* **Simulated users** (:func:`sample_hint_points`, the paper's section 3.3 and its released
  ``add_color_patches_rand_gau``): with probability ``no_hint_share`` an image gets none (so one
  model also colorizes automatically); otherwise the number of points is geometric on
  {1, 2, ...} with ``p = 1/8`` (mean ``1/p = 8``). With the default ``no_hint_share = p`` this
  mixture *is* the reference code's geometric law on {0, 1, ...} (``P(0) = p``, mean
  ``(1 - p) / p = 7``). Each patch has a side drawn uniformly from 1..9; its top-left corner
  from a 2-D Gaussian centred on the image (mean ``(H - P + 1) / 2``, std a quarter of that
  span, clipped into the image) or uniformly (``locations="uniform"``); its colour is the
  mean ground-truth ``ab`` of the patch. Later patches overwrite earlier ones where they meet.
* **Datasets.** :class:`HintPairs` wraps any ``(L, ab)`` dataset and yields
  ``(cat(L, hints) (4, H, W), ab (2, H, W))``, so the generic training steps run unchanged.
  ``seed=None`` (training): fresh hints at every access, drawn from torch's global RNG exactly
  like :class:`~colorlib.data.datasets.ColorizationDataset`'s crops, so ``fit``'s seeding (and
  its resume) covers them. ``seed=int`` (validation, evaluation): item ``i`` always gets the
  same hints, from a generator seeded with ``(seed, i)``.

>>> pairs = HintPairs(train_set)  # doctest: +SKIP
>>> x, ab = pairs[0]  # x: (4, S, S) = L, ab_hint * mask, mask
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "HINT_CHANNELS",
    "GEOMETRIC_P",
    "NO_HINT_SHARE",
    "PATCH_SIDES",
    "LOCATIONS",
    "Hint",
    "hint_channels",
    "join_hints",
    "split_hints",
    "sample_hint_points",
    "HintPairs",
]

#: channels of the hint encoding: ``ab_hint * mask`` (2) and ``mask`` (1)
HINT_CHANNELS = 3
#: the paper's geometric law for the number of points
GEOMETRIC_P = 1 / 8
#: share of training images with no hint at all (= GEOMETRIC_P: the reference code's law)
NO_HINT_SHARE = 1 / 8
#: patch sides the simulated user picks from, uniformly (the paper: 1 to 9)
PATCH_SIDES = tuple(range(1, 10))
#: where simulated points fall: a centred 2-D Gaussian (the paper) or uniformly
LOCATIONS = ("gaussian", "uniform")


@dataclass(frozen=True)
class Hint:
    """One colour hint at the model's resolution: a ``size x size`` patch of one ``ab``.

    Attributes:
        row, col: the patch's centre pixel, 0-based. An even ``size`` has no middle pixel:
            the patch then reaches one row further down and one column further right.
        ab: normalised ``(a, b)`` (Lab ``ab / 110``), each in [-1, 1].
        size: side of the patch in pixels, >= 1; cut at the image border.
    """

    row: int
    col: int
    ab: tuple[float, float]
    size: int = 1

    def box(self) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of the patch, end-exclusive, before any cutting."""
        top, left = self.row - (self.size - 1) // 2, self.col - (self.size - 1) // 2
        return top, left, top + self.size, left + self.size


def _check_hint(hint: Hint, height: int, width: int) -> None:
    if not (0 <= hint.row < height and 0 <= hint.col < width):
        raise ValueError(
            f"hint at (row {hint.row}, col {hint.col}) is outside the {height}x{width} image"
        )
    if isinstance(hint.size, bool) or not isinstance(hint.size, int) or hint.size < 1:
        raise ValueError(f"hint size must be an int >= 1, got {hint.size!r}")
    if len(hint.ab) != 2 or not all(math.isfinite(v) and -1 <= v <= 1 for v in hint.ab):
        raise ValueError(f"hint ab must be two normalised numbers in [-1, 1], got {hint.ab!r}")


def hint_channels(
    hints: Sequence[Hint], height: int, width: int, device=None, dtype=torch.float32
) -> Tensor:
    """Paint hints into the 3-channel encoding ``(ab_hint * mask, mask)``.

    Args:
        hints: points at this resolution (later ones overwrite earlier ones where they meet);
            empty: all zeros, "no hints".
        height, width: the model input's size.

    Returns:
        ``(3, height, width)``: channels 0-1 the hint ``ab`` (normalised, in [-1, 1]) where
        the mask is 1 and 0 elsewhere, channel 2 the mask in {0, 1}.

    Raises:
        ValueError: a centre outside the image, a bad size or an ``ab`` outside [-1, 1].
    """
    out = torch.zeros(HINT_CHANNELS, height, width, device=device, dtype=dtype)
    for hint in hints:
        _check_hint(hint, height, width)
        top, left, bottom, right = hint.box()
        top, left = max(top, 0), max(left, 0)
        out[:2, top:bottom, left:right] = torch.tensor(hint.ab, dtype=dtype).view(2, 1, 1)
        out[2, top:bottom, left:right] = 1.0
    return out


def join_hints(L: Tensor, hints: Tensor) -> Tensor:
    """The network input ``cat(L, hints)``: ``(*, 1, H, W)`` and ``(*, 3, H, W)`` ->
    ``(*, 4, H, W)``."""
    if L.shape[-3] != 1 or hints.shape[-3] != HINT_CHANNELS or L.shape[-2:] != hints.shape[-2:]:
        raise ValueError(
            f"L must be (*, 1, H, W) and hints (*, {HINT_CHANNELS}, H, W) of the same size, "
            f"got {tuple(L.shape)} and {tuple(hints.shape)}"
        )
    return torch.cat((L, hints.to(L.dtype)), dim=-3)


def split_hints(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`join_hints`: ``(*, 4, H, W)`` -> ``L (*, 1, H, W)``, ``ab_hint``
    (``(*, 2, H, W)``, already times the mask) and ``mask (*, 1, H, W)``."""
    if x.dim() < 3 or x.shape[-3] != 1 + HINT_CHANNELS:
        raise ValueError(
            f"a hinted input must have shape (*, {1 + HINT_CHANNELS}, H, W), got {tuple(x.shape)}"
        )
    return x[..., :1, :, :], x[..., 1:3, :, :], x[..., 3:, :, :]


def _number_of_points(generator, p: float, no_hint_share: float) -> int:
    if float(torch.rand((), generator=generator)) < no_hint_share:
        return 0
    if p == 1:  # torch's geometric_ wants p < 1; the law is then "always one point"
        return 1
    return int(torch.empty((), dtype=torch.float64).geometric_(p, generator=generator))


def _corner(span: int, locations: str, generator) -> int:
    """Top (or left) of a patch; ``span`` = positions that keep it inside (H - P + 1)."""
    if locations == "uniform":
        return int(torch.randint(span, (), generator=generator))
    z = float(torch.randn((), generator=generator))
    return int(min(max(span / 2 + z * span / 4, 0.0), span - 1))  # truncated, as the reference


def sample_hint_points(
    ab: Tensor,
    generator: torch.Generator | None = None,
    *,
    p: float = GEOMETRIC_P,
    no_hint_share: float = NO_HINT_SHARE,
    locations: str = "gaussian",
    sides: Sequence[int] = PATCH_SIDES,
    num_points: int | None = None,
) -> list[Hint]:
    """Simulate a user's hints for one image from its true colours (see the module doc).

    Args:
        ab: ``(2, H, W)`` true normalised chroma.
        generator: the random source (None: torch's global RNG). Draws, in order: one uniform
            (no hints?), one geometric count, then per point its side, row and column.
        p: parameter of the geometric number of points on {1, 2, ...} (mean ``1 / p``), (0, 1].
        no_hint_share: probability of no hint at all, in [0, 1].
        locations: ``"gaussian"`` (centred, the paper) or ``"uniform"``.
        sides: patch sides to pick from uniformly (each cut to the image's shorter side).
        num_points: exactly this many points instead (then ``p`` and ``no_hint_share`` are
            not used and not drawn): the evaluation's "PSNR at k points".

    Returns:
        The hints; each patch lies inside the image and its ``ab`` is the patch's mean ``ab``.
    """
    if ab.dim() != 3 or ab.shape[0] != 2:
        raise ValueError(f"ab must have shape (2, H, W), got {tuple(ab.shape)}")
    if not 0 < p <= 1 or not 0 <= no_hint_share <= 1:
        raise ValueError(f"need 0 < p <= 1 and 0 <= no_hint_share <= 1, got {p}, {no_hint_share}")
    if locations not in LOCATIONS:
        raise ValueError(f"unknown locations {locations!r}; choose one of {list(LOCATIONS)}")
    if not sides or min(sides) < 1:
        raise ValueError(f"sides must be patch sides >= 1, got {sides!r}")
    if num_points is not None and num_points < 0:
        raise ValueError(f"num_points must be >= 0 or None, got {num_points!r}")
    height, width = ab.shape[-2:]
    count = _number_of_points(generator, p, no_hint_share) if num_points is None else num_points
    hints = []
    for _ in range(count):
        side = int(sides[int(torch.randint(len(sides), (), generator=generator))])
        side = min(side, height, width)
        top = _corner(height - side + 1, locations, generator)
        left = _corner(width - side + 1, locations, generator)
        mean = ab[:, top : top + side, left : left + side].float().mean(dim=(-2, -1))
        a, b = (min(max(v, -1.0), 1.0) for v in mean.tolist())
        centre = (side - 1) // 2
        hints.append(Hint(top + centre, left + centre, (a, b), side))
    return hints


def _item_seed(seed: int, index: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + index) % (1 << 63)  # distinct streams per (seed, i)


class HintPairs(Dataset):
    """An ``(L, ab)`` dataset with simulated hints: items ``(cat(L, hints), ab)``.

    Args:
        dataset: yields ``(L (1, H, W), ab (2, H, W))`` (e.g. a
            :class:`~colorlib.data.datasets.ColorizationDataset`).
        seed: None (training): fresh hints at every access from torch's global RNG (seeded by
            ``fit`` and per DataLoader worker, as the crops are). An int >= 0: item ``i``'s
            hints come from a generator seeded with ``(seed, i)``, the same at every access.
        p, no_hint_share, locations, sides, num_points: see :func:`sample_hint_points`.

    Item ``i``: ``x (4, H, W)`` = ``L``, ``ab_hint * mask``, ``mask`` (:func:`join_hints`),
    and the unchanged ``ab (2, H, W)`` target.

    Example:
        >>> val = HintPairs(val_set, seed=0, num_points=10)  # doctest: +SKIP
        >>> x, ab = val[3]  # the same 10 hints every time
    """

    def __init__(
        self,
        dataset,
        seed: int | None = None,
        *,
        p: float = GEOMETRIC_P,
        no_hint_share: float = NO_HINT_SHARE,
        locations: str = "gaussian",
        sides: Sequence[int] = PATCH_SIDES,
        num_points: int | None = None,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
        self.dataset, self.seed = dataset, seed
        self.options = dict(
            p=p,
            no_hint_share=no_hint_share,
            locations=locations,
            sides=tuple(sides),
            num_points=num_points,
        )
        sample_hint_points(torch.zeros(2, 1, 1), torch.Generator(), **self.options)  # check

    def __len__(self) -> int:
        return len(self.dataset)

    def hints(self, index: int, ab: Tensor) -> list[Hint]:
        """The hints of item ``index`` whose true chroma is ``ab`` (one fresh draw when
        ``seed`` is None)."""
        generator = None
        if self.seed is not None:
            index = index % len(self)  # -1 and len - 1 are the same item, with the same hints
            generator = torch.Generator().manual_seed(_item_seed(self.seed, index))
        return sample_hint_points(ab, generator, **self.options)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        L, ab = self.dataset[index]
        channels = hint_channels(self.hints(index, ab), *ab.shape[-2:], dtype=L.dtype)
        return join_hints(L, channels), ab

    def __repr__(self) -> str:
        mode = "random hints" if self.seed is None else f"fixed hints, seed {self.seed}"
        return f"HintPairs({self.dataset!r}, {mode})"
