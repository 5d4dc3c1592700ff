"""Training throughput: ``colorlib.training.loop.fit`` against a bare PyTorch loop (same nets,
same data).

For each model (pix2pix U-Net, ResNet U-Net, DDColor when built) and image size, both loops run
the same GAN stage: a PatchGAN update on real and detached fake pairs (two backward passes),
then a generator update through the frozen discriminator with the model's objective (pix2pix:
adversarial + 100 L1; DDColor: pixel, perceptual with a random-weight VGG16-BN, adversarial,
colourfulness). The photos are synthetic tensors held in memory (no JPEG decoding), drawn in the
same seeded order, so the difference between the loops is fit()'s bookkeeping: the loss floats
it syncs for the history and the NaN guard, the history rows, the budget checks (the progress
bar is off). Validation and checkpoints are left out of the timed steps (``val_every=0``, no
checkpoint path). Throughput is the batch size over the *median* step time, pooled over
``--repeats`` interleaved runs and leaving out each run's first step (warm-up): medians resist
the spikes of a shared CPU. On CPU, steps are timed by default with the process's CPU time
(``--clock cpu``), which other processes on a shared machine barely disturb; use
``--threads 1`` there too, since waiting OpenMP threads spin and bill CPU time.
``unet-tiny`` (ngf 8, 5 levels) is nearly all bookkeeping: its row bounds fit()'s cost from
above, and ``fit ms/step`` gives that cost in absolute terms.

On CUDA every row is also run with float16 autocast + GradScaler + channels-last memory.

``--recipes`` measures something else: the training step of the book's recipes (built by the
recipe registry for ``--profile``, default ``cpu``: 128 px, batch 16, DDColor batch 8) as
``fit()`` now runs it on this machine (:func:`colorlib.training.precision.step_settings`:
bf16 autocast where the CPU runs it fast, channels-last, the fused Adam) against the step as
it ran before (float32, NCHW memory, the per-tensor Adam loop), side by side in one process:
the same initial weights, the same in-memory batch, the arms alternating step by step
(ABBA...) so that a busy spell of a shared machine hits both. Per arm: the median step's wall
time and process CPU time, images per second, and the optimisation steps a 10-minute stage
would hold (validation, checkpoints and data loading left out; on the cpu profile they cost
about 2 % of a stage). ``--ablation`` adds the arms with one change each.

Example::

    python benchmarks/train_bench.py --steps 6 --sizes 128 256
    python benchmarks/train_bench.py --models unet --sizes 128 --steps 4 --batch-size 4
    python benchmarks/train_bench.py --recipes pretrained-l1 pretrained-gan pix2pix ddcolor \
        --rounds 10 --json benchmarks/results/train_cpu_precision.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset

from colorlib.runtime import get_profile, seed_everything
from colorlib.training import distributed as ddp
from colorlib.training import loop as train_module
from colorlib.training.config import (
    Stage,
    TrainConfig,
    build_discriminator,
    build_generator,
    build_objective,
    build_optimizers,
)
from colorlib.training.loop import fit
from colorlib.training.losses import discriminator_fake_loss, discriminator_real_loss
from colorlib.training.precision import StepSettings, step_settings
from colorlib.training.recipes import recipe_config
from colorlib.training.steps import Precision, gan_step, pretrain_step


class SyntheticPairs(Dataset):
    """``n`` random ``(L, ab)`` pairs of side ``size``, in memory."""

    def __init__(self, n: int, size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.L = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        self.ab = 0.3 * (torch.rand(n, 2, size, size, generator=g) * 2 - 1)

    def __len__(self) -> int:
        return len(self.L)

    def __getitem__(self, i):
        return self.L[i], self.ab[i]


def model_config(name: str, size: int, args, amp: bool) -> TrainConfig:
    if name in ("unet", "unet-tiny"):
        base = 8 if name == "unet-tiny" else args.unet_base
        levels = 5 if name == "unet-tiny" else int(math.log2(size))
        model_kwargs, objective, optimizer = (
            {"base_channels": base, "num_downs": levels},
            "pix2pix",
            "adam",
        )
        name = "unet"
    elif name == "resnet-unet":
        model_kwargs, objective, optimizer = {"pretrained": False}, "pix2pix", "adam"
    else:
        model_kwargs = {"preset": args.ddcolor_preset, "pretrained": False}
        objective, optimizer = "ddcolor", "adamw"
    return TrainConfig(
        model=name,
        model_kwargs=model_kwargs,
        image_size=size,
        batch_size=args.batch_size,
        objective=objective,
        optimizer=optimizer,
        perceptual_pretrained=False,
        stages=(Stage("gan", max_steps=args.steps),),
        val_every=0,
        num_val_images=1,
        num_sample_images=0,
        checkpoint_every=0,
        num_workers=0,
        amp=amp,
        channels_last=amp,
    )


def bare_loop(config: TrainConfig, data: Dataset, device: torch.device, clock) -> list[float]:
    """The same GAN iteration written as plain PyTorch; returns the end time of every step."""
    seed_everything(config.seed)
    generator = build_generator(config).to(device)
    discriminator = build_discriminator(config).to(device)
    amp = config.amp and device.type == "cuda"
    if amp:
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    objective = build_objective(config).to(device)
    g_opt, d_opt = build_optimizers(config, generator, discriminator)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    sampler = ddp.EpochSampler(len(data), config.batch_size, config.seed)
    loader = DataLoader(data, config.batch_size, sampler=sampler, drop_last=True)
    batches = iter(loader)
    times = []
    for _ in range(config.stages[0].max_steps):
        try:
            L, real_ab = next(batches)
        except StopIteration:
            batches = iter(loader)
            L, real_ab = next(batches)
        L, real_ab = L.to(device), real_ab.to(device)
        if amp:
            L = L.contiguous(memory_format=torch.channels_last)
            real_ab = real_ab.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            fake_ab = generator(L)
        d_opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            real = discriminator_real_loss(discriminator(L, real_ab), config.gan_mode)
        scaler.scale(0.5 * real).backward()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            fake = discriminator_fake_loss(discriminator(L, fake_ab.detach()), config.gan_mode)
        scaler.scale(0.5 * fake).backward()
        scaler.step(d_opt)
        discriminator.requires_grad_(False)
        g_opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            total = objective(L, real_ab, fake_ab, discriminator(L, fake_ab))["total"]
        scaler.scale(total).backward()
        scaler.step(g_opt)
        scaler.update()
        discriminator.requires_grad_(True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock())
    return times


class _Clock:
    """Stands in for the ``time`` module inside :mod:`colorlib.training.loop`: fit's history then
    records step times on the benchmark's clock."""

    def __init__(self, clock) -> None:
        self.perf_counter = clock


