"""Colorization guided by colour hints, at full resolution: a photo and a few clicked colours in.

Zhang, Zhu, Isola et al. (SIGGRAPH 2017) let a user click points and pick a colour for each;
a model trained on simulated clicks (:mod:`colorlib.data.hints`) follows them and fills in the
rest. This module takes such hints in the photo's own pixel coordinates.

Design:

* a :class:`PhotoHint` is ``(x, y)`` in the photo's pixels (column and row of the photo as
  displayed, EXIF orientation applied; ``0 <= x < width``, ``0 <= y < height``), a colour and
  a patch ``size``. The colour is an RGB hex string (``"#aa3311"``) or a Lab ``[a, b]`` pair
  (Lab units, each in [-110, 110]). A hex colour is converted to Lab and only its ``ab`` is
  kept, as the paper's interface picks a chroma: the photo keeps its own lightness, so
  ``"#ff0000"`` on a dark coat gives a dark red;
* the point is mapped to the model's input (the pixel whose area holds the photo pixel's
  centre) and painted there as a ``size x size`` patch (``size``: odd, in the model's pixels,
  default 1; training drew 1 to 9), with :func:`colorlib.data.hints.hint_channels`;
* :func:`colorize_with_hints` reuses :func:`colorlib.inference.colorize_L_ab` unchanged: the
  hint model is wrapped in a module that appends the hint channels, painted at whatever model
  size that function picks, to the resized ``L``. So the photo's own full-resolution ``L`` is
  kept, ``ab`` is upsampled and fitted into the gamut exactly as in automatic colorization;
  ``hints=None`` or ``[]`` is automatic colorization (all-zero hints), for any model;
* :func:`load_hints` reads a JSON list of ``{"x", "y", "color", "size"?}`` objects and says in
  one line what is wrong with a bad one.

>>> hints = [PhotoHint(120, 45, "#3a6fd8"), PhotoHint(300, 410, (20.0, 60.0), size=3)]
>>> colour = colorize_with_hints(model, "old.jpg", hints, size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from colorlib.color import AB_SCALE, L_ab_to_rgb, rgb_to_lab
from colorlib.data.hints import HINT_CHANNELS, Hint, hint_channels, join_hints
from colorlib.data.images import to_pil
from colorlib.inference import colorize_L_ab
from colorlib.inference_memory import photo_lightness, row_strips

__all__ = [
    "PhotoHint",
    "parse_color",
    "parse_hints",
    "load_hints",
    "model_hint_channels",
    "HintedModel",
    "colorize_with_hints",
]

_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_KEYS = {"x", "y", "color", "size"}


def parse_color(color) -> tuple[float, float]:
    """A hint colour as normalised ``(a, b)`` (Lab ``ab / 110``), each in [-1, 1].

    Args:
        color: ``"#rrggbb"`` (sRGB; only its chroma is kept) or a Lab ``(a, b)`` pair in Lab
            units, each in [-110, 110].

    Raises:
        ValueError: anything else, naming the value.

    Example:
        >>> [round(v, 3) for v in parse_color("#ff0000")]  # sRGB red: Lab a 80.1, b 67.2
        [0.728, 0.611]
    """
    if isinstance(color, str) and _HEX.fullmatch(color.strip()):
        text = color.strip()
        rgb = torch.tensor([int(text[i : i + 2], 16) / 255.0 for i in (1, 3, 5)])
        a, b = (rgb_to_lab(rgb.double().view(3, 1, 1))[1:, 0, 0] / AB_SCALE).tolist()
        return float(a), float(b)
    pair = isinstance(color, (list, tuple)) and len(color) == 2
    if pair and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in color):
        if all(math.isfinite(v) and abs(v) <= AB_SCALE for v in color):
            return float(color[0]) / AB_SCALE, float(color[1]) / AB_SCALE
    raise ValueError(
        f"a hint colour must be an RGB hex string like '#aa3311' or a Lab [a, b] pair with a "
        f"and b in [-{AB_SCALE:g}, {AB_SCALE:g}], got {color!r}"
    )


@dataclass(frozen=True)
class PhotoHint:
    """One colour hint in the photo's own pixels.

    Attributes:
        x, y: column and row in the photo, ``0 <= x < width``, ``0 <= y < height`` (numbers;
            a fraction is a position inside a pixel).
        color: ``"#rrggbb"`` or a Lab ``(a, b)`` pair (see :func:`parse_color`).
        size: side of the hint's square patch in the *model's* pixels, odd, >= 1.
        ab: the colour as normalised ``(a, b)`` (computed, :func:`parse_color`).

    Raises:
        ValueError: a negative coordinate, a bad colour or size (naming the value).
    """

    x: float
    y: float
    color: str | tuple[float, float]
    size: int = 1
    ab: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"hint {name} must be a number >= 0, got {value!r}")
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"hint size must be an odd int >= 1 (model pixels), got {size!r}")
        if isinstance(self.color, list):  # from JSON
            object.__setattr__(self, "color", tuple(self.color))
        object.__setattr__(self, "ab", parse_color(self.color))  # checked once, here

    def check_inside(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless the point lies inside a ``height x width`` photo."""
        if not (self.x < width and self.y < height):
            raise ValueError(
                f"hint at x={self.x}, y={self.y} is outside the {width}x{height} photo "
                f"(x must be < {width} and y < {height})"
            )

    def at(self, height: int, width: int, model_h: int, model_w: int) -> Hint:
        """This hint on a ``model_h x model_w`` input for a ``height x width`` photo.

        Raises:
            ValueError: the point lies outside the photo.
        """
        self.check_inside(height, width)
        col = min(int((math.floor(self.x) + 0.5) * model_w / width), model_w - 1)
        row = min(int((math.floor(self.y) + 0.5) * model_h / height), model_h - 1)
        return Hint(row, col, self.ab, self.size)


