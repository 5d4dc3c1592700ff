"""How much memory and time a piece of PyTorch code takes, measured from inside the process.

Three small tools that the DDColor and Performance chapters use to answer "does it fit?" and
"how fast is it?" with numbers instead of guesses:

* :func:`saved_for_backward` counts the bytes autograd *keeps* for the backward pass of a
  function (the activations), through :func:`torch.autograd.graph.saved_tensors_hooks`. It
  counts storages, not tensors: views (a transposed weight, a permuted feature map) share
  their base's bytes. It needs shapes and dtypes only, so it works on the ``meta`` device: the
  activations of a DDColor-large step at 256 px and batch 16 are counted without allocating
  a byte of them.
* :class:`PeakMemory` is the *peak* of tensor storage alive at once while it is active, on any
  device and operating system. It is a :class:`~torch.utils._python_dispatch.TorchDispatchMode`:
  every ATen call made inside it (forward and backward) passes through it, each new storage
  is added to a running total, and a :func:`weakref.finalize` on the storage subtracts it when
  PyTorch frees it. Storages that existed before (parameters, the input batch) are listed in
  ``ignore`` and never counted. On CUDA it also reads the caching allocator's own peak
  (:func:`torch.cuda.max_memory_allocated`), which includes kernel workspaces the dispatch
  view does not see; on an H100 the two agree within a few per cent for a DDColor step.
* :func:`time_it` runs a function a few times after a warm-up and keeps the *median* (robust
  to the spikes of a shared machine), synchronising CUDA so that queued kernels are counted.
* :func:`l1_training_step` is the step those tools measure in the chapters: forward, L1 loss,
  backward, optionally under autocast and split into micro-batches (gradient accumulation).

Nothing here changes what the measured code computes; the trackers only watch.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["saved_for_backward", "PeakMemory", "Timing", "time_it", "l1_training_step"]


def _tensors(values: Iterable[torch.Tensor], name: str) -> list[torch.Tensor]:
    values = list(values)
    for value in values:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must hold tensors, got {type(value).__name__}: {value!r:.60}")
    return values


def _callable(fn, name: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a callable taking no arguments, got {type(fn).__name__}")


def saved_for_backward(fn: Callable[[], object], ignore: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the tensor storages autograd keeps for the backward pass of ``fn()``.

    Every tensor that an operation inside ``fn`` saves for its gradient passes through a
    saved-tensors hook; the bytes of its *storage* are counted once, however many operations
    save it or a view of it (a linear layer saves ``weight.t()``, a view of the weight). The
    storages of the tensors in ``ignore`` (typically the parameters, which exist anyway) are
    left out, views of them included. Works on the ``meta`` device, where nothing is allocated.

    Args:
        fn: the forward computation, called once with no arguments; what it returns is dropped.
        ignore: tensors whose storages are not counted.

    Returns:
        The number of bytes kept for the backward pass.

    Example:
        >>> x = torch.ones(100, 10, requires_grad=True)  # 4,000 bytes
        >>> w = torch.ones(100, 10, requires_grad=True)
        >>> saved_for_backward(lambda: (x * w).relu().sum(), ignore=[w])  # x and relu's output
        8000
    """
    _callable(fn)
    # storage objects are unique per storage (views share one) and are held here until fn
    # returns, so their ids cannot be reused by other storages meanwhile
    held = [t.untyped_storage() for t in _tensors(ignore, "ignore")]
    skip = {id(storage) for storage in held}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if id(storage) not in skip and id(storage) not in seen:
            held.append(storage)
            seen.add(id(storage))
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return total


