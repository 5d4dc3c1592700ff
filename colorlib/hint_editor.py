"""Click to colour: the interactive editor of colour hints (Zhang, Zhu, Isola et al., 2017).

The user clicks a point of the gray photo, the editor proposes the colour the model predicts
there, the user picks another one, and the photo is colorized again following every hint.

Design:

* :class:`HintEditor` is all the logic, a plain class tested without a browser: the photo,
  the hint model and a list of :class:`~colorlib.inference_hints.PhotoHint` s (photo pixels),
  edited by ``place``, ``recolour``, ``undo`` and ``clear`` (every edit undoable: a stack of
  earlier lists). :meth:`~HintEditor.result` (``colorize_with_hints``, with the photo's
  lightness computed once) is cached by hint list (the last few): an edit costs one
  colorization, an undo none. A new point's default colour is the current result's, as hex.
* :meth:`~HintEditor.hints_json` writes the documented file format
  (:func:`~colorlib.inference_hints.load_hints` reads it back; ``colorlib colorize --hints``).
* :class:`HintEditorUI` is the ipywidgets layout: the gray photo (a preview, hints marked) to
  click on, through ``ipyevents`` (x / y sliders and a button where it is not installed), a
  ``ColorPicker`` set to the proposed colour of the selected hint, a hint selector, Undo and
  Clear, the result and, on demand, two download links (PNG result, JSON hints) as in
  :mod:`colorlib.widgets`. Its handlers (``on_click``, ``on_colour``, ...) only translate a
  browser event (:func:`photo_point`) and call the editor's methods. ipywidgets and
  ipyevents are imported when a UI is built, never by ``import colorlib.hint_editor``.

>>> editor = HintEditor("old.jpg", hint_model, size=256)  # doctest: +SKIP
>>> editor.place(120, 45, "#3a6fd8"); editor.result().save("old_colour.png")  # doctest: +SKIP
>>> HintEditorUI(editor)  # in a notebook cell  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections import OrderedDict

import torch
from PIL import Image, ImageDraw
from torch import Tensor, nn

from colorlib.color import AB_SCALE, lab_to_rgb
from colorlib.data.images import gray_baseline
from colorlib.gallery import download_link, fit_within, read_photo
from colorlib.inference_hints import (
    PhotoHint,
    colorize_with_hints,
    model_hint_channels,
    parse_hints,
)
from colorlib.inference_memory import photo_lightness

__all__ = ["HintEditor", "HintEditorUI", "hint_hex", "photo_point"]

_MARKER_LIGHTNESS = 65.0  # Lab L* at which a Lab-pair hint is drawn on its marker


def hint_hex(hint: PhotoHint) -> str:
    """The hint's colour as ``"#rrggbb"``: its own hex, or a Lab pair shown at L* 65."""
    if isinstance(hint.color, str):
        return hint.color.strip().lower()
    a, b = (v * AB_SCALE for v in hint.ab)
    rgb = lab_to_rgb(torch.tensor([_MARKER_LIGHTNESS, a, b], dtype=torch.float64).view(3, 1, 1))
    return "#" + "".join(f"{round(float(v) * 255):02x}" for v in rgb.flatten())


def photo_point(event: dict, preview_size: tuple[int, int], photo_size: tuple[int, int]):
    """``(x, y)`` photo pixel of a click on a preview: an ipyevents mouse event's ``dataX`` /
    ``dataY`` (the preview image's own pixels), else ``relativeX`` / ``relativeY`` scaled by
    ``boundingRectWidth`` / ``boundingRectHeight``; sizes are PIL ``(width, height)``.

    Raises:
        ValueError: an event without coordinates.
    """
    (pw, ph), (width, height) = preview_size, photo_size
    if "dataX" in event and "dataY" in event:
        px, py = float(event["dataX"]), float(event["dataY"])
    elif {"relativeX", "relativeY", "boundingRectWidth", "boundingRectHeight"} <= set(event):
        px = float(event["relativeX"]) * pw / max(float(event["boundingRectWidth"]), 1.0)
        py = float(event["relativeY"]) * ph / max(float(event["boundingRectHeight"]), 1.0)
    else:
        raise ValueError(f"a click event needs dataX/dataY or relativeX/relativeY, got {event!r}")
    x = min(max(int(px * width / pw), 0), width - 1)
    return x, min(max(int(py * height / ph), 0), height - 1)