def parse_hints(items, where: str = "hints") -> list[PhotoHint]:
    """Hints from JSON-like data: a list of ``{"x", "y", "color", "size"?}`` objects.

    Raises:
        ValueError: one line naming the bad entry (``where``, its index) and what is expected.
    """
    if not isinstance(items, list):
        raise ValueError(f"{where}: expected a list of hint objects, got {type(items).__name__}")
    hints = []
    for index, item in enumerate(items):
        label = f"{where}: hint {index}"
        if not isinstance(item, dict) or not {"x", "y", "color"} <= set(item):
            raise ValueError(f'{label} must be an object with "x", "y" and "color", got {item!r}')
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise ValueError(f"{label} has unknown key(s) {unknown}; known: {sorted(_KEYS)}")
        try:
            hints.append(PhotoHint(item["x"], item["y"], item["color"], item.get("size", 1)))
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from None
    return hints


def load_hints(path: str | Path) -> list[PhotoHint]:
    """Read hints from a JSON file: a list of objects, for example::

        [{"x": 120, "y": 45, "color": "#3a6fd8"},
         {"x": 300, "y": 410, "color": [20, 60], "size": 3}]

    ``x``, ``y``: the photo's pixel column and row; ``color``: ``"#rrggbb"`` or a Lab
    ``[a, b]`` pair; ``size`` (optional, default 1): odd patch side in the model's pixels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or a bad entry; the message is one line naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hints file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        detail = f"{error.msg} at line {error.lineno}" if hasattr(error, "lineno") else error
        raise ValueError(f"{path}: not a JSON hints file ({detail})") from None
    return parse_hints(data, str(path))


def model_hint_channels(model: nn.Module) -> int:
    """Hint channels a generator takes beside ``L``: its ``hint_channels``
    (:class:`~colorlib.models.resnet_unet.ResNetUNet`), 3 for a U-Net with 4 input channels,
    else 0 (a model of ``L`` alone)."""
    channels = getattr(model, "hint_channels", None)
    if isinstance(channels, int):
        return channels
    return HINT_CHANNELS if getattr(model, "in_channels", 1) == 1 + HINT_CHANNELS else 0


class HintedModel(nn.Module):
    """``L (B, 1, h, w) -> model(cat(L, hints)) (B, 2, h, w)``: the hints painted at ``(h, w)``.

    Args:
        model: a generator of ``cat(L, hints)`` (:func:`model_hint_channels` 3).
        hints: the photo's hints (empty: all-zero hint channels).
        photo_size: ``(height, width)`` of the photo the hints' coordinates refer to.
    """

    def __init__(self, model: nn.Module, hints, photo_size: tuple[int, int]) -> None:
        super().__init__()
        self.model, self.hints, self.photo_size = model, list(hints), photo_size
        self.required_multiple = getattr(model, "required_multiple", 32)

    def forward(self, L: Tensor) -> Tensor:
        height, width = L.shape[-2:]
        points = [hint.at(*self.photo_size, height, width) for hint in self.hints]
        channels = hint_channels(points, height, width, L.device, L.dtype)  # (3, h, w)
        return self.model(join_hints(L, channels.expand(L.shape[0], -1, -1, -1)))


def colorize_with_hints(
    model: nn.Module,
    image,
    hints=None,
    size: int = 256,
    keep_aspect: bool = False,
    device: str | torch.device | None = None,
    lightness: Tensor | None = None,
) -> Image.Image:
    """Colorize one photo at full resolution, following colour hints.

    Args:
        model: a hint generator (``cat(L, hints) (B, 4, h, w) -> ab``); a model of ``L``
            alone is accepted when there are no hints.
        image: a ``PIL.Image``, a numpy array or a path (as :func:`colorlib.inference.colorize`).
        hints: :class:`PhotoHint` s, or dicts ``{"x", "y", "color", "size"?}``; None or ``[]``:
            automatic colorization.
        size: the model's training size (the network sees ``size x size``).
        keep_aspect: keep the aspect ratio (see :func:`colorlib.inference.model_input_size`).
        device: where to run; None keeps the model where it is.
        lightness: the photo's :func:`~colorlib.inference_memory.photo_lightness` ``(1, 1, H, W)``
            when the caller already has it (an editor colorizes one photo many times: about a
            fifth of a 1024 x 768 colorization on one core); ``image`` must then be that
            ``PIL.Image``, and only its size is read.

    Returns:
        An RGB ``PIL.Image`` of the photo's size: its own lightness, the predicted colour.

    Raises:
        ValueError: a hint outside the photo, a bad hint, hints for a model that takes none,
            or a ``lightness`` that is not the photo's shape.
    """
    hints = [] if hints is None else list(hints)
    if any(isinstance(hint, dict) for hint in hints):
        hints = parse_hints(hints)
    if hints and model_hint_channels(model) == 0:
        raise ValueError(
            "this model takes no colour hints (its input is L alone); use a model trained "
            "with hints (ResNetUNet(hint_channels=3), the 'hints' recipe)"
        )
    if device is not None:
        model.to(device)
    parameter = next(model.parameters(), None)
    where = "cpu" if parameter is None else parameter.device
    if lightness is None:
        L = photo_lightness(image, where)  # (1, 1, H, W)
    elif isinstance(image, Image.Image) and tuple(lightness.shape) == (1, 1, *image.size[::-1]):
        L = lightness.to(where)
    else:
        raise ValueError(
            f"lightness must be the PIL photo's (1, 1, H, W), got {tuple(lightness.shape)} "
            f"for {image.size if isinstance(image, Image.Image) else type(image).__name__}"
        )
    height, width = L.shape[-2:]
    for hint in hints:
        hint.check_inside(height, width)  # fail before any work
    net = HintedModel(model, hints, (height, width)) if model_hint_channels(model) else model
    ab = colorize_L_ab(net, L, size, keep_aspect)  # (1, 2, H, W)
    out = Image.new("RGB", (width, height))
    for top, end in row_strips(height, width):
        rows = L_ab_to_rgb(L[..., top:end, :], ab[..., top:end, :])[0]
        out.paste(to_pil(rows), (0, top))
    return out
