"""Multi-process plumbing for :func:`colorlib.training.loop.fit`: one code path for 1 or N
processes.

* :func:`init_from_env` joins the process group that ``torchrun`` describes in its environment
  variables (``WORLD_SIZE > 1``): NCCL on CUDA, gloo on CPU. In a plain process it does nothing;
* :class:`EpochSampler` gives every rank its share of a shuffle that depends only on
  ``(seed, epoch)``, and can skip the batches already consumed, so a resumed run sees exactly
  the data an uninterrupted run would have seen;
* :func:`wrap` / :func:`unwrap` add and remove ``DistributedDataParallel``; :func:`sync_grads`
  is ``no_sync()`` for all but the last micro-batch of an accumulated step;
* :func:`any_rank` turns a per-rank decision (time is up, a loss is NaN) into a shared one.

>>> torchrun --nproc_per_node 2 my_training_script.py   # same fit() call as on one process
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

__all__ = [
    "DistInfo",
    "init_from_env",
    "rank_from_env",
    "EpochSampler",
    "epoch_seed",
    "wrap",
    "unwrap",
    "sync_grads",
    "broadcast_buffers",
    "any_rank",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, GPU ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call created the process group (fit() destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and shows progress."""
        return self.rank == 0


def init_from_env(device: torch.device | None = None) -> tuple[DistInfo, torch.device | None]:
    """Join the process group described by ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``.

    Args:
        device: the requested device; under CUDA each rank gets ``cuda:LOCAL_RANK``.

    Returns:
        ``(info, device)``; a single process gets ``DistInfo()`` and ``device`` unchanged.
    """
    if dist.is_available() and dist.is_initialized():
        info = DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    else:
        world_size = _env_int("WORLD_SIZE", 1)
        if world_size <= 1:
            return DistInfo(), device
        cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        info = DistInfo(dist.get_rank(), world_size, _env_int("LOCAL_RANK", 0), owns_group=True)
    if info.enabled and torch.cuda.is_available() and (device is None or "cuda" in str(device)):
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    return info, device


def rank_from_env() -> int:
    """This process's rank: from the process group if there is one, else ``$RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from err


class EpochSampler(Sampler[int]):
    """A reproducible, resumable, sharded shuffle.

    The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``(seed, e)``; it
    is trimmed to a whole number of batches on every rank (all ranks take the same number of
    steps, as DDP requires) and dealt round-robin to the ranks. A set smaller than one batch per
    rank (the offline fallback's handful of photos) is repeated, from fresh shuffles, until it
    fills one: an epoch is then a single step whose photos recur with different crops.

    Args:
        num_items: dataset length.
        batch_size: per-rank batch size.
        seed: base seed of the shuffle.
        rank, world_size: this process's share.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, rank=0, world_size=1):
        if num_items < 1 or batch_size < 1 or world_size < 1:
            raise ValueError(
                f"need a non-empty training set and positive sizes, got {num_items} items, "
                f"batch_size {batch_size}, {world_size} processes"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip_batches = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        """Full batches each rank gets per epoch."""
        return max(1, self.num_items // (self.batch_size * self.world_size))

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Choose the epoch (its shuffle) and how many of its batches were already consumed."""
        if not 0 <= skip_batches <= self.batches_per_epoch:
            raise ValueError(f"skip_batches must be in [0, {self.batches_per_epoch}]")
        self.epoch, self.skip_batches = epoch, skip_batches

    def generator(self) -> torch.Generator:
        """The generator of this epoch's shuffle (also seeds data-loading workers)."""
        return torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))

    def __iter__(self) -> Iterator[int]:
        usable = self.batches_per_epoch * self.batch_size * self.world_size
        generator = self.generator()
        rounds = -(-usable // self.num_items)  # > 1 only for a set smaller than one batch
        order = torch.cat(
            [torch.randperm(self.num_items, generator=generator) for _ in range(rounds)]
        )
        mine = order[:usable][self.rank :: self.world_size]
        return iter(mine[self.skip_batches * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip_batches) * self.batch_size


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed that depends on both the run's seed and the epoch."""
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(module)`` under a process group, else ``module`` itself."""
    if not info.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The network inside a DDP wrapper (or the network itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def sync_grads(module: nn.Module, sync: bool):
    """Context: DDP's ``no_sync()`` unless ``sync`` (the last micro-batch), else nothing."""
    if sync or not isinstance(module, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return module.no_sync()


def broadcast_buffers(module: nn.Module | None) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank, so all end identical.

    DDP keeps parameters in step, but each rank's last forward updates its own running
    statistics (and a frozen critic runs unwrapped); this makes the returned networks agree.
    """
    if module is None or not (dist.is_available() and dist.is_initialized()):
        return
    for buffer in unwrap(module).buffers():
        dist.broadcast(buffer, src=0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank (every rank gets the same answer)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
