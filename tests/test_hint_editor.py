"""colorlib.hint_editor: the click-to-colour editor's logic, and its widget driven through the
same methods a browser click reaches."""

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from colorlib import hint_editor
from colorlib.hint_editor import HintEditor, hint_hex, photo_point
from colorlib.inference_hints import PhotoHint, load_hints, parse_color, parse_hints
from colorlib.models.resnet_unet import ResNetUNet

CONSTANT_AB = (0.25, -0.15)


class PaintOrConstant(nn.Module):
    """A hint model: the hint colour inside each hint patch, one fixed ``ab`` elsewhere."""

    hint_channels = 3
    required_multiple = 1

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        ab_hint, mask = x[:, 1:3], x[:, 3:]
        constant = torch.tensor(CONSTANT_AB).view(1, 2, 1, 1)
        return ab_hint + (1 - mask) * constant + 0 * self.unused


class Automatic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, L):
        return self.conv(L)


def _photo(width=64, height=48, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(60, 200, (height, width, 3), dtype=np.uint8))


def _editor(**kwargs):
    return HintEditor(_photo(), PaintOrConstant(), size=32, **kwargs)


def _counting(monkeypatch):
    calls = []
    real = hint_editor.colorize_with_hints

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(hint_editor, "colorize_with_hints", counted)
    return calls


def test_one_edit_recomputes_once_and_undo_reuses_the_cache(monkeypatch):
    calls = _counting(monkeypatch)
    editor = _editor()
    first = editor.result()
    assert first.size == (64, 48) and first.mode == "RGB" and len(calls) == 1
    assert editor.result() is first and len(calls) == 1
    editor.place(10, 20)  # the default colour comes from the cached result: no colorization
    assert len(calls) == 1
    editor.result()
    editor.result()
    assert len(calls) == 2
    editor.recolour(0, "#ff0000")
    editor.result()
    assert len(calls) == 3 and editor.computations == 3
    assert editor.undo() and editor.undo()
    assert editor.result() is first and len(calls) == 3


def test_the_photos_lightness_is_computed_once_for_all_edits(monkeypatch):
    seen = []
    real = hint_editor.photo_lightness
    monkeypatch.setattr(hint_editor, "photo_lightness", lambda *a: seen.append(1) or real(*a))
    editor = _editor()
    first = editor.result()
    editor.place(10, 20, "#ff0000")
    editor.result()
    editor.place(40, 5, "#00ff00")
    third = editor.result()
    assert len(seen) == 1 and editor.computations == 3
    fresh = hint_editor.colorize_with_hints(editor.model, editor.photo, editor.hints, 32)
    assert np.array_equal(np.asarray(third), np.asarray(fresh))  # as if computed afresh
    assert not np.array_equal(np.asarray(third), np.asarray(first))


def test_the_default_colour_is_the_colour_predicted_there():
    editor = _editor()
    before = editor.result()
    expected = "#{:02x}{:02x}{:02x}".format(*before.getpixel((30, 7)))
    assert editor.predicted_color(30, 7) == expected
    hint = editor.place(30, 7, size=3)
    assert hint == PhotoHint(30, 7, expected, 3) and editor.hints == [hint]
    # the model was already predicting that chroma there: the picture barely moves
    before, after = np.asarray(before), np.asarray(editor.result())
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 3


def test_a_hint_colours_the_result_where_it_is_placed():
    editor = _editor()
    before = np.asarray(editor.result())[24, 32].astype(int)
    editor.place(32, 24, "#d02020", size=5)
    after = np.asarray(editor.result())[24, 32].astype(int)
    red_minus_blue = lambda rgb: rgb[0] - rgb[2]  # noqa: E731
    assert red_minus_blue(after) > red_minus_blue(before) + 40


def test_recolour_undo_and_clear_edit_the_hint_list():
    editor = _editor()
    assert not editor.undo()  # nothing to undo yet
    a = editor.place(1, 2, "#112233")
    b = editor.place(3, 4, (20.0, -30.0), size=3)
    assert editor.recolour(1, "#abcdef") == PhotoHint(3, 4, "#abcdef", 3)
    assert editor.hints == [a, PhotoHint(3, 4, "#abcdef", 3)]
    editor.clear()
    assert editor.hints == []
    editor.clear()  # no hints: not an edit
    assert editor.undo() and editor.hints == [a, PhotoHint(3, 4, "#abcdef", 3)]
    assert editor.undo() and editor.hints == [a, b]
    assert editor.undo() and editor.hints == [a]
    assert editor.undo() and editor.hints == [] and not editor.undo()


def test_bad_edits_name_the_value_and_change_nothing():
    editor = _editor()
    editor.place(5, 5, "#000000")
    with pytest.raises(ValueError, match=r"x=64, y=0 is outside the 64x48 photo"):
        editor.place(64, 0)
    with pytest.raises(ValueError, match="'red'"):
        editor.place(1, 1, "red")
    with pytest.raises(ValueError, match="odd int"):
        editor.place(1, 1, "#000000", size=2)
    with pytest.raises(ValueError, match=r"no hint 1: expected an index in \[0, 1\)"):
        editor.recolour(1, "#000000")
    with pytest.raises(ValueError, match=r"\(300, 0\)"):
        editor.recolour(0, (300, 0))
    assert editor.hints == [PhotoHint(5, 5, "#000000")]
    assert editor.undo() and editor.hints == [] and not editor.undo()  # one edit only
    with pytest.raises(ValueError, match="takes no colour hints"):
        HintEditor(_photo(), Automatic())


