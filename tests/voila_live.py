"""Serve a notebook with voila and open headless Chromium on it: the live widget tests' parts.

Design: the browser tests (``test_widget_live.py``, ``test_hint_widget_live.py``) each copy a
small notebook to their own temporary folder and serve it with ``python -m voila`` on a free
port of 127.0.0.1 (:func:`serve_notebook`: its own caches, Jupyter runtime folder and
connection files under ``tmp_path``, offline, one OpenMP thread), then drive the page in
headless Chromium (:func:`open_browser`, over ``chromium_cdp``). :func:`page_problems` is what
every step checks: no JavaScript exception or local console error (requests to other hosts,
which fail at once offline, are only counted), no Python traceback on the page, no error
("\u26a0") on the status line, no traceback in voila's log (the kernel's too). Without Chromium
:func:`open_browser` skips, with the reason, unless ``COLORLIB_BOOK_HTML`` is set (a CI run must
not pass without a browser): then it fails.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chromium_cdp import INSTALL_HINT, Chromium, find_chromium
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: hang guards (seconds): voila answering, one page load (the notebook runs meanwhile)
START_TIMEOUT, LOAD_TIMEOUT = 30.0, 45.0


def decode(png_base64: str) -> Image.Image:
    """An image fetched by the page (base64 of its bytes: PNG, JPEG...) as RGB."""
    return Image.open(io.BytesIO(base64.b64decode(png_base64))).convert("RGB")


def screenshot_folder() -> Path:
    """``COLORLIB_BOOK_SCREENSHOTS`` (default ``_build/screenshots``), created."""
    folder = Path(os.environ.get("COLORLIB_BOOK_SCREENSHOTS", REPO / "_build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ----------------------------------------------------------------------------- voila server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (Linux ``/proc``; elsewhere none are known)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _stop(server: subprocess.Popen) -> None:
    """End voila (it shuts its kernels down on SIGTERM), then whatever of it is left."""
    kernels = _descendants(server.pid)  # the kernels run in sessions of their own
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    for pid in kernels:
        try:
            os.killpg(pid, signal.SIGKILL)  # a kernel leads its own process group
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def serve_notebook(notebook: Path, tmp_path: Path):
    """Serve a copy of ``notebook`` with voila; yield its URL, log file and timings."""
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.fail("voila is a test dependency: pip install -r requirements.txt")
    served = tmp_path / "served"
    served.mkdir()
    notebook = shutil.copy(notebook, served / notebook.name)
    env = dict(os.environ)
    env |= {
        "COLORLIB_OFFLINE": "1",
        "COLORLIB_CACHE": str(tmp_path / "cache"),
        "COLORLIB_LIVE_CHECKPOINTS": str(tmp_path / "checkpoints"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "MPLBACKEND": "Agg",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),  # the notebook-signing key
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # no user config
        "IPYTHONDIR": str(tmp_path / "ipython"),
        # one thread in the kernel: it shares two cores with Chromium, voila and another
        # test worker, where OpenMP threads that wait on each other crawl
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "voila.log"
    command = [
        sys.executable,
        "-m",
        "voila",
        "--no-browser",
        f"--port={free_port()}",
        "--Voila.ip=127.0.0.1",
        f"--Voila.connection_dir_root={tmp_path}",
        "--VoilaConfiguration.show_tracebacks=True",
        str(notebook),
    ]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command,
            cwd=served,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: _stop can end all of it
        )
    try:
        url = _wait_until_serving(server, log_path)
        timings = {"started": started, "voila_answers_s": round(time.monotonic() - started, 2)}
        yield url, log_path, timings
    finally:
        _stop(server)


def _wait_until_serving(server: subprocess.Popen, log_path: Path) -> str:
    """The URL voila prints once it listens (it may have moved to another port)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        match = re.search(r"running at:\s*(http://127\.0\.0\.1:\d+/)", log_path.read_text())
        if match:
            try:
                with urllib.request.urlopen(match.group(1) + "voila/static/voila.js", timeout=5):
                    return match.group(1)
            except OSError:
                pass
        if server.poll() is not None:
            pytest.fail(f"voila exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"voila did not answer in {START_TIMEOUT} s:\n{log_path.read_text()}")
        time.sleep(0.2)


# ----------------------------------------------------------------------------- the browser


@contextlib.contextmanager
def open_browser(timeout: float):
    """Headless Chromium (1280x1000 pages, ``timeout`` per command); skips without one."""
    binary = find_chromium()
    if binary is None and os.environ.get("COLORLIB_BOOK_HTML"):  # asked for: do not pass silently
        pytest.fail(f"COLORLIB_BOOK_HTML is set but no Chromium was found: {INSTALL_HINT}")
    if binary is None:
        pytest.skip(f"no Chromium found: {INSTALL_HINT}")
    with Chromium(binary, width=1280, height=1000, timeout=timeout) as chromium:
        yield chromium


def page_problems(page, log_path: Path, state: dict, offline_requests: list[str]) -> list[str]:
    """JavaScript, console, page, status-line and server-log errors seen so far.

    ``state`` has ``traceback`` (the page shows one) and ``status`` (the status line's text or
    None); failed requests to other hosts are appended to ``offline_requests``, not reported.
    """
    found = [f"JavaScript exception: {e.splitlines()[0]}" for e in page.js_exceptions()]
    for error in page.console_errors():
        local = "127.0.0.1" in error or not re.search(r"https?://", error)
        if local:
            found.append(f"console error: {error[:300]}")
        else:
            offline_requests.append(error)
    if state["traceback"]:
        found.append("the page shows a Python traceback")
    if state["status"] and "\u26a0" in state["status"]:
        found.append(f"the status line shows an error: {state['status']!r}")
    log = log_path.read_text(errors="replace")
    if "Traceback (most recent call last)" in log:
        found.append("voila's log has a traceback:\n" + log[log.index("Traceback") :][:3000])
    return found


class LivePage:
    """A served page in the browser, the steps taken on it, and everything seen on the way.

    Subclasses name their screenshots with :attr:`prefix` (``<prefix>_<n>_<step>.png``).
    """

    prefix = "live"

    def __init__(self, page, log_path: Path, screenshots: Path):
        self.page, self.log_path, self.screenshots = page, log_path, screenshots
        self.steps: list[dict] = []
        self.offline_requests: list[str] = []  # other hosts: unreachable by design
        self.last: dict | None = None  # the state the previous step ended in

    def problems(self, state: dict) -> list[str]:
        """JavaScript, console, page, status-line and server-log errors seen so far."""
        return page_problems(self.page, self.log_path, state, self.offline_requests)

    def shoot(self, step: str) -> Path:
        path = self.screenshots / f"{self.prefix}_{len(self.steps) + 1}_{step}.png"
        self.page.screenshot(path)
        return path
