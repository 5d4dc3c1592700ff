"""Which photos are really black-and-white: a colorizer must not learn from them.

COCO holds about 3% of gray photos, many stored as RGB. :func:`photo_stats` measures a small
decoded copy (channel spread and colourfulness), :func:`is_gray` applies the thresholds, and
:func:`scan_photos` runs it over a collection in threads with a JSON cache keyed by file size
and modification time; see :func:`colorlib.data.datasets.load_datasets` for how it is used.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colorlib.data.images import UnreadableImage, load_rgb

__all__ = [
    "SCAN_SIDE",
    "GRAY_TOLERANCE",
    "COLORFULNESS_THRESHOLD",
    "PhotoStats",
    "photo_stats",
    "is_gray",
    "ScanResult",
    "scan_photos",
]

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