def test_hints_json_round_trips_through_load_hints(tmp_path):
    editor = _editor()
    editor.place(10, 20, "#3A6FD8")
    editor.place(63, 47, (20.0, -60.5), size=5)
    editor.place(0.5, 3.25)  # a fraction is a position inside a pixel
    path = tmp_path / "hints.json"
    path.write_text(editor.hints_json(), encoding="utf-8")
    loaded = load_hints(path)
    assert loaded == editor.hints
    assert [h.ab for h in loaded] == [h.ab for h in editor.hints]
    assert json.loads(editor.hints_json())[1] == {
        "x": 63,
        "y": 47,
        "color": [20.0, -60.5],
        "size": 5,
    }
    fresh = _editor()
    fresh.set_hints(json.loads(editor.hints_json()))
    assert fresh.hints == editor.hints
    assert np.array_equal(np.asarray(fresh.result()), np.asarray(editor.result()))


def test_photo_point_maps_a_preview_click_to_the_photo():
    assert photo_point({"dataX": 16, "dataY": 12}, (32, 24), (64, 48)) == (32, 24)
    assert photo_point({"dataX": 31.9, "dataY": 23.9}, (32, 24), (64, 48)) == (63, 47)
    assert photo_point({"dataX": 40, "dataY": -1}, (32, 24), (64, 48)) == (63, 0)  # clamped
    relative = {"relativeX": 50, "relativeY": 25, "boundingRectWidth": 100}
    relative["boundingRectHeight"] = 75
    assert photo_point(relative, (32, 24), (64, 48)) == (32, 16)
    with pytest.raises(ValueError, match="dataX/dataY"):
        photo_point({"type": "click"}, (32, 24), (64, 48))


def test_hint_hex_shows_hex_and_lab_colours():
    assert hint_hex(PhotoHint(0, 0, "#AABBCC")) == "#aabbcc"
    shown = hint_hex(PhotoHint(0, 0, (40.0, 30.0)))
    assert re.fullmatch(r"#[0-9a-f]{6}", shown)
    a, b = parse_color(shown)  # a reddish Lab pair stays reddish
    assert a > 0.2 and b > 0.1


def test_a_real_hint_network_colorizes_through_the_editor():
    torch.manual_seed(0)
    model = ResNetUNet(pretrained=False, encoder="efficientnet-lite0", hint_channels=3)
    editor = HintEditor(_photo(70, 50), model, size=32)
    editor.place(12, 30, "#20a040", size=3)
    assert editor.result().size == (70, 50)
    assert parse_hints(json.loads(editor.hints_json())) == editor.hints


# ----------------------------------------------------------------------------- the widget


def _decoded_downloads(html_text):
    links = dict(re.findall(r'download="([^"]+)" href="data:[^;]+;base64,([^"]+)"', html_text))
    return {name: base64.b64decode(data) for name, data in links.items()}


def test_the_widget_drives_the_editor_through_its_methods(monkeypatch):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("ipyevents")
    calls = _counting(monkeypatch)
    ui = hint_editor.HintEditorUI(_editor(), preview_side=32, name="test")
    editor = ui.editor
    assert ui.gray.size == (32, 24) and len(calls) == 1 and ui.events is not None
    ui.events._handle_mouse_msg(None, {"type": "click", "dataX": 16, "dataY": 12}, [])
    assert [(h.x, h.y, h.size) for h in editor.hints] == [(32, 24, 1)]
    assert ui.selected == 0 and ui.picker.value == editor.hints[0].color
    assert len(ui.chooser.options) == 1 and len(calls) == 2  # one click, one colorization
    ui.picker.value = "#ff0000"  # the user picks red
    assert editor.hints[0].color == "#ff0000" and len(calls) == 3
    assert ui.downloads.value == ""  # links are made on demand, not at every edit
    ui.prepare_button.click()
    files = _decoded_downloads(ui.downloads.value)
    assert json.loads(files["test-hints.json"]) == json.loads(editor.hints_json())
    png = Image.open(io.BytesIO(files["test-colorized.png"]))
    assert np.array_equal(np.asarray(png), np.asarray(editor.result())) and len(calls) == 3
    ui.on_click({"type": "click", "dataX": 99, "relativeX": 0})  # no dataY: a message
    assert ui.message.startswith("\u26a0") and len(editor.hints) == 1
    ui.undo_button.click()
    assert ui.downloads.value == ""  # stale links are dropped
    assert editor.hints[0].color != "#ff0000" and ui.picker.value == editor.hints[0].color
    assert len(calls) == 3  # undo: from the cache
    ui.clear_button.click()
    assert editor.hints == [] and ui.selected is None and ui.chooser.options == ()
    ui.undo_button.click()
    ui.undo_button.click()
    ui.undo_button.click()
    assert editor.hints == [] and ui.message == "nothing to undo"
