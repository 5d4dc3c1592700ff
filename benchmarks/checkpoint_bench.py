"""Checkpoint cost: one save of ``fit``'s full run state against one training step.

For each of the book's models at a profile's sizes (default ``cpu``: pix2pix's U-Net, the ResNet
U-Net of the pretraining trick, DDColor's ``cpu`` preset, each with its PatchGAN and its
recipe's optimiser), ``fit`` runs a short GAN stage on synthetic in-memory pairs with
``checkpoint_every=1``, so it saves after every step through its own save path (the state
dict: networks, Adam/AdamW moments, RNG states, history, samples; then ``torch.save`` to a
temporary file, ``fsync`` and ``os.replace``). The save of every step is timed by wall clock
(the file system's share is I/O, which a CPU clock misses); a step's time is the gap between
two history rows less the save in between. Medians over ``--steps - 1`` steps (the first warms
up) and ``--repeats`` runs.

The overhead a checkpoint interval costs is the save time over the interval's length: at the
default ``checkpoint_minutes=2`` it is ``save / 120 s`` whatever the model; at the old
``checkpoint_every=500`` it is ``save / (500 x step)``. The issue asks for at most 2 % of
training time.

Example::

    python benchmarks/checkpoint_bench.py --threads 1 --json benchmarks/results/checkpoint_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from train_bench import SyntheticPairs  # the same in-memory pairs as the training benchmark

from colorlib.runtime import get_profile
from colorlib.training import loop as train_module
from colorlib.training import recipes
from colorlib.training.config import Stage
from colorlib.training.loop import fit

#: row label -> the recipe whose GAN stage is timed
MODELS = {"unet": "pix2pix", "resnet-unet": "pretrained-gan", "ddcolor": "ddcolor"}


def bench_config(name: str, profile, steps: int):
    """The recipe's config at the profile's sizes: one GAN stage of ``steps``, a save after every
    step, no validation between steps, no downloads (random encoder and VGG weights)."""
    config = recipes.recipe_config(MODELS[name], profile)
    return config.replace(
        model_kwargs={**config.model_kwargs, "pretrained": False},
        perceptual_pretrained=False,
        stages=(Stage("gan", max_steps=steps),),
        val_every=0,
        num_val_images=config.num_sample_images,
        checkpoint_every=1,
        checkpoint_minutes=0,
        num_workers=0,
    )


class _TimedSaves:
    """Wraps ``fit``'s save (``loop._save``): the wall time of each save that wrote a file,
    keyed by the step it saved."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self.original = train_module._save

    def __call__(self, run) -> None:
        before, start = run.saved_step, time.perf_counter()
        self.original(run)
        if run.saved_step != before:
            self.seconds[run.progress.step] = time.perf_counter() - start


def measure(name: str, profile, args, folder: Path) -> dict:
    """One model's medians: save seconds, step seconds, file size, parameter count."""
    config = bench_config(name, profile, args.steps)
    data = SyntheticPairs(config.batch_size * 4, config.image_size)
    val = SyntheticPairs(config.num_val_images, config.image_size, seed=1)
    saves, steps = [], []
    for repeat in range(args.repeats):
        path = folder / f"{name}-{repeat}.pt"
        timer = _TimedSaves()
        train_module._save = timer
        try:
            result = fit(config, data, val, "cpu", path, resume=False, progress=False)
        finally:
            train_module._save = timer.original
        times = [row["time"] for row in result.history]
        for step in range(2, len(times) + 1):  # step 1 warms up
            steps.append(times[step - 1] - times[step - 2] - timer.seconds.get(step - 1, 0.0))
            saves.append(timer.seconds[step])
        size = path.stat().st_size
        path.unlink()
    networks = [result.generator] + ([result.discriminator] if result.discriminator else [])
    return {
        "model": name,
        "recipe": MODELS[name],
        "params_m": sum(p.numel() for n in networks for p in n.parameters()) / 1e6,
        "file_mb": size / 1e6,
        "save_s": statistics.median(saves),
        "step_s": statistics.median(steps),
        "saves": len(saves),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=5, help="steps (and saves) per run, >= 2")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=2.0, help="the time interval to price")
    parser.add_argument("--every", type=int, default=500, help="the step interval to price")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (step times are measured from the end of step 1)")
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    interval = 60.0 * args.minutes
    print(
        f"# checkpoint_bench, profile {profile.name}, CPU, {torch.get_num_threads()} threads, "
        f"{args.steps} steps x {args.repeats} repeats, wall clock, torch {torch.__version__}"
    )
    header = ("model", "params M", "file MB", "save s", "step s", "save/step")
    header += (f"@{args.minutes:g} min", f"@{args.every} steps")
    print("{:<12} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>10}".format(*header))
    rows = []
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-", dir=args.dir) as tmp:
        for name in args.models:
            row = measure(name, profile, args, Path(tmp))
            row["save_per_step"] = row["save_s"] / row["step_s"]
            row["overhead_time_pct"] = 100.0 * row["save_s"] / interval
            row["overhead_steps_pct"] = 100.0 * row["save_s"] / (args.every * row["step_s"])
            rows.append(row)
            values = [row[k] for k in ("model", "params_m", "file_mb", "save_s", "step_s")]
            values += [row[k] for k in ("save_per_step", "overhead_time_pct", "overhead_steps_pct")]
            print(
                "{:<12} {:>8.1f} {:>8.1f} {:>7.3f} {:>7.2f} {:>9.3f} {:>8.2f}% {:>9.3f}%".format(
                    *values
                ),
                flush=True,
            )
    where = "--dir" if args.dir else "the system's temporary folder"
    print(f"# files written to {where}; overhead = save time / interval (the limit: 2 %)")
    if args.json:
        meta = {"profile": profile.name, "threads": torch.get_num_threads(), "steps": args.steps}
        meta |= {"repeats": args.repeats, "minutes": args.minutes, "every": args.every}
        meta |= {"clock": "wall", "torch": torch.__version__, "folder": where}
        with open(args.json, "w") as file:
            json.dump({"benchmark": "checkpoint_bench", **meta, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
