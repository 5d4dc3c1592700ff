"""The models a person can pick, named for people: the book's runs and the released weights.

A checkpoint cache fills up with every run the chapters made: the main models, the loss
ablation's short runs, smoke-profile runs from a test. A menu of raw file names sorted
alphabetically puts an ablation first. This module lists them the way the book presents them:

* :func:`describe_checkpoint` reads a checkpoint's own metadata (its recipe, from the file name
  the recipes give it, its profile and its steps) without loading the weights (``mmap``);
* :func:`book_models` lists a folder's runs with readable labels ("U-Net, ImageNet encoder,
  L1 + GAN - chapter 6, cpu profile, 464 steps"), the book's main models first in the book's
  order, then other colorlib checkpoints; ablation runs, and smoke runs outside the smoke
  profile, only with ``show_all=True``;
* :func:`default_model` picks the one to show first, by the rule of :data:`PREFERRED`;
* :func:`released_models` offers the DDColor authors' weights when they can be had.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from colorlib.runtime import PROFILES, checkpoint_dir, get_profile

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "PREFERRED",
    "ModelEntry",
    "find_checkpoints",
    "describe_checkpoint",
    "book_models",
    "default_model",
    "released_models",
]

CHECKPOINT_SUFFIXES = (".pt", ".pth")
#: the first model a demo shows, best first: chapter 9's table (cpu profile, 64 held-back
#: photos) ranks the L1 + GAN U-Net closest to the real photos' colourfulness with PSNR near
#: the gray baseline's; then DDColor, then the L1 U-Net, then pix2pix
PREFERRED = ("pretrained-gan", "ddcolor", "pretrained-l1", "pix2pix")


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint file, as a person should see it."""

    path: Path
    label: str
    recipe: str | None = None  # the book's recipe that made it, if any
    profile: str | None = None
    steps: int | None = None
    ablation: bool = False
    order: int = 10_000  # position in the book (recipes' order), unknown runs last


def find_checkpoints(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """Checkpoint files (``*.pt``, ``*.pth``) in ``folder``, by file name, sorted.

    Args:
        folder: where to look; ``None``: :func:`colorlib.runtime.checkpoint_dir`. A folder
            that does not exist holds none.
    """
    folder = Path(checkpoint_dir() if folder is None else folder).expanduser()
    if not folder.exists():
        return {}
    if not folder.is_dir():
        raise ValueError(f"checkpoint folder must be a directory, got the file {folder}")
    files = sorted(
        path
        for path in folder.iterdir()
        if path.suffix in CHECKPOINT_SUFFIXES and path.is_file() and not path.name.startswith(".")
    )
    return {path.name: path for path in files}


def _recipe_of(stem: str) -> tuple[str, str] | None:
    """``(recipe, profile)`` for a file the recipes named ``<recipe>-<profile>[-seed<n>]``."""
    from colorlib.training.recipes import RECIPES

    for name in sorted(RECIPES, key=len, reverse=True):
        for profile in PROFILES:
            base = f"{name}-{profile}"
            if stem == base or (
                stem.startswith(base + "-seed") and stem[len(base) + 5 :].isdigit()
            ):
                return name, profile
    return None


def describe_checkpoint(path: str | os.PathLike) -> ModelEntry:
    """A checkpoint file's entry, from its name and its own metadata (weights not loaded)."""
    from colorlib.training.recipes import RECIPES

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 (listed under its name; choosing it says what is wrong)
        state = None
    if not isinstance(state, dict) or "params" in state:  # released .pth, or not readable
        kind = "released DDColor file" if isinstance(state, dict) else "unreadable"
        return ModelEntry(path, f"{path.name} ({kind})")
    steps = (state.get("progress") or {}).get("step")
    found = _recipe_of(path.stem)
    if found is None:
        model = (state.get("config") or {}).get("model", "?")
        return ModelEntry(path, f"{path.name} ({model}, {steps} steps)", steps=steps)
    name, profile = found
    recipe = RECIPES[name]
    label = f"{recipe.label or name} - chapter {recipe.chapter}, {profile} profile, {steps} steps"
    order = list(RECIPES).index(name)
    return ModelEntry(path, label, name, profile, steps, recipe.ablation, order)


def book_models(
    folder: str | os.PathLike | None = None, show_all: bool = False, profile: str | None = None
) -> dict[str, Path]:
    """The checkpoints of ``folder`` for a menu: ``{label: path}``, the book's order first.

    Args:
        folder: where to look (default :func:`colorlib.runtime.checkpoint_dir`).
        show_all: also list ablation runs and other profiles' smoke runs.
        profile: the profile whose smoke runs count as real (default: the current one).
    """
    current = profile or get_profile().name
    entries = [describe_checkpoint(path) for path in find_checkpoints(folder).values()]
    if not show_all:
        entries = [
            e for e in entries if not e.ablation and (e.profile != "smoke" or current == "smoke")
        ]
    entries.sort(key=lambda e: (e.order, e.label))
    return {entry.label: entry.path for entry in entries}


def default_model(models: dict[str, Path]) -> str | None:
    """The label to show first: the highest-ranked recipe of :data:`PREFERRED` present, else
    the first entry, else None."""
    recipes = {}
    for label, path in models.items():
        found = _recipe_of(Path(path).stem) if isinstance(path, Path) else None
        if found is not None:
            recipes.setdefault(found[0], label)
    return next((recipes[r] for r in PREFERRED if r in recipes), next(iter(models), None))


def released_models() -> tuple[dict[str, str], str | None]:
    """The authors' released DDColor weights a demo can offer now: ``({label: name}, why)``.

    Offered when they are cached or the Hub answers (downloaded on first use); ``why`` is
    None, or one line saying why none are offered (offline and not cached).
    """
    from colorlib.models.hub import RELEASED_WEIGHTS, hub_reachable, is_cached

    cached = {name for name in RELEASED_WEIGHTS if is_cached(name)}
    online = hub_reachable()
    offered = {
        f"{name}: {weights.summary} (released)": name
        for name, weights in RELEASED_WEIGHTS.items()
        if online or name in cached
    }
    why = None
    if not offered:
        why = (
            "the DDColor authors' released weights need the internet once (the Hugging Face "
            "Hub is not reachable and none are cached): showing the book's own models"
        )
    return offered, why
