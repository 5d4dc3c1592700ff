"""Checkpoints: atomic writes, safe loads, random-number states, and the inference loader.

A checkpoint is one ``torch.save``-d dict of tensors and primitives only, so it loads with
``torch.load(weights_only=True)`` (no code runs while reading a file). Layout, version 1::

    format "colorlib-checkpoint", version 1, torch_version
    config        TrainConfig.to_dict(): primitives only (enough to rebuild the networks)
    complete      bool: every stage of the config has used up its budget
    init_from     str | None: the checkpoint the generator (and discriminator) started from
    progress      {"num_stages", "step", "stage_index", "stage_steps": [per stage],
                   "stage_seconds": [per stage], "epoch", "batch_in_epoch", "elapsed" (s)}
    generator, discriminator           state dicts (discriminator None without one)
    generator_kwargs                   the generator's own ``model_kwargs`` (its architecture
                                       with defaults resolved), else the config's
    g_optimizer, d_optimizer, scaler   state dicts (None where absent)
    rng           {"python": list, "numpy": list, "torch": uint8 tensor, "cuda": [tensors]}
    history       [{"step", "stage", "time", "losses": {name: float}}]   (one per step)
    validations   [{"step", "stage", "time", "metrics": {name: float}}]
    samples       {"L": uint8 (n, 1, s, s), "real_ab": uint8 (n, 2, s, s),
                   "steps": [int], "stages": [str], "ab": [uint8 (n, 2, s, s)]}
                  (normalised values stored as round((x + 1) * 127.5), s <= 128)

Files are written to a temporary name in the same folder and moved into place with
``os.replace``, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "get_rng_state",
    "set_rng_state",
    "load_generator",
]

FORMAT = "colorlib-checkpoint"
VERSION = 1
_REQUIRED = ("config", "generator", "progress")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not a colorlib checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (tensors and primitives only) to ``path`` atomically.

    The format, version and torch version are added. Returns the final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "torch_version": str(torch.__version__),
        **state,
    }
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its format.

    Raises:
        CheckpointError: the file is missing, corrupt, or not a colorlib checkpoint (the
            message names the file and what was wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: corrupt, truncated or not a torch file ({err})"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a colorlib checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')!r}; this colorlib reads "
            f"versions up to {VERSION}"
        )
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {missing}")
    return state


def get_rng_state() -> dict:
    """Python, NumPy and torch (CPU and every CUDA device) random states, as safe types."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where devices match)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def load_generator(path: str | os.PathLike, device="cpu"):
    """Rebuild a trained generator for inference: ``(generator, config)``.

    The network is built from the stored config with ``pretrained=False`` (no ImageNet
    download: the checkpoint has the weights) and put in eval mode on ``device``.

    Raises:
        CheckpointError: missing, corrupt or wrong-format file, or weights that do not fit the
            network the config describes.

    Example:
        >>> generator, config = load_generator(checkpoint_dir() / "pix2pix.pt")
        >>> ab = generator(L)
    """
    from colorlib.train import TrainConfig, rebuild_generator

    state = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} holds an invalid training config: {err}") from err
    try:  # no ImageNet download (the weights are here), no recomputation (inference only)
        generator = rebuild_generator(config, state, grad_checkpointing=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the generator weights do not fit {config.model!r} with "
            f"{state.get('generator_kwargs') or config.model_kwargs}: {err}"
        ) from err
    return generator.to(device).eval(), config
