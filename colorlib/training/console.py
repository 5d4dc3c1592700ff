"""What a person at the console sees and does while :func:`colorlib.training.loop.fit` runs.

* :func:`print_main`: a message printed once, by the main process (rank 0 under ``torchrun``);
* :func:`training_banner`: the line ``fit`` starts with: where it trains, in which precision
  and why (:mod:`colorlib.training.precision`);
* :func:`progress_bar` and :func:`postfix`: one tqdm bar per stage, with the live losses and
  the minutes left of a time budget;
* :func:`deferred_interrupt`: Ctrl-C sets a flag that the loop checks after each step, so the
  checkpoint written on the way out is a step boundary; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import torch

from colorlib.training import distributed as ddp

__all__ = [
    "print_main",
    "training_banner",
    "progress_bar",
    "postfix",
    "Interrupt",
    "deferred_interrupt",
]


def print_main(message: str) -> None:
    """Print ``message`` on rank 0 only (every process of a DDP run would print it)."""
    if ddp.rank_from_env() == 0:
        print(message)


def training_banner(device: torch.device, settings) -> str:
    """One line: the device (and CPU threads) and the step settings, e.g.
    ``training on cpu (2 threads) | precision: fp32 (this CPU runs bf16 slowly: AVX2, no
    avx512_bf16 or amx_bf16) | channels-last | fused optimiser``.

    Args:
        device: where ``fit`` trains.
        settings: a :class:`colorlib.training.precision.StepSettings`.
    """
    device = torch.device(device)
    where = f"training on {device}"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        where += f" ({threads} thread{'' if threads == 1 else 's'})"
    return f"{where} | {settings.describe()}"


def progress_bar(stages, index: int, initial: int, show: bool):
    """The tqdm bar of stage ``index`` of ``stages``, starting at ``initial`` steps (resume).

    Its total is the stage's step budget (None: a time budget; tqdm then counts up).
    """
    from tqdm.auto import tqdm

    stage = stages[index]
    return tqdm(
        total=stage.max_steps,
        initial=initial,
        desc=f"stage {index + 1}/{len(stages)} {stage.name}",
        unit="step",
        disable=not show,
        dynamic_ncols=True,
    )


def postfix(losses: dict[str, float], minutes_left: float | None) -> dict[str, str]:
    """The bar's postfix: the total losses and ``g_l1`` (3 significant digits), and the
    minutes left of a time budget when there is one."""
    shown = {k: f"{v:.3g}" for k, v in losses.items() if k.endswith("total") or k == "g_l1"}
    if minutes_left is not None:
        shown["min left"] = f"{max(minutes_left, 0):.1f}"
    return shown


class Interrupt:
    """The flag :func:`deferred_interrupt` sets: ``hit`` after the first Ctrl-C."""

    hit = False


@contextlib.contextmanager
def deferred_interrupt(enabled: bool):
    """Within the block, Ctrl-C sets the yielded :class:`Interrupt`'s ``hit`` flag instead of
    raising (a second Ctrl-C raises ``KeyboardInterrupt``). Off when ``enabled`` is False or
    outside the main thread (signal handlers live there); the old handler comes back after."""
    flag = Interrupt()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.hit:
            raise KeyboardInterrupt
        flag.hit = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
