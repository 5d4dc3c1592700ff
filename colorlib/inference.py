"""Full-resolution colorization: any photo in, a colour photo of the same size out.

A generator is trained on small square crops, but people colorize whole photos. The design
keeps every pixel of the photo's own lightness and lets the network supply only colour:

1. the input (PIL image, numpy array, path, or a list of them) becomes sRGB in [0, 1];
2. its lightness ``L`` is computed at full resolution;
3. a resized copy of ``L`` (the training size ``size x size``, or with ``keep_aspect`` the
   aspect ratio kept and both sides rounded to the model's ``required_multiple``) goes through
   the network, in eval mode under ``torch.inference_mode``; inputs of the same model size share
   a batch;
4. the predicted ``ab`` is clamped to [-1, 1], upsampled bilinearly to the full size and joined
   with the full-resolution ``L``;
5. pixels whose colour falls outside sRGB get their chroma scaled down (:func:`fit_to_gamut`)
   instead of being clipped channel by channel, so lightness and hue survive: the output's Lab
   ``L`` equals the input's up to 8-bit rounding.

>>> from colorlib.infer import colorize
>>> colour = colorize(generator, "grandma.jpg", size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from colorlib.color import L_ab_to_rgb, gray_ab_like, rgb_to_L_ab

__all__ = [
    "colorize",
    "colorize_iter",
    "colorize_L_ab",
    "gray_baseline",
    "fit_to_gamut",
    "model_input_size",
    "to_rgb_tensor",
    "to_pil",
    "load_colorizer",
    "is_released_ddcolor",
]

_GAMUT_TOLERANCE = 1e-4  # RGB overshoot treated as rounding noise, not as out of gamut
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


# ----------------------------------------------------------------------------- image <-> tensor


def _high_depth_to_gray(image: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer or float single-channel image -> (H, W) float32 in [0, 1].

    The same range rules as ``colorlib.images`` (``I;16`` spans [0, 65535]; ``I`` and ``F``
    are read as 8-bit, 16-bit or [0, 1] data by their values, else stretched), but without
    rounding to 8 bits first.
    """
    values = np.asarray(image).astype(np.float32)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scale, offset = 1 / 65535, 0.0
    elif image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale, offset = 1.0, 0.0
    elif low >= 0.0 and high <= 255.0:
        scale, offset = 1 / 255, 0.0
    elif image.mode == "I" and low >= 0.0 and high <= 65535.0:
        scale, offset = 1 / 65535, 0.0
    else:
        scale, offset = 1 / max(high - low, 1e-12), low
    return np.clip((values - offset) * scale, 0.0, 1.0)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any common mode as an (H, W, 3) float32 array in [0, 1]."""
    if image.mode in _HIGH_DEPTH_MODES:
        return np.repeat(_high_depth_to_gray(image)[..., None], 3, axis=-1)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # transparent pixels become white, as a viewer shows them on a page (as colorlib.images)
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _numpy_to_array(array: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped), uint8/uint16/bool/float in [0, 1]."""
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3] if array.shape[-1] != 1 else array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"image array must be HxW or HxWx{{1,3,4}}, got shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise ValueError(
                f"a float image array must lie in [0, 1], got values in [{low:g}, {high:g}]"
            )
        array = array.astype(np.float32)
    else:
        raise TypeError(f"array dtype must be uint8, uint16, bool or float, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


def _load_path(path: Path) -> Image.Image:
    """Read a photo with ``colorlib.images.load_rgb`` (EXIF orientation, CMYK, 16-bit, ...)."""
    from colorlib.images import load_rgb

    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    return load_rgb(path)


def to_rgb_tensor(image) -> Tensor:
    """Any supported image as a ``(3, H, W)`` float32 sRGB tensor in [0, 1].

    Args:
        image: a ``PIL.Image`` (any common mode: L, RGB, RGBA, P, CMYK, I;16, ...), a numpy
            array (``HxW``, ``HxWx3``; uint8, uint16 or float in [0, 1]) or a path.

    Raises:
        TypeError: for another kind of object or array dtype.
        ValueError: for a float array outside [0, 1] or an unsupported shape.
        FileNotFoundError, colorlib.images.UnreadableImage: for a bad path.
    """
    if isinstance(image, (str, Path)):
        image = _load_path(Path(image))
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = _numpy_to_array(image)
    else:
        raise TypeError(
            "image must be a PIL.Image, a numpy array, a path or a list of those, "
            f"got {type(image).__name__}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image is empty: shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def to_pil(rgb: Tensor) -> Image.Image:
    """A ``(3, H, W)`` sRGB tensor in [0, 1] as an 8-bit RGB ``PIL.Image``."""
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must have shape (3, H, W), got {tuple(rgb.shape)}")
    array = (rgb.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")


# ----------------------------------------------------------------------------- colour maths


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
    (for networks that accept any such size, like DDColor).
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


def _resize(x: Tensor, shape: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrinking)


def _full_resolution_ab(L: Tensor, ab_small: Tensor) -> Tensor:
    """Upsample ``ab_small`` to ``L``'s size and fit it into the sRGB gamut with that ``L``."""
    ab = _resize(ab_small.clamp(-1.0, 1.0), tuple(L.shape[-2:]))
    return fit_to_gamut(L, ab)


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
    multiple = getattr(model, "required_multiple", 32)
    shape = model_input_size(L.shape[-2], L.shape[-1], size, keep_aspect, multiple)
    with _eval_mode(model), torch.inference_mode():
        L = L.float()
        ab_small = _predict_small(model, _resize(L, shape)).to(L.device)
        ab = _full_resolution_ab(L, ab_small)
    return ab.clone()  # a normal tensor, usable outside inference mode


def _colorize_chunk(model, images, size, device, keep_aspect) -> list[Image.Image]:
    """Colorize a few images: the ones that share a model input size share a batch."""
    multiple = getattr(model, "required_multiple", 32)
    L_full = [rgb_to_L_ab(to_rgb_tensor(image).to(device))[0] for image in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, L in enumerate(L_full):
        shape = model_input_size(L.shape[-2], L.shape[-1], size, keep_aspect, multiple)
        groups.setdefault(shape, []).append(index)
    outputs: list[Image.Image | None] = [None] * len(images)
    for shape, indices in groups.items():
        L_small = torch.stack([_resize(L_full[i][None], shape)[0] for i in indices])
        ab_small = _predict_small(model, L_small).to(device)
        for i, ab_one in zip(indices, ab_small, strict=True):
            L = L_full[i][None]  # (1, 1, H, W)
            rgb = L_ab_to_rgb(L, _full_resolution_ab(L, ab_one[None]))
            outputs[i] = to_pil(rgb[0])
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
        size: the model's training size; the network sees ``size x size``.
        device: where to run; ``None`` keeps the model where it is (the model is moved
            otherwise).
        batch_size: photos per forward pass for a list.
        keep_aspect: keep the aspect ratio (shorter side ``size``, sides rounded to
            ``getattr(model, "required_multiple", 32)``) for networks that accept any size.

    Returns:
        An RGB ``PIL.Image`` of the input's size (a list for a list): the input's own lightness
        with the predicted colour.

    Example:
        >>> gray = PIL.Image.open("old.jpg").convert("L")  # doctest: +SKIP
        >>> colorize(generator, gray).save("old_colour.png")  # doctest: +SKIP
    """
    if isinstance(image, (list, tuple)):
        return list(colorize_iter(model, image, size, device, batch_size, keep_aspect))
    return next(colorize_iter(model, [image], size, device, batch_size, keep_aspect))


def gray_baseline(image) -> Image.Image | list[Image.Image]:
    """The ``ab = 0`` "colorization": the photo's own lightness as a gray RGB image.

    The floor every colorizer must beat on PSNR; it also turns a colour photo into the gray
    input of an evaluation. Accepts what :func:`colorize` accepts.
    """
    if isinstance(image, (list, tuple)):
        return [gray_baseline(one) for one in image]
    L = rgb_to_L_ab(to_rgb_tensor(image))[0]
    return to_pil(L_ab_to_rgb(L, gray_ab_like(L)))


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
    from colorlib.models.ddcolor import DDColor, load_released_checkpoint

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
        path: a file written by ``colorlib.train`` / ``colorlib.checkpoint``, or a released
            DDColor ``.pth`` (``{"params": state_dict}``; tiny or large, told apart by shape).
        device: where to put the generator.

    Returns:
        ``(generator, size)``: the generator in eval mode and the square size it expects
        (the training ``image_size``, or 512 for a released DDColor, as its authors infer).

    Raises:
        FileNotFoundError: no such file.
        colorlib.checkpoint.CheckpointError: a corrupt file, not a checkpoint, or weights that
            do not fit the model its config names.
        ValueError: a ``{"params": ...}`` file that does not fit DDColor-tiny or -large.

    Example:
        >>> generator, size = load_colorizer("ddcolor_paper_tiny.pth")  # doctest: +SKIP
        >>> colorize(generator, "old.jpg", size=size)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if is_released_ddcolor(path):
        generator, size = _load_released_ddcolor(path), RELEASED_DDCOLOR_SIZE
    else:
        from colorlib.checkpoint import load_generator

        generator, config = load_generator(path, device=device)
        size = int(config.image_size)
    return generator.to(device).eval(), size
