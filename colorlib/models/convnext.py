"""ConvNeXt (Liu et al., CVPR 2022) as DDColor's multi-scale encoder.

Design:

* the module tree and parameter names follow the ConvNeXt that DDColor's released checkpoints
  store under ``encoder.arch``: ``downsample_layers.i`` (stem / LayerNorm + strided conv),
  ``stages.i.j`` (blocks with ``dwconv``, ``norm``, ``pwconv1``, ``pwconv2``, ``gamma``), the
  extra per-stage LayerNorms ``norm0..norm3`` whose outputs are the features, and the unused
  classifier LayerNorm ``norm`` (kept only so the released checkpoints load strictly);
* :meth:`ConvNeXt.forward` returns the four features (strides 4, 8, 16, 32) explicitly, no
  hooks; the stage chain continues from the *un-normalised* stage output, as in DDColor;
* channels-last friendly: every LayerNorm and pointwise layer works on ``(B, H, W, C)``
  views, which are free when the activations are ``torch.channels_last``;
* ``gradient_checkpointing`` recomputes each block in the backward pass instead of storing its
  activations (same outputs and gradients, less memory);
* :func:`convnext_from_torchvision` renames torchvision's ImageNet ConvNeXt weights to these
  names, so DDColor can start from ``ConvNeXt_Tiny_Weights.IMAGENET1K_V1`` (or Large).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "LayerNorm2d",
    "ConvNeXtBlock",
    "ConvNeXt",
    "convnext_from_torchvision",
]

_EPS = 1e-6  # ConvNeXt's LayerNorm epsilon everywhere


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map (ConvNeXt's "channels_first" norm).

    Normalises a ``(B, H, W, C)`` view, so no copy is made for channels-last activations.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__(num_channels, eps=_EPS)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias)
        return y.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """``x + gamma * pwconv2(GELU(pwconv1(LN(dwconv7x7(x)))))``; ``(B, C, H, W)`` in and out.

    Args:
        dim: channels ``C``.
        layer_scale: initial value of ``gamma`` (ConvNeXt's layer scale, 1e-6).
    """

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        # registration order = the released checkpoint's key order
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))  # (B, H, W, C)
        # residual + gamma * y in one fused op, still in (B, H, W, C)
        return torch.addcmul(x.permute(0, 2, 3, 1), y, self.gamma).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt feature extractor: image ``(B, 3, H, W)`` -> features at strides 4, 8, 16, 32.

    Args:
        depths: blocks per stage ((3, 3, 9, 3) for ConvNeXt-T, (3, 3, 27, 3) for -L).
        dims: channels per stage ((96, 192, 384, 768) for -T, (192, 384, 768, 1536) for -L).
        in_channels: input channels (3).
        gradient_checkpointing: recompute each block during backward to save memory.

    Example:
        >>> net = ConvNeXt((1, 1, 1, 1), (8, 16, 32, 64))
        >>> [tuple(f.shape) for f in net(torch.zeros(1, 3, 64, 64))]
        [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4), (1, 64, 2, 2)]
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        in_channels: int = 3,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4 or min(*depths, *dims) < 1:
            raise ValueError(
                f"ConvNeXt needs 4 positive depths and 4 positive dims, got {depths}, {dims}"
            )
        self.depths, self.dims = tuple(depths), tuple(dims)
        self.gradient_checkpointing = gradient_checkpointing
        stem = nn.Sequential(nn.Conv2d(in_channels, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
            for depth, dim in zip(depths, dims, strict=True)
        )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", LayerNorm2d(dim))
        # ConvNeXt's classifier norm: DDColor never uses it, the released checkpoints hold it.
        # Frozen, so that DistributedDataParallel does not wait for gradients it never gets.
        self.norm = nn.LayerNorm(dims[-1], eps=_EPS).requires_grad_(False)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` -> ``[(B, dims[i], H / 2**(i+2), W / 2**(i+2)) for i in 0..3]``."""
        features = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages, strict=True)):
            x = down(x)
            for block in stage:
                if self.gradient_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            features.append(getattr(self, f"norm{i}")(x))
        return features

    def load_torchvision_weights(self, state_dict: dict[str, Tensor]) -> str:
        """Load a torchvision ``convnext_*`` ImageNet state dict into this network.

        Stages may be shallower than the torchvision model's (a truncated ConvNeXt): the extra
        blocks are skipped. The feature norms ``norm0..norm3`` have no ImageNet counterpart
        and keep their identity initialisation.

        Returns:
            A one-line summary of what was loaded and skipped.

        Raises:
            ValueError: when the widths differ or a block of this network has no weights.
        """
        converted = convnext_from_torchvision(state_dict)
        own = self.state_dict()
        skipped = sorted(k for k in converted if k not in own)
        mismatched = [
            f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in converted.items()
            if k in own and v.shape != own[k].shape
        ]
        if mismatched:
            raise ValueError(f"ImageNet ConvNeXt does not fit this encoder: {mismatched[:4]}")
        kept = {k: v for k, v in converted.items() if k in own}
        missing = self.load_state_dict(kept, strict=False).missing_keys
        unexpected_missing = [k for k in missing if not re.fullmatch(r"norm[0-3]\.\w+", k)]
        if unexpected_missing:
            raise ValueError(f"ImageNet ConvNeXt lacks weights for {unexpected_missing[:6]}")
        blocks = len({".".join(k.split(".")[:3]) for k in skipped})  # "stages.i.j"
        return f"loaded {len(kept)} tensors, skipped {blocks} deeper block(s) not in this encoder"


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


def convnext_from_torchvision(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision ConvNeXt state dict to :class:`ConvNeXt`'s names.

    torchvision keeps stem, downsamplers and stages in one ``features`` list (even indices
    downsample, odd ones are stages), writes each block as ``block.{0,2,3,5}`` and stores the
    layer scale as ``(C, 1, 1)``; its ``classifier.0`` LayerNorm becomes ``norm`` and the
    ``classifier.2`` linear head is dropped.

    Args:
        state_dict: ``torchvision.models.convnext_*().state_dict()`` (or the ImageNet file).

    Returns:
        A new dict with :class:`ConvNeXt` keys; tensors are shared, not copied.

    Raises:
        ValueError: for a key that is not part of a torchvision ConvNeXt.
    """
    block_parts = {"0": "dwconv", "2": "norm", "3": "pwconv1", "5": "pwconv2"}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("classifier.2."):
            continue
        if m := re.fullmatch(r"classifier\.0\.(\w+)", key):
            out[f"norm.{m[1]}"] = value
        elif m := re.fullmatch(r"features\.(\d*[13579])\.(\d+)\.layer_scale", key):
            out[f"stages.{int(m[1]) // 2}.{m[2]}.gamma"] = value.reshape(-1)
        elif m := re.fullmatch(r"features\.(\d*[13579])\.(\d+)\.block\.([0235])\.(\w+)", key):
            out[f"stages.{int(m[1]) // 2}.{m[2]}.{block_parts[m[3]]}.{m[4]}"] = value
        elif m := re.fullmatch(r"features\.(\d*[02468])\.([01])\.(weight|bias)", key):
            out[f"downsample_layers.{int(m[1]) // 2}.{m[2]}.{m[3]}"] = value
        else:
            raise ValueError(f"unexpected torchvision ConvNeXt key {key!r}")
    return out
