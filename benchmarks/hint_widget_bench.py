"""Hint editor latency: one click-to-colour edit against one plain colorization.

The issue's target: one edit of the hint editor (:mod:`colorlib.hint_editor`) answered in under
0.3 s at a 256 px model on the development machine's 2-core CPU. The model is the ``cpu``
recipe's hint generator as this offline machine builds it: ``ResNetUNet(hint_channels=3,
hint_decoder=True)`` on
the EfficientNet-Lite0 encoder (``pretrained=False``: time does not depend on the weights'
values), in eval mode. The photo is a real-size synthetic one (``--photo 1024x768``: a colour
gradient with noise) or a bundled sample (``--sample astronaut``), kept at its size.

Rows, each the median of ``--edits`` runs after one warm-up, side by side in one process:

* ``colorize``: :func:`colorlib.inference.colorize` of the photo (the baseline);
* ``editor edit``: :meth:`HintEditor.place` of a new point (a new colour, so the cache misses)
  then :meth:`HintEditor.result`: one :func:`~colorlib.inference_hints.colorize_with_hints`;
* ``widget click``: :meth:`HintEditorUI.on_click` with an ipyevents-like event: the same edit
  (default colour = the predicted one) plus what the browser gets back: the marked gray
  preview and the result preview (JPEG, ``--preview`` px); the download links are made on
  demand ("Prepare downloads"), not per click, and are timed as their own row.

The ratio is each row's median over ``colorize``'s. Nothing is written; the table is printed.

One torch thread by default, as every CPU benchmark here (see README: on a shared 2-core
machine, waiting OpenMP threads spin; ``--threads 2`` measured 5 s instead of 0.3 s for the
same ``colorize`` while a background job ran).

Example::

    python benchmarks/hint_widget_bench.py --threads 1 --edits 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from colorlib.hint_editor import HintEditor, HintEditorUI
from colorlib.inference import colorize
from colorlib.models.resnet_unet import ResNetUNet

TARGET_SECONDS = 0.3


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A colour gradient with noise: a photo-sized input whose content does not matter."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    rgb = np.stack([x, y, 1 - x * y], axis=-1) * 200 + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def median_seconds(action, runs: int) -> float:
    action(0)  # warm-up: first-call allocations, lazy imports
    times = []
    for run in range(1, runs + 1):
        start = time.perf_counter()
        action(run)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def points(photo: Image.Image, count: int) -> list[tuple[int, int]]:
    """Distinct click positions spread over the photo (every edit is a new hint list)."""
    rng = np.random.default_rng(1)
    return [(int(rng.integers(photo.width)), int(rng.integers(photo.height))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default="1024x768", help="WIDTHxHEIGHT of a synthetic photo")
    parser.add_argument("--sample", default=None, help="a bundled sample photo instead")
    parser.add_argument("--size", type=int, default=256, help="the model's input side")
    parser.add_argument("--edits", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument("--preview", type=int, default=512, help="preview side of the widget")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (README)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sample:
        from colorlib.data.samples import sample_photo

        photo = sample_photo(args.sample)
    else:
        width, height = (int(v) for v in args.photo.lower().split("x"))
        photo = synthetic_photo(width, height)
    torch.manual_seed(0)
    model = ResNetUNet(
        pretrained=False, encoder="efficientnet-lite0", hint_channels=3, hint_decoder=True
    ).eval()
    where = points(photo, 2 * (args.edits + 1))
    colours = [f"#{(37 * i) % 256:02x}{(91 * i) % 256:02x}{(53 * i) % 256:02x}" for i in range(99)]

    rows = {
        "colorize": median_seconds(lambda _: colorize(model, photo, size=args.size), args.edits)
    }
    editor = HintEditor(photo, model, args.size, max_side=None, hint_size=3)
    editor.result()

    def edit(run: int) -> None:
        editor.place(*where[run], colours[run % len(colours)])
        editor.result()

    rows["editor edit"] = median_seconds(edit, args.edits)
    editor.clear()
    ui = HintEditorUI(editor, preview_side=args.preview, name="bench")
    preview_w, preview_h = ui.gray.size

    def click(run: int) -> None:
        x, y = where[args.edits + 1 + run]
        event = {"type": "click", "dataX": x * preview_w / photo.width}
        ui.on_click(event | {"dataY": y * preview_h / photo.height})

    rows["widget click"] = median_seconds(click, args.edits)
    rows["prepare downloads"] = median_seconds(lambda _: ui.on_prepare(), args.edits)
    assert editor.computations == 1 + 2 * (args.edits + 1), "an edit must colorize exactly once"

    base = rows["colorize"]
    print(
        f"photo {photo.width}x{photo.height}, model {args.size} px (ResNetUNet hint_channels=3, "
        f"hint_decoder, EfficientNet-Lite0), {torch.get_num_threads()} torch thread(s), "
        f"median of {args.edits}"
    )
    print(f"{'row':<19}{'seconds':>9}{'ratio':>8}   target < {TARGET_SECONDS} s")
    for name, seconds in rows.items():
        edit = name in ("editor edit", "widget click")
        verdict = ("met" if seconds < TARGET_SECONDS else "MISSED") if edit else ""
        print(f"{name:<19}{seconds:>9.3f}{seconds / base:>8.2f}   {verdict}")


if __name__ == "__main__":
    main()
