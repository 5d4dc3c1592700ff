"""Where and how big: device choice, seeding, cache folders and the named run profiles.

A *profile* is a frozen bundle of sizes (image size, batch size, number of photos, training
budget) chosen so that the same chapter makes sense on every machine:

* ``smoke``: CI. Tiny images and a handful of steps; every chapter in well under a minute on
  2 CPU cores. It checks that the code runs, not that it learns.
* ``cpu``: a laptop. About 10 minutes per training stage; results are meaningful but small.
* ``gpu``: Colab T4 / Kaggle P100 and up. The papers' 256x256 images and batch 16; a chapter
  in well under an hour.

The profile is picked by :func:`get_profile`: an explicit name, else ``COLORLIB_PROFILE``, else
``gpu`` when CUDA is available and ``cpu`` otherwise. Nothing is read from the environment at
import time.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "Profile",
    "PROFILES",
    "get_profile",
    "get_device",
    "seed_everything",
    "cache_dir",
    "checkpoint_dir",
    "setup",
    "say",
    "atomic_write",
]


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Write a file whole or not at all: ``write(binary_file)`` fills a temporary file in the
    same folder, which is synced and renamed over ``path``; on any error (or interrupt) the
    temporary file is removed and ``path`` keeps its old content. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def say(message: str) -> None:
    """colorlib's one way to tell the user what it does instead (offline fallbacks, skipped
    steps): one line on stderr, prefixed ``[colorlib]``, flushed at once so that it shows in a
    notebook before a long computation starts."""
    print(f"[colorlib] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Profile:
    """Sizes for one kind of machine. All chapters and the command line read them from here.

    Attributes:
        name: ``smoke``, ``cpu`` or ``gpu``.
        image_size: side of the square training crops (the papers use 256).
        batch_size: images per optimisation step (the papers use 16).
        num_images: colour photos used in total (train + validation); the original report used
            10,000 (8,000 / 2,000).
        val_fraction: share of ``num_images`` held back for validation.
        num_workers: data-loading worker processes.
        stage_minutes: wall-clock budget of one training stage (L1 pretraining, GAN, ...).
        stage_steps: optional step cap of one stage (``None``: the time budget decides).
        eval_images: validation photos used for metrics and figures.
        unet_base_channels: ``ngf`` of the pix2pix U-Net (64 in the paper).
        ddcolor_preset: name of the DDColor configuration the DDColor chapter trains.
    """

    name: str
    image_size: int
    batch_size: int
    num_images: int
    val_fraction: float
    num_workers: int
    stage_minutes: float
    stage_steps: int | None
    eval_images: int
    unet_base_channels: int
    ddcolor_preset: str

    def with_overrides(self, **changes) -> Profile:
        """A copy with some fields changed (profiles are frozen)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known: {sorted(known)}")
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        image_size=64,
        batch_size=4,
        num_images=48,
        val_fraction=0.25,
        num_workers=0,
        stage_minutes=0.25,
        stage_steps=3,
        eval_images=4,
        unet_base_channels=8,
        ddcolor_preset="micro",
    ),
    "cpu": Profile(
        name="cpu",
        image_size=128,
        batch_size=16,
        num_images=3000,
        val_fraction=0.1,
        num_workers=2,
        stage_minutes=10.0,
        stage_steps=None,
        eval_images=64,
        unet_base_channels=32,
        ddcolor_preset="cpu",
    ),
    "gpu": Profile(
        name="gpu",
        image_size=256,
        batch_size=16,
        num_images=10000,
        val_fraction=0.2,
        num_workers=2,
        stage_minutes=20.0,
        stage_steps=None,
        eval_images=256,
        unet_base_channels=64,
        ddcolor_preset="tiny",
    ),
}


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name`` if given, else CUDA, then Apple MPS, then CPU."""
    if name is not None:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_profile(name: str | None = None) -> Profile:
    """The run profile: ``name``, else ``$COLORLIB_PROFILE``, else by hardware (gpu / cpu)."""
    chosen = name or os.environ.get("COLORLIB_PROFILE") or None
    if chosen is None:
        chosen = "gpu" if torch.cuda.is_available() else "cpu"
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[chosen]


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy global state is what libraries use)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def cache_dir() -> Path:
    """Root of colorlib's caches: ``$COLORLIB_CACHE``, else ``~/.cache/colorlib``. Created."""
    root = Path(os.environ.get("COLORLIB_CACHE") or Path.home() / ".cache" / "colorlib")
    root.mkdir(parents=True, exist_ok=True)
    return root


def checkpoint_dir() -> Path:
    """Where the chapters' train-or-load checkpoints live (``cache_dir()/checkpoints``)."""
    path = cache_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe(profile: Profile, device: torch.device) -> str:
    """One line that says what will run where, printed at the top of every chapter."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    return (
        f"colorlib profile '{profile.name}' on {device.type} ({hardware}): "
        f"{profile.image_size}px, batch {profile.batch_size}, {profile.num_images} photos, "
        f"{profile.stage_minutes:g} min per training stage | torch {torch.__version__}"
    )


def setup(profile: str | None = None, seed: int = 0) -> tuple[Profile, torch.device]:
    """Pick the profile and device, seed everything and print the banner. Call first."""
    chosen = get_profile(profile)
    device = get_device()
    seed_everything(seed)
    print(describe(chosen, device))
    return chosen, device
