"""A hard kill loses at most ``checkpoint_minutes`` of training: ``kill -9`` a real
``colorlib train`` process, then the same command resumes from its time-based checkpoint (and
takes over the lock the killed process left behind)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from colorlib.checkpoint import CheckpointError, load_checkpoint
from colorlib.training.lock import lock_path, read_lock


def _photos(folder, count=8):
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(count):
        pixels = (torch.rand(72, 80, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"photo{i}.png")
    return folder


def _run(args, env, log):
    with open(log, "w") as out:
        return subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600)


@pytest.mark.slow
def test_kill_9_loses_at_most_checkpoint_minutes_and_the_run_resumes(tmp_path):
    env = os.environ | {
        "COLORLIB_CACHE": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "COLORLIB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    out = tmp_path / "unet.pt"
    train = [sys.executable, "-m", "colorlib", "train", "--model", "unet", "--profile", "smoke"]
    train += ["--data", str(_photos(tmp_path / "photos")), "--out", str(out), "--device", "cpu"]
    # 0.005 min = 0.3 s of training between checkpoints; the step interval (500) is far away
    endless = [*train, "--steps", "1000000", "--minutes", "60", "--checkpoint-minutes", "0.005"]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(endless, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a hang guard only
        while not out.exists():
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        assert read_lock(lock_path(out))["pid"] == process.pid  # it holds the lock
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert lock_path(out).exists()  # a kill -9 runs no clean-up: the lock is left behind

    try:
        state = load_checkpoint(out)  # atomic saves: a whole file, never a torn one
    except CheckpointError as error:
        pytest.fail(f"the checkpoint left by kill -9 does not load: {error}")
    step = state["progress"]["step"]
    assert 0 < step < 500 and not state["complete"]  # written by time, not by step count
    assert state["config"]["checkpoint_minutes"] == 0.005

    # the same command, with a budget that ends: resumes at `step` and finishes 3 steps later
    again = [*train, "--steps", str(step + 3), "--checkpoint-minutes", "0.005"]
    done = _run(again, env, tmp_path / "second.log")
    printed = (tmp_path / "second.log").read_text()
    assert done.returncode == 0, printed[-2000:]
    assert "taking over the stale lock" in printed and f"process {process.pid}" in printed
    assert f"resuming from {out} at step {step}" in printed
    assert f"trained unet for {step + 3} steps" in printed
    final = load_checkpoint(out)
    assert final["complete"] and final["progress"]["step"] == step + 3
    assert [row["step"] for row in final["history"]] == list(range(1, step + 4))
    assert not lock_path(out).exists()