def fit_loop(config: TrainConfig, data: Dataset, device: torch.device, clock) -> list[float]:
    """fit() on the same data; the end time of every step, from its history."""
    saved, train_module.time = train_module.time, _Clock(clock)
    try:
        val = SyntheticPairs(1, config.image_size, 1)
        result = fit(config, data, val, device, progress=False)
    finally:
        train_module.time = saved
    return [row["time"] for row in result.history]


def step_seconds(times: list[float]) -> list[float]:
    """Durations of steps 2..n (step 1 warms up kernels and caches)."""
    return [b - a for a, b in zip(times[:-1], times[1:], strict=True)]


def measure(name: str, size: int, args, device: torch.device, amp: bool) -> tuple[float, float]:
    """Median step time of the bare loop and of fit(), in seconds."""
    config = model_config(name, size, args, amp)
    data = SyntheticPairs(args.batch_size * 4, size)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    bare, ours = [], []
    for _ in range(args.repeats):  # interleaved, so a busy spell hits both
        bare += step_seconds(bare_loop(config, data, device, clock))
        ours += step_seconds(fit_loop(config, data, device, clock))
    return statistics.median(bare), statistics.median(ours)


# --- --recipes: the step before and after colorlib.training.precision ------------------------

STAGE_SECONDS = 600.0  # the cpu profile's 10-minute stage


