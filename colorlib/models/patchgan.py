"""The pix2pix PatchGAN discriminator (junyanz's ``NLayerDiscriminator``), conditional on L.

Instead of one real/fake score per image, the PatchGAN gives a grid of logits, each judging
one overlapping patch of the input: a "texture/style" critic that leaves the low frequencies
to the L1 term. The discriminator sees the condition and the colours together,
``cat(L, ab) -> (B, 3, H, W)``, so it judges whether the chroma fits that grayscale image.

Layers for ``num_layers = n`` (widths ``base * min(2**k, 8)``), all 4x4 kernels, padding 1::

    Conv/2 (+bias)                 -> LeakyReLU(0.2)       3 -> 64
    n - 1 x  Conv/2 -> BN          -> LeakyReLU(0.2)       64 -> 128 -> 256
    Conv/1 -> BN                   -> LeakyReLU(0.2)       256 -> 512
    Conv/1 (+bias)                                         512 -> 1 logit per patch

With the defaults (n = 3, 64 filters) this is the paper's 70x70 PatchGAN: 2,765,633
parameters ("2.77 M"), 30x30 logits for a 256x256 input, each seeing a 70x70 patch
(:meth:`PatchDiscriminator.receptive_field` derives the 70 from the layer list).
"""

from __future__ import annotations

import torch
from torch import nn

from colorlib.models.blocks import ConvNormAct, check_image_batch, init_weights

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: ``forward(L (B, 1, H, W), ab (B, 2, H, W)) -> logits (B, 1, h, w)``.

    Logits are raw scores (no sigmoid); the losses in :mod:`colorlib.training.losses` apply it.

    Args:
        in_channels: channels of ``cat(L, ab)`` (3).
        base_channels: filters of the first layer ("ndf" in pix2pix; 64).
        num_layers: stride-2 convolutions after the first ("n_layers"; 3 gives 70x70 patches).

    Attributes:
        model_kwargs: the keyword arguments that rebuild this architecture.

    Example:
        >>> netD = PatchDiscriminator()
        >>> netD.output_size(256, 256), netD.receptive_field()
        ((30, 30), 70)
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        if in_channels < 2 or base_channels < 1 or num_layers < 1:
            raise ValueError(
                "need in_channels >= 2 (L and ab), base_channels >= 1, num_layers >= 1; got "
                f"{in_channels}, {base_channels}, {num_layers}"
            )
        self.model_kwargs = dict(
            in_channels=in_channels, base_channels=base_channels, num_layers=num_layers
        )
        self.in_channels = in_channels
        widths = [base_channels * min(2**k, 8) for k in range(num_layers + 1)]
        layers: list[nn.Module] = [
            ConvNormAct(in_channels, widths[0], 4, 2, 1, norm=False, activation="leaky_relu")
        ]
        for k in range(1, num_layers + 1):
            stride = 2 if k < num_layers else 1  # the last widening layer keeps the resolution
            layers.append(
                ConvNormAct(widths[k - 1], widths[k], 4, stride, 1, activation="leaky_relu")
            )
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        init_weights(self)

    def _convs(self) -> list[nn.Conv2d]:
        return [m for m in self.layers.modules() if isinstance(m, nn.Conv2d)]

    def receptive_field(self) -> int:
        """Side in pixels of the input patch that one output logit sees (70 by default).

        Walks the convolutions from the last to the first: a window of ``r`` outputs of a
        layer with kernel ``k`` and stride ``s`` covers ``(r - 1) * s + k`` of its inputs.
        """
        field = 1
        for conv in reversed(self._convs()):
            field = (field - 1) * conv.stride[0] + conv.kernel_size[0]
        return field

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Logit grid ``(h, w)`` for an ``height x width`` input, from the layer arithmetic."""
        for conv in self._convs():
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            height, width = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        return height, width

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Score every patch of ``cat(L, ab)``.

        Args:
            L: (B, 1, H, W) lightness in [-1, 1].
            ab: (B, in_channels - 1, H, W) chroma in about [-1, 1] (real or generated).

        Returns:
            (B, 1, h, w) logits, ``(h, w) = output_size(H, W)`` (30x30 for 256x256).

        Raises:
            ValueError: mismatched shapes, or an input too small for one logit.
        """
        check_image_batch(L, "PatchDiscriminator input L", 1)
        check_image_batch(ab, "PatchDiscriminator input ab", self.in_channels - 1)
        if L.shape[0] != ab.shape[0] or L.shape[-2:] != ab.shape[-2:]:
            raise ValueError(
                f"L {tuple(L.shape)} and ab {tuple(ab.shape)} must share batch size, H and W"
            )
        if min(self.output_size(*L.shape[-2:])) < 1:
            raise ValueError(
                f"input {L.shape[-2]}x{L.shape[-1]} is too small for this PatchGAN "
                f"(receptive field {self.receptive_field()} pixels); use a larger image"
            )
        x = torch.cat([L, ab], dim=1)  # (B, 3, H, W)
        return self.layers(x)  # (B, 1, h, w), e.g. (B, 1, 30, 30) for 256x256
