"""The pix2pix U-Net generator (Isola et al. 2017; junyanz's ``UnetGenerator``), built flat.

junyanz builds the U-Net recursively, one ``UnetSkipConnectionBlock`` inside the next. Here
the same network is written as two lists that read top to bottom: ``down[i]`` halves the
resolution, ``up[i]`` doubles it, and ``up[i]`` receives the output of ``up[i + 1]``
concatenated with the skip ``down[i]`` (the innermost ``up`` gets the bottleneck alone).
Layers, bias choices and therefore parameter counts are the reference's exactly
(54,409,858 for 1 -> 2 channels, 8 levels, 64 base filters: "54.41 M").

Per level ``i = 1 .. n`` (``n = num_downs``) the encoder has ``c_i = base * min(2**(i-1), 8)``
channels at resolution ``H / 2**i``::

    down 1          Conv4x4/2                      in -> c_1     (outermost: no norm, no act)
    down 2..n-1     LeakyReLU(0.2), Conv4x4/2, BN  c_(i-1) -> c_i
    down n          LeakyReLU(0.2), Conv4x4/2      c_(n-1) -> c_n (innermost: no norm)
    up n            ReLU, ConvT4x4/2, BN           c_n -> c_(n-1)
    up n-1..2       ReLU, ConvT4x4/2, BN, [Dropout] 2 c_i -> c_(i-1)
    up 1            ReLU, ConvT4x4/2 (+bias), Tanh 2 c_1 -> out

Convolutions followed by BatchNorm have no bias, as in the reference. Dropout (p=0.5, the
noise source of pix2pix) sits where junyanz puts it: in the ``num_downs - 5`` decoder blocks
that follow the innermost one (levels 5 .. n-1: three for the 256-pixel network, at 1/64,
1/32 and 1/16 resolution). The paper's table also lists dropout on the innermost decoder
layer; the released code, followed here, does not.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from colorlib.models.blocks import check_image_batch, init_weights

__all__ = ["UNetGenerator"]


def _down(in_channels: int, out_channels: int, outermost: bool, innermost: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    if not outermost:
        layers.append(nn.LeakyReLU(0.2))  # not in place: the skip keeps the raw feature
    layers.append(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False))
    if not (outermost or innermost):
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, outermost: bool, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReLU()]
    if outermost:
        layers += [nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), nn.Tanh()]
        return nn.Sequential(*layers)
    layers += [
        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``L (B, 1, H, W) in [-1, 1] -> ab (B, 2, H, W) in [-1, 1]``.

    Args:
        in_channels: input channels (1: the lightness L).
        out_channels: output channels (2: the chroma ab).
        base_channels: filters of the first level ("ngf" in pix2pix; 64 in the paper).
        num_downs: number of stride-2 levels ("num_downs"; 8 for 256x256 images, where the
            bottleneck is 1x1). ``H`` and ``W`` must be multiples of ``2 ** num_downs``.
        dropout: dropout probability in the decoder blocks after the innermost one (0.5 in
            pix2pix; 0 turns it off).

    Attributes:
        required_multiple: ``2 ** num_downs``.
        model_kwargs: the keyword arguments that rebuild this architecture.

    Example:
        >>> net = UNetGenerator.for_image_size(32, base_channels=8)  # num_downs = 5
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 2, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 64,
        num_downs: int = 8,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        if base_channels < 1 or num_downs < 1:
            raise ValueError(
                f"base_channels and num_downs must be >= 1, got {base_channels}, {num_downs}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.model_kwargs = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            base_channels=base_channels,
            num_downs=num_downs,
            dropout=dropout,
        )
        self.in_channels, self.out_channels, self.num_downs = in_channels, out_channels, num_downs
        # channels[i] = c_i, the encoder width at level i (channels[0] is the input)
        channels = [in_channels] + [base_channels * min(2**i, 8) for i in range(num_downs)]
        self.channels = tuple(channels)
        n = num_downs
        self.down = nn.ModuleList(
            _down(channels[i - 1], channels[i], outermost=i == 1, innermost=i == n)
            for i in range(1, n + 1)
        )
        # up[i - 1] maps level i to level i - 1; the innermost sees no concatenation
        self.up = nn.ModuleList(
            _up(
                channels[i] * (1 if i == n else 2),
                out_channels if i == 1 else channels[i - 1],
                outermost=i == 1,
                dropout=dropout if 5 <= i < n else 0.0,
            )
            for i in range(1, n + 1)
        )
        init_weights(self)

    @classmethod
    def for_image_size(cls, image_size: int, base_channels: int = 64, **kwargs) -> UNetGenerator:
        """The U-Net whose bottleneck is 1x1 for ``image_size`` (``num_downs = log2(size)``).

        Args:
            image_size: side of the square training images; a power of two >= 2
                (256 gives the paper's 8 levels).
            base_channels: "ngf".
            **kwargs: the other constructor arguments.

        Raises:
            ValueError: ``image_size`` is not a power of two.
        """
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2:
            raise ValueError(f"image_size must be an integer power of two >= 2, got {image_size}")
        if image_size & (image_size - 1):
            raise ValueError(
                f"image_size must be a power of two for a 1x1 bottleneck, got {image_size}; "
                f"pass num_downs explicitly (the size must then be a multiple of 2**num_downs)"
            )
        num_downs = int(math.log2(image_size))
        return cls(base_channels=base_channels, num_downs=num_downs, **kwargs)

    @property
    def required_multiple(self) -> int:
        """Input height and width must be multiples of this (``2 ** num_downs``)."""
        return 2**self.num_downs

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """Colourise: ``L (B, in_channels, H, W) -> ab (B, out_channels, H, W)`` in [-1, 1].

        Raises:
            ValueError: wrong shape, or ``H``/``W`` not multiples of :attr:`required_multiple`.
        """
        check_image_batch(L, "UNetGenerator input L", self.in_channels, self.required_multiple)
        skips = []
        x = L
        for down in self.down:
            x = down(x)  # (B, c_i, H / 2**i, W / 2**i)
            skips.append(x)
        x = self.up[-1](skips.pop())  # innermost: (B, c_(n-1), H / 2**(n-1), ...)
        for up in reversed(self.up[:-1]):
            # skip first, as in the reference, so its weights are interchangeable with ours
            x = torch.cat([skips.pop(), x], dim=1)  # (B, 2 c_i, H / 2**i, W / 2**i)
            x = up(x)  # (B, c_(i-1), H / 2**(i-1), ...); last: (B, out, H, W)
        return x
