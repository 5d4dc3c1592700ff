"""DDColor's pixel decoder: encoder features back up to a full-resolution embedding.

Design (Kang et al., ICCV 2023; names as in the released checkpoints):

* :class:`PixelDecoder`: three PixelShuffle-x2 stages with encoder shortcuts (``layers``;
  512 ch at 1/16, 512 at 1/8, 256 at 1/4 for the released models) and a PixelShuffle-x4
  (``last_shuf``) to a full-resolution embedding. Every upsampler is a spectral-normalised 1x1
  conv, ReLU, PixelShuffle and a 2x2 blur (DeOldify's ``CustomPixelShuffle_ICNR``, ICNR init).
* The full-resolution embedding is only needed through its dot products with the colour
  embeddings; :meth:`PixelShuffleUp.forward_projected` computes such products at 1/4 resolution
  (shuffle and blur are linear and commute with a per-pixel channel mix), so DDColor never
  materialises the ``(B, 256, H, W)`` embedding.
* :func:`spectral_conv` builds the spectral-normalised convolutions (legacy ``weight_orig``
  names, as in the checkpoints); the fusion of :mod:`colorlib.models.ddcolor` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.utils.checkpoint import checkpoint

__all__ = ["spectral_conv", "spectral_weight", "PixelShuffleUp", "UpBlock", "PixelDecoder"]

_INIT_POWER_ITERATIONS = 15
_CHUNK_NUMBERS = 2**20  # floats per chunk of PixelShuffleUp.forward_projected (4 MiB)


def spectral_conv(
    in_channels: int, out_channels: int, kernel_size: int, bias: bool, icnr_scale: int = 0
) -> nn.Conv2d:
    """Conv with legacy spectral norm (``weight_orig``/``_u``/``_v``), ready to use in eval.

    Kaiming init (ICNR for a PixelShuffle of ``icnr_scale``), zero bias; then a few power
    iterations so that ``weight_u``/``weight_v`` already estimate the largest singular value
    (torch starts them at random, which in eval mode, where no iteration runs, would scale
    the weight by a meaningless factor).
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    if conv.weight.is_meta:  # a shape-only model: nothing to initialise
        return spectral_norm(conv)
    if icnr_scale:
        _icnr_(conv.weight, icnr_scale)
    else:
        nn.init.kaiming_normal_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    conv = spectral_norm(conv)
    with torch.no_grad():
        matrix, u, v = conv.weight_orig.flatten(1), conv.weight_u, conv.weight_v
        for _ in range(_INIT_POWER_ITERATIONS):
            v.copy_(F.normalize(matrix.t() @ u, dim=0, eps=1e-12))
            u.copy_(F.normalize(matrix @ v, dim=0, eps=1e-12))
    return conv


def spectral_weight(conv: nn.Module) -> Tensor:
    """The weight a spectral-normalised conv uses in its next forward, without running it.

    Runs the conv's spectral-norm pre-hook, exactly as ``conv(x)`` would (one power iteration
    in training mode, none in eval mode), then returns ``conv.weight``.
    """
    for hook in conv._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm):
            hook(conv, ())
    return conv.weight


def _icnr_(weight: Tensor, scale: int) -> None:
    """ICNR init: every sub-pixel of a PixelShuffle output starts with the same filter."""
    out_channels = weight.shape[0] // (scale * scale)
    base = nn.init.kaiming_normal_(weight.new_empty(out_channels, *weight.shape[1:]))
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))


