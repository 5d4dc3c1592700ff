"""The hint editor, live: served by voila, clicked on in headless Chromium as a user would.

Design: ``tests/live_hints.ipynb`` (stored without outputs) builds, offline and at once, a tiny
untrained hint model (``ResNetUNet(hint_channels=3)``, ResNet18 encoder, 8-channel decoder;
its zero-initialised ``hint_conv`` given random weights under a fixed seed, so that a hint
changes the colours around it) and shows a :class:`colorlib.hint_editor.HintEditorUI` of a
bundled sample photo (256 px previews). ``voila_live`` serves it with ``python -m voila`` on
127.0.0.1 (its own caches and Jupyter folders under ``tmp_path``) and opens headless Chromium;
the test then acts as a user, each step with real input events (``Input.dispatchMouseEvent``
pressed and released at on-screen coordinates from ``getBoundingClientRect``, so the click goes
through ipyevents' ``Event`` on the gray photo's ``Image`` to ``HintEditorUI.on_click``):

1. waits for the first result (status "0 hint(s)", both images in);
2. clicks a point of the gray photo: "1 hint(s)", a new result, a marker there;
3. clicks a second point: "2 hint(s)", a new result, markers at both points;
4. clicks "Undo": "1 hint(s)", the one-hint result and marked photo again;
5. clicks "Clear": "0 hint(s)", the first result and the unmarked photo again.

A step waits until the status line shows the expected hint count and both images have new
bytes (fetched from their ``blob:`` URLs and decoded with PIL). Images are compared as decoded
pixels: :func:`mad` (mean absolute difference, 0-255) at most :data:`SAME` for "the same
picture" (JPEG noise), at least :data:`CHANGED` for "a new result"; a marker is a cluster of
strongly changed pixels (:func:`marker_pixels`) centred on the clicked point (so ipyevents'
``dataX`` / ``dataY`` land where the user clicked), and no other strong change. Throughout:
no JavaScript exception or local console error, no ``Traceback`` on the page, no "\u26a0" on
the status line, none in voila's log (``voila_live.page_problems``).

A screenshot per step goes to ``COLORLIB_BOOK_SCREENSHOTS`` (default ``_build/screenshots``)
as ``live_hints_<n>_<step>.png``, with ``live_hints.json``: the timings (voila answering, page
load, first result, each click to its result) and each step's measures. Skips, with the
reason, only when no Chromium is installed (and fails then when ``COLORLIB_BOOK_HTML`` is set).
Waits are hang guards (:data:`STEP_TIMEOUT`), never assertions on speed.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from voila_live import (
    LOAD_TIMEOUT,
    LivePage,
    decode,
    open_browser,
    screenshot_folder,
    serve_notebook,
)

NOTEBOOK = Path(__file__).with_name("live_hints.ipynb")
#: hang guards (seconds): the first result (the notebook's imports and model), one user step
FIRST_TIMEOUT, STEP_TIMEOUT = 60.0, 30.0
#: where the user clicks, as fractions (x, y) of the gray photo's on-screen box
POINTS = ((0.3, 0.35), (0.7, 0.65))
#: mean absolute pixel difference (0-255): "the same picture" at most, "changed" at least
SAME, CHANGED = 2.0, 3.0
#: a pixel differing by more than STRONG from the unmarked photo is part of a marker
STRONG = 48
#: a marker: at least MARKER_PIXELS strong pixels within NEAR px of the click, centred at
#: most OFF px from it; elsewhere at most STRAY (JPEG ringing)
MARKER_PIXELS, NEAR, OFF, STRAY = 20, 8, 3.0, 12

# The editor's parts, found by what a user sees: an image by the title above it, a button by
# its label, the status line by its words. Each helper returns the element or undefined.
FIND = """
const panel = (title) => [...document.querySelectorAll(".widget-vbox")]
  .find((el) => el.firstElementChild?.textContent.trim() === title)?.querySelector("img");
const button = (label) => [...document.querySelectorAll("button")]
  .find((el) => el.textContent.trim() === label);
const status = () => [...document.querySelectorAll(".widget-html")]
  .find((el) => /hint\\(s\\)|nothing to undo|\\u26a0/.test(el.textContent));