def _storage_key(tensor: torch.Tensor) -> tuple[str, int]:
    return str(tensor.device), tensor.untyped_storage().data_ptr()


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensor storage alive at once while the context is active.

    Counts the storages created inside the ``with`` block (forward, loss and backward alike)
    and drops them when PyTorch frees them; ``peak`` is the largest total seen. Views share
    their base's storage and are not counted twice. Tensors on the ``meta`` device take no
    memory and are not counted.

    On CUDA (``device`` given, or inferred from a CUDA tensor in ``ignore``) the caching
    allocator's peak above its level at entry is read too, as ``allocator_peak``. It includes
    cuBLAS/cuDNN workspaces, which ``peak`` does not see; and tensors that existed before the
    block but are freed inside it (the previous step's gradients after ``zero_grad``) lower it,
    while ``peak`` never counted them. The two differ by a few per cent, either way.

    Args:
        ignore: tensors that existed before and are not the measured code's own (parameters,
            buffers, the input batch); their storages are never counted.
        device: the CUDA device whose allocator to read; ``None``: the device of the first CUDA
            tensor in ``ignore``, if any. CPU and MPS have no allocator counters: leave it out.

    Attributes:
        peak: the peak in bytes (0 before entering).
        now: bytes alive now among the counted storages.
        allocator_peak: CUDA only, ``torch.cuda.max_memory_allocated`` minus the allocated
            bytes at entry; ``None`` elsewhere.

    Example:
        >>> with PeakMemory() as tracker:
        ...     x = torch.zeros(1024, 1024)  # 4 MiB
        ...     del x
        ...     y = torch.zeros(256, 1024)  # 1 MiB
        >>> tracker.peak
        4194304
    """

    def __init__(
        self, ignore: Iterable[torch.Tensor] = (), device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        ignore = _tensors(ignore, "ignore")
        if device is None:
            device = next((t.device for t in ignore if t.device.type == "cuda"), None)
        self.device = torch.device(device) if device is not None else None
        if self.device is not None and self.device.type != "cuda":
            raise ValueError(
                f"device={self.device}: only a CUDA device has allocator counters; leave "
                "device=None elsewhere (the dispatch count works on every device)"
            )
        if self.device is not None and not torch.cuda.is_available():
            raise ValueError(f"device={self.device} but CUDA is not available")
        self._alive = {_storage_key(t) for t in ignore}
        self.now = self.peak = 0
        self.allocator_peak: int | None = None
        self._allocator_base = 0

    def __enter__(self) -> PeakMemory:
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            self._allocator_base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return super().__enter__()

    def __exit__(self, *exc_info) -> None:
        super().__exit__(*exc_info)
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._allocator_base
            self.allocator_peak = max(peak, 0)

    def _free(self, key: tuple[str, int], nbytes: int) -> None:
        self.now -= nbytes
        self._alive.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key = _storage_key(tensor)
            if key in self._alive or storage.nbytes() == 0:
                continue
            self._alive.add(key)
            self.now += storage.nbytes()
            # runs when PyTorch frees the storage (the Python storage object lives as long)
            weakref.finalize(storage, self._free, key, storage.nbytes())
        self.peak = max(self.peak, self.now)
        return out


@dataclass(frozen=True)
class Timing:
    """Wall-clock durations of the timed runs of :func:`time_it`, in seconds.

    Attributes:
        times: one duration per timed run, in order.
    """

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median duration: the number to report on a machine shared with other work."""
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """The shortest duration: what the code takes when nothing else gets in the way."""
        return min(self.times)


def time_it(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    On a CUDA ``device`` the GPU is synchronised before the clock starts and before it stops,
    so that kernels queued by ``fn`` are counted (CUDA calls return before the work is done).

    Args:
        fn: the code to time, called with no arguments.
        repeats: timed calls, at least 1.
        warmup: untimed calls first (kernel selection, caches, lazy initialisation), at least 0.
        device: the device ``fn`` computes on; only CUDA needs it.

    Returns:
        A :class:`Timing`; ``.median`` is the usual summary.

    Example:
        >>> timing = time_it(lambda: torch.ones(64, 64) @ torch.ones(64, 64), repeats=3)
        >>> len(timing.times), timing.best <= timing.median
        (3, True)
    """
    _callable(fn)
    for name, value, least in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    device = torch.device(device) if device is not None else None
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else None
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync(device)
        start = time.perf_counter()
        fn()
        if sync:
            sync(device)
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


def l1_training_step(
    model: torch.nn.Module,
    L: torch.Tensor,
    real_ab: torch.Tensor,
    amp: bool = False,
    accumulate: int = 1,
) -> float:
    """One generator step without the optimiser: zero the gradients, L1 loss, backward.

    The step whose time and memory the chapters measure (an optimiser's step and state exist
    between steps anyway). With ``amp``, the forward pass runs under :func:`torch.autocast`
    in float16 on CUDA and bfloat16 elsewhere; the loss is taken in float32. With
    ``accumulate=k`` the batch runs as ``k`` micro-batches (:func:`torch.tensor_split`),
    each loss weighted by its share of the batch, whose gradients add up in ``.grad``: the
    full batch's mean L1 and its gradient, up to rounding, unless a layer depends on the
    batch (BatchNorm in training mode), with the activations of one micro-batch at a time.

    Args:
        model: maps ``L`` to a prediction of ``real_ab``'s shape.
        L: the input batch.
        real_ab: the target, one per image of ``L``.
        amp: run the forward pass under autocast.
        accumulate: micro-batches, from 1 to the batch size.

    Returns:
        The batch's mean absolute error, as a float.

    Raises:
        ValueError: for targets of another batch size or shape than the prediction, or an
            ``accumulate`` outside 1 to the batch size.
    """
    if L.shape[:1] != real_ab.shape[:1]:
        raise ValueError(
            f"L {tuple(L.shape)} and real_ab {tuple(real_ab.shape)}: batch sizes differ"
        )
    batch = len(L)
    if (
        isinstance(accumulate, bool)
        or not isinstance(accumulate, int)
        or not 1 <= accumulate <= batch
    ):
        raise ValueError(
            f"accumulate must be an integer from 1 to the batch ({batch}), got {accumulate!r}"
        )
    model.zero_grad(set_to_none=True)
    dtype = torch.float16 if L.device.type == "cuda" else torch.bfloat16
    total = torch.zeros((), device=L.device)
    parts = zip(L.tensor_split(accumulate), real_ab.tensor_split(accumulate), strict=True)
    for L_part, ab_part in parts:
        with torch.autocast(L.device.type, dtype=dtype, enabled=amp):
            prediction = model(L_part).float()
        if prediction.shape != ab_part.shape:
            raise ValueError(
                f"the model predicts {tuple(prediction.shape)} for real_ab {tuple(ab_part.shape)}"
            )
        loss = (prediction - ab_part).abs().mean() * (len(L_part) / batch)
        loss.backward()
        total += loss.detach()
    return float(total)  # one host synchronisation, after the last backward
