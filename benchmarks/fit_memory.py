"""Peak GPU memory and speed of the book's real training runs: ``fit()`` with each recipe's
full objective (DDColor: pixel + perceptual VGG16-BN + adversarial PatchGAN + colourfulness),
at the ``gpu`` profile's 256 px and batch 16, with and without gradient checkpointing and fp16
AMP. Synthetic in-memory photos (no decoding), random-init encoders (no downloads), no
validation or checkpoint writes: what is measured is the training step itself.

Peak memory is ``torch.cuda.max_memory_allocated`` over the whole run (weights, optimiser
state, activations, workspace), which is what decides whether a run fits a 16 GB Colab T4 or
Kaggle P100. Each variant runs in a fresh process so that peaks do not mix.

Example (CUDA only)::

    python benchmarks/fit_memory.py --steps 6 --json benchmarks/results/fit_memory_cuda.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

VARIANTS = [  # (recipe, gradient checkpointing, amp)
    ("pix2pix", False, False),
    ("pix2pix", False, True),
    ("pretrained-gan", False, True),
    ("ddcolor", False, False),
    ("ddcolor", True, False),
    ("ddcolor", False, True),
    ("ddcolor", True, True),
]


def config_for(recipe: str, checkpointing: bool, amp: bool, steps: int):
    from colorlib.runtime import get_profile
    from colorlib.training import recipes, recipes_ddcolor
    from colorlib.training.config import Stage

    profile = get_profile("gpu")
    if recipe == "ddcolor":
        config = recipes_ddcolor.ddcolor_recipe(profile, grad_checkpointing=checkpointing)
    else:
        config = recipes.recipe_config(recipe, profile)
    kwargs = dict(config.model_kwargs)
    if "pretrained" in kwargs or recipe != "pix2pix":
        kwargs["pretrained"] = False
    return config.replace(
        model_kwargs=kwargs,
        perceptual_pretrained=False,
        stages=(Stage(config.stages[0].name, max_steps=steps),),
        val_every=0,
        checkpoint_every=0,
        num_sample_images=0,
        num_val_images=1,
        num_workers=0,
        amp=amp,
        channels_last=amp,
    )


def run_variant(recipe: str, checkpointing: bool, amp: bool, steps: int) -> dict:
    from train_bench import SyntheticPairs

    from colorlib.training.loop import fit

    config = config_for(recipe, checkpointing, amp, steps)
    data = SyntheticPairs(config.batch_size * 4, config.image_size)
    val = SyntheticPairs(1, config.image_size, seed=1)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fit(config, data, val, "cuda", progress=False)
    torch.cuda.synchronize()
    times = [row["time"] for row in result.history]
    per_step = (times[-1] - times[0]) / max(1, len(times) - 1)
    return {
        "recipe": recipe,
        "checkpointing": checkpointing,
        "amp": amp,
        "batch_size": config.batch_size,
        "image_size": config.image_size,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "s_per_step": per_step,
        "wall_s": time.perf_counter() - start,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", default=None)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("fit_memory.py measures CUDA memory: it needs a GPU")
    if args.variant:
        recipe, checkpointing, amp = args.variant.split(",")
        row = run_variant(recipe, checkpointing == "1", amp == "1", args.steps)
        print(json.dumps(row))
        return
    rows = []
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'recipe':15} {'ckpt':>5} {'amp':>5} {'peak GiB':>9} {'s/step':>7} {'img/s':>7}")
    for recipe, checkpointing, amp in VARIANTS:
        command = [sys.executable, __file__, "--steps", str(args.steps)]
        command += ["--variant", f"{recipe},{int(checkpointing)},{int(amp)}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"{recipe:15} {checkpointing!s:>5} {amp!s:>5} failed: {done.stderr[-300:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        ips = row["batch_size"] / row["s_per_step"]
        print(
            f"{recipe:15} {checkpointing!s:>5} {amp!s:>5} {row['peak_gib']:>9.2f} "
            f"{row['s_per_step']:>7.3f} {ips:>7.1f}",
            flush=True,
        )
    if args.json:
        payload = {"benchmark": "fit_memory", "hardware": torch.cuda.get_device_name()}
        payload |= {"torch": torch.__version__, "steps": args.steps, "rows": rows}
        with open(args.json, "w") as file:
            json.dump(payload, file, indent=1)


if __name__ == "__main__":
    main()
