"""A handful of real colour photos that ship with the installed libraries: the offline fallback.

When no photo folder is given, ``COLORLIB_DATA`` is unset and COCO cannot be reached,
``colorlib.data.datasets.resolve_photos`` still has something real to show: the colour
photographs bundled inside scikit-image (``skimage.data``), scikit-learn
(``load_sample_images``) and matplotlib (its ``sample_data`` folder). Seven photos cannot train
a colorizer, but they run every chapter end to end and give the book its example figures
(:func:`sample_photo`).

The photos are copied once to ``cache_dir()/samples`` as ordinary image files, so the rest of
colorlib treats them exactly like any other folder. Sources missing from an install are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image

__all__ = ["SAMPLE_NAMES", "bundled_sample_paths", "sample_photo"]


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside ``package``, found without importing it (imports are slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return path if path.is_file() else None


def _skimage(name: str, filename: str) -> Callable[[Path], None]:
    def export(dest: Path) -> None:
        source = _package_file("skimage", "data", filename)
        if source is not None:
            shutil.copyfile(source, dest)
            return
        import skimage.data

        Image.fromarray(getattr(skimage.data, name)()).save(dest)

    return export


def _sklearn(filename: str) -> Callable[[Path], None]:
    def export(dest: Path) -> None:
        source = _package_file("sklearn", "datasets", "images", filename)
        if source is None:
            from sklearn.datasets import load_sample_images

            (found,) = [f for f in load_sample_images().filenames if Path(f).name == filename]
            source = Path(found)
        shutil.copyfile(source, dest)

    return export


def _matplotlib(filename: str) -> Callable[[Path], None]:
    def export(dest: Path) -> None:
        import matplotlib

        shutil.copyfile(Path(matplotlib.get_data_path()) / "sample_data" / filename, dest)

    return export


# name -> (file name in the cache, exporter). Only colour photographs: skimage's camera, coins,
# page... are gray and its logo / colorwheel / microscopy images are not photos of the world.
_SOURCES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "astronaut": ("astronaut.png", _skimage("astronaut", "astronaut.png")),
    "coffee": ("coffee.png", _skimage("coffee", "coffee.png")),
    "chelsea": ("chelsea.png", _skimage("chelsea", "chelsea.png")),
    "rocket": ("rocket.jpg", _skimage("rocket", "rocket.jpg")),
    "china": ("china.jpg", _sklearn("china.jpg")),
    "flower": ("flower.jpg", _sklearn("flower.jpg")),
    "grace_hopper": ("grace_hopper.jpg", _matplotlib("grace_hopper.jpg")),
}
#: Names accepted by :func:`sample_photo`, whether or not this install has every source.
SAMPLE_NAMES = tuple(_SOURCES)


def _sample_dir() -> Path:
    from colorlib.runtime import cache_dir

    folder = cache_dir() / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _export(name: str) -> Path | None:
    """The cached file for ``name``, exported first if needed; ``None`` if its source is absent."""
    filename, exporter = _SOURCES[name]
    dest = _sample_dir() / filename
    if dest.is_file():
        return dest
    tmp = dest.with_name(f".{dest.stem}.{os.getpid()}{dest.suffix}")
    try:
        exporter(tmp)
    except (ImportError, OSError, ValueError, AttributeError):
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, dest)  # atomic, so parallel processes never see half a file
    return dest


def bundled_sample_paths() -> list[Path]:
    """Export the bundled colour photos (once) and return their paths, in :data:`SAMPLE_NAMES`
    order, skipping sources this install lacks.

    Example:
        >>> [p.name for p in bundled_sample_paths()][:2]  # doctest: +SKIP
        ['astronaut.png', 'coffee.png']
    """
    return [path for name in SAMPLE_NAMES if (path := _export(name)) is not None]


def sample_photo(name: str) -> Image.Image:
    """One bundled photo as an RGB ``PIL.Image``, e.g. ``sample_photo("astronaut")``.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones) or a source that this
            install does not have.
    """
    if name not in _SOURCES:
        raise ValueError(f"unknown sample photo {name!r}; choose one of {list(SAMPLE_NAMES)}")
    path = _export(name)
    if path is None:
        raise ValueError(f"sample photo {name!r} is not available in this install")
    from colorlib.data.images import load_rgb

    return load_rgb(path)
