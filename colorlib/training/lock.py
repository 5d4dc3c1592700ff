"""One training process per checkpoint: the ``<checkpoint>.lock`` file that ``fit`` holds.

Two processes training into the same checkpoint (two notebooks sharing a cache, a notebook and
``colorlib train``) would overwrite each other's saves and do the work twice. So, while
:func:`colorlib.training.loop.fit` runs with a ``checkpoint_path``, it holds
``<checkpoint>.lock`` (:class:`CheckpointLock`):

* the file is created with ``O_CREAT | O_EXCL`` (only one process can create it) and holds
  the owner's pid, host and start time as JSON (:func:`read_lock`);
* a second ``fit`` on the same checkpoint raises :class:`CheckpointLockedError`, which names
  the owner and says what to do;
* a lock whose process is gone (a ``kill -9``, an out-of-memory kill) is *stale*: when its
  host is this one and its pid is not alive (or is a zombie, or a new process that reuses
  the pid), it is taken over with a printed line. A lock from another host is respected:
  its process cannot be checked from here;
* the lock is removed when ``fit`` ends, however it ends (exceptions, Ctrl-C), unless another
  process has taken it over meanwhile.

Under ``torchrun`` rank 0, the one that writes checkpoints, holds the lock, and every rank
raises when rank 0 cannot take it (:func:`colorlib.training.distributed.any_rank`).

>>> with CheckpointLock("runs/pix2pix.pt"):   # runs/pix2pix.pt.lock exists in here
...     train()
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from colorlib.checkpoint import CheckpointError
from colorlib.runtime import say
from colorlib.training import distributed as ddp

__all__ = ["CheckpointLockedError", "CheckpointLock", "lock_path", "read_lock", "acquire_lock"]

_HELD: set[str] = set()  # lock files this process holds now (a lock of ours not here is stale)
_GUARD = threading.Lock()  # threads of one process take and release locks one at a time


class CheckpointLockedError(CheckpointError):
    """Another live process is training into this checkpoint (it holds the lock file)."""


def lock_path(checkpoint: str | os.PathLike) -> Path:
    """The lock file of ``checkpoint``: ``<checkpoint>.lock`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".lock")


def read_lock(lock: str | os.PathLike) -> dict | None:
    """The owner a lock file names, ``{"pid", "host", "started", "proc_start"}``; None when
    the file is gone, and ``{}`` when it cannot be read as a lock (half written, foreign)."""
    try:
        text = Path(lock).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return {}
    return owner


def _process_start(pid: int) -> tuple[str | None, str | None]:
    """``(state, start time in clock ticks)`` of a process from ``/proc`` (None, None where
    there is no ``/proc`` or no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command) "
    return (fields[0], fields[19]) if len(fields) > 19 else (None, None)


def _alive(owner: dict) -> bool:
    """Whether the process a lock names may still be running (unknown counts as alive)."""
    pid = owner["pid"]
    if owner.get("host") != socket.gethostname() or os.name == "nt":
        return True  # another machine's process, or no safe probe (os.kill ends it on Windows)
    if pid == os.getpid():
        return False  # a lock of this process that is not held: left behind, e.g. pid reuse
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    state, start = _process_start(pid)
    if state == "Z":
        return False  # killed, not yet reaped: it will not write again
    return owner.get("proc_start") is None or start is None or start == owner["proc_start"]


def _describe(checkpoint: Path, lock: Path, owner: dict) -> str:
    if not owner:
        return (
            f"{checkpoint} is locked by {lock}, which could not be read; if no process is "
            "training into it, delete the lock"
        )
    return (
        f"{checkpoint} is being trained by process {owner['pid']} on {owner.get('host')} "
        f"since {owner.get('started')}; wait for it, or delete {lock} if that process is gone"
    )


def acquire_lock(checkpoint: str | os.PathLike) -> Path:
    """Create ``<checkpoint>.lock`` for this process, taking over a stale one; returns it.

    Raises:
        CheckpointLockedError: a live process (or one on another host) holds the lock; the
            message names its pid, host and start time.
    """
    checkpoint = Path(checkpoint)
    lock = lock_path(checkpoint)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with _GUARD:
        return _acquire(checkpoint, lock)


def _acquire(checkpoint: Path, lock: Path) -> Path:
    if str(lock.resolve()) in _HELD:
        raise CheckpointLockedError(
            f"{checkpoint} is being trained by this process (pid {os.getpid()}) already"
        )
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "proc_start": _process_start(os.getpid())[1],
    }
    for _ in range(3):  # tries after a stale lock was removed, or a lock released meanwhile
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = read_lock(lock)
            if found is None:
                continue  # released meanwhile
            if not found or _alive(found):
                raise CheckpointLockedError(_describe(checkpoint, lock, found)) from None
            if read_lock(lock) == found:  # still the same stale owner: take it over
                lock.unlink(missing_ok=True)
                say(
                    f"taking over the stale lock {lock}: process {found['pid']} on "
                    f"{found.get('host')} (since {found.get('started')}) is gone"
                )
            continue
        with os.fdopen(handle, "w") as file:
            json.dump(owner, file)
        _HELD.add(str(lock.resolve()))
        return lock
    raise CheckpointLockedError(_describe(checkpoint, lock, read_lock(lock) or {}))


def _release(lock: Path) -> None:
    """Remove our lock file (not one another process took over meanwhile)."""
    with _GUARD:
        _HELD.discard(str(lock.resolve()))
        owner = read_lock(lock)
        if owner and owner["pid"] == os.getpid() and owner.get("host") == socket.gethostname():
            lock.unlink(missing_ok=True)


class CheckpointLock:
    """``<checkpoint>.lock`` for one ``fit``: :meth:`acquire` at the start, :meth:`release` in
    a ``finally`` (both do nothing without a checkpoint); also a context manager.

    Args:
        checkpoint: the checkpoint path, or None (no lock).
        info, device: under ``torchrun``, this process's
            :class:`~colorlib.training.distributed.DistInfo` and device: rank 0 takes the lock
            and every rank learns whether it could (None: a single process).
    """

    def __init__(self, checkpoint, info: ddp.DistInfo | None = None, device=None) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.info, self.device = info or ddp.DistInfo(), device
        self.path: Path | None = None  # the lock file, while this process holds it

    def acquire(self) -> None:
        """Take the lock (rank 0); every rank raises when rank 0 could not.

        Raises:
            CheckpointLockedError: another live process holds it (see :func:`acquire_lock`).
        """
        if self.checkpoint is None:
            return
        error = None
        if self.info.is_main:
            try:
                self.path = acquire_lock(self.checkpoint)
            except Exception as err:  # every rank must reach the agreement below
                error = err
        if ddp.any_rank(error is not None, self.device):
            self.release()
            raise error or CheckpointLockedError(
                f"{self.checkpoint}: rank 0 could not take the lock {lock_path(self.checkpoint)}"
            )

    def release(self) -> None:
        """Remove the lock file if this process holds it (not one taken over by another)."""
        if self.path is not None:
            _release(self.path)
            self.path = None

    def __enter__(self) -> CheckpointLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
