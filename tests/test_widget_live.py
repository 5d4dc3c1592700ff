"""The widget demo, live: served by voila, driven in headless Chromium as a reader would.

Design: ``tests/live_demo.ipynb`` (stored without outputs) builds two tiny tinted U-Net
checkpoints (one warm, one cool: colour at once, offline, no training) and shows a
:class:`colorlib.widgets.ColorizeDemo` of three bundled sample photos. The test copies it to
its own temporary folder and serves it with ``python -m voila`` on a free port of 127.0.0.1
(its own caches, Jupyter runtime folder and connection files under ``tmp_path``, offline), then
loads the page in headless Chromium (``chromium_cdp``) and acts as a reader:

1. waits for the first colour: the "colorized" image decodes to a colourful picture;
2. picks another photo, 3. another model (the drop-downs), 4. uploads a gray photo (a real
   mouse click on the Upload button, the file chooser answered over the DevTools protocol).

After each step the colorized image must change, decode (fetched from its ``blob:`` URL and
read with PIL) and be colourful: Hasler & Suesstrunk's M3
(:func:`colorlib.evaluation.metrics.colorfulness`) at least :data:`COLOURFUL` (0 for gray);
the status line shows no error, the page no ``Traceback``, the browser no JavaScript exception
or console error (requests to other hosts, which fail at once offline, are only counted), and
voila's log (the kernel's too) no traceback. A step waits until the demo is idle again: no
"colorizing" status, no disabled control.

A screenshot per step goes to ``COLORLIB_BOOK_SCREENSHOTS`` (default ``_build/screenshots``)
as ``live_demo_<n>_<step>.png``: the 1280x1000 window, what a reader sees first (voila's page
scrolls inside it), with ``live_demo.json``: the timings (voila answering, navigation to the
load event and to the first colour) and each step's colourfulness. Skips,
with the reason, only when no Chromium is installed (and fails then when
``COLORLIB_BOOK_HTML`` is set: a CI run must not pass without a browser). Waits are hang guards
(:data:`STEP_TIMEOUT`), never assertions on speed.
"""

from __future__ import annotations

import base64
import io
import json
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

import numpy as np
import pytest
import torch
from chromium_cdp import INSTALL_HINT, Chromium, find_chromium
from PIL import Image

from colorlib.evaluation.metrics import colorfulness

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(__file__).with_name("live_demo.ipynb")
#: M3 of a picture that is at least "slightly colourful" on Hasler & Suesstrunk's scale
COLOURFUL = 15.0
#: hang guards (seconds): voila answering, one page load, one reader step
START_TIMEOUT, LOAD_TIMEOUT, STEP_TIMEOUT = 30.0, 45.0, 30.0
PHOTO, MODEL, UPLOAD = "coffee", "warm.pt (unet, 0 steps)", "old_photo.png"

# The demo's parts, found by what a reader sees: a drop-down by its label, an image by the
# title above it. Each helper returns the element or null.
FIND = """
const dropdown = (label) => [...document.querySelectorAll(".widget-dropdown")]
  .find((el) => el.querySelector("label")?.textContent.trim() === label)?.querySelector("select");
const panel = (title) => [...document.querySelectorAll(".widget-vbox")]
  .find((el) => el.firstElementChild?.textContent.trim() === title)?.querySelector("img");
const upload = () => document.querySelector("button.widget-upload");
const status = () => [...document.querySelectorAll(".widget-html")]
  .find((el) => /\\bon cpu\\b|colorizing|\\u26a0|loading/i.test(el.textContent));
"""

