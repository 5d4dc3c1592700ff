"""colorlib.widgets: the demo's pure functions, and the demo driven through its methods."""

import base64
import io
import re
from datetime import datetime

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

matplotlib.use("Agg")

from colorlib import gallery, widgets  # noqa: E402
from colorlib.checkpoint import save_checkpoint  # noqa: E402
from colorlib.data.images import UnreadableImage  # noqa: E402
from colorlib.training.config import Stage, TrainConfig, build_generator  # noqa: E402

pytest.importorskip("ipywidgets")

RED, BLUE = (200, 30, 30), (30, 30, 200)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    gallery.clear_model_cache()
    yield
    gallery.clear_model_cache()


def _photo(width=40, height=24, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _tiny_checkpoint(path, image_size=32):
    """A real colorlib checkpoint of an untrained 3-level U-Net with 4 base channels."""
    config = TrainConfig(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator=None,
        image_size=image_size,
        stages=(Stage("pretrain", max_steps=0),),
    )
    torch.manual_seed(0)
    state = {"config": config.to_dict(), "generator": build_generator(config).state_dict()}
    return save_checkpoint(path, {**state, "progress": {"step": 0}})


def _demo(tmp_path, **kwargs):
    options = {"photos": {"one": _photo(), "two": _photo(seed=1)}, "include_samples": False}
    options |= {"released": False}
    options |= {"checkpoint_folder": tmp_path / "checkpoints", "device": "cpu"}
    return widgets.ColorizeDemo(**(options | kwargs))


# ----------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(("fraction", "gray_columns"), [(0.0, 0), (0.5, 5), (1.0, 10)])
def test_split_view_puts_gray_left_of_the_split(fraction, gray_columns):
    gray, colour = Image.new("L", (10, 4), 77), Image.new("RGB", (10, 4), RED)
    view = np.asarray(gallery.split_view(gray, colour, fraction))
    assert view.shape == (4, 10, 3)
    assert (view[:, :gray_columns] == 77).all()
    assert (view[:, gray_columns:] == RED).all()


def test_split_view_rejects_bad_sizes_and_fractions():
    gray, colour = Image.new("RGB", (10, 4)), Image.new("RGB", (10, 4))
    with pytest.raises(ValueError, match="same size"):
        gallery.split_view(gray, Image.new("RGB", (9, 4)), 0.5)
    for bad in (1.5, -0.1, float("nan"), "half", True):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            gallery.split_view(gray, colour, bad)


def test_png_bytes_round_trip():
    photo = _photo()
    data = gallery.png_bytes(photo)
    assert data.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(photo))
    with pytest.raises(TypeError, match="ndarray"):
        gallery.png_bytes(np.zeros((4, 4, 3), np.uint8))


def test_download_link_decodes_to_the_same_image():
    photo = _photo()
    link = gallery.download_link(photo, "my photo.png")
    match = re.fullmatch(
        r'<a download="my photo.png" href="data:image/png;base64,([^"]+)">.*</a>', link
    )
    assert match is not None
    decoded = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    assert np.array_equal(np.asarray(decoded), np.asarray(photo))
    assert 'download="a&quot;b.png"' in gallery.download_link(photo, 'a"b.png')
    with pytest.raises(ValueError, match="folders"):
        gallery.download_link(photo, "../evil.png")


def test_uploaded_image_reads_ipywidgets_8_and_7_values():
    photo = _photo()
    content = _png(photo)
    entry = {"name": "a.png", "type": "image/png", "content": memoryview(content)}
    v8 = ({**entry, "size": len(content), "last_modified": datetime(2024, 1, 1)},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png"}, "content": content}}
    for value in (v8, list(v8), v8[0], v7):
        image = gallery.uploaded_image(value)
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(photo))


def test_uploaded_image_names_the_file_when_it_is_not_an_image():
    value = ({"name": "notes.txt", "content": memoryview(b"certainly not a picture")},)
    with pytest.raises(UnreadableImage, match=r"notes\.txt.*not a readable image") as caught:
        gallery.uploaded_image(value)
    assert "colorlib-upload" not in str(caught.value)  # not the temporary file's name
    with pytest.raises(UnreadableImage, match="empty"):
        gallery.uploaded_image({"e.png": {"metadata": {}, "content": b""}})
    with pytest.raises(ValueError, match="no file"):
        gallery.uploaded_image(())
    with pytest.raises(TypeError, match="FileUpload"):
        gallery.uploaded_image(42)


