"""Large photos: peak memory and time of full-resolution colorization, before and after strips.

A DDColor checkpoint (the released DDColor-tiny architecture, random weights: memory and time
do not depend on the weights' values) colorizes one synthetic grayscale photo (mode ``L``, a
gradient with noise) at ``--size`` with ``keep_aspect``, as ``colorlib colorize --keep-aspect``
does. Two implementations, each in a fresh subprocess per photo size, one at a time:

* *before*: the original algorithm, kept below as a reference (:func:`colorize_before`): the
  photo becomes one float32 sRGB tensor, its ``L`` is computed at full resolution, ``ab`` is
  upsampled to the full size at once, then fitted into the gamut and turned into RGB at once;
* *after*: :func:`colorlib.inference.colorize`, which computes ``L`` a strip of rows at a
  time, then upsamples, fits and converts one strip of ``ab`` at a time
  (:data:`colorlib.inference_memory.STRIP_PIXELS` pixels) into a preallocated 8-bit image.

Memory: the child's peak resident set (``VmHWM`` of ``/proc/self/status``) during the call,
after building the model, the photo and one warm-up forward pass at the network size (the
resident set at that moment is the *base*, which the peak includes), with glibc's default
allocator settings, as a user runs it. Both outputs are saved to a temporary folder and
compared (max |difference| in 8-bit levels, share of pixels that differ at all). A child whose
resident set passes ``--max-rss-gib`` is stopped and reported as such.

A 12000x9000 photo has 108 M pixels, more than :data:`colorlib.data.images.MAX_PIXELS`
(89.5 M): as a file it is refused by the decoder; here it is an in-memory ``PIL.Image``.

Example::

    python benchmarks/large_photo_bench.py --threads 1 --photos 4000x3000 12000x9000 \
        --max-rss-gib 16 --json benchmarks/results/large_photo_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorlib import inference_memory
from colorlib.color import L_ab_to_rgb, rgb_to_L_ab
from colorlib.data.images import to_pil, to_rgb_tensor
from colorlib.inference import MAX_MODEL_SIDE, colorize, fit_to_gamut, model_input_size
from colorlib.models.ddcolor import build_ddcolor

IMPLEMENTATIONS = ("before", "after")


def _resize(x, shape):
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrinking)


def colorize_before(model, image, size: int) -> Image.Image:
    """The original full-resolution colorization of one photo with ``keep_aspect`` (reference)."""
    with torch.inference_mode():
        L = rgb_to_L_ab(to_rgb_tensor(image))[0][None]  # (1, 1, H, W)
        multiple = getattr(model, "required_multiple", 32)
        shape = model_input_size(L.shape[-2], L.shape[-1], size, True, multiple)
        ab_small = model(_resize(L, shape)).float()
        ab = fit_to_gamut(L, _resize(ab_small.clamp(-1.0, 1.0), tuple(L.shape[-2:])))
        return to_pil(L_ab_to_rgb(L, ab)[0])


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A gray photo: a diagonal gradient with noise, made a band of rows at a time (cheaply)."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width), dtype=np.uint8)
    columns = np.linspace(0.0, 1.0, width, dtype=np.float32)
    for top in range(0, height, 512):
        rows = np.linspace(top / height, min(top + 512, height) / height, 512, dtype=np.float32)
        band = 40 + 160 * (0.5 * rows[: height - top, None] + 0.5 * columns[None, :])
        noise = rng.integers(-20, 21, band.shape, dtype=np.int16)
        pixels[top : top + 512] = np.clip(band + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L")


def _status_bytes(field: str, status: str = "/proc/self/status") -> int:
    with open(status) as file:
        return 1024 * int(re.search(rf"{field}:\s+(\d+)", file.read())[1])


def run_case(args) -> dict:
    """One implementation on one photo size (runs in its own process)."""
    torch.manual_seed(0)
    inference_memory.STRIP_PIXELS = args.strip_pixels
    width, height = args.case_photo
    model = build_ddcolor(args.preset, pretrained=False).eval()
    photo = synthetic_photo(width, height)
    shape = model_input_size(height, width, args.size, True, model.required_multiple)
    with torch.inference_mode():  # warm-up at the network size: kernels, allocator
        model(torch.zeros(1, 1, *shape))
    base = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as file:  # reset the peak (VmHWM) to now
        file.write("5")
    start = time.perf_counter()
    if args.case == "before":
        out = colorize_before(model, photo, args.size)
    else:
        out = colorize(model, photo, size=args.size, keep_aspect=True)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    assert out.size == (width, height), out.size
    np.save(args.save, np.asarray(out))
    result = {"seconds": seconds, "peak_mib": peak / 2**20, "base_mib": base / 2**20}
    return result | {"network_input": list(shape)}


def _child(args, implementation: str, photo: tuple[int, int], save: Path) -> dict:
    command = [sys.executable, __file__, "--case", implementation, "--case-photo"]
    command += [f"{photo[0]}x{photo[1]}", "--save", str(save), "--threads", str(args.threads)]
    command += ["--size", str(args.size), "--preset", args.preset]
    command += ["--strip-pixels", str(args.strip_pixels)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        limit, killed = args.max_rss_gib * 2**30, False
        while child.poll() is None:  # a watchdog: on a shared machine, never run it out of memory
            try:
                rss = _status_bytes("VmRSS", f"/proc/{child.pid}/status")
            except (OSError, TypeError):  # exited meanwhile, or a zombie without VmRSS
                rss = 0
            if rss > limit:
                child.kill()
                killed = True
            time.sleep(0.05)
        out.seek(0), err.seek(0)
        if killed:
            return {"error": f"stopped: resident set over --max-rss-gib {args.max_rss_gib}"}
        if child.returncode != 0:
            return {"error": (err.read().strip().splitlines() or [f"exit {child.returncode}"])[-1]}
        return json.loads(out.read().strip().splitlines()[-1])


def _compare(first: Path, second: Path) -> dict:
    a, b = np.load(first, mmap_mode="r"), np.load(second, mmap_mode="r")
    worst, differing = 0, 0
    for top in range(0, a.shape[0], 256):  # a band at a time: the parent stays small
        diff = np.abs(a[top : top + 256].astype(np.int16) - b[top : top + 256].astype(np.int16))
        worst, differing = max(worst, int(diff.max())), differing + int(diff.any(-1).sum())
    return {"max_diff_levels": worst, "differing_pixels": differing / (a.shape[0] * a.shape[1])}


def _photo_size(text: str) -> tuple[int, int]:
    width, height = (int(side) for side in text.lower().split("x"))
    return width, height


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=_photo_size, nargs="+", default=[(4000, 3000)])
    parser.add_argument("--size", type=int, default=512, help="network size (shorter side)")
    parser.add_argument("--preset", default="tiny", help="DDColor preset (random weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-before", action="store_true", help="only the new algorithm")
    parser.add_argument("--strip-pixels", type=int, default=inference_memory.STRIP_PIXELS)
    parser.add_argument("--max-rss-gib", type=float, default=19.0, help="a child above: killed")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--case", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--case-photo", type=_photo_size, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(run_case(args)))
        return
    implementations = IMPLEMENTATIONS[args.skip_before :]
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, {os.cpu_count()} cores")
    print(
        f"DDColor-{args.preset} with RANDOM weights (memory and time do not depend on them), "
        f"size {args.size}, keep_aspect; grayscale (mode L) in-memory photos; "
        f"STRIP_PIXELS={args.strip_pixels}, MAX_MODEL_SIDE={MAX_MODEL_SIDE}"
    )
    print("peak: the process's peak resident set during the call (base included);")
    print("base: resident set before it (Python, torch, the model, the photo, warm-up)")
    print(
        f"{'photo':>11} {'network':>9} {'impl':>7} {'seconds':>8} {'peak MiB':>9} "
        f"{'base MiB':>9} {'+MiB':>7} {'+B/pixel':>9}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for width, height in args.photos:
            row = {"photo": [width, height], "pixels": width * height}
            for implementation in implementations:
                save = Path(folder) / f"{implementation}.npy"
                result = row[implementation] = _child(args, implementation, (width, height), save)
                if "error" in result:
                    photo = f"{width}x{height}"
                    print(f"{photo:>11} {'':>9} {implementation:>7} failed: {result['error']}")
                    continue
                row["network_input"] = result["network_input"]
                extra = result["peak_mib"] - result["base_mib"]
                h, w = result["network_input"]
                print(
                    f"{f'{width}x{height}':>11} {f'{w}x{h}':>9} {implementation:>7} "
                    f"{result['seconds']:>8.1f} {result['peak_mib']:>9.0f} "
                    f"{result['base_mib']:>9.0f} {extra:>7.0f} "
                    f"{extra * 2**20 / (width * height):>9.1f}"
                )
            done = [row.get(name, {}) for name in implementations]
            if len(done) == 2 and not any("error" in result for result in done):
                before, after = done
                row["peak_ratio"] = after["peak_mib"] / before["peak_mib"]
                row["extra_ratio"] = (after["peak_mib"] - after["base_mib"]) / (
                    before["peak_mib"] - before["base_mib"]
                )
                row["time_ratio"] = after["seconds"] / before["seconds"]
                row |= _compare(*(Path(folder) / f"{name}.npy" for name in implementations))
                print(
                    f"{'':>11} after/before: peak x{row['peak_ratio']:.3f}, above base "
                    f"x{row['extra_ratio']:.3f}, time x{row['time_ratio']:.2f}; outputs differ "
                    f"by <= {row['max_diff_levels']} levels in "
                    f"{100 * row['differing_pixels']:.4f} % of pixels"
                )
            for name in implementations:
                (Path(folder) / f"{name}.npy").unlink(missing_ok=True)
            rows.append(row)
    if args.json:
        result = {
            "benchmark": "large_photo_bench",
            "hardware": f"CPU, {args.threads} threads",
            "torch": torch.__version__,
            "preset": args.preset,
            "weights": "random",
            "size": args.size,
            "keep_aspect": True,
            "strip_pixels": args.strip_pixels,
            "max_model_side": MAX_MODEL_SIDE,
            "rows": rows,
        }
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
