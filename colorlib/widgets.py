"""Try it yourself: the interactive colorization demo (ipywidgets).

:class:`ColorizeDemo` holds the controls and only wires them to the pure functions of
:mod:`colorlib.gallery` (upload reading, checkpoint listing and caching, gray and colour
images, the before-after split, PNG bytes and the download link), which are tested without a
browser; :func:`~colorlib.gallery.static_gallery` is the demo's static twin for the HTML
book. Its callbacks are methods (``select_photo``, ``select_model``,
``add_checkpoint``, ``load_upload``, ``set_split``) that tests call directly. Errors from user
data (an unreadable upload, a bad checkpoint) go to the status line, never a traceback.
ipywidgets is imported only when a demo is built. Only APIs shared by ipywidgets 7 and 8 are
used (Jupyter, Colab, Kaggle).

>>> ColorizeDemo(checkpoints=["ddcolor_paper_tiny.pth"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from colorlib.catalog import book_models, default_model, released_models
from colorlib.gallery import (
    GRAY_BASELINE,
    cached_colorizer,
    download_link,
    fit_within,
    gray_and_colour,
    png_bytes,
    read_photo,
    split_view,
    uploaded_file,
    uploaded_image,
)
from colorlib.models.hub import DEFAULT_RELEASED

__all__ = ["ColorizeDemo", "colorize_demo"]

_MESSAGE_LENGTH = 240  # characters of an error shown on the status line


# ----------------------------------------------------------------------------- the live demo


def _unique(names, name: str) -> str:
    """``name``, or ``name (2)``, ``name (3)``... whichever is not taken yet."""
    candidate, number = name, 2
    while candidate in names:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def _name_photos(photos, samples: Sequence[Path]) -> dict[str, Path | Image.Image]:
    """Dropdown name -> photo: the given photos first (named by file stem), then the samples."""
    if isinstance(photos, Mapping):
        items = [(str(name), photo) for name, photo in photos.items()]
    else:
        items = [
            (Path(p).stem if isinstance(p, str | os.PathLike) else f"photo {i + 1}", p)
            for i, p in enumerate(photos or ())
        ]
    named: dict[str, Path | Image.Image] = {}
    for name, photo in [*items, *((Path(p).stem, p) for p in samples)]:
        if not isinstance(photo, str | os.PathLike | Image.Image):
            raise TypeError(f"photo {name!r} must be a path or a PIL.Image, got {photo!r:.60}")
        named[_unique(named, name)] = Path(photo) if not isinstance(photo, Image.Image) else photo
    return named


class ColorizeDemo:
    """Pick or upload a photo, pick a model, compare gray / colorized / original, download.

    Args:
        photos: extra photos (paths or PIL images, or a name -> photo mapping), listed first.
        checkpoints: extra checkpoint files (colorlib ``.pt`` or released DDColor ``.pth``).
        checkpoint_folder: where the book's runs are (default ``checkpoint_dir()``), listed with
            readable names in the book's order (:func:`colorlib.catalog.book_models`).
        include_samples: also list the bundled sample photos.
        released: list the DDColor authors' released weights first (when cached, or when the
            Hugging Face Hub answers; downloaded on first use); offline, the status line says
            why they are missing.
        show_all: also list the ablation runs (and other profiles' smoke runs) of the
            checkpoint folder (:func:`colorlib.catalog.book_models`).
        model: the model chosen first: a name in the list, a checkpoint path, or ``None``
            (the authors' recommended ``ddcolor-modelscope`` when it can be had, else the
            book's best model by :data:`colorlib.catalog.PREFERRED`, else the gray baseline).
        device: where models run (default :func:`colorlib.runtime.get_device`).
        max_side: photos are shrunk to this longer side before colorizing (the download's size).
        preview_side: longer side of the on-screen previews.

    Attributes:
        widget: the ``ipywidgets.VBox`` (displaying the demo displays it).
        photo, gray, result: the working photo, its gray input and colorization (PIL, RGB).
        message, error: the status line as text; the last error message or ``None``.

    Example:
        >>> demo = ColorizeDemo(checkpoints=["ddcolor_paper_tiny.pth"])  # doctest: +SKIP
        >>> demo  # in a notebook cell  # doctest: +SKIP
    """

    def __init__(
        self,
        photos=None,
        checkpoints: Sequence = (),
        *,
        checkpoint_folder=None,
        include_samples: bool = True,
        released: bool = True,
        show_all: bool = False,
        model: str | os.PathLike | None = None,
        device=None,
        max_side: int = 1024,
        preview_side: int = 320,
    ) -> None:
        from colorlib.data.samples import bundled_sample_paths
        from colorlib.runtime import get_device

        self.device = get_device(None if device is None else str(device))
        self.max_side, self.preview_side = max_side, preview_side
        self.photos = _name_photos(photos, bundled_sample_paths() if include_samples else [])
        released, why_not = released_models() if released else ({}, None)
        book = book_models(checkpoint_folder, show_all=show_all)
        self.models: dict[str, Path | str | None] = {**released, **book}
        for path in checkpoints:
            self._register_model(Path(path).expanduser())
        self.models[GRAY_BASELINE] = None
        if model is None and released:  # the authors' recommendation, when it can be had
            model = next((k for k, v in released.items() if v == DEFAULT_RELEASED), None)
        if model is None:  # else the book's best by catalog.PREFERRED, never an ablation
            model = default_model(book)
        self.photo = self.gray = self.result = self.model = None
        self.photo_name = self.model_name = self.message = self.error = None
        self.model_size, self._previews, self._quiet = 256, None, False
        self._build_widgets()
        self._start(model)
        if why_not and self.error is None:
            self._status(why_not)

    def _start(self, model) -> None:
        """Choose the first model and photo; a startup error stays on the status line."""
        if isinstance(model, str | os.PathLike) and str(model) not in self.models:
            model = self.add_checkpoint(model, select=False) or GRAY_BASELINE
        self.select_model(str(model) if model is not None else next(iter(self.models)))
        startup_error = self.error
        if self.model_name is None:
            self.select_model(GRAY_BASELINE)
        if self.photos:
            self.select_photo(next(iter(self.photos)))
        if startup_error is not None:
            self._error(startup_error)
        elif not self.photos:
            self._status("Upload a photo to start.")

    # ------------------------------------------------------------------------- layout

    def _build_widgets(self) -> None:
        import ipywidgets as w

        wide = w.Layout(width="28em")
        self.photo_picker = w.Dropdown(options=list(self.photos), description="Photo", layout=wide)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.model_picker = w.Dropdown(options=list(self.models), description="Model", layout=wide)
        self.checkpoint_path = w.Text(
            placeholder="path/to/checkpoint.pt or a released DDColor .pth",
            description="Checkpoint",
            layout=wide,
        )
        self.add_button = w.Button(description="Add model")
        self.status = w.HTML()
        images = [w.Image(format="png", layout=w.Layout(max_width="100%")) for _ in range(4)]
        self.gray_image, self.colour_image, self.original_image, self.split_image = images
        # the before/after view at twice the previews' size (never blown up to the page width,
        # which blurs it and pushes the slider off the first screen); the slider spans it
        across = w.Layout(width=f"{2 * self.preview_side}px", max_width="100%")
        self.split_image.layout = across
        self.slider = w.IntSlider(
            value=50, min=0, max=100, description="gray | colour", layout=across
        )
        self.download = w.HTML()
        panels = [
            w.VBox([w.HTML(f"<b>{title}</b>"), image])
            for title, image in zip(("gray input", "colorized", "original"), images, strict=False)
        ]
        self.widget = w.VBox(
            [
                w.HBox([self.photo_picker, self.upload]),
                w.HBox([self.model_picker]),
                w.HBox([self.checkpoint_path, self.add_button]),
                self.status,
                w.HBox(panels),
                w.HTML("<b>before / after</b>"),
                self.split_image,
                self.slider,
                self.download,
            ]
        )
        self.photo_picker.observe(self._on_change(self.select_photo), names="value")
        self.model_picker.observe(self._on_change(self.select_model), names="value")
        self.slider.observe(self._on_change(self.set_split), names="value")
        self.upload.observe(self._on_change(self.load_upload), names="value")
        self.add_button.on_click(lambda _: self.add_checkpoint(self.checkpoint_path.value))

    @contextlib.contextmanager
    def _busy(self, message: str):
        """While the kernel works: an hourglass on the status line and every control disabled
        (a 2-core CPU takes a second or more; a second click would queue more work)."""
        controls = (
            self.photo_picker,
            self.model_picker,
            self.upload,
            self.checkpoint_path,
            self.add_button,
            self.slider,
        )
        before = [control.disabled for control in controls]
        self._status(f"\u23f3 {message}")
        for control in controls:
            control.disabled = True
        try:
            yield
        finally:
            for control, disabled in zip(controls, before, strict=True):
                control.disabled = disabled

    def _on_change(self, method):
        def callback(change) -> None:
            if not self._quiet and change["new"] is not None:
                method(change["new"])

        return callback

    def _show(self, widget, attribute: str, value) -> None:
        """Set a widget trait without running its callback (the method already runs)."""
        self._quiet = True
        try:
            setattr(widget, attribute, value)
        finally:
            self._quiet = False

    def _status(self, message: str, error: bool = False) -> None:
        self.message = message
        colour = "#b00020" if error else "#555"
        self.status.value = f'<span style="color:{colour}">{html.escape(message)}</span>'

    def _fail(self, context: str, err: Exception) -> None:
        # the first line only: torch's own messages run to paragraphs
        lines = str(err).strip().splitlines() or [""]
        text = lines[0] if len(lines[0]) <= _MESSAGE_LENGTH else lines[0][:_MESSAGE_LENGTH] + "..."
        if not isinstance(err, ValueError | TypeError | RuntimeError | OSError):
            text += f" ({type(err).__module__}.{type(err).__qualname__})"  # an unexpected kind
        self._error(f"{context}: {text}")

    def _error(self, message: str) -> None:
        self.error = message
        self._status(f"\u26a0 {message}", error=True)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------- callbacks

    def select_photo(self, name: str) -> None:
        """Show the photo listed as ``name`` (read, shrunk to ``max_side``) and colorize it."""
        if name not in self.photos:
            raise ValueError(f"unknown photo {name!r}; choose one of {list(self.photos)}")
        try:
            photo = fit_within(read_photo(self.photos[name]), self.max_side)
        except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
            self._show(self.photo_picker, "value", self.photo_name)
            self._fail(f"cannot read photo {name!r}", err)
            return
        self._show(self.photo_picker, "value", name)
        self.photo, self.photo_name = photo, name
        self.refresh()

    def select_model(self, name: str) -> None:
        """Use the model listed as ``name`` (loaded once per file) and colorize again."""
        if name not in self.models:
            raise ValueError(f"unknown model {name!r}; choose one of {list(self.models)}")
        path = self.models[name]
        model, size = None, 256
        if path is not None:
            try:
                with self._busy(f"Loading model {name} (a released one downloads once) ..."):
                    model, size = cached_colorizer(path, self.device)
            except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
                self._show(self.model_picker, "value", self.model_name)
                self._fail(f"cannot load model {name!r}", err)
                return
        self._show(self.model_picker, "value", name)
        self.model, self.model_size, self.model_name = model, size, name
        self.refresh()

    def _register_model(self, path: Path) -> str:
        """List ``path`` (once: a file already listed keeps its name) before the baseline."""
        same = [
            n
            for n, p in self.models.items()
            if isinstance(p, Path) and p.resolve() == path.resolve()
        ]
        name = same[0] if same else _unique(self.models, path.name)
        has_baseline = self.models.pop(GRAY_BASELINE, False) is None
        self.models[name] = path
        if has_baseline:
            self.models[GRAY_BASELINE] = None
        return name

    def add_checkpoint(self, path: str | os.PathLike, select: bool = True) -> str | None:
        """Load a checkpoint file, list it under its file name and (by default) use it.

        Returns the name it is listed under, or ``None`` when it cannot be loaded (the status
        line says why).
        """
        text = str(path).strip()
        if not text:
            self._error("type the path of a .pt or .pth checkpoint file first")
            return None
        path = Path(text).expanduser()
        try:
            self._status(f"Loading model {path.name} ...")
            cached_colorizer(path, self.device)
        except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
            self._fail(f"cannot load checkpoint {str(path)!r}", err)
            return None
        name = self._register_model(path)
        self._show(self.model_picker, "options", list(self.models))
        if self.model_name is not None:
            self._show(self.model_picker, "value", self.model_name)
        if select:
            self.select_model(name)
        return name

    def load_upload(self, value) -> None:
        """Read a ``FileUpload`` value (ipywidgets 7 or 8), list it and colorize it."""
        if not value:
            return  # an emptied upload widget
        try:
            filename = uploaded_file(value)[0]
            photo = fit_within(uploaded_image(value), self.max_side)
        except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
            self._fail("cannot read the upload", err)
            return
        name = _unique(self.photos, f"upload: {filename}")
        self.photos[name] = photo
        self._show(self.photo_picker, "options", list(self.photos))
        if self.photo_name is not None:
            self._show(self.photo_picker, "value", self.photo_name)
        self.select_photo(name)

    def set_split(self, percent: int) -> None:
        """Move the before-after split to ``percent`` (0-100) of the width, from the cache."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"percent must be an int in [0, 100], got {percent!r}")
        self._show(self.slider, "value", percent)
        if self._previews is not None:
            gray, colour, _ = self._previews
            self.split_image.value = png_bytes(split_view(gray, colour, percent / 100))

    def refresh(self) -> None:
        """Colorize the current photo with the current model and update every view."""
        if self.photo is None or self.model_name is None:
            return
        start = time.perf_counter()
        try:
            with self._busy(f"Colorizing {self.photo_name} with {self.model_name} ..."):
                self.gray, self.result = gray_and_colour(self.photo, self.model, self.model_size)
        except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
            self._fail(f"cannot colorize {self.photo_name!r} with {self.model_name!r}", err)
            return
        seconds = time.perf_counter() - start
        self._previews = tuple(
            fit_within(image, self.preview_side) for image in (self.gray, self.result, self.photo)
        )
        for widget, image in zip(
            (self.gray_image, self.colour_image, self.original_image), self._previews, strict=True
        ):
            widget.value = png_bytes(image)
        self.set_split(self.slider.value)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.photo_name).stem).strip("_") or "photo"
        self.download.value = download_link(self.result, f"{stem}-colorized.png")
        width, height = self.result.size
        self.error = None
        self._status(
            f"{self.model_name} on {self.photo_name} ({width}x{height}): {seconds:.2f} s "
            f"on {self.device.type}"
        )


def colorize_demo(*args, **kwargs):
    """A :class:`ColorizeDemo`'s widget (same arguments), ready to display in a cell."""
    return ColorizeDemo(*args, **kwargs).widget
