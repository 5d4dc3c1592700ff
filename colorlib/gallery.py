"""The colorization demo's pure functions: before-after views, uploads, models, a gallery.

Everything the interactive demo (:class:`colorlib.widgets.ColorizeDemo`) computes is one of
these small functions, tested without a browser and without ipywidgets:

* :func:`uploaded_image` reads a ``FileUpload`` value (a tuple of dicts in ipywidgets 8, a dict
  of dicts in ipywidgets 7) with :func:`colorlib.data.images.load_rgb`'s checks;
* :func:`cached_colorizer` loads each model once (per file version and device) with
  :func:`colorlib.inference.load_colorizer`, which also reads released DDColor files and
  names (the menu itself is :mod:`colorlib.catalog`'s);
* :func:`gray_and_colour` gives the gray input and the full-resolution colorization;
* :func:`split_view` puts gray left of a split and colour right of it: the before-after slider
  recomposes the cached previews, the model never reruns for it;
* :func:`png_bytes` and :func:`download_link` turn a result into ``Image`` widget bytes and a
  ``data:`` URI link (ipywidgets has no download button);
* :func:`static_gallery` is the demo's static twin: rows of (gray input, colorization,
  original) as a matplotlib figure, for the static HTML book where widgets are dead.

Only PIL, torch and matplotlib are needed here; :mod:`colorlib.widgets` imports ipywidgets
when a demo is built.

>>> split_view(*gray_and_colour(photo, model), fraction=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image
from torch import nn

__all__ = [
    "uploaded_file",
    "read_photo",
    "fit_within",
    "GRAY_BASELINE",
    "split_view",
    "png_bytes",
    "download_link",
    "uploaded_image",
    "cached_colorizer",
    "clear_model_cache",
    "gray_and_colour",
    "static_gallery",
]

#: The model choice that adds no colour: the floor every colorizer must beat.
GRAY_BASELINE = "gray baseline (no colour)"
_CACHE_SIZE = 3  # models kept loaded; a DDColor-large is about 1 GB
_MODEL_CACHE: OrderedDict[tuple, tuple[nn.Module, int]] = OrderedDict()


def split_view(gray: Image.Image, colour: Image.Image, fraction: float) -> Image.Image:
    """Before-after composite: ``gray`` left of the split, ``colour`` right of it.

    Args:
        gray, colour: images of the same size (any mode; the result is RGB).
        fraction: split position from the left edge in [0, 1]: 0 shows all colour, 1 all gray;
            the split column is ``round(fraction * width)``.

    Example:
        >>> split_view(gray, colour, 0.5)  # doctest: +SKIP
    """
    if gray.size != colour.size:
        raise ValueError(
            f"gray and colour must have the same size, got {gray.size} and {colour.size}"
        )
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0 <= fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    width, height = colour.size
    split = round(fraction * width)
    view = colour.convert("RGB")  # a copy, even when already RGB
    if split > 0:
        view.paste(gray.convert("RGB").crop((0, 0, split, height)), (0, 0))
    return view


def png_bytes(image: Image.Image) -> bytes:
    """The image encoded as PNG (what ``ipywidgets.Image(format="png")`` displays)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image, got {type(image).__name__}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def download_link(
    image: Image.Image, filename: str = "colorized.png", text: str | None = None
) -> str:
    """An HTML ``<a download>`` link whose ``data:`` URI holds the image as PNG.

    Args:
        image: the picture to offer.
        filename: the name the browser saves it under (no folders).
        text: the link text (default ``"Download <filename>"``).
    """
    if not isinstance(filename, str) or not filename or re.search(r"[\\/]", filename):
        raise ValueError(f"filename must be a plain file name without folders, got {filename!r}")
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    label = html.escape(text if text is not None else f"Download {filename}")
    return f'<a download="{html.escape(filename)}" href="data:image/png;base64,{data}">{label}</a>'