# What a step waits on and checks: the colorized image's bytes (from its blob: URL), the
# pickers, the status line, busy controls, and any traceback text on the page.
STATE = (
    "(async () => {"
    + FIND
    + """
  const img = panel("colorized");
  let png = null;
  if (img && img.src && img.complete && img.naturalWidth > 0) {
    try {
      const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000)
        text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      png = btoa(text);
    } catch (error) {
      png = null;  // replaced (and its blob: URL revoked) meanwhile: the next poll reads it
    }
  }
  const controls = [dropdown("Photo"), dropdown("Model"), upload()];
  return {
    src: img ? img.src : null,
    png,
    photo: dropdown("Photo")?.value ?? null,
    photos: dropdown("Photo") ? [...dropdown("Photo").options].map((o) => o.value) : [],
    model: dropdown("Model")?.value ?? null,
    status: status()?.textContent.trim() ?? null,
    busy: controls.some((el) => !el || el.disabled) ||
      /colorizing|loading/i.test(status()?.textContent ?? ""),
    traceback: /Traceback \\(most recent call last\\)/.test(document.body.innerText),
  };
})()"""
)


def decode(png_base64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(png_base64))).convert("RGB")


def colourfulness(image: Image.Image) -> float:
    """Hasler & Suesstrunk's M3 (the paper's signed variant), 0 for a gray picture."""
    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    return float(colorfulness(rgb[None], variant="hasler")[0])


def test_colourfulness_tells_gray_from_colour():
    gray = Image.new("RGB", (16, 16), (120, 120, 120))
    assert colourfulness(gray) == pytest.approx(0.0, abs=1e-3)
    tinted = Image.new("RGB", (16, 16), (200, 120, 60))
    assert colourfulness(tinted) > 2 * COLOURFUL  # 38.4: a plain orange


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


@pytest.fixture
def voila(tmp_path):
    """Serve a copy of ``live_demo.ipynb`` with voila; yield its URL, log file and timings."""
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.fail("voila is a test dependency: pip install -r requirements.txt")
    served = tmp_path / "served"
    served.mkdir()
    notebook = shutil.copy(NOTEBOOK, served / NOTEBOOK.name)
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


@pytest.fixture
def browser():
    binary = find_chromium()
    if binary is None and os.environ.get("COLORLIB_BOOK_HTML"):  # asked for: do not pass silently
        pytest.fail(f"COLORLIB_BOOK_HTML is set but no Chromium was found: {INSTALL_HINT}")
    if binary is None:
        pytest.skip(f"no Chromium found: {INSTALL_HINT}")
    with Chromium(binary, width=1280, height=1000, timeout=STEP_TIMEOUT) as chromium:
        yield chromium


