"""The widget demo, live: served by voila, driven in headless Chromium as a reader would.

Design: ``tests/live_demo.ipynb`` (stored without outputs) builds two tiny tinted U-Net
checkpoints (one warm, one cool: colour at once, offline, no training) and shows a
:class:`colorlib.widgets.ColorizeDemo` of three bundled sample photos. The test copies it to
its own temporary folder and serves it with ``python -m voila`` on a free port of 127.0.0.1
(its own caches, Jupyter runtime folder and connection files under ``tmp_path``, offline), then
loads the page in headless Chromium (``chromium_cdp``) and acts as a reader (the server, the
browser and the error checks: ``voila_live``, shared with ``test_hint_widget_live.py``):

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

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from voila_live import (
    LOAD_TIMEOUT,
    LivePage,
    decode,
    open_browser,
    screenshot_folder,
    serve_notebook,
)

from colorlib.evaluation.metrics import colorfulness

NOTEBOOK = Path(__file__).with_name("live_demo.ipynb")
#: M3 of a picture that is at least "slightly colourful" on Hasler & Suesstrunk's scale
COLOURFUL = 15.0
#: hang guard (seconds) of one reader step (voila's and the page load's: ``voila_live``)
STEP_TIMEOUT = 30.0
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


def colourfulness(image: Image.Image) -> float:
    """Hasler & Suesstrunk's M3 (the paper's signed variant), 0 for a gray picture."""
    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    return float(colorfulness(rgb[None], variant="hasler")[0])


def test_colourfulness_tells_gray_from_colour():
    gray = Image.new("RGB", (16, 16), (120, 120, 120))
    assert colourfulness(gray) == pytest.approx(0.0, abs=1e-3)
    tinted = Image.new("RGB", (16, 16), (200, 120, 60))
    assert colourfulness(tinted) > 2 * COLOURFUL  # 38.4: a plain orange


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def voila(tmp_path):
    """Serve a copy of ``live_demo.ipynb`` with voila; yield its URL, log file and timings."""
    with serve_notebook(NOTEBOOK, tmp_path) as served:
        yield served


@pytest.fixture
def browser():
    with open_browser(timeout=STEP_TIMEOUT) as chromium:
        yield chromium


@pytest.fixture
def screenshots():
    return screenshot_folder()


class Reader(LivePage):
    """The page, the reader's steps on it, and everything seen on the way."""

    prefix = "live_demo"

    def __init__(self, page, log_path: Path, screenshots: Path):
        super().__init__(page, log_path, screenshots)
        self.seen_at = 0.0  # time.monotonic() when the last step's new image was seen

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