def uploaded_file(value) -> tuple[str, bytes]:
    """``(name, content)`` of the first file of a FileUpload value (ipywidgets 7 or 8)."""
    if isinstance(value, Mapping) and "content" in value:
        entries = [value]  # one ipywidgets 8 entry on its own
    elif isinstance(value, Mapping):  # ipywidgets 7: {name: {"metadata": {...}, "content": b}}
        entries = [{"name": name, **entry} for name, entry in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        entries = list(value)  # ipywidgets 8: ({"name", "type", "size", "content"}, ...)
    else:
        raise TypeError(f"expected a FileUpload value (tuple or dict), got {type(value).__name__}")
    if not entries:
        raise ValueError("no file was uploaded")
    entry = entries[0]
    if not isinstance(entry, Mapping) or "content" not in entry:
        raise TypeError(f"a FileUpload entry must be a dict with 'content', got {entry!r:.80}")
    name = entry.get("name") or entry.get("metadata", {}).get("name") or "upload"
    return str(name), bytes(entry["content"])


def uploaded_image(value) -> Image.Image:
    """The photo in a ``FileUpload`` value, as an upright 8-bit RGB ``PIL.Image``.

    Args:
        value: ``upload.value``: a tuple of ``{"name", "content", ...}`` dicts (ipywidgets 8)
            or a ``{name: {"metadata": ..., "content": bytes}}`` dict (ipywidgets 7). The
            first file is read.

    Raises:
        ValueError: nothing uploaded.
        TypeError: not a FileUpload value.
        colorlib.data.images.UnreadableImage: not an image (a ``ValueError`` naming the file).
    """
    from colorlib.data.images import UnreadableImage, load_rgb

    name, content = uploaded_file(value)
    if not content:
        raise UnreadableImage(name, "the file is empty")
    handle, tmp = tempfile.mkstemp(prefix="colorlib-upload-")  # load_rgb's checks need a path
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        return load_rgb(tmp)
    except UnreadableImage as err:  # name the user's file, not the temporary one
        reason = err.reason.replace(f"<_io.BufferedReader name='{tmp}'>", repr(name))
        raise UnreadableImage(name, reason.replace(tmp, name)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def cached_colorizer(path: str | os.PathLike, device="cpu") -> tuple[nn.Module, int]:
    """:func:`colorlib.inference.load_colorizer`, loading each file (or released weights by
    name) once per version and device.

    A rewritten file (new modification time or size) is loaded afresh; the last few models
    stay loaded. Returns ``(generator, size)``; raises what ``load_colorizer`` raises.
    """
    from colorlib import inference as infer
    from colorlib.models.hub import is_released_name

    if is_released_name(path):  # the authors' weights by name: downloaded once, then cached
        key = (str(path), 0, 0, str(device))
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = infer.load_colorizer(path, device=device)
        _MODEL_CACHE.move_to_end(key)
        while len(_MODEL_CACHE) > _CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
        return _MODEL_CACHE[key]
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(device))
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    for old in [k for k in _MODEL_CACHE if k[0] == key[0] and k[3] == key[3]]:
        del _MODEL_CACHE[old]  # an older version of the same file
    _MODEL_CACHE[key] = infer.load_colorizer(path, device=device)
    while len(_MODEL_CACHE) > _CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return _MODEL_CACHE[key]


def clear_model_cache() -> None:
    """Forget every model :func:`cached_colorizer` holds."""
    _MODEL_CACHE.clear()


def gray_and_colour(
    photo: Image.Image, model: nn.Module | None = None, size: int = 256
) -> tuple[Image.Image, Image.Image]:
    """``(gray input, colorization)`` of a photo, both RGB at the photo's size.

    With ``model=None`` the colorization is the gray baseline itself (``ab = 0``).
    """
    from colorlib.data.images import gray_baseline
    from colorlib.inference import colorize

    gray = gray_baseline(photo)
    return gray, gray.copy() if model is None else colorize(model, photo, size=size)


def read_photo(photo: str | os.PathLike | Image.Image) -> Image.Image:
    """A path (read with ``load_rgb``) or a PIL image of any mode -> RGB ``PIL.Image``."""
    if isinstance(photo, Image.Image):
        if photo.mode == "RGB":
            return photo
        from colorlib.data.images import to_pil, to_rgb_tensor

        return to_pil(to_rgb_tensor(photo))
    if isinstance(photo, str | os.PathLike):
        from colorlib.data.images import load_rgb

        return load_rgb(photo)
    raise TypeError(f"a photo must be a path or a PIL.Image, got {type(photo).__name__}")


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so that the longer side is at most ``max_side``."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = tuple(max(1, round(side * scale)) for side in image.size)
    return image.resize(size, Image.Resampling.LANCZOS)


def static_gallery(
    model: nn.Module | str | os.PathLike | None,
    photos: Sequence | None = None,
    *,
    size: int | None = None,
    max_side: int = 512,
    device="cpu",
    label: str | None = None,
    panel_size: float = 3.0,
):
    """Rows of (gray input, colorization, original) for the static book, as a matplotlib Figure.

    Args:
        model: a generator, a checkpoint path (see :func:`cached_colorizer`) or ``None`` for
            the gray baseline.
        photos: paths or PIL images; ``None``: the bundled sample photos.
        size: the model's input size; ``None``: the checkpoint's own, or 256 for a module.
        max_side: photos are shrunk to this longer side first (figures need no more).
        device: where a checkpoint path is loaded.
        label: title of the middle column (default ``"colorized"`` / the baseline's name).
        panel_size: inches per panel.
    """
    from colorlib.viz import show_images

    if isinstance(model, str | os.PathLike):
        model, loaded_size = cached_colorizer(model, device)
        size = size or loaded_size
    if photos is None:
        from colorlib.data.samples import bundled_sample_paths

        photos = bundled_sample_paths()
    panels = []
    for photo in photos:
        image = fit_within(read_photo(photo), max_side)
        panels += [*gray_and_colour(image, model, size or 256), image]
    if not panels:
        raise ValueError("static_gallery needs at least one photo")
    middle = label or (GRAY_BASELINE if model is None else "colorized")
    return show_images(panels, ["gray input", middle, "original"], ncols=3, size=panel_size)
