"""The one photo decoder: files, PIL images and arrays in, upright sRGB out, or a clear error.

Real photo collections hold surprises: CMYK JPEGs, palette PNGs with transparency, 16-bit scans,
camera photos stored sideways with an EXIF orientation tag, truncated downloads, 1x1 tracking
pixels and the occasional decompression bomb. :func:`load_rgb` turns every readable file into an
8-bit RGB :class:`PIL.Image.Image` the way a person would see it, and rejects everything else
with :class:`UnreadableImage` (a ``ValueError`` carrying the path and a short reason).

Design:

* the header is checked before any pixel is decoded (size against ``max_pixels`` and
  ``smallest_side``), so a bomb costs microseconds, not gigabytes;
* with a target size, JPEGs decode at a reduced scale (``Image.draft``: libjpeg's DCT scaling,
  1/2, 1/4 or 1/8) so a 4000x3000 photo meant for a 256x256 crop decodes about 16x faster;
* mode conversions that PIL gets wrong by default are done by hand: 16-bit and float images are
  rescaled (PIL's ``convert("L")`` clips them), transparency is composited on white.

One rule for every input, used by training and inference alike (:func:`to_rgb_array`):

* 8-bit images and arrays map ``v -> v / 255``;
* high-bit-depth gray (PIL ``I;16*``, ``I``, ``F``; uint16 arrays) keeps its precision as float:
  ``I;16`` and uint16 span [0, 65535]; ``I`` and ``F`` carry no range, so it is inferred from
  the values: within [0, 1] (``F`` only) normalised, within [0, 255] 8-bit, within [0, 65535]
  16-bit, anything else stretched from its minimum to its maximum;
* transparent pixels are composited on white, as a viewer shows them on a page;
* float arrays must already lie in [0, 1].

:func:`load_rgb` (the training path, which wants 8-bit PIL images for its lookup table) is the
same rule rounded to 8 bits at the end; :func:`to_rgb_tensor` (inference) keeps the float.
Which photos are really gray is :mod:`colorlib.data.grayscan`'s job.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from colorlib.color import L_ab_to_rgb, gray_ab_like, rgb_to_L_ab

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "UnreadableImage",
    "read_image",
    "load_rgb",
    "to_rgb_array",
    "to_rgb_tensor",
    "to_pil",
    "gray_baseline",
]

#: file endings read as photos, everywhere in colorlib (PIL reads the first frame of a GIF)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

#: Largest accepted image, in pixels: PIL's hard limit (twice its warning threshold, e.g.
#: 12000 x 14900), so a 108-megapixel camera photo is read and a 30000 x 30000 bomb is not.
#: Colorizing works in strips, so such a photo needs about 1.4 GiB beyond its own pixels
#: (``benchmarks/results/large_photo_cpu.txt``).
MAX_PIXELS = 178_956_970
#: Images whose shorter side is below this are rejected (icons, spacers, tracking pixels).
MIN_SIDE = 8

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class UnreadableImage(ValueError):
    """A file that cannot be used as a photo.

    Attributes:
        path: the offending file.
        reason: short human-readable cause, e.g. ``"truncated file"`` or ``"too small: 1x1"``.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across DataLoader workers
        return (type(self), (self.path, self.reason))


def _open_checked(path: Path, fp, max_pixels: int, smallest_side: int) -> Image.Image:
    """Open (header only) and check the size before anything is decoded."""
    try:
        with warnings.catch_warnings():
            # We apply our own limit below; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)
    except Image.DecompressionBombError as error:
        raise UnreadableImage(path, f"decompression bomb: {error}") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImage(path, f"not a readable image ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UnreadableImage(
            path,
            f"decompression bomb: {width}x{height} = {width * height} pixels "
            f"> max_pixels={max_pixels}",
        )
    if min(width, height) < smallest_side:
        raise UnreadableImage(path, f"too small: {width}x{height} (need sides >= {smallest_side})")
    return image


