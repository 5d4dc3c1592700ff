"""Checkpoints: atomic writes, safe loads, the run state they hold, and the inference loader.

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

What else lives here, and why:

* :func:`load_checkpoint` turns every way a file can fail to load (missing, truncated, junk
  bytes, a pickle that needs code to run) into :class:`CheckpointError`, with torch's
  paragraph-long weights-only refusals cut to their first line;
* the packing of the run state that :func:`colorlib.train.fit` saves and reads back: the
  ``progress`` counters (and whether they complete the config's stages), the ``samples``
  quantised to uint8, the random-number states;
* the checks that a checkpoint fits a config: the run to resume (same experiment) or the run
  whose weights start a new one (same generator architecture);
* :func:`load_generator`, the inference entry point: config and weights in, network out.

The config and the builders come from :mod:`colorlib.config`; nothing here trains.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorlib.config import TrainConfig, config_differences, rebuild_generator
from colorlib.runtime import checkpoint_dir

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
SAMPLE_SIZE = 128  # side of the stored sample colourisations (kept small for checkpoints)
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


# ----------------------------------------------------------------------------- run state


@dataclass
class _Progress:
    """Counters saved in checkpoints: where the run is, in steps, stages, epochs and time."""

    num_stages: int
    step: int = 0
    stage_index: int = 0
    stage_steps: list = field(default_factory=list)
    stage_seconds: list = field(default_factory=list)
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        self.stage_steps = list(self.stage_steps) or [0] * self.num_stages
        self.stage_seconds = list(self.stage_seconds) or [0.0] * self.num_stages

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _stage_over(config: TrainConfig, progress: _Progress, index: int) -> bool:
    stage = config.stages[index]
    steps = stage.max_steps is not None and progress.stage_steps[index] >= stage.max_steps
    minutes = progress.stage_seconds[index] / 60.0
    return steps or (stage.max_minutes is not None and minutes >= stage.max_minutes)


def _is_complete(config: TrainConfig, progress: _Progress) -> bool:
    return all(_stage_over(config, progress, i) for i in range(len(config.stages)))


def _quantise(x: Tensor) -> Tensor:
    """Normalised [-1, 1] values -> uint8 (samples are small in checkpoints)."""
    if x.shape[-1] > SAMPLE_SIZE:
        x = F.interpolate(x.float(), size=(SAMPLE_SIZE, SAMPLE_SIZE), mode="area")
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def _dequantise(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1.0


def _decode_samples(samples: dict) -> dict:
    if not samples:
        return {}
    out = {k: samples[k] for k in ("steps", "stages")}
    out.update({k: _dequantise(samples[k]) for k in ("L", "real_ab")})
    out["ab"] = [_dequantise(ab) for ab in samples["ab"]]
    return out


# ----------------------------------------------------------------------------- fitting a config


def _resolve_init(init_from: str | Path) -> Path:
    path = Path(init_from)
    if path.suffix == ".pt" or path.exists():
        return path
    return checkpoint_dir() / f"{init_from}.pt"


def _init_state(init_from, config: TrainConfig) -> dict:
    """The checkpoint a run starts from (e.g. a finished L1 pretraining), checked to fit."""
    path = _resolve_init(init_from)
    state = load_checkpoint(path)
    source = TrainConfig.from_dict(state["config"])
    if _build_spec(source.model, source.model_kwargs) != _build_spec(
        config.model, config.model_kwargs
    ):
        raise ValueError(
            f"init_from {path} holds a {source.model!r} generator with {source.model_kwargs}; "
            f"this config builds {config.model!r} with {config.model_kwargs}"
        )
    same_critic = _build_spec(source.discriminator, source.discriminator_kwargs) == _build_spec(
        config.discriminator, config.discriminator_kwargs
    )
    if not same_critic:
        state = {**state, "discriminator": None}  # a different critic starts fresh
    return state


def _build_spec(name, kwargs: dict):
    return name, {k: v for k, v in kwargs.items() if k != "pretrained"}


def _resume_state(config, path, resume: bool, init_from) -> dict | None:
    """The checkpoint to continue from, or None; refuses one of a different experiment."""
    if path is None or not resume or not Path(path).exists():
        return None
    state = load_checkpoint(path)
    diffs = config_differences(TrainConfig.from_dict(state["config"]), config)
    if state.get("init_from") != (None if init_from is None else str(init_from)):
        diffs.append("init_from")
    if diffs:
        raise CheckpointError(
            f"{path} belongs to a run with a different config (fields {diffs}); "
            "pass resume=False to start again and overwrite it"
        )
    return state


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
