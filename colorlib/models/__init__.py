"""The networks, one per file, and a registry that builds them by name.

Every generator maps normalised lightness to normalised chroma, ``L (B, 1, H, W) in [-1, 1]
-> ab (B, 2, H, W) in about [-1, 1]``; every discriminator maps ``(L, ab)`` to real/fake logits.
Names are resolved lazily, so importing ``colorlib.models`` does not import every network.

>>> from colorlib.models import build_model
>>> generator = build_model("unet", base_channels=8, num_downs=5)
"""

from __future__ import annotations

import importlib
import inspect
import warnings

from torch import nn

__all__ = [
    "MODELS",
    "build_model",
    "model_factory",
    "UNetGenerator",
    "PatchDiscriminator",
    "ResNetUNet",
    "DDColor",
    "ClassificationColorizer",
    "init_weights",
]

#: registry name -> "module:attribute" of a class or factory taking keyword arguments
MODELS: dict[str, str] = {
    "unet": "colorlib.models.unet:UNetGenerator",
    "patchgan": "colorlib.models.patchgan:PatchDiscriminator",
    "resnet-unet": "colorlib.models.resnet_unet:ResNetUNet",
    "ddcolor": "colorlib.models.ddcolor:build_ddcolor",
    "classifier": "colorlib.models.classification:ClassificationColorizer",
}

_EXPORTS = {
    "UNetGenerator": "colorlib.models.unet:UNetGenerator",
    "PatchDiscriminator": "colorlib.models.patchgan:PatchDiscriminator",
    "ResNetUNet": "colorlib.models.resnet_unet:ResNetUNet",
    "DDColor": "colorlib.models.ddcolor:DDColor",
    "ClassificationColorizer": "colorlib.models.classification:ClassificationColorizer",
    "init_weights": "colorlib.models.blocks:init_weights",
}


#: the keyword through which a network's factory turns gradient checkpointing on
_CHECKPOINTING_ARGUMENTS = ("grad_checkpointing", "gradient_checkpointing")


def _resolve(target: str):
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def model_factory(name: str):
    """The class or factory registered as ``name`` (imported on first use).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return _resolve(MODELS[name])


def _accepts(factory, argument: str) -> bool:
    try:
        return argument in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def build_model(
    name: str, /, *, pretrained: bool | None = None, grad_checkpointing: bool = False, **kwargs
) -> nn.Module:
    """Build a registered network by name (``unet``, ``patchgan``, ``resnet-unet``, ``ddcolor``,
    ``classifier``).

    Args:
        name: the registry name.
        pretrained: ImageNet weights for the encoder, for networks that have one (ignored by
            the others); ``None`` keeps the network's default.
        grad_checkpointing: recompute activations in the backward pass, for networks that
            support it (a warning for the others).
        **kwargs: the network's own keyword arguments (its ``model_kwargs``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    factory, kwargs = model_factory(name), dict(kwargs)
    if pretrained is not None and _accepts(factory, "pretrained"):
        kwargs["pretrained"] = pretrained
    argument = next((a for a in _CHECKPOINTING_ARGUMENTS if _accepts(factory, a)), None)
    if grad_checkpointing and argument is not None:
        kwargs[argument] = True
    model = factory(**kwargs)
    if grad_checkpointing and argument is None:
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            warnings.warn(f"{name!r} does not support gradient checkpointing", stacklevel=2)
    return model


def __getattr__(name: str):
    if name in _EXPORTS:
        return _resolve(_EXPORTS[name])
    raise AttributeError(f"module 'colorlib.models' has no attribute {name!r}")
