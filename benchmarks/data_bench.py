"""Images per second: colorlib's dataset + loader against the loader the original project used.

The original (the widely copied pix2pix colorization tutorial) read each photo with PIL,
resized it to S x S (bicubic), converted it to Lab with ``skimage.color.rgb2lab`` in float64
NumPy and only then made a tensor. colorlib decodes JPEGs at reduced scale when it can, crops and
resizes in one PIL call, and converts to Lab in float32 torch.

Both run in this process on the same photos, same size, same workers, same batch size; each
is timed after one warm-up batch. Example::

    COLORLIB_DATA=../shared/data/coco-mini python benchmarks/data_bench.py --size 256
    python benchmarks/data_bench.py --data ../shared/data/coco-mini --json data_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab
from torch.utils.data import DataLoader, Dataset

from colorlib.data.datasets import ColorizationDataset, find_images, make_loader
from colorlib.data.samples import bundled_sample_paths


class BaselineDataset(Dataset):
    """PIL open, resize to S x S, ``np.array``, ``rgb2lab``, to tensor, normalise."""

    def __init__(self, paths, size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = Image.open(self.paths[index]).convert("RGB")
        image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        lab = rgb2lab(np.array(image)).astype("float32")
        lab = torch.from_numpy(lab).permute(2, 0, 1)
        return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


def images_per_second(loader) -> tuple[float, float]:
    """``(wall-clock rate, CPU-time rate)``; the CPU rate counts this process only, so it is
    meaningful with ``--workers 0`` and robust to other programs sharing the cores."""
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start-up, first allocations
    seen, wall, cpu = 0, time.perf_counter(), time.process_time()
    for L, _ in iterator:
        seen += L.shape[0]
    return seen / (time.perf_counter() - wall), seen / (time.process_time() - cpu)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("COLORLIB_DATA"), help="photo folder")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; best kept")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    paths = find_images(args.data) if args.data else bundled_sample_paths()
    source = os.path.relpath(args.data) if args.data else "bundled samples"
    if len(paths) < args.num_images:  # tiny folders: cycle through them
        paths = (paths * (args.num_images // len(paths) + 1))[: args.num_images]
    paths = paths[: args.num_images]
    print(
        f"{len(paths)} images from {source}, {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.workers} workers, torch threads {torch.get_num_threads()}"
    )

    def baseline():
        dataset = BaselineDataset(paths, args.size)
        return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)

    def colorlib(train: bool):
        dataset = ColorizationDataset(paths, args.size, train=train)
        return make_loader(
            dataset, args.batch_size, train=False, device="cpu", num_workers=args.workers
        )

    loaders = {
        "baseline (PIL + skimage rgb2lab)": baseline,
        "colorlib eval (resize + centre crop)": lambda: colorlib(False),
        "colorlib train (random crop + flip)": lambda: colorlib(True),
    }
    best = {name: (0.0, 0.0) for name in loaders}
    for _ in range(args.repeats):  # alternate, so background load hits every loader alike
        for name, build in loaders.items():
            wall, cpu = images_per_second(build())
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    base_wall, base_cpu = best["baseline (PIL + skimage rgb2lab)"]
    print(f"{'':40s} {'wall-clock':>22s} {'per CPU second':>24s}")
    rows = []
    for name, (wall, cpu) in best.items():
        print(
            f"{name:40s} {wall:8.1f} images/s {wall / base_wall:5.2f}x "
            f"{cpu:10.1f} images/s {cpu / base_cpu:5.2f}x"
        )
        rows.append(
            {"loader": name, "wall_ips": wall, "cpu_ips": cpu}
            | {"wall_ratio": wall / base_wall, "cpu_ratio": cpu / base_cpu}
        )
    if args.json:
        meta = {"benchmark": "data_bench", "hardware": f"CPU, {torch.get_num_threads()} threads"}
        meta |= {"torch": torch.__version__, "source": source, "num_images": len(paths)}
        meta |= {"size": args.size, "batch_size": args.batch_size, "workers": args.workers}
        with open(args.json, "w") as file:
            json.dump({**meta, "repeats": args.repeats, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
