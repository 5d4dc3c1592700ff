"""How a training step runs on this machine: autocast precision, memory format, optimiser kernel.

:func:`step_settings` turns a :class:`~colorlib.training.config.TrainConfig` and a device into
:class:`StepSettings`, which :func:`colorlib.training.loop.fit` applies and prints as one line:

* **precision**, with ``config.amp`` on: float16 autocast + ``GradScaler`` on CUDA (as
  before); on a CPU, bfloat16 autocast *when this CPU runs bf16 fast*, else float32. Master
  weights, gradients, optimiser state and losses stay float32 either way (autocast runs the
  convolutions and matrix products in bf16; every loss term casts to float32, see
  :mod:`colorlib.training.losses`); bf16 needs no loss scaling. The environment variable
  ``COLORLIB_PRECISION`` (``auto``, ``fp32``, ``bf16``) overrides the choice for this machine;
  ``auto`` (or unset) is the rule above. It is a property of the machine, not of the
  experiment, so it is not part of the config and checkpoints resume across it;
* **channels-last** (NHWC) memory for the networks and batches, with ``config.channels_last``,
  on CUDA and on CPUs (measured on an AVX2 CPU in float32: 1.02x to 1.24x per step for the
  book's recipes, ``benchmarks/results/train_cpu_precision.txt``);
* **fused** Adam/AdamW (one kernel for all parameters) on CUDA and CPU: for the 5 M parameters
  of the pretrained U-Net the per-tensor loop costs 24 ms a step on one CPU thread, the fused
  kernel 7 ms; with two threads, 56-200 ms against 13-24 ms.

Is bf16 fast here? :func:`cpu_bf16` decides once per process. On Linux the CPU flags come
first: an x86 CPU without ``avx512_bf16`` or ``amx_bf16`` (an ARM CPU without ``bf16``) only
emulates bf16, tens of times slower than float32 (a convolution 79x, a matrix product 47x on
an AVX2 EPYC), so it is never probed. Otherwise
(the flags are there, or unreadable: macOS, Windows) a short probe times a small convolution
and matrix product, forward and backward, in float32 and under bf16 autocast; bf16 is used
only when the probe runs at least :data:`MIN_SPEEDUP` times faster. The probe stops early as
soon as bf16 is clearly slower, so a slow CPU costs it a few tens of milliseconds.

>>> settings = step_settings(config, torch.device("cpu"))  # on an AVX2 CPU:
>>> settings.describe()
'precision: fp32 (this CPU runs bf16 slowly: AVX2, no avx512_bf16 or amx_bf16) | ...'
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from colorlib.training.steps import Precision

__all__ = [
    "PRECISION_ENV",
    "PRECISION_CHOICES",
    "MIN_SPEEDUP",
    "requested_precision",
    "CpuBf16",
    "cpu_bf16",
    "StepSettings",
    "step_settings",
    "load_optimizer_state",
]

#: the environment variable that overrides the automatic choice on this machine
PRECISION_ENV = "COLORLIB_PRECISION"
PRECISION_CHOICES = ("auto", "fp32", "bf16")
#: bf16 autocast is used on a CPU only when the probe runs at least this much faster
MIN_SPEEDUP = 1.2
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_ARM = ("aarch64", "arm64")
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def requested_precision(value: str | None = None) -> str:
    """The precision asked for: ``value``, else ``$COLORLIB_PRECISION``, else ``"auto"``.

    Raises:
        ValueError: anything but ``auto``, ``fp32`` or ``bf16`` (case and spaces ignored).
    """
    raw = os.environ.get(PRECISION_ENV, "") if value is None else value
    chosen = raw.strip().lower() or "auto"
    if chosen not in PRECISION_CHOICES:
        where = f"{PRECISION_ENV}={raw!r}" if value is None else f"precision {raw!r}"
        raise ValueError(f"{where} is not one of {', '.join(PRECISION_CHOICES)}")
    return chosen


@dataclass(frozen=True)
class CpuBf16:
    """Whether this CPU runs bf16 autocast fast, and why.

    Attributes:
        fast: use bf16 autocast for training here.
        reason: for people, e.g. ``"AVX2, no avx512_bf16 or amx_bf16"`` or ``"probe 1.8x"``.
        speedup: the probe's float32 time over its bf16 time, or None when not probed.
    """

    fast: bool
    reason: str
    speedup: float | None = None


def _capability() -> str:
    """ATen's vector instruction set here: ``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux), or None where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return set(value.split())
    return None


def _machine() -> str:
    return platform.machine().lower()


def _best(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: other processes only ever add time


def _probe_speedup(repeats: int = 5, stage_one_floor: float = 1.0) -> float:
    """float32 time over bf16-autocast time of a small training-like computation.

    Stage 1, a 256x256 matrix product, forward: if bf16 is not even as fast as float32 there
    (``stage_one_floor``), stop (an emulated bf16 costs tens of milliseconds here, not
    seconds). Stage 2, reached on CPUs with bf16 instructions: a 3x3 convolution (64
    channels, 4 x 32 x 32) and a 256x256 linear layer, forward and backward, the best of
    ``repeats`` alternating runs each (about 0.1 s on a 2-core AVX-512 CPU). Uses its own
    random generator: the global random streams (which
    seed a training run) are left untouched.
    """
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)

    def matmul(dtype):
        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                torch.mm(a, b)

        return run

    matmul(None)(), matmul(torch.bfloat16)()  # warm-up: kernels and their caches
    first = _best(matmul(None), repeats) / _best(matmul(torch.bfloat16), 2)
    if first < stage_one_floor:
        return first
    x = torch.randn(4, 64, 32, 32, generator=g)
    w = torch.randn(64, 64, 3, 3, generator=g).mul_(0.05).requires_grad_()
    v = torch.randn(256, 256, generator=g).mul_(0.05).requires_grad_()

    def step(dtype):
        def run():
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                y = F.conv2d(x, w, padding=1).float().square().mean()
                z = torch.mm(a, v).float().square().mean()
            (y + z).backward()
            w.grad = v.grad = None

        return run

    step(None)(), step(torch.bfloat16)()
    fp32, bf16 = [], []
    for _ in range(repeats):  # alternating: a busy spell hits both
        fp32.append(_best(step(None), 1))
        bf16.append(_best(step(torch.bfloat16), 1))
    return min(fp32) / min(bf16)