def arms(config: TrainConfig, device: torch.device, ablation: bool) -> dict[str, StepSettings]:
    """The step settings compared: before (what fit() did on a CPU until now), after (what it
    does now, :func:`step_settings`) and, with ``ablation``, one change at a time."""
    now = step_settings(config, device)
    before = StepSettings(Precision(device.type, None), reason="before")
    out = {"before": before}
    if ablation:
        out["+channels-last"] = StepSettings(before.precision, channels_last=True)
        out["+fused Adam"] = StepSettings(before.precision, fused_optimizer=True)
        if now.precision.dtype is not None:
            out[f"+{now.name} autocast"] = StepSettings(now.precision, reason=now.reason)
    out["now"] = now
    return out


def recipe_networks(config: TrainConfig, device: torch.device):
    """``(generator, discriminator or None, objective)`` of ``config``'s first stage, seeded;
    each arm trains its own copy of the networks (the same initial weights)."""
    seed_everything(config.seed)
    generator = build_generator(config).to(device)
    discriminator = build_discriminator(config) if config.stages[0].name == "gan" else None
    discriminator = None if discriminator is None else discriminator.to(device)
    return generator, discriminator, build_objective(config).to(device)


def recipe_step(config: TrainConfig, networks, settings: StepSettings, device: torch.device):
    """One optimisation step of ``config``'s first stage on copies of ``networks``, set up as
    fit() sets it up under ``settings``: a function of no arguments."""
    generator, discriminator, objective = networks
    generator = settings.layout(copy.deepcopy(generator))
    discriminator = settings.layout(copy.deepcopy(discriminator))
    g_opt, d_opt = build_optimizers(
        config, generator, discriminator, fused=settings.fused_optimizer
    )
    scaler = torch.amp.GradScaler(device.type) if settings.grad_scaler else None
    data = SyntheticPairs(config.batch_size, config.image_size)
    batch = (settings.layout(data.L.to(device)), settings.layout(data.ab.to(device)))
    common = {"scaler": scaler, "precision": settings.precision}
    if discriminator is None:
        return lambda: pretrain_step(generator, g_opt, objective, batch, **common)
    return lambda: gan_step(generator, discriminator, g_opt, d_opt, objective, batch, **common)


