"""Differentiable sRGB <-> CIE Lab conversion and the normalisation used for learning.

Design (kornia's template):

* every conversion is a plain function on ``(*, 3, H, W)`` tensors and an ``nn.Module`` wrapper;
* all maths is torch, so gradients flow from a loss on RGB back to predicted ``ab``;
* values follow scikit-image exactly (sRGB companding, D65 white point, 2 degree observer), which
  is the reference in the tests;
* the learning normalisation ``L = lab_L / 50 - 1`` and ``ab = lab_ab / 110`` lives here and
  nowhere else.

Why 110: the a and b channels of every sRGB colour lie within about [-86.2, 98.2] (a) and
[-107.9, 94.5] (b); dividing by 110 maps the whole sRGB gamut into [-1, 1] with a little room,
so a ``tanh`` head can reach every displayable colour.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "L_CENTER",
    "AB_SCALE",
    "rgb_to_lab",
    "lab_to_rgb",
    "lab_to_L_ab",
    "L_ab_to_lab",
    "rgb_to_L_ab",
    "rgb8_to_L_ab",
    "L_ab_to_rgb",
    "gray_ab_like",
    "RgbToLab",
    "LabToRgb",
]

#: ``L`` (in [0, 100]) is normalised as ``L / L_CENTER - 1`` so that it lies in [-1, 1].
L_CENTER = 50.0
#: ``a`` and ``b`` are divided by ``AB_SCALE``; the sRGB gamut fits inside [-1, 1].
AB_SCALE = 110.0

# sRGB (linear) -> XYZ, D65 (the matrix scikit-image uses).
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856  # (6/29) ** 3, rounded as in scikit-image
_KAPPA = 7.787  # (29/6) ** 2 / 3, rounded as in scikit-image


def _check_image(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (*, 3, H, W), got {tuple(x.shape)}")


def _pow(x: Tensor, exponent: float) -> Tensor:
    # exp(k log x) is about twice as fast as x ** k on CPU; x is clamped positive by callers
    return torch.exp(exponent * torch.log(x))


def _matrix(rows, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply_matrix(m: Tensor, x: Tensor) -> Tensor:
    # (3, 3) @ (*, 3, H*W) -> (*, 3, H, W); a plain matmul is much faster than einsum here
    return (m @ x.flatten(-2)).view_as(x)


def _white(like: Tensor) -> Tensor:
    return torch.tensor(_WHITE_D65, dtype=like.dtype, device=like.device).view(3, 1, 1)


def _srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve ("gamma"), per channel."""
    return torch.where(
        rgb > 0.04045,
        _pow((rgb.clamp(min=0.04045) + 0.055) / 1.055, 2.4),
        rgb / 12.92,
    )


