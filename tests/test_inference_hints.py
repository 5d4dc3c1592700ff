"""colorlib.inference_hints: hints in the photo's pixels, colours, the JSON file, and
full-resolution colorization that follows the hints and keeps the photo's own lightness."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab
from torch import nn

from colorlib.color import AB_SCALE, rgb_to_lab
from colorlib.data.hints import Hint
from colorlib.data.images import to_rgb_tensor
from colorlib.inference import colorize
from colorlib.inference_hints import (
    PhotoHint,
    colorize_with_hints,
    load_hints,
    model_hint_channels,
    parse_color,
)
from colorlib.inference_memory import photo_lightness
from colorlib.models.resnet_unet import ResNetUNet
from colorlib.models.unet import UNetGenerator


class CopyHints(nn.Module):
    """A "hint model" that paints exactly the hint colours and gray elsewhere."""

    hint_channels = 3
    required_multiple = 1

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x):
        assert x.shape[1] == 4
        return x[:, 1:3] + 0 * self.unused


class Gray(nn.Module):
    """A hint-free model: ``L -> ab = 0``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, L):
        return 0 * self.conv(L)


def _gray_photo(width, height, level=128):
    return Image.new("L", (width, height), level)


def _lab(image):
    return rgb_to_lab(to_rgb_tensor(image))  # (3, H, W)


def test_hex_colours_keep_their_lab_chroma():
    a, b = parse_color("#aa3311")
    expected = rgb2lab(np.array([[[0xAA, 0x33, 0x11]]]) / 255.0)[0, 0, 1:] / AB_SCALE
    assert (a, b) == pytest.approx(tuple(expected), abs=1e-4)
    assert parse_color(" #AA3311 ") == pytest.approx((a, b))
    assert parse_color([22, -55]) == pytest.approx((0.2, -0.5))


@pytest.mark.parametrize("bad", ["red", "#12345", "#1234567", [1], [200, 0], [True, 0], None])
def test_bad_colours_are_named(bad):
    with pytest.raises(ValueError, match="hex string like '#aa3311' or a Lab"):
        parse_color(bad)


def test_photo_hints_map_to_the_model_pixel_holding_their_centre():
    hint = PhotoHint(0, 0, "#aa3311")
    assert hint.at(50, 100, 32, 32).row == 0 and hint.at(50, 100, 32, 32).col == 0
    corner = PhotoHint(99, 49, [10, 10], size=3).at(50, 100, 32, 32)
    assert (corner.row, corner.col, corner.size) == (31, 31, 3)
    middle = PhotoHint(50, 25.7, [10, 10]).at(50, 100, 32, 32)  # x 50.5 -> 16.2, y 25.5 -> 16.3
    assert (middle.row, middle.col) == (16, 16) and isinstance(middle, Hint)
    with pytest.raises(ValueError, match="x=100, y=3 is outside the 100x50 photo"):
        PhotoHint(100, 3, "#aa3311").at(50, 100, 32, 32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": -1}, "x must be a number >= 0"),
        ({"y": "3"}, "y must be a number"),
        ({"size": 2}, "odd int"),
        ({"size": 0}, "odd int"),
        ({"color": "blue"}, "hex string"),
    ],
)
def test_bad_photo_hints_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhotoHint(**{"x": 1, "y": 1, "color": "#aa3311", **kwargs})


def test_load_hints_reads_the_documented_format(tmp_path):
    path = tmp_path / "hints.json"
    items = [{"x": 3, "y": 4.5, "color": "#3a6fd8"}, {"x": 0, "y": 0, "color": [20, 60], "size": 5}]
    path.write_text(json.dumps(items))
    hints = load_hints(path)
    assert [(h.x, h.y, h.size) for h in hints] == [(3, 4.5, 1), (0, 0, 5)]
    assert hints[1].ab == pytest.approx((20 / 110, 60 / 110))


@pytest.mark.parametrize(
    "text, match",
    [
        ("[{", "not a JSON hints file"),
        ('{"x": 1}', "expected a list of hint objects, got dict"),
        ('[{"x": 1, "y": 2}]', 'hint 0 must be an object with "x", "y" and "color"'),
        ('[{"x": 1, "y": 2, "color": "#aa3311", "radius": 4}]', r"unknown key\(s\) \['radius'\]"),
        ('[{"x": 1, "y": 2, "color": "#aa3311"}, {"x": 1, "y": 2, "color": "x"}]', "hint 1: "),
    ],
)
def test_bad_hint_files_say_what_is_wrong_in_one_line(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        load_hints(path)
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="hints file not found"):
        load_hints(tmp_path / "none.json")