@functools.cache
def cpu_bf16() -> CpuBf16:
    """Whether bf16 autocast speeds up training on this CPU; decided once per process.

    Without the bf16 instructions (x86: ``avx512_bf16`` / ``amx_bf16``; ARM: ``bf16``) in
    ``/proc/cpuinfo``: slow, without probing. With them, or where the flags cannot be read:
    :func:`_probe_speedup`, fast at :data:`MIN_SPEEDUP` or more.
    """
    capability, flags, machine = _capability(), _cpu_flags(), _machine()
    if flags is not None and machine in _X86 and not flags & set(_X86_BF16_FLAGS):
        return CpuBf16(False, f"{capability}, no {' or '.join(_X86_BF16_FLAGS)}")
    if flags is not None and machine in _ARM and "bf16" not in flags:
        return CpuBf16(False, f"{machine} without bf16 instructions")
    speedup = _probe_speedup()
    return CpuBf16(speedup >= MIN_SPEEDUP, f"{capability}, probe {speedup:.2g}x", speedup)


@dataclass(frozen=True)
class StepSettings:
    """How :func:`colorlib.training.loop.fit` runs its steps on one device.

    Attributes:
        precision: the autocast settings (``dtype`` None: float32).
        grad_scaler: scale the losses (float16 only).
        channels_last: NHWC memory for the networks and batches.
        fused_optimizer: one fused Adam/AdamW kernel for all parameters.
        reason: why this precision, for people.
    """

    precision: Precision
    grad_scaler: bool = False
    channels_last: bool = False
    fused_optimizer: bool = False
    reason: str = ""

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.precision.dtype]

    def layout(self, x):
        """A module or tensor (or None) in this step's memory format: channels-last or as is."""
        if not self.channels_last or x is None:
            return x
        if isinstance(x, torch.Tensor):
            return x.contiguous(memory_format=torch.channels_last)
        return x.to(memory_format=torch.channels_last)

    def describe(self) -> str:
        """One line: ``precision: fp32 (why) | channels-last | fused optimiser``."""
        parts = [f"precision: {self.name}" + (f" ({self.reason})" if self.reason else "")]
        if self.channels_last:
            parts.append("channels-last")
        if self.fused_optimizer:
            parts.append("fused optimiser")
        return " | ".join(parts)


def _precision(amp: bool, device: torch.device, agree) -> tuple[torch.dtype | None, str]:
    requested = requested_precision()
    if requested == "fp32":
        return None, f"{PRECISION_ENV}=fp32"
    if requested == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"{PRECISION_ENV}=bf16: colorlib runs bf16 on cpu and cuda only")
        return torch.bfloat16, f"{PRECISION_ENV}=bf16"
    if not amp:
        return None, "amp off in the config"
    if device.type == "cuda":
        return torch.float16, "CUDA float16 autocast, loss scaling"
    if device.type != "cpu":
        return None, f"no autocast on {device.type}"
    verdict = cpu_bf16()
    if agree(verdict.fast):
        return torch.bfloat16, f"this CPU runs bf16 fast: {verdict.reason}; fp32 weights and losses"
    if verdict.fast:
        return None, f"another process's CPU runs bf16 slowly ({verdict.reason} here)"
    return None, f"this CPU runs bf16 slowly: {verdict.reason}"


def step_settings(
    config, device: torch.device, agree: Callable[[bool], bool] = lambda fast: fast
) -> StepSettings:
    """The settings ``fit`` trains ``config`` with on ``device`` (see the module's docstring).

    Args:
        config: a :class:`~colorlib.training.config.TrainConfig` (``amp``, ``channels_last``).
        device: where the step runs.
        agree: turns this process's "bf16 is fast here" into the decision of all processes
            (under ``torchrun``: every rank must agree, or none uses bf16).

    Raises:
        ValueError: an invalid ``COLORLIB_PRECISION``, or ``bf16`` forced on another device.
    """
    device = torch.device(device)
    dtype, reason = _precision(bool(config.amp), device, agree)
    fast_kernels = device.type in ("cpu", "cuda")
    return StepSettings(
        precision=Precision(device.type, dtype),
        grad_scaler=dtype == torch.float16,
        channels_last=bool(config.channels_last) and fast_kernels,
        fused_optimizer=fast_kernels,
        reason=reason,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """``optimizer.load_state_dict(saved)``, keeping this run's kernel choice (fused or not):
    the device decides it, not the machine that wrote the checkpoint (a checkpoint from before
    the CPU used the fused kernel resumes with it)."""
    kernels = [{k: group.get(k) for k in ("fused", "foreach")} for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, flags in zip(optimizer.param_groups, kernels, strict=True):
        group.update(flags)
        for param in group["params"] if flags["fused"] else ():
            step = optimizer.state.get(param, {}).get("step")
            if isinstance(step, torch.Tensor):  # the fused kernel wants it float32, by the param
                optimizer.state[param]["step"] = step.to(param.device, torch.float32)