"""

# What a step waits on and checks: both images' bytes (base64, from their blob: URLs), the
# status line, and any traceback text on the page.
STATE = (
    "(async () => {"
    + FIND
    + """
  const bytes = async (img) => {
    if (!img || !img.src || !img.complete || img.naturalWidth === 0) return null;
    try {
      const data = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
      let text = "";
      for (let i = 0; i < data.length; i += 0x8000)
        text += String.fromCharCode(...data.subarray(i, i + 0x8000));
      return btoa(text);
    } catch (error) {
      return null;  // replaced (and its blob: URL revoked) meanwhile: the next poll reads it
    }
  };
  return {
    gray: await bytes(panel("click to colour")),
    result: await bytes(panel("result")),
    status: status()?.textContent.trim() ?? null,
    traceback: /Traceback \\(most recent call last\\)/.test(document.body.innerText),
  };
})()"""
)

# The gray photo scrolled into view: its box in the viewport and its own pixel size.
LOCATE = (
    "(() => {"
    + FIND
    + """
  const img = panel("click to colour");
  if (!img) return null;
  img.scrollIntoView({block: "center", inline: "center"});
  const box = img.getBoundingClientRect();
  return {x: box.x, y: box.y, width: box.width, height: box.height,
          natural: [img.naturalWidth, img.naturalHeight]};
})()"""
)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def mad(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two RGB pictures of one size, on the 0-255 scale."""
    assert a.size == b.size, (a.size, b.size)
    return float(np.abs(pixels(a) - pixels(b)).mean())


def marker_pixels(marked: Image.Image, plain: Image.Image, points):
    """Strongly changed pixels within :data:`NEAR` px of each point ``(x, y)``: their count
    and their centre's distance from the point (inf: none); and the count of those elsewhere."""
    strong = np.abs(pixels(marked) - pixels(plain)).max(axis=2) > STRONG  # (H, W)
    rows, cols = np.nonzero(strong)
    near_any = np.zeros(rows.shape, dtype=bool)
    counts, offsets = [], []
    for x, y in points:
        near = (np.abs(cols - x) <= NEAR) & (np.abs(rows - y) <= NEAR)
        counts.append(int(near.sum()))
        centre = (cols[near].mean() - x, rows[near].mean() - y) if near.any() else (np.inf,) * 2
        offsets.append(round(float(np.hypot(*centre)), 1))
        near_any |= near
    return counts, offsets, int((~near_any).sum())


def test_marker_pixels_finds_a_square():
    plain = Image.new("RGB", (64, 64), (120, 120, 120))
    marked = plain.copy()
    marked.paste((255, 255, 0), (16, 16, 25, 25))  # a 9x9 marker centred on (20, 20)
    assert marker_pixels(marked, plain, [(20, 20), (50, 50)]) == ([81, 0], [0.0, np.inf], 0)
    assert marker_pixels(marked, plain, [(50, 50)]) == ([0], [np.inf], 81)
    assert marker_pixels(marked, plain, [(23, 24)]) == ([81], [5.0], 0)
    assert mad(plain, plain) == 0.0 and mad(marked, plain) == pytest.approx(2.57, abs=0.01)