def _blur(x: Tensor) -> Tensor:
    # replicate-pad left/top by one, then 2x2 mean: removes PixelShuffle checkerboards
    return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class PixelShuffleUp(nn.Module):
    """Upsample ``(B, in, h, w)`` -> ``(B, out, h * scale, w * scale)`` by a PixelShuffle.

    ``conv`` is a spectral-norm 1x1 conv to ``out * scale**2`` channels (+ BatchNorm when
    ``batch_norm``, else with a bias); then ReLU, PixelShuffle and (``blur``) a 2x2 blur.
    """

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, batch_norm: bool, blur: bool = True
    ) -> None:
        super().__init__()
        out = out_channels * scale**2
        layers = [spectral_conv(in_channels, out, 1, bias=not batch_norm, icnr_scale=scale)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        self.conv = nn.Sequential(*layers)
        self.scale, self.blur = scale, blur
        self.gradient_checkpointing = False  # used by forward_projected only

    def forward(self, x: Tensor) -> Tensor:
        y = F.pixel_shuffle(F.relu(self.conv(x)), self.scale)
        return _blur(y) if self.blur else y

    def forward_projected(self, x: Tensor, matrix: Tensor) -> Tensor:
        """``einsum("bkc,bchw->bkhw", matrix, self(x))`` without building ``self(x)``.

        Args:
            x: ``(B, in, h, w)``.
            matrix: ``(B, K, out)``, e.g. colour embeddings or a fused output projection.

        Returns:
            ``(B, K, h * scale, w * scale)``: the mix is applied to each of the ``scale**2``
            sub-pixel groups at low resolution, then shuffled and blurred (both linear).

        Raises:
            ValueError: for an upsampler with BatchNorm (its conv is not a plain linear map).
        """
        if len(self.conv) != 1:
            raise ValueError("forward_projected needs an upsampler without BatchNorm")
        conv, s2 = self.conv[0], self.scale**2
        weight = spectral_weight(conv).flatten(1)  # (out * s2, in), row c * s2 + i
        out = weight.shape[0] // s2
        # reorder rows to i * out + c, so that each sub-pixel's channels are contiguous
        weight = weight.view(out, s2, -1).transpose(0, 1).reshape(out * s2, -1)
        bias = conv.bias.view(out, s2).t().reshape(-1)
        batch, _, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(batch, h * w, -1)  # a view if channels-last
        # a few hundred pixels at a time, so the wide activation stays in cache
        step = max(1, _CHUNK_NUMBERS // (batch * s2 * out))
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        mixed = [
            checkpoint(_relu_linear_mix, chunk, weight, bias, matrix, use_reentrant=False)
            if recompute
            else _relu_linear_mix(chunk, weight, bias, matrix)
            for chunk in tokens.split(step, dim=1)  # (B, n, in)
        ]
        y = torch.cat(mixed, dim=1) if len(mixed) > 1 else mixed[0]  # (B, h * w * s2, K)
        y = y.view(batch, h, w, s2, -1).permute(0, 4, 3, 1, 2).reshape(batch, -1, h, w)
        y = F.pixel_shuffle(y, self.scale)  # (B, K, h * s, w * s)
        return _blur(y) if self.blur else y


def _relu_linear_mix(tokens: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor) -> Tensor:
    """``relu(tokens W^T + b)`` split into groups of ``E`` channels, each mixed by ``matrix``.

    ``(B, n, in)``, ``(G * E, in)``, ``(G * E,)``, ``(B, K, E)`` -> ``(B, n * G, K)``.
    """
    y = F.relu(F.linear(tokens, weight, bias), inplace=True)  # (B, n, G * E)
    return torch.bmm(y.view(tokens.shape[0], -1, matrix.shape[2]), matrix.transpose(1, 2))


class UpBlock(nn.Module):
    """One pixel-decoder stage (DeOldify's ``UnetBlockWide``): upsample x2, add a shortcut.

    ``relu(cat(shuf(x), bn(skip)))`` -> spectral-norm 3x3 conv -> ReLU -> BatchNorm.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, blur: bool):
        super().__init__()
        self.shuf = PixelShuffleUp(in_channels, out_channels, 2, batch_norm=True, blur=blur)
        self.bn = nn.BatchNorm2d(skip_channels)
        nn.init.constant_(self.bn.bias, 1e-3)
        self.conv = nn.Sequential(
            spectral_conv(out_channels + skip_channels, out_channels, 3, bias=False),
            nn.ReLU(),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(F.relu(torch.cat((self.shuf(x), self.bn(skip)), dim=1)))


class PixelDecoder(nn.Module):
    """Encoder features -> three upsampled scales (1/16, 1/8, 1/4) and a full-res embedding.

    Args:
        encoder_dims: channels of the encoder features at strides 4, 8, 16, 32.
        channels: output channels of the three stages ((512, 512, 256) in DDColor).
        embed_dim: channels of the full-resolution embedding (256).
        blur: blur after each PixelShuffle (True in DDColor).
    """

    def __init__(
        self,
        encoder_dims: Sequence[int],
        channels: Sequence[int] = (512, 512, 256),
        embed_dim: int = 256,
        blur: bool = True,
    ) -> None:
        super().__init__()
        ins = (encoder_dims[3], *channels[:2])
        skips = tuple(reversed(encoder_dims[:3]))  # strides 16, 8, 4
        self.layers = nn.ModuleList(
            UpBlock(i, s, o, blur) for i, s, o in zip(ins, skips, channels, strict=True)
        )
        self.last_shuf = PixelShuffleUp(channels[-1], embed_dim, 4, batch_norm=False, blur=blur)

    def upsample(self, features: Sequence[Tensor]) -> list[Tensor]:
        """4 encoder features (strides 4..32) -> ``[(B, channels[i], H / 2**(4-i), ...)]``."""
        x, outputs = features[3], []
        for layer, skip in zip(self.layers, (features[2], features[1], features[0]), strict=True):
            x = layer(x, skip)
            outputs.append(x)
        return outputs

    def embed(self, finest: Tensor) -> Tensor:
        """The 1/4-scale output ``(B, C, H/4, W/4)`` -> embedding ``(B, embed_dim, H, W)``."""
        return self.last_shuf(finest)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
        scales = self.upsample(features)
        return scales, self.embed(scales[-1])