class HintEditor:
    """A photo, a hint model and the user's colour hints; the colorization that follows them.

    Args:
        photo: a path or a ``PIL.Image`` (any mode; kept as RGB, shrunk to ``max_side``).
        model: a hint model (``cat(L, hints) -> ab``, e.g. ``ResNetUNet(hint_channels=3)``).
        size: the model's training size (the network sees ``size x size``).
        hint_size: default patch side of a new hint, odd, in the model's pixels.
        keep_aspect: as :func:`~colorlib.inference_hints.colorize_with_hints`.
        device: where the model runs (None: where it is).
        max_side: longer side the photo is shrunk to first (None: keep its size).
        cache_size: results kept (one per hint list).

    Attributes:
        photo: the working photo (RGB); ``hints``: the current hints, in placing order;
        computations: how many colorizations have run (one per new hint list).

    Raises:
        ValueError: a model that takes no hints, or a bad ``hint_size``.
    """

    def __init__(
        self,
        photo,
        model: nn.Module,
        size: int = 256,
        *,
        hint_size: int = 1,
        keep_aspect: bool = False,
        device=None,
        max_side: int | None = 1024,
        cache_size: int = 8,
    ) -> None:
        if model_hint_channels(model) == 0:
            raise ValueError(
                "this model takes no colour hints (its input is L alone); use a hint model, "
                "e.g. ResNetUNet(hint_channels=3) trained with the 'hints' recipe"
            )
        self.photo = read_photo(photo)
        if max_side is not None:
            self.photo = fit_within(self.photo, max_side)
        self.model, self.size, self.keep_aspect, self.device = model, size, keep_aspect, device
        PhotoHint(0, 0, "#000000", hint_size)  # checks hint_size: odd, >= 1
        self.hint_size, self.cache_size = hint_size, max(1, int(cache_size))
        self.hints: list[PhotoHint] = []
        self.computations, self._history = 0, []  # _history: earlier hint lists, as tuples
        self._lightness: Tensor | None = None  # the photo's L (1, 1, H, W), once needed
        self._results: OrderedDict[tuple[PhotoHint, ...], Image.Image] = OrderedDict()

    def _edit(self, hints: list[PhotoHint]) -> None:
        self._history.append(tuple(self.hints))
        self.hints = hints

    def place(self, x: float, y: float, color=None, size: int | None = None) -> PhotoHint:
        """Add a hint at photo pixel ``(x, y)``; ``color`` None: the colour predicted there now
        (:meth:`predicted_color`); ``size`` None: ``hint_size``. Returns the new hint.

        Raises:
            ValueError: a point outside the photo, a bad colour or size (nothing changes).
        """
        size = self.hint_size if size is None else size
        PhotoHint(x, y, "#000000", size).check_inside(self.photo.height, self.photo.width)
        hint = PhotoHint(x, y, self.predicted_color(x, y) if color is None else color, size)
        self._edit([*self.hints, hint])
        return hint

    def recolour(self, index: int, color) -> PhotoHint:
        """Give hint ``index`` (0-based, placing order) the colour ``color`` (``"#rrggbb"`` or
        a Lab ``(a, b)`` pair). Returns the new hint.

        Raises:
            ValueError: no such hint, or a bad colour (nothing changes).
        """
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            raise ValueError(f"no hint {index!r}: expected an index in [0, {len(self)})")
        old = self.hints[index]
        hint = PhotoHint(old.x, old.y, color, old.size)
        self._edit([*self.hints[:index], hint, *self.hints[index + 1 :]])
        return hint

    def set_hints(self, hints) -> None:
        """Replace every hint (undoable): :class:`PhotoHint` s or ``{"x", "y", "color",
        "size"?}`` dicts (e.g. ``json.load`` of a hints file)."""
        hints = list(hints)
        if any(isinstance(hint, dict) for hint in hints):
            hints = parse_hints(hints)
        for hint in hints:
            hint.check_inside(self.photo.height, self.photo.width)
        self._edit(hints)

    def undo(self) -> bool:
        """Go back to the hints before the last edit; False when there is nothing to undo."""
        if not self._history:
            return False
        self.hints = list(self._history.pop())
        return True

    def clear(self) -> None:
        """Remove every hint (undoable; nothing happens when there are none)."""
        if self.hints:
            self._edit([])

    def __len__(self) -> int:
        return len(self.hints)

    # ------------------------------------------------------------------------- results

    def result(self) -> Image.Image:
        """The photo colorized following the current hints (RGB, the photo's size), computed
        once per hint list (:func:`~colorlib.inference_hints.colorize_with_hints`)."""
        key = tuple(self.hints)
        if key not in self._results:
            if self._lightness is None:  # the photo never changes: its L is computed once
                self._lightness = photo_lightness(self.photo)
            args = (self.model, self.photo, key, self.size, self.keep_aspect, self.device)
            self._results[key] = colorize_with_hints(*args, lightness=self._lightness)
            self.computations += 1
            while len(self._results) > self.cache_size:
                self._results.popitem(last=False)
        self._results.move_to_end(key)
        return self._results[key]

    def predicted_color(self, x: float, y: float) -> str:
        """The current result's colour at photo pixel ``(x, y)``, as ``"#rrggbb"``."""
        PhotoHint(x, y, "#000000").check_inside(self.photo.height, self.photo.width)
        red, green, blue = self.result().getpixel((int(x), int(y)))
        return f"#{red:02x}{green:02x}{blue:02x}"

    def hints_json(self, indent: int | None = 2) -> str:
        """The hints as the JSON that :func:`~colorlib.inference_hints.load_hints` reads:
        ``[{"x", "y", "color", "size"}, ...]`` (a Lab colour as an ``[a, b]`` list)."""
        items = [
            {"x": h.x, "y": h.y, "color": h.color if isinstance(h.color, str) else list(h.color)}
            | {"size": h.size}
            for h in self.hints
        ]
        return json.dumps(items, indent=indent)