class User(LivePage):
    """The page, the user's steps on it, and everything seen on the way."""

    prefix = "live_hints"

    def __init__(self, page, log_path: Path, screenshots: Path):
        super().__init__(page, log_path, screenshots)
        self.acted_at = 0.0  # time.monotonic() of the last action

    def wait_for(self, step: str, hints: int, timeout: float = STEP_TIMEOUT) -> dict:
        """Wait until the status says ``hints`` hint(s) and both images are new; check it all."""
        deadline = time.monotonic() + timeout
        expected = f"{hints} hint(s)"
        while True:
            state = self.page.evaluate(STATE, await_promise=True)
            counted = bool(state["status"]) and state["status"].startswith(expected)
            new = {
                key: state[key] is not None and (self.last is None or state[key] != self.last[key])
                for key in ("gray", "result")
            }
            if counted and all(new.values()):
                break
            problems = self.problems(state)
            assert not problems, f"{step}: " + "\n".join(problems)
            if time.monotonic() > deadline:
                shot = self.shoot(step + "-timeout")
                pytest.fail(
                    f"{step}: the editor did not answer within {timeout} s (hang guard): "
                    f"expected the status {expected!r} and new images, the page shows "
                    f"status={state['status']!r}, new gray photo={new['gray']}, new "
                    f"result={new['result']} ({shot}); did the click reach the kernel "
                    f"(ipyevents)?\nvoila log:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        seen = time.monotonic() - self.acted_at
        shot = self.shoot(step)
        problems = self.problems(state)
        assert not problems, f"{step}: " + "\n".join(problems)
        state["images"] = {key: decode(state[key]) for key in ("gray", "result")}
        record = {"step": step, "status": state["status"], "action_to_result_s": round(seen, 2)}
        record |= {"screenshot": shot.name, "size": state["images"]["result"].size}
        self.steps.append(record)
        self.last = state
        return state

    def click_photo(self, fx: float, fy: float) -> tuple[float, float]:
        """A real mouse click at fractions ``(fx, fy)`` of the gray photo's on-screen box;
        returns the point in the photo's own pixels (where the marker must appear)."""
        box = self.page.evaluate(LOCATE)
        assert box and box["width"] > 0 and box["height"] > 0, f"no gray photo on the page: {box}"
        x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        self.acted_at = time.monotonic()
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            self.page.browser.send("Input.dispatchMouseEvent", event, self.page.session)
        natural_w, natural_h = box["natural"]
        return fx * natural_w, fy * natural_h

    def click_button(self, label: str) -> None:
        """A real mouse click on the button ``label``."""
        name = re.sub(r"\W", "-", label.lower())
        script = f"(() => {{ {FIND} const el = button({json.dumps(label)}); "
        script += f"if (el) el.dataset.live = '{name}'; return !!el; }})()"
        assert self.page.evaluate(script), f"no {label!r} button on the page"
        self.acted_at = time.monotonic()
        self.page.click(f'[data-live="{name}"]')

    def check_markers(self, step: str, state: dict, plain: Image.Image, points) -> None:
        counts, offsets, stray = marker_pixels(state["images"]["gray"], plain, points)
        self.steps[-1] |= {"marker_pixels": counts, "marker_offsets": offsets}
        self.steps[-1]["stray_pixels"] = stray
        where = [(round(x), round(y)) for x, y in points]
        assert min(counts) >= MARKER_PIXELS and max(offsets) <= OFF and stray <= STRAY, (
            f"{step}: expected a marker centred at each of {where} on the gray photo and no "
            f"other change: {counts} changed pixels there, centred {offsets} px away, {stray} "
            f"elsewhere (see {self.steps[-1]['screenshot']})"
        )

    def check_result(self, step: str, state: dict, other: dict, same: bool) -> None:
        """The result is ``other``'s again (``same``), or visibly changed from it."""
        difference = mad(state["images"]["result"], other["images"]["result"])
        self.steps[-1]["result_difference"] = round(difference, 2)
        if same:
            assert difference <= SAME, f"{step}: result differs from before ({difference:.2f})"
        else:
            assert difference >= CHANGED, (
                f"{step}: the result barely changed (mean difference {difference:.2f} < "
                f"{CHANGED}): the hint did not reach the model"
            )


@pytest.fixture
def browser():
    with open_browser(timeout=STEP_TIMEOUT) as chromium:
        yield chromium


@pytest.fixture
def voila(tmp_path):
    with serve_notebook(NOTEBOOK, tmp_path) as served:
        yield served


def test_user_places_hints_by_clicking_the_live_editor(browser, voila):
    # browser first: without Chromium the test skips before voila starts
    url, log_path, timings = voila
    screenshots = screenshot_folder()
    page = browser.new_page(log=True)
    user = User(page, log_path, screenshots)
    begun = user.acted_at = time.monotonic()
    page.goto(url, timeout=LOAD_TIMEOUT)
    timings["page_load_s"] = round(time.monotonic() - begun, 2)
    timings.pop("started")
    try:
        first = user.wait_for("first_result", 0, timeout=FIRST_TIMEOUT)
        timings["navigation_to_first_result_s"] = round(time.monotonic() - begun, 2)
        plain = first["images"]["gray"]

        one = user.click_photo(*POINTS[0])
        hinted = user.wait_for("click_1", 1)
        user.check_markers("click_1", hinted, plain, [one])
        user.check_result("click_1", hinted, first, same=False)

        two = user.click_photo(*POINTS[1])
        both = user.wait_for("click_2", 2)
        user.check_markers("click_2", both, plain, [one, two])
        user.check_result("click_2", both, hinted, same=False)

        user.click_button("Undo")
        undone = user.wait_for("undo", 1)
        user.check_markers("undo", undone, plain, [one])
        user.check_result("undo", undone, hinted, same=True)

        user.click_button("Clear")
        cleared = user.wait_for("clear", 0)
        user.check_result("clear", cleared, first, same=True)
        gray_difference = mad(cleared["images"]["gray"], plain)
        assert gray_difference <= SAME, f"clear: markers left ({gray_difference:.2f})"
    finally:  # what was seen, also when a step failed
        summary = {
            "timings": timings,
            "steps": user.steps,
            "offline_requests": user.offline_requests,
        }
        (screenshots / "live_hints.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
