"""colorlib.training.lock: one process trains into a checkpoint; a second one is told who does,
a stale lock (its process gone) is taken over, and fit removes its lock however it ends."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from fakes import RandomPairs

from colorlib.checkpoint import CheckpointError, load_checkpoint
from colorlib.training.config import Stage, TrainConfig
from colorlib.training.lock import (
    CheckpointLock,
    CheckpointLockedError,
    acquire_lock,
    lock_path,
    read_lock,
)
from colorlib.training.loop import fit
from colorlib.training.runs import train_or_load

SIZE = 16
LINUX_PROC = Path("/proc/self/stat").exists()


def tiny_config(steps=2) -> TrainConfig:
    return TrainConfig(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator=None,
        image_size=SIZE,
        batch_size=4,
        stages=(Stage("pretrain", max_steps=steps),),
        num_val_images=4,
        num_sample_images=0,
        num_workers=0,
    )


def _fit(path, steps=2, data=None):
    data = RandomPairs(8) if data is None else data
    return fit(tiny_config(steps), data, RandomPairs(4, 1), "cpu", path, progress=False)


@pytest.fixture
def sleeper():
    """A live process that is not this one (stands in for another notebook's kernel)."""
    command = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    yield process
    process.stdin.close()
    process.wait(timeout=60)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)  # reaped: its pid names no process now
    return process.pid


def _write_lock(checkpoint, pid, host=None, **more) -> Path:
    """A lock file as another process would have left it."""
    lock = lock_path(checkpoint)
    lock.parent.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-02 03:04:05"}
    lock.write_text(json.dumps(owner | more))
    return lock


# --- the lock file ------------------------------------------------------------------------------


def test_the_lock_names_this_process_and_goes_away(tmp_path):
    checkpoint = tmp_path / "run.pt"
    assert lock_path(checkpoint) == tmp_path / "run.pt.lock"
    with CheckpointLock(checkpoint) as lock:
        owner = read_lock(lock.path)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert time.strptime(owner["started"][:19], "%Y-%m-%d %H:%M:%S")
        with pytest.raises(CheckpointLockedError, match=f"this process \\(pid {os.getpid()}\\)"):
            acquire_lock(checkpoint)  # a second fit in the same process (a thread, a nested call)
    assert not lock_path(checkpoint).exists()
    with CheckpointLock(None) as nothing:  # no checkpoint, no lock
        assert nothing.path is None


def test_release_keeps_a_lock_another_process_took_over(tmp_path, sleeper):
    lock = CheckpointLock(tmp_path / "run.pt")
    lock.acquire()
    _write_lock(tmp_path / "run.pt", sleeper.pid)  # taken over meanwhile
    lock.release()
    assert read_lock(lock_path(tmp_path / "run.pt"))["pid"] == sleeper.pid


def test_a_live_owner_is_named_and_kept(tmp_path, sleeper):
    checkpoint = tmp_path / "run.pt"
    lock = _write_lock(checkpoint, sleeper.pid)
    before = lock.read_text()
    message = (
        f"{checkpoint} is being trained by process {sleeper.pid} on {socket.gethostname()} "
        f"since 2026-01-02 03:04:05; wait for it, or delete {lock} if that process is gone"
    )
    with pytest.raises(CheckpointLockedError) as error:
        acquire_lock(checkpoint)
    assert str(error.value) == message
    assert isinstance(error.value, CheckpointError)  # the command line reports it in one line
    assert lock.read_text() == before