def _json_link(text: str, filename: str) -> str:
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    name = html.escape(filename)
    return f'<a download="{name}" href="data:application/json;base64,{data}">Download {name}</a>'


def _jpeg(image: Image.Image) -> bytes:
    """A preview for an ``Image(format="jpeg")`` widget: 10x faster to encode than PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class HintEditorUI:
    """The click-to-colour widget around a :class:`HintEditor` (see the module doc).

    An edit sends back two JPEG previews only; the download links (a full-size PNG as a
    ``data:`` URI, megabytes, and the hints' JSON) are made on "Prepare downloads" and
    dropped at the next edit, so that clicks stay fast.

    Args:
        editor: the logic; the UI only calls its methods.
        preview_side: longer side of the on-screen gray photo and result.
        name: file stem of the downloads.

    Attributes:
        widget: the ``ipywidgets.VBox``; ``events``: the ``ipyevents.Event`` (None without
        ipyevents, then ``x`` / ``y`` sliders and a button place a hint); ``selected``: the
        index of the hint the colour picker edits (None: none); ``message``: the status text.
    """

    def __init__(self, editor: HintEditor, preview_side: int = 512, name: str = "photo") -> None:
        import ipywidgets as w

        self.editor, self.name, self.selected, self.message = editor, name, None, ""
        self.gray, self._quiet = fit_within(gray_baseline(editor.photo), preview_side), False
        self.photo_image, self.result_image = w.Image(format="jpeg"), w.Image(format="jpeg")
        self.picker = w.ColorPicker(description="Colour", concise=False, value="#808080")
        self.chooser = w.Dropdown(description="Hint", options=[])
        self.hint_size = w.IntSlider(editor.hint_size, min=1, max=9, step=2, description="Size")
        buttons = (w.Button(description=d) for d in ("Undo", "Clear", "Prepare downloads"))
        self.undo_button, self.clear_button, self.prepare_button = buttons
        self.status, self.downloads = w.HTML(), w.HTML()
        placing = self._click_source(w)
        self.picker.observe(self.on_colour, names="value")
        self.chooser.observe(self.on_choose, names="value")
        self.undo_button.on_click(lambda _: self.on_undo())
        self.clear_button.on_click(lambda _: self.on_clear())
        self.prepare_button.on_click(lambda _: self.on_prepare())
        panels = [w.VBox([w.HTML("<b>click to colour</b>"), self.photo_image, *placing])]
        panels.append(w.VBox([w.HTML("<b>result</b>"), self.result_image]))
        buttons = [self.undo_button, self.clear_button]
        controls = w.HBox([self.chooser, self.picker, self.hint_size, *buttons])
        downloads = w.HBox([self.prepare_button, self.downloads])
        self.widget = w.VBox([controls, self.status, w.HBox(panels), downloads])
        self.refresh()

    def _click_source(self, w) -> list:
        """Mouse clicks on the photo through ipyevents, else sliders and a button."""
        try:
            from ipyevents import Event
        except ImportError:
            self.events = None
            gray_w, gray_h = self.gray.size
            sx = w.IntSlider(min=0, max=gray_w - 1, description="x")
            sy = w.IntSlider(min=0, max=gray_h - 1, description="y")
            button = w.Button(description="Place hint")
            button.on_click(lambda _: self.on_click({"dataX": sx.value, "dataY": sy.value}))
            return [w.HTML("(install ipyevents to click on the photo)"), sx, sy, button]
        self.events = Event(source=self.photo_image, watched_events=["click"])
        self.events.on_dom_event(self.on_click)
        return []

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------- handlers

    def _run(self, action, *args) -> None:
        """Run an editor action and refresh; a user error goes to the status line."""
        try:
            action(*args)
        except ValueError as err:
            self._status(f"\u26a0 {err}", error=True)
            return
        self.refresh()

    def on_click(self, event: dict) -> None:
        """A click on the gray preview: place a hint there with the predicted colour, select it."""
        if event.get("type", "click") != "click":
            return

        def place():
            x, y = photo_point(event, self.gray.size, self.editor.photo.size)
            self.editor.place(x, y, size=self.hint_size.value)
            self.selected = len(self.editor) - 1

        self._run(place)

    def on_colour(self, change) -> None:
        """The picker moved: recolour the selected hint."""
        if self._quiet or self.selected is None or change["new"] is None:
            return
        if change["new"] != hint_hex(self.editor.hints[self.selected]):
            self._run(self.editor.recolour, self.selected, change["new"])

    def on_choose(self, change) -> None:
        """Another hint chosen in the selector: the picker now edits it."""
        if not self._quiet and change["new"] is not None:
            self.selected = change["new"]
            self._sync_controls()

    def on_undo(self) -> None:
        if not self.editor.undo():
            self._status("nothing to undo")
            return
        self.refresh()

    def on_clear(self) -> None:
        self._run(self.editor.clear)

    def on_prepare(self) -> None:
        """The download links of the current result (PNG) and hints (JSON)."""
        png = download_link(self.editor.result(), f"{self.name}-colorized.png")
        hints = _json_link(self.editor.hints_json(), f"{self.name}-hints.json")
        self.downloads.value = f"{png} &nbsp; {hints}"

    # ------------------------------------------------------------------------- views

    def _status(self, message: str, error: bool = False) -> None:
        self.message = message
        colour = "#b00020" if error else "#555"
        self.status.value = f'<span style="color:{colour}">{html.escape(message)}</span>'

    def _sync_controls(self) -> None:
        hints = self.editor.hints
        if self.selected is not None and self.selected >= len(hints):
            self.selected = len(hints) - 1 if hints else None
        options = [(f"{i + 1}: ({h.x:g}, {h.y:g}) {hint_hex(h)}", i) for i, h in enumerate(hints)]
        self._quiet = True
        try:
            self.chooser.options = options
            self.chooser.value = self.selected
            if self.selected is not None:
                self.picker.value = hint_hex(hints[self.selected])
        finally:
            self._quiet = False

    def marked_preview(self) -> Image.Image:
        """The gray preview with each hint drawn as a square of its colour."""
        preview = self.gray.copy()
        draw = ImageDraw.Draw(preview)
        scale = preview.width / self.editor.photo.width
        for index, hint in enumerate(self.editor.hints):
            x, y = (hint.x + 0.5) * scale, (hint.y + 0.5) * scale
            outline = "#ffff00" if index == self.selected else "#000000"
            draw.rectangle((x - 4, y - 4, x + 4, y + 4), fill=hint_hex(hint), outline=outline)
        return preview

    def refresh(self) -> None:
        """Colorize (from the editor's cache when it can) and update the views."""
        start = time.perf_counter()
        try:
            result = self.editor.result()
        except Exception as err:  # noqa: BLE001 (UI boundary: a message, not a traceback)
            self._status(f"\u26a0 cannot colorize: {str(err).strip()[:240]}", error=True)
            return
        seconds = time.perf_counter() - start
        self._sync_controls()
        self.photo_image.value = _jpeg(self.marked_preview())
        self.result_image.value = _jpeg(fit_within(result, max(self.gray.size)))
        self.downloads.value = ""  # the links were of an earlier result
        self._status(f"{len(self.editor)} hint(s); colorized in {seconds:.2f} s")
