"""Tests for colorlib.data.images: robust reading of awkward files and the gray-photo filter."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from fakes import png_header, quadrants, saved
from PIL import Image

from colorlib.data.images import UnreadableImage, load_rgb, to_rgb_array


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))


def _pixel(image: Image.Image, xy) -> np.ndarray:
    return np.asarray(image.getpixel(xy), dtype=int)


def test_load_rgb_reads_plain_jpeg_and_png(tmp_path):
    png = load_rgb(saved(quadrants(), tmp_path / "q.png"))
    assert png.mode == "RGB" and png.size == (64, 48)
    assert np.array_equal(np.asarray(png), np.asarray(quadrants()))
    jpeg = load_rgb(saved(quadrants(), tmp_path / "q.jpg", quality=95))
    assert np.abs(_pixel(jpeg, (8, 8)) - (255, 0, 0)).max() <= 8


def test_load_rgb_rejects_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    quadrants(256, 256).save(buffer, "JPEG")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UnreadableImage, match="truncated") as info:
        load_rgb(path)
    assert info.value.path == path and "truncated" in info.value.reason


def test_load_rgb_rejects_corrupt_bytes_and_missing_files(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableImage, match="not a readable image"):
        load_rgb(path)
    with pytest.raises(UnreadableImage, match="cannot open"):
        load_rgb(tmp_path / "missing.png")


def test_unreadable_image_is_a_picklable_value_error(tmp_path):
    error = UnreadableImage(tmp_path / "x.png", "too small: 1x1")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason) == (tmp_path / "x.png", "too small: 1x1")


def test_load_rgb_converts_cmyk_jpeg(tmp_path):
    path = saved(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    image = load_rgb(path)
    assert image.mode == "RGB"
    assert np.abs(_pixel(image, (8, 8)) - (255, 0, 0)).max() <= 6  # C=0 M=Y=100%: red


def test_load_rgb_composites_rgba_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (255, 0, 0, 0)  # fully transparent red: shows the white background
    rgba[:, 8:12] = (0, 0, 255, 255)  # opaque blue
    rgba[:, 12:] = (0, 0, 0, 128)  # half-transparent black: mid gray
    image = load_rgb(saved(Image.fromarray(rgba), tmp_path / "rgba.png"))
    assert tuple(_pixel(image, (0, 0))) == (255, 255, 255)
    assert tuple(_pixel(image, (9, 0))) == (0, 0, 255)
    assert np.abs(_pixel(image, (14, 0)) - 127).max() <= 1


def test_load_rgb_converts_palette_png_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    palette.paste(0, (0, 0, 8, 16))
    opaque = load_rgb(saved(palette, tmp_path / "p.png"))
    assert tuple(_pixel(opaque, (12, 0))) == (10, 200, 30)
    assert tuple(_pixel(opaque, (0, 0))) == (0, 0, 0)
    keyed = load_rgb(saved(palette, tmp_path / "pt.png", transparency=0))
    assert tuple(_pixel(keyed, (0, 0))) == (255, 255, 255)  # transparent index -> white
    assert tuple(_pixel(keyed, (12, 0))) == (10, 200, 30)


def test_load_rgb_scales_16_bit_png_instead_of_clipping(tmp_path):
    values = np.array([[0, 257 * 100, 32768, 65535]], np.uint16).repeat(16, 0).repeat(4, 1)
    path = saved(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I;16")
    row = np.asarray(load_rgb(path))[0, ::4]  # (4, 3)
    assert np.array_equal(row[:, 0], row[:, 1]) and np.array_equal(row[:, 1], row[:, 2])
    assert row[:, 0].tolist() == [0, 100, 128, 255]


def test_load_rgb_scales_32_bit_int_and_float_tiffs(tmp_path):
    integer = np.array([[0, 65535]], np.int32).repeat(16, 0).repeat(8, 1)
    image = load_rgb(saved(Image.fromarray(integer, mode="I"), tmp_path / "i.tif"))
    assert np.asarray(image)[0, ::8, 0].tolist() == [0, 255]
    floats = np.array([[0.0, 0.5, 1.0, 0.25]], np.float32).repeat(16, 0).repeat(4, 1)
    image = load_rgb(saved(Image.fromarray(floats, mode="F"), tmp_path / "f.tif"))
    assert np.asarray(image)[0, ::4, 0].tolist() == [0, 128, 255, 64]


def test_load_rgb_keeps_grayscale_levels(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # (16, 64)
    image = load_rgb(saved(Image.fromarray(gray, mode="L"), tmp_path / "l.png"))
    rgb = np.asarray(image)
    assert rgb.shape == (16, 64, 3)
    assert all(np.array_equal(rgb[..., c], gray) for c in range(3))
    la = Image.merge("LA", (Image.fromarray(gray), Image.new("L", (64, 16), 255)))
    assert np.array_equal(np.asarray(load_rgb(saved(la, tmp_path / "la.png")))[..., 0], gray)


def test_load_rgb_applies_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: left red, right blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = saved(Image.fromarray(stored), tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_rgb(path)
    assert image.size == (20, 40)  # upright: portrait
    top, bottom = _pixel(image, (10, 5)), _pixel(image, (10, 34))
    assert top[0] > 200 and top[2] < 60  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("size", [(1, 1), (4, 100)])
def test_load_rgb_rejects_tiny_images(tmp_path, size):
    path = saved(Image.new("RGB", size, "red"), tmp_path / "tiny.png")
    with pytest.raises(UnreadableImage, match="too small"):
        load_rgb(path)
    assert load_rgb(path, smallest_side=1).size == size


def test_load_rgb_rejects_decompression_bombs_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(100_000, 100_000))  # 10^10 pixels claimed, no data at all
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        load_rgb(path)
    path.write_bytes(png_header(5000, 5000))  # under PIL's limit: our own check answers
    with pytest.raises(UnreadableImage, match="max_pixels=1000000"):
        load_rgb(path, max_pixels=1_000_000)
    small = saved(quadrants(), tmp_path / "q.png")
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        load_rgb(small, max_pixels=1000)


def test_load_rgb_decodes_large_jpegs_at_reduced_scale(tmp_path):
    path = saved(quadrants(1024, 768), tmp_path / "big.jpg")
    image = load_rgb(path, min_side=100)
    assert image.size == (256, 192)  # 1/4 scale: the smallest that keeps both sides >= 100
    assert load_rgb(path).size == (1024, 768)
    png = saved(quadrants(400, 300), tmp_path / "big.png")
    assert load_rgb(png, min_side=100).size == (400, 300)  # draft mode is JPEG only


def test_one_rule_for_training_and_inference_on_a_16_bit_scan(tmp_path):
    # the same file read for inference (float, full precision) and for training (8 bits):
    # training's pixels are inference's rounded to the nearest 8-bit level, nothing else
    ramp = np.linspace(0, 65535, 64 * 48).astype(np.uint16).reshape(48, 64)
    path = saved(Image.fromarray(ramp), tmp_path / "scan.png")
    fine = to_rgb_array(path)
    assert fine.dtype == np.float32 and fine.shape == (48, 64, 3)
    np.testing.assert_allclose(fine[..., 0], ramp / 65535.0, atol=1e-6)  # not cut to 8 bits
    assert len(np.unique(fine[..., 0])) > 256
    eight = np.asarray(load_rgb(path))
    np.testing.assert_array_equal(eight, np.rint(fine * 255.0).astype(np.uint8))
    assert np.array_equal(to_rgb_array(Image.open(path)), fine)  # a PIL image: the same rule
