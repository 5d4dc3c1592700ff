"""colorlib: automatic image colorization, from Lab to DDColor.

The library behind the book *Automatic Image Colorization, from Lab to DDColor*. Its folders
are the stages of the pipeline, photos -> pairs -> models -> training -> evaluation -> use;
a module imports only from its own stage or the ones above it (``tests/test_layers.py``):

0. the base: :mod:`colorlib.color` (differentiable sRGB <-> Lab, the normalisation) and
   :mod:`colorlib.runtime` (device, seeds, profiles, caches, the one ``say``);
1. :mod:`colorlib.data`: photos in, ``(L, ab)`` pairs out (the one photo decoder, the gray
   filter, the COCO subset, the bundled photos, datasets and loaders);
2. :mod:`colorlib.models`: pure ``nn.Module`` networks and their registry (U-Net, PatchGAN,
   the ImageNet-encoder U-Net, DDColor);
3. :mod:`colorlib.checkpoint`: the file format, weights and architecture on disk;
4. :mod:`colorlib.evaluation`: predictions in, numbers out (metrics, FID, validation, COCO
   regions);
5. :mod:`colorlib.training`: objectives, steps, ``fit``, run state, the recipe registry;
6. :mod:`colorlib.inference`: ``colorize`` and ``load_colorizer`` (no training code);
7. for people: :mod:`colorlib.cli`, :mod:`colorlib.commands` and :mod:`colorlib.batch` (the
   command line), :mod:`colorlib.widgets`, :mod:`colorlib.gallery` and
   :mod:`colorlib.catalog` (the demo), :mod:`colorlib.viz`, :mod:`colorlib.tables`,
   :mod:`colorlib.profiling`, :mod:`colorlib.reports`.

The names below are the package's short cuts for the chapters' first cells; heavy submodules
are imported on first use, so ``import colorlib`` stays quick.
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
    "colorize": "colorlib.inference:colorize",
    "build_model": "colorlib.models:build_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'colorlib' has no attribute {name!r}")
