"""Robust photo reading and the gray-photo filter.

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

The second half of the module finds black-and-white photos, which a colorizer must not learn
from (COCO holds about 3% of them): :func:`photo_stats` measures a small decoded copy and
:func:`scan_photos` runs it over a collection with a JSON cache; see ``colorlib.data``'s
``load_datasets`` for how it is used.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS",
    "MIN_SIDE",
    "SCAN_SIDE",
    "GRAY_TOLERANCE",
    "COLORFULNESS_THRESHOLD",
    "UnreadableImage",
    "load_rgb",
    "PhotoStats",
    "photo_stats",
    "is_gray",
    "ScanResult",
    "scan_photos",
]

#: Largest accepted image, in pixels (PIL's own default limit, about 9459 x 9459).
MAX_PIXELS = 89_478_485
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


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float single-channel image -> 8-bit ``L``, rescaled.

    ``I;16*`` spans [0, 65535]. ``I`` and ``F`` carry no range, so we infer it: values within
    [0, 255] are taken as 8-bit, within [0, 65535] as 16-bit, floats within [0, 1] as
    normalised; anything else is stretched from its minimum to its maximum.
    """
    values = np.asarray(image).astype(np.float32)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16"):
        scale, offset = 255.0 / 65535.0, 0.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 255.0, 0.0
    elif low >= 0.0 and high <= 255.0:
        scale, offset = 1.0, 0.0
    elif image.mode == "I" and low >= 0.0 and high <= 65535.0:
        scale, offset = 255.0 / 65535.0, 0.0
    else:
        scale, offset = 255.0 / max(high - low, 1e-12), low
    scaled = np.clip(np.rint((values - offset) * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return _high_depth_to_l(image).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, HSV
    except ValueError as error:
        raise UnreadableImage(path, f"unsupported mode {image.mode!r} ({error})") from None


def load_rgb(
    path: str | os.PathLike,
    min_side: int | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    smallest_side: int = MIN_SIDE,
) -> Image.Image:
    """Read a photo as 8-bit RGB, upright, or say why it cannot be used.

    Args:
        path: image file (any format PIL reads).
        min_side: if given, JPEGs may decode at a reduced scale (1/2, 1/4, 1/8) as long as the
            shorter side stays ``>= min_side``; other formats decode in full. ``None``: full size.
        max_pixels: reject images whose header claims more pixels (decompression bombs). PIL's
            own limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``, applies as well.
        smallest_side: reject images whose shorter side is smaller than this.

    Returns:
        A loaded ``PIL.Image`` in mode ``RGB`` with the EXIF orientation applied.

    Raises:
        UnreadableImage: missing, corrupt or truncated file, bomb, too small, unsupported mode.

    Example:
        >>> load_rgb("photo.jpg", min_side=256).size  # doctest: +SKIP
        (384, 256)
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
    return _to_rgb(image, path)


# --------------------------------------------------------------------------------------------
# Gray-photo filter
# --------------------------------------------------------------------------------------------

#: Side (pixels) of the small copy the gray filter measures; JPEGs decode straight to it.
SCAN_SIDE = 64
#: Channels equal within this many levels (0-255) everywhere: a black-and-white photo. COCO's
#: own gray photos are stored as RGB with channels equal within 2 levels.
GRAY_TOLERANCE = 2
#: Hasler & Suesstrunk colourfulness (0-255 scale, measured on the small copy) under which a
#: photo is treated as black-and-white: toned, sepia or faded prints. On coco-mini this drops 4
#: photos the manifest calls colour; all four look black-and-white.
COLORFULNESS_THRESHOLD = 2.0
_CACHE_VERSION = 1


@dataclass(frozen=True)
class PhotoStats:
    """What the gray filter measures on a photo's small copy.

    Attributes:
        spread: largest per-pixel ``max(R, G, B) - min(R, G, B)``, in levels (0-255).
        colorfulness: Hasler & Suesstrunk's M (0-255 scale); 0 for a gray image, about 15
            "slightly colourful", above 100 "extremely colourful".
    """

    spread: int
    colorfulness: float


def photo_stats(path: str | os.PathLike, side: int = SCAN_SIDE) -> PhotoStats:
    """Measure channel spread and colourfulness on a copy about ``side`` pixels high.

    Raises:
        UnreadableImage: when :func:`load_rgb` cannot read the file.
    """
    image = load_rgb(path, min_side=side)
    factor = min(image.size) // side
    if factor > 1:
        image = image.reduce(factor)  # box filter; JPEGs are mostly reduced by draft already
    rgb = np.asarray(image, dtype=np.int16)  # (H, W, 3)
    spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max())
    red, green, blue = (rgb[..., c].astype(np.float32) for c in range(3))
    rg = red - green
    yb = 0.5 * (red + green) - blue
    colorfulness = float(
        np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    )
    return PhotoStats(spread=spread, colorfulness=colorfulness)


def is_gray(
    stats: PhotoStats,
    tolerance: int = GRAY_TOLERANCE,
    threshold: float = COLORFULNESS_THRESHOLD,
) -> bool:
    """A photo is gray if its channels are equal within ``tolerance`` levels everywhere, or if
    its colourfulness is under ``threshold``."""
    return stats.spread <= tolerance or stats.colorfulness < threshold


@dataclass
class ScanResult:
    """Outcome of :func:`scan_photos`; every input path lands in exactly one bucket.

    Attributes:
        color: usable colour photos, in input order.
        gray: black-and-white photos (dropped for training).
        unreadable: path -> reason for files :func:`load_rgb` rejects.
        num_cached: how many results came from the cache instead of decoding.
    """

    color: list[Path] = field(default_factory=list)
    gray: list[Path] = field(default_factory=list)
    unreadable: dict[Path, str] = field(default_factory=dict)
    num_cached: int = 0

    def summary(self) -> str:
        """One line: counts per bucket and the unreadable files' reasons."""
        total = len(self.color) + len(self.gray) + len(self.unreadable)
        line = (
            f"scanned {total} photos ({self.num_cached} from cache): {len(self.color)} colour, "
            f"{len(self.gray)} gray dropped, {len(self.unreadable)} unreadable dropped"
        )
        if self.unreadable:
            kinds = Counter(
                reason.split(" (")[0].split(":")[0] for reason in self.unreadable.values()
            )
            line += " (" + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + ")"
        return line


def _cache_file() -> Path:
    from colorlib.runtime import cache_dir

    return cache_dir() / "photo_scan.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("version") != _CACHE_VERSION or data.get("side") != SCAN_SIDE:
        return {}
    return data.get("entries", {})


def _save_cache(path: Path, entries: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": _CACHE_VERSION, "side": SCAN_SIDE, "entries": entries}))
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file


def _measure(path: Path) -> dict:
    try:
        stats = photo_stats(path)
    except UnreadableImage as error:
        return {"error": error.reason}
    return {"spread": stats.spread, "colorfulness": stats.colorfulness}


def _file_key(path: Path) -> tuple[str, dict]:
    resolved = path.resolve()
    try:
        info = resolved.stat()
        return str(resolved), {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
    except OSError:
        return str(resolved), {"size": -1, "mtime_ns": -1}


def scan_photos(
    paths,
    *,
    tolerance: int = GRAY_TOLERANCE,
    threshold: float = COLORFULNESS_THRESHOLD,
    cache: bool = True,
    num_threads: int | None = None,
) -> ScanResult:
    """Sort photos into colour, gray and unreadable, decoding each one small, once.

    Measurements (not decisions) are cached in ``cache_dir()/photo_scan.json`` keyed by the
    resolved path, file size and modification time, so changing ``tolerance`` or ``threshold``
    needs no rescan and an edited file is measured again.

    Args:
        paths: iterable of image files.
        tolerance, threshold: see :func:`is_gray`.
        cache: read and update the JSON cache.
        num_threads: decoding threads (PIL releases the GIL); default ``min(4, cpu count)``.

    Returns:
        A :class:`ScanResult`; print ``result.summary()`` for the counts.
    """
    paths = [Path(p) for p in paths]
    cache_path = _cache_file() if cache else None
    entries = _load_cache(cache_path) if cache_path else {}
    keys = [_file_key(p) for p in paths]
    todo = [i for i, (key, stamp) in enumerate(keys) if not _is_fresh(entries.get(key), stamp)]
    threads = num_threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        measured = list(pool.map(_measure, (paths[i] for i in todo)))
    for i, entry in zip(todo, measured, strict=True):
        key, stamp = keys[i]
        entries[key] = {**stamp, **entry}
    if cache_path and todo:
        _save_cache(cache_path, entries)
    result = ScanResult(num_cached=len(paths) - len(todo))
    for path, (key, _) in zip(paths, keys, strict=True):
        entry = entries[key]
        if "error" in entry:
            result.unreadable[path] = entry["error"]
        elif is_gray(PhotoStats(entry["spread"], entry["colorfulness"]), tolerance, threshold):
            result.gray.append(path)
        else:
            result.color.append(path)
    return result


def _is_fresh(entry: dict | None, stamp: dict) -> bool:
    return (
        entry is not None
        and entry.get("size") == stamp["size"]
        and entry.get("mtime_ns") == stamp["mtime_ns"]
    )