def test_cached_colorizer_loads_each_file_once_and_reloads_a_new_version(tmp_path, monkeypatch):
    from colorlib import inference as infer

    path = _tiny_checkpoint(tmp_path / "tiny.pt")
    calls = []
    real = infer.load_colorizer
    monkeypatch.setattr(
        infer, "load_colorizer", lambda p, device: calls.append(p) or real(p, device)
    )
    model, size = gallery.cached_colorizer(path)
    assert size == 32 and gallery.cached_colorizer(str(path))[0] is model and len(calls) == 1
    _tiny_checkpoint(path, image_size=64)  # rewritten: a new version
    assert gallery.cached_colorizer(path)[1] == 64 and len(calls) == 2
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        gallery.cached_colorizer(tmp_path / "nothing.pt")


def test_gray_and_colour_keeps_size_and_lightness(tmp_path):
    photo = _photo(37, 21)
    gray, colour = gallery.gray_and_colour(photo)  # the baseline
    assert gray.size == colour.size == (37, 21)
    assert np.array_equal(np.asarray(gray), np.asarray(colour))
    channels = np.asarray(gray).astype(int)
    assert np.abs(channels[..., 0] - channels[..., 2]).max() <= 1
    model, size = gallery.cached_colorizer(_tiny_checkpoint(tmp_path / "tiny.pt"))
    assert gallery.gray_and_colour(photo, model, size)[1].size == (37, 21)


def test_static_gallery_shows_gray_colour_original_rows(tmp_path):
    photos = [_photo(), _photo(seed=1)]
    fig = gallery.static_gallery(_tiny_checkpoint(tmp_path / "tiny.pt"), photos, label="tiny")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["gray input", "tiny", "original"]
    assert len(fig.axes) == 6
    assert np.array_equal(fig.axes[5].images[0].get_array(), np.asarray(photos[1]))
    baseline = gallery.static_gallery(None, photos[:1])
    assert baseline.axes[1].get_title() == gallery.GRAY_BASELINE
    with pytest.raises(ValueError, match="at least one photo"):
        gallery.static_gallery(None, [])


# ----------------------------------------------------------------------------- the demo


def _decoded(image_widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_widget.value)))


def test_demo_with_the_gray_baseline_fills_every_view(tmp_path):
    demo = _demo(tmp_path)
    assert demo.model_picker.options == (gallery.GRAY_BASELINE,)
    assert demo.photo_picker.options == ("one", "two") and demo.photo_name == "one"
    assert demo.result.size == (40, 24) and demo.error is None
    assert np.array_equal(_decoded(demo.colour_image), np.asarray(demo.gray))
    assert np.array_equal(_decoded(demo.original_image), np.asarray(demo.photo))
    assert 'download="one-colorized.png"' in demo.download.value
    assert "gray baseline" in demo.message


def test_demo_model_and_photo_selection_and_slider(tmp_path):
    _tiny_checkpoint(tmp_path / "checkpoints" / "tiny.pt")
    demo = _demo(tmp_path)
    label = "tiny.pt (unet, 0 steps)"  # a run of no book recipe: its name, model and steps
    assert demo.model_picker.options == (label, gallery.GRAY_BASELINE)
    assert demo.model_name == label and demo.model_size == 32
    colour = demo.result
    assert not np.array_equal(np.asarray(colour), np.asarray(demo.gray))  # it added colour
    demo.select_photo("two")
    assert demo.photo_picker.value == "two" and demo.result is not colour
    model_runs = []
    demo.model.register_forward_hook(lambda *args: model_runs.append(1))
    demo.set_split(100)
    assert np.array_equal(_decoded(demo.split_image), np.asarray(demo.gray))
    demo.slider.value = 0  # as if dragged in the browser
    assert np.array_equal(_decoded(demo.split_image), np.asarray(demo.result))
    assert model_runs == []  # the slider never reruns the model
    demo.model_picker.value = gallery.GRAY_BASELINE  # as if picked in the browser
    assert demo.model is None and np.array_equal(np.asarray(demo.result), np.asarray(demo.gray))
    with pytest.raises(ValueError, match="unknown photo"):
        demo.select_photo("nope")


def test_demo_bad_checkpoint_shows_a_message_not_a_traceback(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "broken.pt").write_bytes(b"not a torch file")
    demo = _demo(tmp_path)  # the broken file is listed first: the demo falls back to gray
    assert demo.model_name == gallery.GRAY_BASELINE and demo.result is not None
    assert "broken.pt" in demo.error and "broken.pt" in demo.status.value
    assert demo.model_picker.value == gallery.GRAY_BASELINE
    assert demo.add_checkpoint(tmp_path / "missing.pt") is None
    assert "missing.pt" in demo.message and "not found" in demo.message
    odd = tmp_path / "odd.pth"  # a released-DDColor-style file of neither tiny nor large
    torch.save(
        {"params": {"encoder.arch.downsample_layers.0.0.weight": torch.zeros(8, 3, 4, 4)}}, odd
    )
    assert demo.add_checkpoint(odd) is None
    assert "odd.pth" in demo.message and "DDColor" in demo.message
    assert demo.model_picker.options == ("broken.pt (unreadable)", gallery.GRAY_BASELINE)
    demo.add_checkpoint("  ")
    assert "type the path" in demo.message


