"""The full-resolution half of colorization, a strip of rows at a time: memory for any photo.

Everything :mod:`colorlib.inference` does at the photo's own resolution (its lightness ``L``,
the predicted ``ab`` upsampled to the full size, the gamut fit and the conversion to RGB) is
done pixel by pixel, so it can run on a strip of rows at a time into a preallocated result.
At once, a 12000x9000 photo (108 M pixels) needed about 112 bytes a pixel, 11.2 GiB; in strips
it needs its float32 ``L`` and the 8-bit output (4 bytes a pixel each) and a few hundred bytes
a pixel of one strip (:data:`STRIP_PIXELS`): 0.83 GiB (``benchmarks/large_photo_bench.py``).

* :func:`photo_lightness`: the photo's ``L``, converted to sRGB by
  :func:`colorlib.data.images.to_rgb_tensor`'s rule a strip at a time wherever that rule is
  pixel by pixel (8- and 16-bit images and arrays), else at once;
* :func:`resized_rows`: a small tensor resized bilinearly to the full size, a strip at a time.
  Bilinear resizing is separable: first to the full height at the small width (small), then
  each strip to the full width: the numbers of resizing at once, up to float rounding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from colorlib.color import rgb_to_L_ab
from colorlib.data.images import read_image, to_rgb_tensor

__all__ = ["STRIP_PIXELS", "row_strips", "resize", "resized_rows", "photo_lightness"]

#: Full-resolution pixels converted, upsampled and fitted into the gamut at a time (a strip of
#: rows, one row at least): that work's memory (up to about 150 MB) scales with this, not with
#: the photo. Smaller strips were no slower on a CPU (tried: 2**18 to 2**22).
STRIP_PIXELS = 1 << 19

# images whose sRGB (to_rgb_tensor's rule) is computed pixel by pixel, so that a strip of rows
# converts alone: these PIL modes ("I" and "F" infer their range from all pixels) and arrays
_ROW_BY_ROW_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_ROW_BY_ROW_MODES |= {"I;16", "I;16B", "I;16L", "I;16N"}  # fixed range: 0 to 65535
_ROW_BY_ROW_DTYPES = (np.uint8, np.uint16, np.bool_)


def row_strips(height: int, width: int) -> list[tuple[int, int]]:
    """Row ranges ``[top, end)`` covering ``height`` rows, each of at most
    :data:`STRIP_PIXELS` pixels of ``width`` (one row at least)."""
    rows = max(1, STRIP_PIXELS // max(width, 1))
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def resize(x: Tensor, shape: tuple[int, int], antialias: bool | None = None) -> Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``shape``; antialiased when shrinking, unless said.

    ``x`` itself when it has that shape already.
    """
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    if antialias is None:  # it only matters when shrinking
        antialias = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=antialias)


def resized_rows(x: Tensor, height: int, width: int) -> Iterator[tuple[int, int, Tensor]]:
    """``resize(x, (height, width))`` a strip of rows at a time, as ``(top, end, rows)``.

    A result of one strip (:func:`row_strips`) is resized at once, exactly as :func:`resize`;
    otherwise ``x`` is resized to ``(height, w)`` first (``w`` its own width), then each strip
    to the full width, with the antialiasing :func:`resize` would choose for the whole.

    Args:
        x: ``(B, C, h, w)`` float tensor, small (the network's output).
        height, width: the full size.
    """
    strips = row_strips(height, width)
    if len(strips) == 1:
        yield 0, height, resize(x, (height, width))
        return
    antialias = height < x.shape[-2] or width < x.shape[-1]
    tall = resize(x, (height, x.shape[-1]), antialias)
    for top, end in strips:
        yield top, end, resize(tall[..., top:end, :], (end - top, width), antialias)


def photo_lightness(image, device: str | torch.device = "cpu") -> Tensor:
    """The photo's normalised lightness ``L`` (``rgb_to_L_ab(to_rgb_tensor(image))[0]``),
    computed a strip of rows at a time where the input allows it.

    Args:
        image: what :func:`colorlib.data.images.to_rgb_tensor` accepts: a ``PIL.Image``, a
            numpy array or a path (read with :func:`colorlib.data.images.read_image`).
        device: where ``L`` is computed and kept.

    Returns:
        ``(1, 1, H, W)`` float32 ``L`` in [-1, 1].

    Raises:
        TypeError, ValueError, FileNotFoundError, colorlib.data.images.UnreadableImage: as
        :func:`colorlib.data.images.to_rgb_tensor`.
    """
    if isinstance(image, (str, os.PathLike)) and Path(image).exists():
        image = read_image(image)  # the one decoder and its checks; a missing file: below
    height = width = 0
    if isinstance(image, Image.Image) and image.mode in _ROW_BY_ROW_MODES:
        width, height = image.size
    elif isinstance(image, np.ndarray) and image.dtype in _ROW_BY_ROW_DTYPES:
        if image.shape[2:] in ((), (1,), (3,), (4,)):  # HxW or HxWx{1,3,4}
            height, width = image.shape[:2]
    if height * width == 0:  # the rest (and every error) in one piece
        return rgb_to_L_ab(to_rgb_tensor(image).to(device))[0][None]
    L = torch.empty(1, 1, height, width, device=device)
    for top, end in row_strips(height, width):
        rows = image[top:end] if isinstance(image, np.ndarray) else image.crop((0, top, width, end))
        L[0, :, top:end] = rgb_to_L_ab(to_rgb_tensor(rows).to(device))[0]
    return L
