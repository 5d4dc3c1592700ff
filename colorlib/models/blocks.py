"""Building blocks shared by the networks: pix2pix initialisation, conv units, input checks.

* :func:`init_weights` is the pix2pix initialisation (``init_type="normal"``, gain 0.02 in
  junyanz's code): convolution and linear weights from N(0, 0.02), norm scales from N(1, 0.02),
  every bias 0. The U-Net generator and the PatchGAN apply it at construction.
* :class:`ConvNormAct` is the "Conv-BatchNorm-activation" unit that the PatchGAN and the
  ResNet U-Net decoder are built from; the convolution has no bias when a norm follows (the
  norm's shift does that job, and the reference parameter counts depend on it).
* :class:`DecoderBlock` is one U-Net decoder step for encoders with fixed strides: upsample x2,
  concatenate the skip feature, two 3x3 :class:`ConvNormAct`.
* :func:`check_image_batch` gives every model the same clear error for a badly shaped input.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["init_weights", "count_parameters", "check_image_batch", "ConvNormAct", "DecoderBlock"]

_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
)
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
}


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise ``module`` and all its children in place, the pix2pix way.

    Convolution, transposed-convolution and linear weights ~ N(0, std); norm-layer scales
    ~ N(1, std); all their biases = 0. Other parameters are left alone.

    Args:
        module: any network.
        std: standard deviation of the normal draws (0.02 in pix2pix).

    Returns:
        ``module`` itself, for chaining.

    Example:
        >>> net = init_weights(nn.Conv2d(1, 8, 3))
    """
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            nn.init.normal_(layer.weight, 0.0, std)
        elif isinstance(layer, _NORMS) and getattr(layer, "weight", None) is not None:
            nn.init.normal_(layer.weight, 1.0, std)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (buffers such as BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_image_batch(x: torch.Tensor, name: str, channels: int, multiple: int = 1) -> None:
    """Raise a clear error unless ``x`` is a ``(B, channels, H, W)`` float batch.

    Args:
        x: the tensor to check.
        name: what it is, for the message (e.g. ``"UNetGenerator input L"``).
        channels: the required channel count.
        multiple: ``H`` and ``W`` must be divisible by this (e.g. ``2 ** num_downs``).

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: wrong number of dimensions, channels, or a size not divisible by
            ``multiple``; the message names the shape received and what was expected.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {kind}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"{name} has size {height}x{width}; height and width must be multiples of "
            f"{multiple} (resize or pad the image, or use a shallower network)"
        )


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d (optional) -> activation (optional): ``(B, C_in, H, W) ->
    (B, C_out, H', W')`` with ``H' = (H + 2 * padding - kernel_size) // stride + 1``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel side.
        stride: convolution stride.
        padding: zero padding; ``None`` means ``kernel_size // 2`` ("same" at stride 1).
        norm: add a BatchNorm2d; the convolution then has no bias (the norm's shift replaces it).
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"relu6"`` or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        norm: bool = True,
        activation: str | None = "relu",
    ) -> None:
        if activation is not None and activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {list(_ACTIVATIONS)}")
        padding = kernel_size // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not norm)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if activation is not None:
            layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)


class DecoderBlock(nn.Module):
    """One U-Net decoder step: nearest-neighbour upsampling x2, concatenation with the skip
    feature of the same resolution, then two 3x3 Conv-BN-ReLU.

    ``forward(x (B, C_in, h, w), skip (B, C_skip, 2h, 2w) or None) -> (B, C_out, 2h, 2w)``.

    Args:
        in_channels: channels of the coarse input ``x``.
        skip_channels: channels of ``skip`` (0 for a step without a skip connection).
        out_channels: channels of the output.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.skip_channels = skip_channels
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = nn.Sequential(
            ConvNormAct(in_channels + skip_channels, out_channels),
            ConvNormAct(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)  # (B, C_in, 2h, 2w)
        if skip is not None:
            if skip.shape[-2:] != x.shape[-2:] or skip.shape[1] != self.skip_channels:
                raise ValueError(
                    f"skip feature of shape {tuple(skip.shape)} does not fit the upsampled "
                    f"input {tuple(x.shape)} (expected {self.skip_channels} channels)"
                )
            x = torch.cat([x, skip], dim=1)  # (B, C_in + C_skip, 2h, 2w)
        elif self.skip_channels:
            raise ValueError(f"this block expects a skip feature with {self.skip_channels} ch")
        return self.fuse(x)  # (B, C_out, 2h, 2w)