def test_demo_add_checkpoint_lists_and_uses_it_once(tmp_path):
    demo = _demo(tmp_path)
    path = _tiny_checkpoint(tmp_path / "elsewhere" / "tiny.pt")
    demo.checkpoint_path.value = str(path)
    demo.add_button.click()  # as if clicked in the browser
    assert demo.model_picker.options == ("tiny.pt", gallery.GRAY_BASELINE)
    assert demo.model_picker.value == "tiny.pt" and demo.model_size == 32
    assert demo.add_checkpoint(str(path)) == "tiny.pt"  # the same file is listed once
    assert len(demo.model_picker.options) == 2


def test_demo_upload_of_both_formats_and_of_garbage(tmp_path):
    demo = _demo(tmp_path)
    content = _png(_photo(30, 20, seed=5))
    entry = {"name": "mine.png", "type": "image/png", "content": memoryview(content)}
    demo.upload.value = ({**entry, "size": len(content), "last_modified": datetime(2024, 1, 1)},)
    assert demo.photo_name == "upload: mine.png" and demo.result.size == (30, 20)
    assert demo.photo_picker.options[-1] == "upload: mine.png"
    demo.load_upload({"mine.png": {"metadata": {}, "content": content}})  # ipywidgets 7
    assert demo.photo_name == "upload: mine.png (2)"
    before = demo.result
    demo.load_upload({"junk.jpg": {"metadata": {}, "content": b"\x00garbage"}})
    assert "junk.jpg" in demo.error and demo.result is before


def test_demo_shrinks_big_photos_and_lists_the_bundled_samples(tmp_path):
    demo = _demo(tmp_path, photos=[_photo(200, 100)], include_samples=True, max_side=64)
    assert demo.photo_picker.options[0] == "photo 1" and "astronaut" in demo.photo_picker.options
    assert demo.result.size == (64, 32)
    assert max(_decoded(demo.colour_image).shape[:2]) <= demo.preview_side
    widget = widgets.colorize_demo([_photo()], include_samples=False, checkpoint_folder=tmp_path)
    assert isinstance(widget, type(demo.widget))


def test_demo_offers_the_released_weights_first_and_picks_the_authors_default(
    tmp_path, monkeypatch
):
    label = "ddcolor-modelscope: the authors' default (released)"
    offered = {"ddcolor-tiny: tiny (released)": "ddcolor-tiny", label: "ddcolor-modelscope"}
    monkeypatch.setattr(widgets, "released_models", lambda: (offered, None))
    loaded = []

    def fake_load(name, device="cpu"):
        loaded.append(str(name))
        return nn.Conv2d(1, 2, 1), 32

    monkeypatch.setattr(widgets, "cached_colorizer", fake_load)
    _tiny_checkpoint(tmp_path / "checkpoints" / "book.pt")
    demo = _demo(tmp_path, released=True)
    assert list(demo.models)[:2] == list(offered) and list(demo.models)[-1] == gallery.GRAY_BASELINE
    assert demo.model_name == label and loaded[0] == "ddcolor-modelscope"


def test_demo_offline_falls_back_to_the_books_models_and_says_why(tmp_path, monkeypatch):
    why = "the released weights need the internet once: showing the book's own models"
    monkeypatch.setattr(widgets, "released_models", lambda: ({}, why))
    _tiny_checkpoint(tmp_path / "checkpoints" / "book.pt")
    demo = _demo(tmp_path, released=True)
    assert demo.model_name == "book.pt (unet, 0 steps)" and why in demo.message


def test_demo_disables_its_controls_while_it_works(tmp_path, monkeypatch):
    demo = _demo(tmp_path)
    controls = (demo.photo_picker, demo.model_picker, demo.upload, demo.slider, demo.add_button)
    seen = []
    real = widgets.gray_and_colour

    def spy(*args):
        seen.append(([c.disabled for c in controls], demo.message))
        return real(*args)

    monkeypatch.setattr(widgets, "gray_and_colour", spy)
    demo.select_photo("two")
    assert seen and all(seen[-1][0]) and seen[-1][1].startswith("\u23f3 Colorizing two")
    assert not any(c.disabled for c in controls)  # back after the work

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(widgets, "gray_and_colour", broken)
    demo.select_photo("one")
    assert not any(c.disabled for c in controls) and "boom" in demo.error  # also after failing