_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _high_depth_to_unit(image: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer or float single-channel image -> (H, W) float32 in [0, 1].

    ``I;16*`` spans [0, 65535]. ``I`` and ``F`` carry no range, so it is inferred from the
    values (see the module docstring); nothing is rounded.
    """
    values = np.asarray(image).astype(np.float32)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scale, offset = 1 / 65535, 0.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 1.0, 0.0
    elif low >= 0.0 and high <= 255.0:
        scale, offset = 1 / 255, 0.0
    elif image.mode == "I" and low >= 0.0 and high <= 65535.0:
        scale, offset = 1 / 65535, 0.0
    else:
        scale, offset = 1 / max(high - low, 1e-12), low
    return np.clip((values - offset) * scale, 0.0, 1.0)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparency composited on white; other modes unchanged."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba)
    return image


def _to_rgb(image: Image.Image, path: Path | None = None) -> Image.Image:
    """Any PIL mode -> 8-bit RGB by the module's rule (high bit depths rounded to 8 bits)."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_DEPTH_MODES:
        levels = np.rint(_high_depth_to_unit(image) * 255.0).astype(np.uint8)
        return Image.fromarray(levels, mode="L").convert("RGB")
    try:
        return _flatten_alpha(image).convert("RGB")  # L, 1, P, CMYK, YCbCr, HSV
    except ValueError as error:
        raise UnreadableImage(
            path or "<image>", f"unsupported mode {image.mode!r} ({error})"
        ) from None


def read_image(
    path: str | os.PathLike,
    min_side: int | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    smallest_side: int = MIN_SIDE,
) -> Image.Image:
    """Read a photo in its own mode (16-bit, CMYK, ...), upright, or say why it cannot be used.

    Args:
        path: image file (any format PIL reads).
        min_side: if given, JPEGs may decode at a reduced scale (1/2, 1/4, 1/8) as long as the
            shorter side stays ``>= min_side``; other formats decode in full. ``None``: full size.
        max_pixels: reject images whose header claims more pixels (decompression bombs). PIL's
            own limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``, applies as well.
        smallest_side: reject images whose shorter side is smaller than this.

    Returns:
        A loaded ``PIL.Image`` in the file's mode with the EXIF orientation applied.

    Raises:
        UnreadableImage: missing, corrupt or truncated file, bomb, too small.
    """
    path = Path(path)
    try:
        fp = open(path, "rb")  # closed below, after the pixels are loaded
    except OSError as error:
        raise UnreadableImage(path, f"cannot open file ({error.strerror or error})") from None
    with fp:
        image = _open_checked(path, fp, max_pixels, smallest_side)
        if min_side is not None and image.format == "JPEG":
            image.draft("RGB", (min_side, min_side))
        try:
            image.load()
        except Image.DecompressionBombError as error:
            raise UnreadableImage(path, f"decompression bomb: {error}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            message = str(error)
            kind = "truncated file" if "truncated" in message else "corrupt image data"
            raise UnreadableImage(path, f"{kind} ({message})") from None
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when upright
    except Exception:  # a broken EXIF block must not lose the photo: keep it as stored
        pass
    return image


def load_rgb(
    path: str | os.PathLike,
    min_side: int | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    smallest_side: int = MIN_SIDE,
) -> Image.Image:
    """Read a photo as 8-bit RGB, upright, or say why it cannot be used.

    :func:`read_image` then the module's rule, rounded to 8 bits (the arguments are its).

    Returns:
        A loaded ``PIL.Image`` in mode ``RGB`` with the EXIF orientation applied.

    Raises:
        UnreadableImage: missing, corrupt or truncated file, bomb, too small, unsupported mode.

    Example:
        >>> load_rgb("photo.jpg", min_side=256).size  # doctest: +SKIP
        (384, 256)
    """
    image = read_image(path, min_side, max_pixels=max_pixels, smallest_side=smallest_side)
    return _to_rgb(image, Path(path))


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any common mode as an (H, W, 3) float32 array in [0, 1]."""
    if image.mode in _HIGH_DEPTH_MODES:
        return np.repeat(_high_depth_to_unit(image)[..., None], 3, axis=-1)
    return np.asarray(_to_rgb(image), dtype=np.float32) / 255.0


def _numpy_to_array(array: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped), uint8/uint16/bool/float in [0, 1]."""
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3] if array.shape[-1] != 1 else array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"image array must be HxW or HxWx{{1,3,4}}, got shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise ValueError(
                f"a float image array must lie in [0, 1], got values in [{low:g}, {high:g}]"
            )
        array = array.astype(np.float32)
    else:
        raise TypeError(f"array dtype must be uint8, uint16, bool or float, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


def to_rgb_array(image) -> np.ndarray:
    """Any supported image as an ``(H, W, 3)`` float32 sRGB array in [0, 1] (the module's rule).

    Args:
        image: a ``PIL.Image`` (any common mode: L, RGB, RGBA, P, CMYK, I;16, ...), a numpy
            array (``HxW``, ``HxWx{1,3,4}``; uint8, uint16, bool or float in [0, 1]) or a path
            (read with :func:`read_image`, high bit depths kept).

    Raises:
        TypeError: for another kind of object or array dtype.
        ValueError: for a float array outside [0, 1], an unsupported shape or an empty image.
        FileNotFoundError, UnreadableImage: for a bad path.
    """
    if isinstance(image, (str, os.PathLike)):
        if not Path(image).exists():
            raise FileNotFoundError(f"image not found: {image}")
        image = read_image(image)
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = _numpy_to_array(image)
    else:
        raise TypeError(
            "image must be a PIL.Image, a numpy array, a path or a list of those, "
            f"got {type(image).__name__}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image is empty: shape {array.shape}")
    return array


def to_rgb_tensor(image) -> Tensor:
    """:func:`to_rgb_array` as a ``(3, H, W)`` float32 tensor in [0, 1]."""
    array = np.ascontiguousarray(to_rgb_array(image))
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_pil(rgb: Tensor) -> Image.Image:
    """A ``(3, H, W)`` sRGB tensor in [0, 1] as an 8-bit RGB ``PIL.Image``."""
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must have shape (3, H, W), got {tuple(rgb.shape)}")
    array = (rgb.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")


# ----------------------------------------------------------------------------- colour maths


def gray_baseline(image) -> Image.Image | list[Image.Image]:
    """The photo's own CIELAB lightness ``L*`` as a gray RGB image (``ab = 0``).

    The gray input a colorizer gets in every evaluation (training sees exactly this ``L``; PIL's
    ``convert("L")`` is luma, up to several ``L*`` units away), and the ``ab = 0``
    "colorization", the floor every colorizer must beat on PSNR. Accepts what
    :func:`to_rgb_array` accepts, or a list of those.
    """
    if isinstance(image, (list, tuple)):
        return [gray_baseline(one) for one in image]
    L = rgb_to_L_ab(to_rgb_tensor(image))[0]
    return to_pil(L_ab_to_rgb(L, gray_ab_like(L)))