def test_other_hosts_and_unreadable_locks_are_respected(tmp_path):
    _write_lock(tmp_path / "a.pt", _dead_pid(), host="elsewhere")  # cannot be checked from here
    with pytest.raises(CheckpointLockedError, match="by process .* on elsewhere since"):
        acquire_lock(tmp_path / "a.pt")
    lock_path(tmp_path / "b.pt").write_text("")  # being written, or not ours
    with pytest.raises(CheckpointLockedError, match="could not be read"):
        acquire_lock(tmp_path / "b.pt")


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, capsys):
    dead = _dead_pid()
    lock = _write_lock(tmp_path / "run.pt", dead)
    assert acquire_lock(tmp_path / "run.pt") == lock
    assert read_lock(lock)["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert f"taking over the stale lock {lock}: process {dead} on" in err and "is gone" in err


def test_a_lock_of_this_pid_that_is_not_held_is_stale(tmp_path):
    # e.g. a container restarted under the same pid, after a kill left the lock behind
    lock = _write_lock(tmp_path / "run.pt", os.getpid())
    assert acquire_lock(tmp_path / "run.pt") == lock


@pytest.mark.skipif(not LINUX_PROC, reason="needs /proc")
def test_a_zombie_or_a_reused_pid_is_not_the_owner(tmp_path, sleeper):
    _write_lock(tmp_path / "reused.pt", sleeper.pid, proc_start="1")  # another start time
    acquire_lock(tmp_path / "reused.pt")
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        os.kill(zombie.pid, signal.SIGKILL)
        while _state(zombie.pid) != "Z":  # killed, not reaped yet
            time.sleep(0.01)
        _write_lock(tmp_path / "zombie.pt", zombie.pid)
        acquire_lock(tmp_path / "zombie.pt")
    finally:
        zombie.wait(timeout=60)


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


# --- fit holds it -------------------------------------------------------------------------------


class Probe(RandomPairs):
    """Records the lock file's owner while fit reads the data; can raise on the n-th item."""

    def __init__(self, lock, fail_at=None, error=RuntimeError):
        super().__init__(8)
        self.lock, self.fail_at, self.error, self.owners, self.count = lock, fail_at, error, [], 0

    def __getitem__(self, i):
        self.count += 1
        self.owners.append(read_lock(self.lock))
        if self.count == self.fail_at:
            raise self.error("boom")
        return super().__getitem__(i)


def test_fit_holds_the_lock_while_it_trains_and_removes_it_after(tmp_path):
    lock = lock_path(tmp_path / "run.pt")
    data = Probe(lock)
    _fit(tmp_path / "run.pt", data=data)
    assert data.owners and all(o["pid"] == os.getpid() for o in data.owners)
    assert not lock.exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_fit_removes_its_lock_after_an_error_or_ctrl_c(tmp_path, error):
    lock = lock_path(tmp_path / "run.pt")
    data = Probe(lock, fail_at=6, error=error)  # during the second step
    with pytest.raises(error, match="boom"):
        _fit(tmp_path / "run.pt", steps=4, data=data)
    assert data.owners[-1]["pid"] == os.getpid() and not lock.exists()
    if error is KeyboardInterrupt:  # saved on the way out, and resumable
        assert load_checkpoint(tmp_path / "run.pt")["progress"]["step"] == 1


HOLDER = """
import sys
from colorlib.training.lock import CheckpointLock
with CheckpointLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_cannot_train_into_a_locked_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.pt"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(checkpoint)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CheckpointLockedError) as error:
            _fit(checkpoint)
        message = str(error.value)
        assert f"is being trained by process {holder.pid} on {socket.gethostname()}" in message
        assert "wait for it, or delete" in message and not checkpoint.exists()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=120) == 0
    assert not lock_path(checkpoint).exists()  # the holder removed its lock on the way out
    assert _fit(checkpoint).complete


def test_a_second_notebook_gets_the_error_instead_of_training_again(
    tmp_path, monkeypatch, capsys, sleeper
):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    config = tiny_config(steps=1)
    train_or_load(config, "shared", RandomPairs(8), RandomPairs(4), device="cpu", progress=False)
    checkpoint = tmp_path / "cache" / "checkpoints" / "shared.pt"
    before = checkpoint.read_bytes()
    _write_lock(checkpoint, sleeper.pid)  # the first notebook trains a longer run into it
    longer = config.replace(stages=(Stage("pretrain", max_steps=3),))
    with pytest.raises(CheckpointLockedError, match=f"being trained by process {sleeper.pid}"):
        train_or_load(longer, "shared", RandomPairs(8), RandomPairs(4), device="cpu")
    assert checkpoint.read_bytes() == before  # not overwritten, no work done twice
    assert "resuming" not in capsys.readouterr().out


def test_a_stale_lock_does_not_stop_fit(tmp_path, capsys):
    _write_lock(tmp_path / "run.pt", _dead_pid())
    assert _fit(tmp_path / "run.pt").complete
    assert "taking over the stale lock" in capsys.readouterr().err
    assert not lock_path(tmp_path / "run.pt").exists()


def test_fit_without_a_checkpoint_takes_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fit(None)
    assert not list(tmp_path.iterdir())


# --- under DDP ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank))
    os.environ.update(LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    try:
        _fit(f"{folder}/ddp.pt")
        outcome = "trained"
    except CheckpointLockedError as error:
        outcome = str(error)
    Path(folder, f"rank{rank}.txt").write_text(outcome)


@pytest.mark.slow
def test_under_ddp_every_rank_raises_when_rank_0_cannot_lock(tmp_path, sleeper):
    _write_lock(tmp_path / "ddp.pt", sleeper.pid)
    context = mp.start_processes(
        _ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + 300  # a hang guard only: rank 1 waiting forever is the bug
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a rank hung: the ranks did not agree that the lock was taken")
    rank0, rank1 = (Path(tmp_path, f"rank{r}.txt").read_text() for r in range(2))
    assert f"being trained by process {sleeper.pid}" in rank0
    assert "rank 0 could not take the lock" in rank1
    assert not (tmp_path / "ddp.pt").exists()
