"""Colorizing many photo files without losing any: the ``colorlib colorize`` batch.

Three rules, each because a user lost work without it:

* **never replace a file unasked.** :func:`plan_outputs` decides every output name first
  (``OUT/<relative name>.<format>``, or ``OUT`` itself for one photo) and refuses, before any
  work, when one already exists, naming each one; ``overwrite=True`` (``--overwrite``) allows
  it. An output that would replace its own input is refused even then;
* **never leave half a file.** :func:`save_photo` writes to a temporary file in the target's
  folder and renames it into place (``os.replace``), so an interrupted run leaves either the
  old file or the new one;
* **one bad photo does not stop the batch.** :func:`colorize_files` reads each photo on its
  own; one that cannot be read is skipped with its reason and the others are colorized
  (``fail_fast=True`` stops at the first instead). The :class:`BatchReport` says what was done.

Metadata: the EXIF block is kept (camera, date, GPS), with the orientation tag reset to 1
because the pixels are stored upright; the ICC profile is dropped on purpose: colorlib reads
pixel values as sRGB and writes sRGB colours, so the input's profile (often a gray or camera
profile) would misdescribe them. PNG (lossless, the default) or JPEG with a quality.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from colorlib.data.images import IMAGE_EXTENSIONS, UnreadableImage, read_image
from colorlib.runtime import atomic_write

__all__ = [
    "FORMATS",
    "plan_outputs",
    "save_photo",
    "BatchReport",
    "colorize_files",
]

#: output formats: name -> (file suffix, PIL format)
FORMATS = {"png": (".png", "PNG"), "jpg": (".jpg", "JPEG")}
_LISTED = 5  # files named in one error line before "and N more"
_ORIENTATION = 0x0112


def _listing(paths: Sequence[Path]) -> str:
    names = ", ".join(str(p) for p in paths[:_LISTED])
    more = len(paths) - _LISTED
    return names + (f" and {more} more" if more > 0 else "")


def plan_outputs(
    items: Sequence[tuple[Path, Path]], out: Path, fmt: str = "png", overwrite: bool = False
) -> list[Path]:
    """Where each colorized photo goes, checked before any work is done.

    Args:
        items: ``(photo, name relative to its input)`` pairs (``colorlib.commands``'s
            ``collect_images``).
        out: a folder (outputs ``out/<relative name>.<fmt>``), or, for a single photo, a file
            name with an image suffix (its suffix then decides the format).
        fmt: ``"png"`` or ``"jpg"`` for outputs in a folder.
        overwrite: allow replacing existing files (never the input itself).

    Raises:
        ValueError: several inputs and a file name as ``out``, two inputs that would be written
            to the same file, an output that would replace its own input, an unknown format.
        FileExistsError: outputs that exist already (all named), without ``overwrite``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {sorted(FORMATS)}")
    if out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        if len(items) != 1:
            raise ValueError(f"-o {out} names a file, but there are {len(items)} input photos")
        targets = [out]
    else:
        suffix = FORMATS[fmt][0]
        targets = [out / relative.with_suffix(suffix) for _, relative in items]
    seen: dict[Path, Path] = {}
    for (source, _), target in zip(items, targets, strict=True):
        key = target.resolve()
        if key == source.resolve():
            raise ValueError(f"the output {target} would overwrite its input; choose another -o")
        if key in seen:
            raise ValueError(f"{seen[key]} and {source} would both be written to {target}")
        seen[key] = source
    existing = [target for target in targets if target.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"would replace {len(existing)} existing file(s): {_listing(existing)}; "
            "pass --overwrite to replace them, or choose another -o"
        )
    return targets


def _pil_format(target: Path) -> str:
    suffix = target.suffix.lower()
    return (
        "JPEG" if suffix in (".jpg", ".jpeg") else Image.registered_extensions().get(suffix, "PNG")
    )


def save_photo(image: Image.Image, target: Path, exif: bytes | None = None, quality=95) -> Path:
    """Write ``image`` to ``target`` atomically (temporary file, then rename).

    Args:
        image: the RGB photo.
        target: its path; the suffix decides the format (``.png``, ``.jpg``, ...).
        exif: an EXIF block to store (orientation already reset), or None.
        quality: JPEG quality, 1-100 (ignored by lossless formats).

    Returns:
        ``target``.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
    pil_format = _pil_format(target)
    options: dict = {"quality": int(quality)} if pil_format == "JPEG" else {}
    if exif:
        options["exif"] = exif
    return atomic_write(target, lambda file: image.save(file, format=pil_format, **options))


def _exif_upright(image: Image.Image) -> bytes | None:
    """The photo's EXIF block with the orientation reset to 1 (the pixels are upright)."""
    exif = image.getexif()
    if not exif:
        return None
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    return exif.tobytes()


@dataclass
class BatchReport:
    """What a batch did: photos written and photos skipped, with the reason."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: every photo colorized; 1: some skipped (the others written)."""
        return 1 if self.skipped else 0

    def summary(self) -> str:
        """One line, e.g. ``497 colorized, 3 skipped``."""
        line = f"{len(self.written)} colorized"
        return line + (f", {len(self.skipped)} skipped" if self.skipped else "")


def _readable(
    items: Iterable[tuple[Path, Path]], report: BatchReport, fail_fast: bool, queue: deque
) -> Iterator[Image.Image]:
    """Each photo read on its own; unreadable ones go to the report (or stop the batch)."""
    for source, target in items:
        try:
            image = read_image(source)
            image.load()
        except (UnreadableImage, OSError) as error:
            if fail_fast:
                raise
            reason = error.reason if isinstance(error, UnreadableImage) else str(error)
            report.skipped.append((source, reason))
            continue
        queue.append((target, _exif_upright(image)))
        yield image


def colorize_files(
    colorize: Callable[[Iterable[Image.Image]], Iterable[Image.Image]],
    sources: Sequence[Path],
    targets: Sequence[Path],
    *,
    quality: int = 95,
    fail_fast: bool = False,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> BatchReport:
    """Colorize ``sources`` into ``targets``, one photo at a time as far as errors go.

    Args:
        colorize: photos in, colour photos out, in order (e.g. a partial of
            :func:`colorlib.inference.colorize_iter` with the model and sizes).
        sources, targets: the photo files and their outputs (from :func:`plan_outputs`).
        quality: JPEG quality for ``.jpg`` targets.
        fail_fast: raise on the first unreadable photo instead of skipping it.
        progress: wraps the results iterable with a total (e.g. a tqdm bar), or None.

    Returns:
        The :class:`BatchReport`.
    """
    report, queue = BatchReport(), deque()
    photos = _readable(zip(sources, targets, strict=True), report, fail_fast, queue)
    results = colorize(photos)
    if progress is not None:
        results = progress(results, len(sources))
    for image in results:
        target, exif = queue.popleft()
        report.written.append(save_photo(image, target, exif, quality))
    return report
