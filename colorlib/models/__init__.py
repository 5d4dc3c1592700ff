"""The networks, one per file, and a registry that builds them by name.

Every generator maps normalised lightness to normalised chroma, ``L (B, 1, H, W) in [-1, 1]
-> ab (B, 2, H, W) in about [-1, 1]``; every discriminator maps ``(L, ab)`` to real/fake logits.
Names are resolved lazily, so importing ``colorlib.models`` does not import every network.

>>> from colorlib.models import build_model
>>> generator = build_model("unet", base_channels=8, num_downs=5)
"""

from __future__ import annotations

import importlib

from torch import nn

__all__ = [
    "MODELS",
    "build_model",
    "UNetGenerator",
    "PatchDiscriminator",
    "ResNetUNet",
    "DDColor",
    "init_weights",
]

#: registry name -> "module:attribute" of a class or factory taking keyword arguments
MODELS: dict[str, str] = {
    "unet": "colorlib.models.unet:UNetGenerator",
    "patchgan": "colorlib.models.patchgan:PatchDiscriminator",
    "resnet-unet": "colorlib.models.resnet_unet:ResNetUNet",
    "ddcolor": "colorlib.models.ddcolor:build_ddcolor",
}

_EXPORTS = {
    "UNetGenerator": "colorlib.models.unet:UNetGenerator",
    "PatchDiscriminator": "colorlib.models.patchgan:PatchDiscriminator",
    "ResNetUNet": "colorlib.models.resnet_unet:ResNetUNet",
    "DDColor": "colorlib.models.ddcolor:DDColor",
    "init_weights": "colorlib.models.blocks:init_weights",
}


def _resolve(target: str):
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered network by name (``unet``, ``patchgan``, ``resnet-unet``, ``ddcolor``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return _resolve(MODELS[name])(**kwargs)


def __getattr__(name: str):
    if name in _EXPORTS:
        return _resolve(_EXPORTS[name])
    raise AttributeError(f"module 'colorlib.models' has no attribute {name!r}")
