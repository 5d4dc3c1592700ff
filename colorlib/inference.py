"""Full-resolution colorization: any photo in, a colour photo of the same size out.

A generator is trained on small square crops, but people colorize whole photos. The design
keeps every pixel of the photo's own lightness and lets the network supply only colour:

1. the input (PIL image, numpy array, path, or a list of them) becomes sRGB in [0, 1];
2. its lightness ``L`` is computed at full resolution;
3. a resized copy of ``L`` (the training size ``size x size``, or with ``keep_aspect`` the
   aspect ratio kept and both sides rounded to the model's ``required_multiple``; never over
   :data:`MAX_MODEL_SIDE` on a side) goes through the network, in eval mode under
   ``torch.inference_mode``; inputs of the same model size share a batch;
4. the predicted ``ab`` is clamped to [-1, 1], upsampled bilinearly to the full size and joined
   with the full-resolution ``L``;
5. pixels whose colour falls outside sRGB get their chroma scaled down (:func:`fit_to_gamut`)
   instead of being clipped channel by channel, so lightness and hue survive: the output's Lab
   ``L`` equals the input's up to 8-bit rounding.

Steps 2, 4 and 5 run a strip of rows at a time, into the 8-bit output
(:mod:`colorlib.inference_memory`): besides the input and the output, a photo costs its float32
``L`` (4 bytes a pixel) and one strip's work, whatever its size.

>>> from colorlib.inference import colorize
>>> colour = colorize(generator, "grandma.jpg", size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from colorlib.checkpoint import load_generator
from colorlib.color import L_ab_to_rgb
from colorlib.data.images import to_pil
from colorlib.inference_memory import photo_lightness, resize, resized_rows
from colorlib.models.ddcolor import DDColor, load_released_checkpoint
from colorlib.models.hub import is_released_name, load_released
from colorlib.runtime import say

__all__ = [
    "colorize",
    "colorize_iter",
    "colorize_L_ab",
    "fit_to_gamut",
    "model_input_size",
    "MAX_MODEL_SIDE",
    "load_colorizer",
    "is_released_ddcolor",
]

_GAMUT_TOLERANCE = 1e-4  # RGB overshoot treated as rounding noise, not as out of gamut
#: The longest side the network is given; a larger request is scaled down, with a message.
MAX_MODEL_SIDE = 2048


def fit_to_gamut(L: Tensor, ab: Tensor, steps: int = 8) -> Tensor:
    """Clamp ``ab`` to [-1, 1], then shrink the chroma of out-of-sRGB pixels until they fit.

    Per-channel clipping of an out-of-gamut colour shifts its lightness and hue; scaling ``ab``
    towards gray (a bisection on the scale, ``steps`` halvings) keeps both. Gray (``ab = 0``)
    is always displayable, so the answer always exists.

    Args:
        L: ``(*, 1, H, W)`` normalised lightness in [-1, 1].
        ab: ``(*, 2, H, W)`` normalised chroma.

    Returns:
        ``(*, 2, H, W)`` chroma in [-1, 1] whose colours lie inside sRGB.
    """
    ab = ab.clamp(-1.0, 1.0)
    outside = _outside_gamut(L, ab)  # (*, H, W)
    if not bool(outside.any()):
        return ab
    L_out = L.movedim(-3, -1)[outside].T.reshape(1, 1, -1, 1)  # (1, 1, N, 1)
    ab_out = ab.movedim(-3, -1)[outside].T.reshape(1, 2, -1, 1)  # (1, 2, N, 1)
    low = torch.zeros_like(L_out)  # scales known to fit (gray always does)
    high = torch.ones_like(L_out)  # scales known (or assumed) not to fit
    for _ in range(steps):
        middle = (low + high) / 2
        fits = ~_outside_gamut(L_out, ab_out * middle).unsqueeze(-3)
        low = torch.where(fits, middle, low)
        high = torch.where(fits, high, middle)
    fitted = ab.movedim(-3, -1).clone()
    fitted[outside] = (ab_out * low).reshape(2, -1).T
    return fitted.movedim(-1, -3)


def _outside_gamut(L: Tensor, ab: Tensor) -> Tensor:
    rgb = L_ab_to_rgb(L, ab, clip=False)
    return ((rgb < -_GAMUT_TOLERANCE) | (rgb > 1 + _GAMUT_TOLERANCE)).any(dim=-3)


def model_input_size(
    height: int, width: int, size: int, keep_aspect: bool = False, multiple: int = 32
) -> tuple[int, int]:
    """The ``(h, w)`` a photo of ``height x width`` is resized to before the network.

    Square ``size x size`` by default (how the generators are trained). With ``keep_aspect``
    the shorter side becomes ``size`` and both sides are rounded to multiples of ``multiple``
    (for networks that accept any such size, like DDColor). :func:`colorize` scales the result
    down to fit :data:`MAX_MODEL_SIDE`.
    """
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if not keep_aspect:
        return size, size
    if multiple <= 0:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    scale = size / min(height, width)

    def rounded(side: float) -> int:
        return max(multiple, int(round(side * scale / multiple)) * multiple)

    return rounded(height), rounded(width)


# ----------------------------------------------------------------------------- inference


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; every submodule's own training flag restored afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    parameter = next(model.parameters(), None)
    if parameter is None:
        return torch.device("cpu"), torch.float32
    return parameter.device, parameter.dtype


def _predict_small(model: nn.Module, L_small: Tensor) -> Tensor:
    """Run the network on a batch of model-sized ``L``; returns float32 ``ab``."""
    device, dtype = _model_device_dtype(model)
    ab_small = model(L_small.to(device=device, dtype=dtype))
    if not isinstance(ab_small, Tensor) or ab_small.shape[-3:] != (2, *L_small.shape[-2:]):
        got = tuple(ab_small.shape) if isinstance(ab_small, Tensor) else type(ab_small).__name__
        raise ValueError(
            f"a colorization model must map L {tuple(L_small.shape)} to ab of shape "
            f"(B, 2, {L_small.shape[-2]}, {L_small.shape[-1]}), got {got}"
        )
    return ab_small.float()


def _network_shape(model: nn.Module, height: int, width: int, size: int, keep_aspect: bool):
    """:func:`model_input_size` for ``model``; over :data:`MAX_MODEL_SIDE`, scaled down (and
    said so): the longer side becomes the cap rounded down to the model's multiple."""
    multiple = getattr(model, "required_multiple", 32)
    wanted = model_input_size(height, width, size, keep_aspect, multiple)
    longest = max(multiple, MAX_MODEL_SIDE // multiple * multiple)
    if max(wanted) <= longest:
        return wanted
    shape = (longest, longest)
    if keep_aspect:  # the longer side at the cap, the shorter one in proportion (rounded)
        scale = longest / max(height, width)
        shape = tuple(
            max(multiple, round(side * scale / multiple) * multiple) for side in (height, width)
        )
    say(
        f"a {width}x{height} photo at size={size} would give the network a {wanted[1]}x"
        f"{wanted[0]} input, over MAX_MODEL_SIDE={MAX_MODEL_SIDE} px on a side (its memory and "
        f"time grow with the area; colour needs no such detail): it gets {shape[1]}x{shape[0]}, "
        "the lightness stays at full resolution"
    )
    return shape


def _fitted_ab(L: Tensor, ab_small: Tensor) -> Iterator[tuple[int, int, Tensor]]:
    """``(top, end, ab)``: one photo's ``ab_small`` resized to ``L``'s size and fitted into the
    gamut with ``L``, a strip of rows at a time (:func:`colorlib.inference_memory.resized_rows`)."""
    height, width = L.shape[-2:]
    for top, end, ab in resized_rows(ab_small.clamp(-1.0, 1.0), height, width):
        yield top, end, fit_to_gamut(L[..., top:end, :], ab)


def colorize_L_ab(
    model: nn.Module, L: Tensor, size: int = 256, keep_aspect: bool = False
) -> Tensor:
    """Predict full-resolution ``ab`` for a batch of full-resolution ``L`` (tensor level).

    Args:
        model: a generator ``L (B, 1, h, w) -> ab (B, 2, h, w)``.
        L: ``(B, 1, H, W)`` normalised lightness in [-1, 1], on any device.
        size: the model's training size (see :func:`model_input_size`).
        keep_aspect: keep the aspect ratio instead of squashing to ``size x size``.

    Returns:
        ``(B, 2, H, W)`` float32 ``ab`` in [-1, 1], inside sRGB together with ``L``, on ``L``'s
        device. ``colorlib.color.L_ab_to_rgb(L, ab)`` gives the colour photo.
    """
    if not isinstance(L, Tensor) or L.dim() != 4 or L.shape[1] != 1:
        shape = tuple(L.shape) if isinstance(L, Tensor) else type(L).__name__
        raise ValueError(f"L must be a tensor of shape (B, 1, H, W), got {shape}")
    shape = _network_shape(model, L.shape[-2], L.shape[-1], size, keep_aspect)
    ab = L.new_empty(L.shape[0], 2, *L.shape[-2:], dtype=torch.float32)  # not an inference one
    with _eval_mode(model), torch.inference_mode():
        L = L.float()
        ab_small = _predict_small(model, resize(L, shape)).to(L.device)
        for i in range(L.shape[0]):
            for top, end, strip in _fitted_ab(L[i : i + 1], ab_small[i : i + 1]):
                ab[i, :, top:end] = strip[0]
    return ab


def _colorize_chunk(model, images, size, device, keep_aspect) -> list[Image.Image]:
    """Colorize a few images: the ones that share a model input size share a batch."""
    L_full = [photo_lightness(image, device) for image in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, L in enumerate(L_full):
        shape = _network_shape(model, L.shape[-2], L.shape[-1], size, keep_aspect)
        groups.setdefault(shape, []).append(index)
    outputs: list[Image.Image | None] = [None] * len(images)
    for shape, indices in groups.items():
        ab_small = _predict_small(model, torch.cat([resize(L_full[i], shape) for i in indices]))
        for i, ab_one in zip(indices, ab_small.to(device), strict=True):
            L, L_full[i] = L_full[i], None  # freed as soon as its photo is done
            outputs[i] = Image.new("RGB", (L.shape[-1], L.shape[-2]))
            for top, end, ab in _fitted_ab(L, ab_one[None]):
                outputs[i].paste(to_pil(L_ab_to_rgb(L[..., top:end, :], ab)[0]), (0, top))
    return outputs


def colorize_iter(
    model: nn.Module,
    images: Iterable,
    size: int = 256,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    keep_aspect: bool = False,
) -> Iterator[Image.Image]:
    """Like :func:`colorize` on a list, but yields results in order as they are ready.

    Only ``batch_size`` photos are held at a time, so it suits folders of any size.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if device is not None:
        model.to(device)
    device = _model_device_dtype(model)[0]
    for chunk in _chunks(images, batch_size):
        # the modes are entered per chunk, never across a yield: the caller's own code between
        # results must not run in inference mode or with the model switched to eval
        with _eval_mode(model), torch.inference_mode():
            outputs = _colorize_chunk(model, chunk, size, device, keep_aspect)
        yield from outputs


def _chunks(items: Iterable, length: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == length:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def colorize(
    model: nn.Module,
    image,
    size: int = 256,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    keep_aspect: bool = False,
) -> Image.Image | list[Image.Image]:
    """Colorize a photo (or a list of photos) at its full resolution.

    Args:
        model: a generator ``L (B, 1, h, w) -> ab (B, 2, h, w)``. It is run in eval mode and
            its (and every submodule's) training flag is restored afterwards.
        image: a ``PIL.Image`` (grayscale ``L`` mode is the main use), a numpy array (``HxW``,
            ``HxWx3``; uint8 or float in [0, 1]), a path, or a list of those.
        size: the model's training size; the network sees ``size x size`` (scaled down, with
            a message, to at most :data:`MAX_MODEL_SIDE` on a side).
        device: where to run; ``None`` keeps the model where it is (the model is moved
            otherwise).
        batch_size: photos per forward pass for a list.
        keep_aspect: keep the aspect ratio (shorter side ``size``, sides rounded to
            ``getattr(model, "required_multiple", 32)``) for networks that accept any size.

    Returns:
        An RGB ``PIL.Image`` of the input's size (a list for a list): the input's own lightness
        with the predicted colour. Memory beyond the input and the output: 4 bytes a pixel
        and one strip's work (:mod:`colorlib.inference_memory`).

    Example:
        >>> gray = PIL.Image.open("old.jpg").convert("L")  # doctest: +SKIP
        >>> colorize(generator, gray).save("old_colour.png")  # doctest: +SKIP
    """
    if isinstance(image, (list, tuple)):
        return list(colorize_iter(model, image, size, device, batch_size, keep_aspect))
    return next(colorize_iter(model, [image], size, device, batch_size, keep_aspect))


# ----------------------------------------------------------------------------- checkpoints

#: DDColor's own inference size (the released checkpoints were trained at 512 x 512).
RELEASED_DDCOLOR_SIZE = 512
_DDCOLOR_STEM = "encoder.arch.downsample_layers.0.0.weight"  # (96 tiny | 192 large, 3, 4, 4)


def _peek(path: Path):
    """The checkpoint's top-level object, tensors memory-mapped rather than read; ``None`` when
    the file does not load at all (the regular loader then says what is wrong)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 (any failure is reported by the loader that follows)
        return None


def is_released_ddcolor(path: str | Path) -> bool:
    """Whether ``path`` holds a checkpoint as the DDColor authors released them (``{"params"}``)."""
    state = _peek(Path(path))
    if not isinstance(state, dict) or "config" in state:  # colorlib's own checkpoints have one
        return False
    return isinstance(state.get("params"), dict)


def _load_released_ddcolor(path: Path) -> nn.Module:
    """DDColor-tiny or -large, recognised by the width of the encoder's stem, then loaded."""

    stem = _peek(path)["params"].get(_DDCOLOR_STEM)
    width = None if stem is None else int(stem.shape[0])
    builders = {96: DDColor.tiny, 192: DDColor.large}
    if width not in builders:
        raise ValueError(
            f"{path} looks like a released DDColor checkpoint ({{'params': ...}}) but is neither "
            f"DDColor-tiny nor -large: {_DDCOLOR_STEM} has {width} channels, expected 96 or 192"
        )
    return load_released_checkpoint(builders[width](pretrained=False), path)


def load_colorizer(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """Load a generator from a colorlib checkpoint or a released DDColor checkpoint.

    Args:
        path: a file written by training (:mod:`colorlib.checkpoint`'s format), a released
            DDColor ``.pth`` (``{"params": state_dict}``; tiny or large, told apart by shape),
            or the name of released weights on the Hugging Face Hub
            (:data:`colorlib.models.hub.RELEASED_WEIGHTS`, e.g. ``"ddcolor-modelscope"``;
            downloaded once, then cached).
        device: where to put the generator.

    Returns:
        ``(generator, size)``: the generator in eval mode and the square size it expects
        (the training ``image_size``, or 512 for a released DDColor, as its authors infer).

    Raises:
        FileNotFoundError: no such file.
        colorlib.models.hub.WeightsUnavailable: released weights by name, offline and not cached.
        colorlib.checkpoint.CheckpointError: a corrupt file, not a checkpoint, or weights that
            do not fit the model its config names.
        ValueError: a ``{"params": ...}`` file that does not fit DDColor-tiny or -large.

    Example:
        >>> generator, size = load_colorizer("ddcolor_paper_tiny.pth")  # doctest: +SKIP
        >>> colorize(generator, "old.jpg", size=size)  # doctest: +SKIP
    """
    if is_released_name(path):  # the authors' weights by name, from the Hugging Face Hub
        return load_released(path, device), RELEASED_DDCOLOR_SIZE
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if is_released_ddcolor(path):
        generator, size = _load_released_ddcolor(path), RELEASED_DDCOLOR_SIZE
    else:
        generator, config = load_generator(path, device=device)
        size = int(config["image_size"])
    return generator.to(device).eval(), size