def test_model_hint_channels():
    assert model_hint_channels(ResNetUNet(pretrained=False, hint_channels=3)) == 3
    assert model_hint_channels(UNetGenerator(in_channels=4, base_channels=2, num_downs=2)) == 3
    assert model_hint_channels(UNetGenerator(base_channels=2, num_downs=2)) == 0
    assert model_hint_channels(Gray()) == 0


def test_hints_colour_their_place_and_the_lightness_stays():
    photo = _gray_photo(32, 32)
    hints = [PhotoHint(5, 20, "#3a6fd8", size=3)]
    out = colorize_with_hints(CopyHints(), photo, hints, size=32)
    assert out.size == (32, 32)
    lab, lab_in = _lab(out), _lab(photo)
    assert (lab[0] - lab_in[0]).abs().max() < 0.6  # the photo's own L (8-bit rounding)
    wanted = torch.tensor(parse_color("#3a6fd8")) * AB_SCALE
    patch = lab[1:, 19:22, 4:7].flatten(1)  # rows 19..21, columns 4..6
    assert torch.allclose(patch, wanted[:, None].expand_as(patch), atol=2.5)
    lab[1:, 19:22, 4:7] = 0
    assert lab[1:].abs().max() < 1.0  # gray everywhere else


def test_hints_are_mapped_from_the_photos_pixels_to_the_models():
    out = colorize_with_hints(CopyHints(), _gray_photo(64, 32), [PhotoHint(63, 31, [30, 30])], 16)
    chroma = _lab(out)[1:].norm(dim=0)  # (32, 64)
    assert chroma[-1, -1] > 20 and chroma[:16, :32].max() < 1.0  # bottom right only


def test_no_hints_is_automatic_colorization_for_any_model():
    photo = _gray_photo(20, 12, 90)
    for hints in (None, []):
        plain = colorize_with_hints(Gray(), photo, hints, size=16)
        assert np.array_equal(np.asarray(plain), np.asarray(colorize(Gray(), photo, size=16)))
        hinted = colorize_with_hints(CopyHints(), photo, hints, size=16)
        assert _lab(hinted)[1:].abs().max() < 1.0  # all-zero hints: nothing painted


def test_a_given_lightness_gives_the_same_result_and_must_be_the_photos():
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
    hints = [PhotoHint(5, 20, "#3a6fd8", size=3)]
    L = photo_lightness(photo)
    assert L.shape == (1, 1, 24, 40)
    plain = colorize_with_hints(CopyHints(), photo, hints, size=16)
    given = colorize_with_hints(CopyHints(), photo, hints, size=16, lightness=L)
    # same process, same shapes, the same L tensor's values: bit-identical by construction
    assert np.array_equal(np.asarray(plain), np.asarray(given))
    with pytest.raises(ValueError, match=r"the PIL photo's \(1, 1, H, W\), got \(1, 1, 40, 24\)"):
        colorize_with_hints(CopyHints(), photo, hints, 16, lightness=L.transpose(-1, -2))
    with pytest.raises(ValueError, match="for ndarray"):
        colorize_with_hints(CopyHints(), np.asarray(photo), hints, 16, lightness=L)


def test_hints_outside_the_photo_or_for_a_hint_free_model_are_refused():
    photo = _gray_photo(20, 12)
    with pytest.raises(ValueError, match="x=3, y=12 is outside the 20x12 photo"):
        colorize_with_hints(CopyHints(), photo, [{"x": 3, "y": 12, "color": "#aa3311"}], 16)
    with pytest.raises(ValueError, match="takes no colour hints"):
        colorize_with_hints(Gray(), photo, [PhotoHint(1, 1, "#aa3311")], 16)


def test_a_real_hint_unet_keeps_the_training_flag_and_any_aspect():
    torch.manual_seed(0)
    net = UNetGenerator(in_channels=4, base_channels=2, num_downs=3).train()
    out = colorize_with_hints(net, _gray_photo(40, 24), [PhotoHint(2, 2, "#aa3311")], 16, True)
    assert out.size == (40, 24) and net.training
