"""colorlib: automatic image colorization, from Lab to DDColor.

The library behind the book *Automatic Image Colorization, from Lab to DDColor*:

* :mod:`colorlib.color`: differentiable sRGB <-> Lab and the learning normalisation;
* :mod:`colorlib.data`, :mod:`colorlib.images`, :mod:`colorlib.coco`, :mod:`colorlib.samples`:
  photos to ``(L, ab)`` pairs, robust reading, the COCO subset, bundled fallback photos;
* :mod:`colorlib.models`: pix2pix U-Net and PatchGAN, the ResNet18 U-Net, DDColor;
* :mod:`colorlib.losses`, :mod:`colorlib.perceptual`, :mod:`colorlib.metrics`;
* :mod:`colorlib.train`, :mod:`colorlib.checkpoint`: step functions, ``fit()``, checkpoints;
* :mod:`colorlib.infer`: full-resolution :func:`colorize`; :mod:`colorlib.cli`: the command line;
* :mod:`colorlib.runtime`: device, seeds, profiles; :mod:`colorlib.viz`: the book's figures.

Heavy submodules are imported on first use, so ``import colorlib`` stays quick.
"""

from __future__ import annotations

import importlib

from colorlib.color import L_ab_to_rgb, lab_to_rgb, rgb_to_L_ab, rgb_to_lab
from colorlib.runtime import get_device, get_profile, seed_everything, setup

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "rgb_to_lab",
    "lab_to_rgb",
    "rgb_to_L_ab",
    "L_ab_to_rgb",
    "get_device",
    "get_profile",
    "seed_everything",
    "setup",
    "colorize",
    "build_model",
]

_LAZY = {
    "colorize": "colorlib.infer:colorize",
    "build_model": "colorlib.models:build_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'colorlib' has no attribute {name!r}")
