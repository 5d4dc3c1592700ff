"""The DDColor authors' released weights, by name, from the Hugging Face Hub.

The authors publish four checkpoints (their MODEL_ZOO), saved with ``huggingface_hub``'s
``PyTorchModelHubMixin``: a Hub repository holds the network's state dict as
``model.safetensors`` (or, in older uploads, ``pytorch_model.bin``) next to a ``config.json``.
:data:`RELEASED_WEIGHTS` names them; :func:`load_released` fetches one through
``huggingface_hub`` (its cache under ``HF_HOME``, resumed downloads, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``), checks every key and shape against the architecture it names (strict
load; the tiny and large listings also ship with colorlib, :mod:`colorlib.models.released`)
and returns the matching colorlib :class:`~colorlib.models.ddcolor.DDColor` in eval mode.

Offline (``COLORLIB_OFFLINE=1``, ``HF_HUB_OFFLINE=1``, or no network) a name that is not in
the cache fails within seconds with one line saying so and what to do; a local file path
still works everywhere (:func:`colorlib.inference.load_colorizer`).

Revisions: each entry names the revision it loads (``main`` unless pinned); the commit the
Hub resolved it to is recorded on the returned model (``hub_commit``) and printed, so a run
can be repeated exactly with ``revision=<that commit>``.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from colorlib.models.ddcolor import DDColor, build_ddcolor, load_state_strictly
from colorlib.runtime import say

__all__ = [
    "HubWeights",
    "RELEASED_WEIGHTS",
    "DEFAULT_RELEASED",
    "WeightsUnavailable",
    "is_released_name",
    "hub_reachable",
    "is_cached",
    "load_released",
]

#: weight files a PyTorchModelHubMixin repository may hold, in the order they are tried
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_ETAG_TIMEOUT = 5.0  # seconds to wait for the Hub's answer before saying "offline"


@dataclass(frozen=True)
class HubWeights:
    """One released checkpoint on the Hub.

    Attributes:
        repo_id: the Hub repository, e.g. ``"piddnad/ddcolor_modelscope"``.
        preset: the colorlib DDColor preset it fits (``"tiny"``, ``"large"``).
        summary: what it is, for menus and tables.
        revision: the branch, tag or commit to load.
    """

    repo_id: str
    preset: str
    summary: str
    revision: str = "main"


#: the authors' four checkpoints, by colorlib name
RELEASED_WEIGHTS: dict[str, HubWeights] = {
    "ddcolor-modelscope": HubWeights(
        "piddnad/ddcolor_modelscope",
        "large",
        "DDColor-L, the authors' default for photos outside ImageNet",
    ),
    "ddcolor-paper": HubWeights(
        "piddnad/ddcolor_paper", "large", "DDColor-L as in the paper (ImageNet)"
    ),
    "ddcolor-tiny": HubWeights(
        "piddnad/ddcolor_paper_tiny", "tiny", "DDColor-T as in the paper (ImageNet)"
    ),
    "ddcolor-artistic": HubWeights(
        "piddnad/ddcolor_artistic", "large", "DDColor-L tuned for vivid, artistic colour"
    ),
}
#: the authors' recommendation for colorizing one's own photos
DEFAULT_RELEASED = "ddcolor-modelscope"


class WeightsUnavailable(OSError):
    """Released weights that are neither cached nor downloadable (offline, no such file)."""


def is_released_name(name) -> bool:
    """Whether ``name`` is a key of :data:`RELEASED_WEIGHTS` (and not a file path)."""
    return isinstance(name, str) and name in RELEASED_WEIGHTS and not Path(name).exists()


def _offline() -> bool:
    flags = (os.environ.get(v, "") for v in ("COLORLIB_OFFLINE", "HF_HUB_OFFLINE"))
    return any(flag not in ("", "0") for flag in flags)


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = _ETAG_TIMEOUT) -> bool:
    """Whether the Hub answers at all (any HTTP status counts), asked once in a daemon thread
    that is waited on for about ``timeout`` seconds: huggingface_hub itself retries a refused
    connection for half a minute per file before it falls back to the cache. Offline (see the
    module docstring): False at once."""
    if _offline():
        return False
    answers: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(_endpoint(), method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                answers.append(True)
        except urllib.error.HTTPError:
            answers.append(True)  # it answered, with an error status: it is there
        except (OSError, ValueError):
            answers.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answers) and answers[0]


def is_cached(name: str) -> bool:
    """Whether released weights ``name`` are in the Hugging Face cache (usable offline)."""
    from huggingface_hub import try_to_load_from_cache

    weights = RELEASED_WEIGHTS[name]
    return any(
        isinstance(try_to_load_from_cache(weights.repo_id, f, revision=weights.revision), str)
        for f in WEIGHT_FILES
    )


def _download(weights: HubWeights, filename: str, revision: str, cache_only: bool) -> Path:
    """The cached (or freshly downloaded) file; raises huggingface_hub's errors for a file the
    repository does not have (``RemoteEntryNotFoundError``) or that cannot be had offline
    (``LocalEntryNotFoundError``)."""
    import huggingface_hub

    return Path(
        huggingface_hub.hf_hub_download(
            weights.repo_id,
            filename,
            revision=revision,
            endpoint=_endpoint(),
            etag_timeout=_ETAG_TIMEOUT,
            local_files_only=cache_only,
        )
    )


def _read_state(path: Path) -> dict[str, Tensor]:
    """A state dict from ``model.safetensors`` or a weights-only ``pytorch_model.bin``."""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("params", state) if isinstance(state, dict) else state
    except Exception as error:  # every way a damaged file fails to parse
        raise ValueError(
            f"{path} is damaged or truncated ({type(error).__name__}: {error}); delete it "
            "and load again to download a fresh copy"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def load_released(name: str, device="cpu", revision: str | None = None) -> DDColor:
    """The released DDColor ``name`` (a key of :data:`RELEASED_WEIGHTS`), in eval mode.

    Args:
        name: e.g. ``"ddcolor-modelscope"`` or ``"ddcolor-tiny"``.
        device: where to put the network.
        revision: a branch, tag or commit (default: the entry's ``revision``).

    Raises:
        ValueError: an unknown name, a damaged file, or weights that do not fit the
            architecture (naming the keys).
        WeightsUnavailable: not cached, and offline or unreachable.

    Example:
        >>> model = load_released("ddcolor-tiny")  # doctest: +SKIP
        >>> colorize(model, "grandma.jpg", size=512, keep_aspect=True)  # doctest: +SKIP
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    if name not in RELEASED_WEIGHTS:
        known = list(RELEASED_WEIGHTS)
        raise ValueError(f"unknown released weights {name!r}; choose one of {known}")
    weights = RELEASED_WEIGHTS[name]
    revision = revision or weights.revision
    path, unreachable = None, None
    cache_only = _offline() or not hub_reachable()
    for filename in WEIGHT_FILES:
        try:
            path = _download(weights, filename, revision, cache_only)
            break
        except RemoteEntryNotFoundError:
            continue  # the repository has the other format
        except LocalEntryNotFoundError as error:
            unreachable = error
    if path is None and unreachable is not None:
        raise WeightsUnavailable(
            f"the released weights {name!r} ({weights.repo_id}, {revision}) are not in the "
            "Hugging Face cache and cannot be downloaded here (offline, or the Hub is "
            "unreachable); run once with internet, or pass a local DDColor .pth file instead"
        ) from unreachable
    if path is None:
        raise WeightsUnavailable(f"{weights.repo_id} ({revision}) holds none of {WEIGHT_FILES}")
    model = build_ddcolor(weights.preset, pretrained=False)
    load_state_strictly(model, _read_state(path), f"{weights.repo_id}/{path.name}")
    commit = path.parent.name  # huggingface_hub's cache: .../snapshots/<commit>/<file>
    model.hub_commit = commit
    say(f"{name}: {weights.repo_id} at commit {commit} ({weights.summary})")
    return model.to(device).eval()