def _linear_to_lab(linear: Tensor) -> Tensor:
    """Linear sRGB ``(*, 3, H, W)`` -> raw Lab."""
    xyz = _apply_matrix(_matrix(_RGB_TO_XYZ, linear), linear) / _white(linear)
    f = torch.where(
        xyz > _EPSILON,
        _pow(xyz.clamp(min=_EPSILON), 1.0 / 3.0),
        _KAPPA * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = f.unbind(-3)
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack((L, a, b), dim=-3)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB to CIE Lab (D65), differentiably.

    Args:
        rgb: ``(*, 3, H, W)`` float tensor in [0, 1].

    Returns:
        ``(*, 3, H, W)`` Lab tensor: L in [0, 100], a and b about [-128, 127].

    Example:
        >>> rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten()  # white
        tensor([1.0000e+02, ...])
    """
    _check_image(rgb, "rgb")
    return _linear_to_lab(_srgb_to_linear(rgb))


def rgb8_to_L_ab(rgb8: Tensor) -> tuple[Tensor, Tensor]:
    """8-bit sRGB straight to the normalised ``(L, ab)`` pair, fast: the data loader's path.

    An 8-bit channel has only 256 values, so the sRGB curve becomes an exact 256-entry lookup
    table instead of a power per pixel. Not differentiable (the input is integer).

    Args:
        rgb8: ``(*, 3, H, W)`` ``torch.uint8`` tensor.

    Returns:
        ``L (*, 1, H, W)`` and ``ab (*, 2, H, W)``, float32, as :func:`rgb_to_L_ab` gives for
        ``rgb8 / 255``.
    """
    if not isinstance(rgb8, Tensor) or rgb8.dtype != torch.uint8:
        kind = rgb8.dtype if isinstance(rgb8, Tensor) else type(rgb8).__name__
        raise TypeError(f"rgb8 must be a torch.uint8 tensor, got {kind}")
    if rgb8.dim() < 3 or rgb8.shape[-3] != 3:
        raise ValueError(f"rgb8 must have shape (*, 3, H, W), got {tuple(rgb8.shape)}")
    table = _srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).float()
    # index_select is about 3x faster than advanced indexing on CPU
    linear = table.to(rgb8.device).index_select(0, rgb8.flatten().int()).view(rgb8.shape)
    return lab_to_L_ab(_linear_to_lab(linear))


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """Convert CIE Lab (D65) to sRGB, differentiably.

    Args:
        lab: ``(*, 3, H, W)`` float tensor, raw Lab units (L in [0, 100]).
        clip: clamp the result to [0, 1] (colours outside the sRGB gamut are clipped, as in
            scikit-image). The gradient is zero where clipping is active.

    Returns:
        ``(*, 3, H, W)`` sRGB tensor, in [0, 1] when ``clip``.
    """
    _check_image(lab, "lab")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)  # scikit-image also clips negative z to 0
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / _KAPPA) * _white(lab)
    xyz_to_rgb = torch.linalg.inv(_matrix(_RGB_TO_XYZ, lab))
    linear = _apply_matrix(xyz_to_rgb, xyz)
    rgb = torch.where(
        linear > 0.0031308,
        1.055 * _pow(linear.clamp(min=0.0031308), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return rgb.clamp(0.0, 1.0) if clip else rgb


def lab_to_L_ab(lab: Tensor) -> tuple[Tensor, Tensor]:
    """Split raw Lab into the normalised network input and target.

    Args:
        lab: ``(*, 3, H, W)`` raw Lab.

    Returns:
        ``L`` of shape ``(*, 1, H, W)`` in [-1, 1] and ``ab`` of shape ``(*, 2, H, W)``, about
        [-1, 1] for sRGB colours.
    """
    _check_image(lab, "lab")
    return lab[..., :1, :, :] / L_CENTER - 1.0, lab[..., 1:, :, :] / AB_SCALE


def L_ab_to_lab(L: Tensor, ab: Tensor) -> Tensor:
    """Inverse of :func:`lab_to_L_ab`: normalised ``(L, ab)`` back to raw Lab ``(*, 3, H, W)``."""
    for name, x, c in (("L", L, 1), ("ab", ab, 2)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")
        if x.dim() < 3 or x.shape[-3] != c:
            raise ValueError(f"{name} must have shape (*, {c}, H, W), got {tuple(x.shape)}")
    if L.shape[-2:] != ab.shape[-2:] or L.shape[:-3] != ab.shape[:-3]:
        raise ValueError(
            f"L {tuple(L.shape)} and ab {tuple(ab.shape)} must agree except in channels"
        )
    return torch.cat(((L + 1.0) * L_CENTER, ab * AB_SCALE), dim=-3)


def rgb_to_L_ab(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB in [0, 1] straight to the normalised ``(L, ab)`` pair a colorizer learns from."""
    return lab_to_L_ab(rgb_to_lab(rgb))


def L_ab_to_rgb(L: Tensor, ab: Tensor, clip: bool = True) -> Tensor:
    """Normalised ``(L, ab)`` straight to sRGB, differentiably (the path every RGB loss uses)."""
    return lab_to_rgb(L_ab_to_lab(L, ab), clip=clip)


def gray_ab_like(L: Tensor) -> Tensor:
    """The ``ab = 0`` prediction (the gray baseline) for a batch of ``L``: ``(*, 2, H, W)``."""
    return L.new_zeros(*L.shape[:-3], 2, *L.shape[-2:])


class RgbToLab(nn.Module):
    """Module form of :func:`rgb_to_lab`: ``(*, 3, H, W)`` sRGB -> raw Lab."""

    def forward(self, rgb: Tensor) -> Tensor:
        return rgb_to_lab(rgb)


class LabToRgb(nn.Module):
    """Module form of :func:`lab_to_rgb`: ``(*, 3, H, W)`` raw Lab -> sRGB."""

    def __init__(self, clip: bool = True) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, lab: Tensor) -> Tensor:
        return lab_to_rgb(lab, clip=self.clip)
