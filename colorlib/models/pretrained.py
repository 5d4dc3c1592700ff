"""Honest access to ImageNet weights: from the torch hub cache, the network, or not at all.

Every model that wants pretrained weights (the ResNet18 U-Net encoder, DDColor's ConvNeXt, the
VGG16-BN perceptual loss) asks :func:`load_torchvision_state_dict` for a torchvision weights
enum by name. The answer is a :class:`PretrainedWeights` that says where the weights came from:

1. ``cache``: the file is already in ``torch.hub.get_dir()/checkpoints`` (pre-seeded, or an
   earlier download); loaded with ``weights_only=True``, no network;
2. ``download``: the weights host answers within ``timeout`` seconds; torchvision downloads the
   file with its hash check and a progress bar;
3. ``unavailable``: offline (or ``COLORLIB_OFFLINE=1``); ``state_dict`` is ``None`` and the
   message, printed to stderr, says so. The caller then picks its own fallback and says which.

The connectivity probe is a TCP connect with a short timeout, so an offline machine is told at
once instead of hanging on a download.

Weights that are no torchvision enum (the FID Inception of pytorch-fid) go through
:func:`hub_checkpoint`: the same cache folder and probe, the download by
:func:`colorlib.data.download.download_file` (resumable, retried), and torch hub's check that the
file's sha256 begins with the hex digits in its name (``name-<sha256 prefix>.pth``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from colorlib.runtime import say

__all__ = [
    "PretrainedWeights",
    "load_torchvision_state_dict",
    "hub_cache_path",
    "host_reachable",
    "hub_checkpoint",
]


@dataclass(frozen=True)
class PretrainedWeights:
    """Result of a weights request: ``state_dict`` (or ``None``), its ``source`` and a message."""

    name: str
    state_dict: dict[str, torch.Tensor] | None
    source: str  # "cache" | "download" | "unavailable"
    message: str

    @property
    def available(self) -> bool:
        return self.state_dict is not None


def hub_cache_path(url: str) -> Path:
    """Where ``torch.hub`` keeps (or would keep) the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    if os.environ.get("COLORLIB_OFFLINE", "") not in ("", "0"):
        return False
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_checkpoint(url: str, timeout: float = 3.0, progress: bool = True) -> Path | None:
    """The file at ``url`` in the torch hub cache: already there, else downloaded, else ``None``.

    A download goes to a temporary name next to the cached file and gets the cached name only
    once its sha256 begins with the hex digits between the last ``-`` of its file name and the
    extension (torch hub's convention, e.g. ``pt_inception-2015-12-05-6726825d.pth``; names
    without them are not checked). ``None``: offline (or ``COLORLIB_OFFLINE=1``); the caller
    says so.

    Raises:
        colorlib.data.download.DownloadError: the host answered but the file could not be had
            whole, or its sha256 does not match its name.
    """
    from colorlib.data.download import DownloadError, download_file, sha256_of

    cached = hub_cache_path(url)
    if cached.is_file():
        return cached
    if not host_reachable(url, timeout):
        return None
    loading = cached.with_name(cached.name + ".download")
    download_file(url, loading, progress=progress, desc=cached.name)
    match = torch.hub.HASH_REGEX.search(cached.name)
    if match and not (digest := sha256_of(loading)).startswith(match.group(1)):
        loading.unlink()
        raise DownloadError(url, f"sha256 {digest} does not begin with {match.group(1)}")
    os.replace(loading, cached)
    return cached


def load_torchvision_state_dict(weights: str, timeout: float = 3.0) -> PretrainedWeights:
    """Fetch a torchvision weights enum's state dict, e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``.

    Args:
        weights: ``"<Enum>.<member>"`` as accepted by ``torchvision.models.get_weight``.
        timeout: seconds to wait for the weights host before declaring the machine offline.

    Returns:
        A :class:`PretrainedWeights`; ``state_dict`` is ``None`` when nothing could be had.
    """
    from torchvision.models import get_weight

    try:
        enum = get_weight(weights)
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"unknown torchvision weights {weights!r}: {err}") from err
    cached = hub_cache_path(enum.url)
    if cached.is_file():
        state = torch.load(cached, map_location="cpu", weights_only=True)
        message = f"{weights}: ImageNet weights loaded from the torch hub cache ({cached})"
        say(message)
        return PretrainedWeights(weights, state, "cache", message)
    if host_reachable(enum.url, timeout):
        state = enum.get_state_dict(progress=True, check_hash=True)
        message = f"{weights}: ImageNet weights downloaded to {cached}"
        say(message)
        return PretrainedWeights(weights, state, "download", message)
    message = (
        f"{weights}: ImageNet weights are NOT available (offline, and not in {cached.parent}); "
        "the caller falls back (see its message)"
    )
    say(message)
    return PretrainedWeights(weights, None, "unavailable", message)
