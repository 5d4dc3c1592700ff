"""The checkpoint file format: atomic writes, safe loads, and a network rebuilt from a file.

A checkpoint is one ``torch.save``-d dict of tensors and primitives only, so it loads with
``torch.load(weights_only=True)`` (no code runs while reading a file). Layout, version 1::

    format "colorlib-checkpoint", version 1, torch_version
    config        the training config as primitives (``TrainConfig.to_dict()``); its
                  ``model`` and ``model_kwargs`` name the generator in the model registry
    complete      bool: every stage of the config has used up its budget
    init_from     str | None: the checkpoint the generator (and discriminator) started from
    progress      {"num_stages", "step", "stage_index", "stage_steps": [per stage],
                   "stage_seconds": [per stage], "epoch", "batch_in_epoch", "elapsed" (s)}
    generator, discriminator           state dicts (discriminator None without one)
    generator_kwargs                   the generator's own ``model_kwargs`` (its architecture
                                       with defaults resolved), else the config's
    encoder_source                     str | None: where the encoder's weights began (e.g.
                                       "imagenet:resnet18", "random"), for networks that say
    g_optimizer, d_optimizer, scaler   state dicts (None where absent)
    rng           {"python": list, "numpy": list, "torch": uint8 tensor, "cuda": [tensors]}
    history       [{"step", "stage", "time", "losses": {name: float}}]   (one per step)
    validations   [{"step", "stage", "time", "metrics": {name: float}}]
    samples       {"L": uint8 (n, 1, s, s), "real_ab": uint8 (n, 2, s, s),
                   "steps": [int], "stages": [str], "ab": [uint8 (n, 2, s, s)]}
                  (normalised values stored as round((x + 1) * 127.5), s <= 128)

Files are written to a temporary name in the same folder and moved into place with
``os.replace``, so a crash mid-write leaves the previous checkpoint intact.
:func:`load_checkpoint` turns every way a file can fail to load (missing, truncated, junk
bytes, a pickle that needs code to run) into :class:`CheckpointError`, with torch's
paragraph-long weights-only refusals cut to their first line.

This module knows the file, not the training: it imports the model registry only, so
inference can rebuild a generator (:func:`load_generator`) without importing any training
code. What a run packs into the file (progress, samples, random states) is
:mod:`colorlib.training.runstate`'s business.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import torch
from torch import nn

from colorlib.models import build_model
from colorlib.runtime import atomic_write

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "rebuild_generator",
    "load_generator",
]

FORMAT = "colorlib-checkpoint"
VERSION = 1
_REQUIRED = ("config", "generator", "progress")
# what torch.load raises on a file that is not a readable torch checkpoint: its own errors,
# and the unpickler's on junk bytes (e.g. struct.error: unpack requires a buffer of 4 bytes)
_UNREADABLE = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    RuntimeError,
    EOFError,
    OSError,
    struct.error,
    IndexError,
    KeyError,
    ValueError,
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch marks up its weights-only message in bold


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not a colorlib checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (tensors and primitives only) to ``path`` atomically.

    The format, version and torch version are added. Returns the final path.
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "torch_version": str(torch.__version__),
        **state,
    }
    return atomic_write(path, lambda file: torch.save(payload, file))


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
    except _UNREADABLE as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: corrupt, truncated or not a torch file "
            f"({_load_failure(err)})"
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


def _load_failure(err: BaseException) -> str:
    """Why ``torch.load`` failed, short: a weights-only refusal runs to paragraphs."""
    message = str(err)
    if isinstance(err, pickle.UnpicklingError) and message.startswith("Weights only load failed"):
        first_line = _ANSI.sub("", message.splitlines()[0]).strip()
        return f"{first_line} (not a plain weights-only checkpoint)"
    return message


def rebuild_generator(state: dict, grad_checkpointing: bool = False) -> nn.Module:
    """The generator of a checkpoint ``state``, weights loaded, built with ``pretrained=False``.

    Built from the architecture the network reported when it was saved
    (``state["generator_kwargs"]``, e.g. ResNetUNet's resolved ``encoder="auto"``), else from
    the config's ``model_kwargs`` (a classifier saved before it had ``downsample`` gets 1, the
    full resolution it was trained at). A network with an ``encoder_source`` gets the stored
    one back (the ImageNet weights its run started from), so it travels along ``init_from``
    chains too.

    Raises:
        RuntimeError: weights that do not fit the architecture (torch's message).
    """
    config = state["config"]
    kwargs = dict(state.get("generator_kwargs") or config.get("model_kwargs") or {})
    kwargs.pop("pretrained", None)  # the weights are in the file: no ImageNet download
    if config["model"] == "classifier":
        # classifiers saved before ``downsample`` existed predicted at full resolution
        kwargs.setdefault("downsample", 1)
    generator = build_model(
        config["model"], pretrained=False, grad_checkpointing=grad_checkpointing, **kwargs
    )
    generator.load_state_dict(state["generator"])
    if state.get("encoder_source") and hasattr(generator, "encoder_source"):
        generator.encoder_source = state["encoder_source"]  # where the weights began, not "random"
    return generator


def load_generator(path: str | os.PathLike, device="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained generator for inference: ``(generator, config)``.

    The network is built with ``pretrained=False`` (no ImageNet download: the checkpoint has
    the weights), without gradient checkpointing, and put in eval mode on ``device``.
    ``config`` is the stored training config as primitives (``image_size``, ``model``, ...);
    ``colorlib.training.config.TrainConfig.from_dict(config)`` gives the dataclass.

    Raises:
        CheckpointError: missing, corrupt or wrong-format file, a config that names no known
            network, or weights that do not fit the network it names.

    Example:
        >>> generator, config = load_generator(checkpoint_dir() / "pix2pix.pt")
        >>> ab = generator(L)
    """
    state = load_checkpoint(path)
    config = state["config"]
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise CheckpointError(f"{path} holds an invalid training config: no model name")
    kwargs = state.get("generator_kwargs") or config.get("model_kwargs")
    try:
        generator = rebuild_generator(state)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} holds an invalid training config: {err}") from err
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the generator weights do not fit {config['model']!r} with {kwargs}: {err}"
        ) from err
    return generator.to(device).eval(), config