@pytest.fixture
def screenshots():
    folder = Path(os.environ.get("COLORLIB_BOOK_SCREENSHOTS", REPO / "_build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Reader:
    """The page, the reader's steps on it, and everything seen on the way."""

    def __init__(self, page, log_path: Path, screenshots: Path):
        self.page, self.log_path, self.screenshots = page, log_path, screenshots
        self.steps: list[dict] = []
        self.offline_requests: list[str] = []  # other hosts: unreachable by design
        self.last = None
        self.seen_at = 0.0  # time.monotonic() when the last step's new image was seen

    def problems(self, state: dict) -> list[str]:
        """JavaScript, console, page, status-line and server-log errors seen so far."""
        found = [f"JavaScript exception: {e.splitlines()[0]}" for e in self.page.js_exceptions()]
        for error in self.page.console_errors():
            local = "127.0.0.1" in error or not re.search(r"https?://", error)
            if local:
                found.append(f"console error: {error[:300]}")
            else:
                self.offline_requests.append(error)
        if state["traceback"]:
            found.append("the page shows a Python traceback")
        if state["status"] and "\u26a0" in state["status"]:
            found.append(f"the status line shows an error: {state['status']!r}")
        log = self.log_path.read_text(errors="replace")
        if "Traceback (most recent call last)" in log:
            found.append("voila's log has a traceback:\n" + log[log.index("Traceback") :][:3000])
        return found

    def wait_for_colour(self, step: str, expect: dict) -> dict:
        """Wait until the colorized image is new, colourful and the demo idle; check it all."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            state = self.page.evaluate(STATE, await_promise=True)
            new = state["png"] is not None and (
                self.last is None or state["png"] != self.last["png"]
            )
            matches = all(state[key] == value for key, value in expect.items())
            if new and matches and not state["busy"]:
                self.seen_at = time.monotonic()
                break
            problems = self.problems(state)
            assert not problems, f"{step}: " + "\n".join(problems)
            if time.monotonic() > deadline:
                shot = self.shoot(step + "-timeout")
                pytest.fail(
                    f"{step}: no new colorized image within {STEP_TIMEOUT} s (hang guard); "
                    f"expected {expect}, page shows photo={state['photo']!r} "
                    f"model={state['model']!r} status={state['status']!r} busy={state['busy']} "
                    f"({shot});\nvoila log:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        shot = self.shoot(step)
        problems = self.problems(state)
        image = decode(state["png"])
        score = colourfulness(image)
        record = {
            "step": step,
            "photo": state["photo"],
            "model": state["model"],
            "status": state["status"],
            "colourfulness": round(score, 1),
            "size": image.size,
            "screenshot": shot.name,
        }
        self.steps.append(record)
        print(f"{step}: {record}")
        assert not problems, f"{step}: " + "\n".join(problems)
        assert score >= COLOURFUL, (
            f"{step}: the colorized image is gray (colourfulness {score:.1f} < {COLOURFUL}), "
            f"see {shot}"
        )
        assert state["status"] and state["photo"] in state["status"], (step, state["status"])
        self.last = state
        return state

    def shoot(self, step: str) -> Path:
        path = self.screenshots / f"live_demo_{len(self.steps) + 1}_{step}.png"
        self.page.screenshot(path)
        return path

    def tag(self, finder: str, name: str) -> str:
        """Mark the element ``finder`` (a FIND expression) finds; return a CSS selector for it."""
        script = f"(() => {{ {FIND} const el = {finder}; if (el) el.dataset.live = '{name}'; }})()"
        self.page.evaluate(script)
        return f'[data-live="{name}"]'


def test_reader_gets_colour_from_the_live_demo(tmp_path, browser, voila, screenshots):
    # browser first: without Chromium the test skips before voila starts
    url, log_path, timings = voila
    page = browser.new_page(log=True)
    reader = Reader(page, log_path, screenshots)
    begun = time.monotonic()
    page.goto(url, timeout=LOAD_TIMEOUT)
    timings["page_load_s"] = round(time.monotonic() - begun, 2)

    started = timings.pop("started")
    try:
        first = reader.wait_for_colour("first_colour", {})
        timings["navigation_to_first_colour_s"] = round(reader.seen_at - begun, 2)
        assert first["photo"] != PHOTO and first["model"] != MODEL, first  # both will change

        page.select(reader.tag('dropdown("Photo")', "photo"), PHOTO)
        reader.wait_for_colour("another_photo", {"photo": PHOTO})

        page.select(reader.tag('dropdown("Model")', "model"), MODEL)
        reader.wait_for_colour("another_model", {"model": MODEL, "photo": PHOTO})

        photo = Image.open(sorted((tmp_path / "cache" / "samples").glob("rocket.*"))[0])
        photo.convert("L").save(tmp_path / UPLOAD)  # an old black-and-white photo
        page.choose_files(reader.tag("upload()", "upload"), [tmp_path / UPLOAD])
        last = reader.wait_for_colour("upload", {"photo": f"upload: {UPLOAD}", "model": MODEL})
        assert last["photos"][-1] == f"upload: {UPLOAD}", last["photos"]
        timings["voila_start_to_last_colour_s"] = round(reader.seen_at - started, 2)
    finally:  # what was seen, also when a step failed
        summary = {
            "timings": timings,
            "steps": reader.steps,
            "offline_requests": reader.offline_requests,
        }
        (screenshots / "live_demo.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