def compare_recipe(name: str, args, device: torch.device) -> list[dict]:
    """The recipe's step under each arm, alternating; one row per arm, with the medians of
    ``args.rounds`` steps."""
    config = recipe_config(name, get_profile(args.profile))
    settings = arms(config, device, args.ablation)
    networks = recipe_networks(config, device)
    steps, wall, cpu = {}, {k: [] for k in settings}, {k: [] for k in settings}
    for label, arm in settings.items():
        steps[label] = recipe_step(config, networks, arm, device)
        steps[label]()  # warm-up: kernels, caches, the optimiser's state
    encoder = getattr(networks[0], "encoder_name", None)
    order = list(settings)
    for round_ in range(args.rounds):
        for label in order if round_ % 2 == 0 else order[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            steps[label]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[label].append(time.perf_counter() - w0)
            cpu[label].append(time.process_time() - c0)
    base_wall, base_cpu = statistics.median(wall["before"]), statistics.median(cpu["before"])
    cap = config.stages[0].max_steps
    recipe = {
        "recipe": name,
        "model": config.model + (f" ({encoder})" if encoder else ""),
        "stage": config.stages[0].name,
        "size": config.image_size,
        "batch_size": config.batch_size,
        "stage_step_cap": cap,
    }
    rows = []
    for label, arm in settings.items():
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        stage_steps = STAGE_SECONDS / w
        rows.append(
            recipe
            | {
                "arm": label,
                "settings": arm.describe(),
                "wall_s": w,
                "cpu_s": c,
                "ips": config.batch_size / w,
                "ratio": base_wall / w,
                "cpu_ratio": base_cpu / c,
                "steps_per_stage": stage_steps if cap is None else min(stage_steps, cap),
                "steps_per_stage_uncapped": stage_steps,
                "wall_all_s": wall[label],
            }
        )
    return rows


def recipes_main(args, device: torch.device) -> None:
    hardware = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} CPU "
        f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads"
    )
    print(f"# train_bench --recipes on {hardware}, profile {args.profile}, {args.rounds} ", end="")
    print(f"alternating steps per arm, medians, torch {torch.__version__}")
    header = ("recipe", "arm", "img/s", "x before", "x cpu", "steps/10min", "settings")
    print("{:<15} {:<18} {:>7} {:>8} {:>6} {:>11}  {}".format(*header))
    rows, start = [], time.perf_counter()
    for name in args.recipes:
        rows += compare_recipe(name, args, device)
        for row in rows:
            if row["recipe"] == name:
                cells = (name, row["arm"], row["ips"], row["ratio"], row["cpu_ratio"])
                print("{:<15} {:<18} {:>7.2f} {:>8.2f} {:>6.2f}".format(*cells), end=" ")
                print(f"{row['steps_per_stage']:>11.0f}  {row['settings']}", flush=True)
    models = ", ".join(f"{r['recipe']}: {r['model']}" for r in rows if r["arm"] == "now")
    print(f"# models: {models}")
    print(f"# {time.perf_counter() - start:.0f} s")
    if args.json:
        meta = {"hardware": hardware, "profile": args.profile, "rounds": args.rounds}
        meta |= {"clock": "wall (and process CPU time)", "torch": torch.__version__}
        meta |= {"stage_seconds": STAGE_SECONDS}
        write_json(args.json, {"benchmark": "train_bench --recipes", **meta, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["unet-tiny", "unet", "resnet-unet", "ddcolor"]
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps per run (>= 2)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 CPU, 16 CUDA")
    parser.add_argument("--unet-base", type=int, default=64, help="U-Net base_channels (ngf)")
    parser.add_argument("--ddcolor-preset", default=None, help="default: cpu on CPU, tiny on CUDA")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default=None,
        help="step timer: process CPU time (default on CPU: steady on a shared machine) or wall",
    )
    parser.add_argument("--recipes", nargs="+", help="compare recipe steps before/now instead")
    parser.add_argument("--profile", default="cpu", help="--recipes: the recipes' profile")
    parser.add_argument("--rounds", type=int, default=10, help="--recipes: steps per arm")
    parser.add_argument("--ablation", action="store_true", help="--recipes: one change per arm")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.recipes:
        recipes_main(args, device)
        return
    cuda = device.type == "cuda"
    args.batch_size = args.batch_size or (16 if cuda else 4)
    args.ddcolor_preset = args.ddcolor_preset or ("tiny" if cuda else "cpu")
    args.clock = args.clock or ("wall" if cuda else "cpu")
    if args.steps < 2:
        parser.error("--steps must be >= 2 (throughput is timed from the end of step 1)")
    if cuda:
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"CPU, {torch.get_num_threads()} threads"
    print(f"# train_bench on {hardware}, batch {args.batch_size}, {args.steps} steps x ", end="")
    print(f"{args.repeats} repeats, {args.clock} clock, torch {torch.__version__}")
    header = ("model", "size", "precision", "bare img/s", "fit img/s", "fit cost", "fit ms/step")
    print("{:<12} {:>4} {:<22} {:>10} {:>10} {:>9} {:>11}".format(*header))
    rows = []
    for name in args.models:
        for size in args.sizes:
            for amp in (False, True) if cuda else (False,):
                label = "fp16 AMP+channels-last" if amp else "fp32"
                bare, ours = measure(name, size, args, device, amp)
                row = (name, size, label, args.batch_size / bare, args.batch_size / ours)
                extra = (100.0 * (ours / bare - 1.0), 1000.0 * (ours - bare))
                print("{:<12} {:>4} {:<22} {:>10.2f} {:>10.2f}".format(*row), end=" ")
                print("{:>8.1f}% {:>11.2f}".format(*extra), flush=True)
                rows.append(
                    dict(
                        zip(("model", "size", "precision", "bare_ips", "fit_ips"), row, strict=True)
                    )
                    | {"fit_cost_pct": extra[0], "fit_ms_per_step": extra[1]}
                )
    if args.json:
        meta = {"hardware": hardware, "batch_size": args.batch_size, "steps": args.steps}
        meta |= {"repeats": args.repeats, "clock": args.clock, "torch": torch.__version__}
        write_json(args.json, {"benchmark": "train_bench", **meta, "rows": rows})


def write_json(path: str, payload: dict) -> None:
    """The benchmark's rows, for ``benchmarks/results/`` and the Performance chapter."""
    with open(path, "w") as file:
        json.dump(payload, file, indent=1)


if __name__ == "__main__":
    main()
