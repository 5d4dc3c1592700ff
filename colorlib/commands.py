"""What each ``colorlib`` command does: ``colorize``, ``train``, ``evaluate``, ``info``.

Each command is a small ``run_<name>(args) -> int`` that calls the library; nothing here
computes anything itself. The parser, and the one-line reporting of expected errors, are in
:mod:`colorlib.cli`. Heavy imports (torch, torchvision) happen inside the commands, so that
``colorlib --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from colorlib.tables import format_table, json_value

__all__ = [
    "TRAINABLE",
    "collect_images",
    "train_configs",
    "error_line",
    "run_colorize",
    "run_train",
    "run_evaluate",
    "run_info",
]

#: generators ``colorlib train --model`` trains, and the recipe each one names
TRAINABLE = {
    "unet": "pix2pix",
    "resnet-unet": "pretrained-gan",
    "ddcolor": "ddcolor",
    "hints": "hints",
}


# ----------------------------------------------------------------------------- inputs and outputs


def collect_images(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(photo, name relative to its input)``.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: a folder without photos.
    """
    from colorlib.data.datasets import find_images  # torchvision: not for --help
    from colorlib.data.images import IMAGE_EXTENSIONS

    items: list[tuple[Path, Path]] = []
    for entry in map(Path, inputs):
        if entry.is_file():
            items.append((entry, Path(entry.name)))
        elif entry.is_dir():
            found = find_images(entry)
            if not found:
                endings = " ".join(sorted(IMAGE_EXTENSIONS))
                raise ValueError(f"no photos ({endings}) in folder {entry}")
            items.extend((p, p.relative_to(entry)) for p in found)
        else:
            raise FileNotFoundError(f"no such file or folder: {entry}")
    return items


def _device(name: str | None):
    import torch

    from colorlib.runtime import get_device

    device = get_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but CUDA is not available here")
    return device


def _progress(iterable, total: int, unit: str):
    from tqdm import tqdm

    # disable=None: a bar on a terminal only, never in logs or captured output
    return tqdm(iterable, total=total, unit=unit, disable=None if total > 1 else True)


# ----------------------------------------------------------------------------- commands


def run_colorize(args: argparse.Namespace) -> int:
    """``colorize``: every readable photo colorized; exit 0 (all), 1 (some skipped)."""
    from functools import partial

    from colorlib.batch import colorize_files, plan_outputs
    from colorlib.inference import colorize_iter, load_colorizer

    items = collect_images(args.inputs)
    hints = _hints(args.hints, items) if getattr(args, "hints", None) is not None else None
    targets = plan_outputs(items, Path(args.output), args.format, args.overwrite)
    model, size = load_colorizer(args.checkpoint, _device(args.device))
    colorize = partial(
        colorize_iter,
        model,
        size=args.size or size,
        batch_size=args.batch_size,
        keep_aspect=args.keep_aspect,
    )
    if hints is not None:
        colorize = _hinted(model, hints, args.checkpoint, args.size or size, args.keep_aspect)
    report = colorize_files(
        colorize,
        [source for source, _ in items],
        targets,
        quality=args.quality,
        fail_fast=args.fail_fast,
        progress=lambda results, total: _progress(results, total, "photo"),
    )
    if not report.written:
        reasons = "; ".join(f"{path}: {reason}" for path, reason in report.skipped[:3])
        raise ValueError(f"no photo could be colorized ({reasons})")
    for path, reason in report.skipped:
        print(f"colorlib: skipped {path}: {reason}", file=sys.stderr)
    where = targets[0] if len(targets) == 1 else args.output
    print(f"{report.summary()} -> {where}")
    return report.exit_code


def _hints(path: str, items: list) -> list:
    """``--hints``: the hints of the one input photo (checked before any work)."""
    from colorlib.inference_hints import load_hints

    if len(items) != 1:
        raise ValueError(f"--hints needs exactly one input photo, got {len(items)}")
    return load_hints(path)


def _hinted(model, hints: list, checkpoint: str, size: int, keep_aspect: bool):
    """Photos in, photos coloured after ``hints`` out; refuses a model that takes no hints."""
    from colorlib.inference_hints import colorize_with_hints, model_hint_channels

    if model_hint_channels(model) == 0:
        raise ValueError(
            f"--hints needs a model trained with colour hints (input L + 3 hint channels); "
            f"the model in {checkpoint} takes L alone"
        )
    return lambda photos: (
        colorize_with_hints(model, photo, hints, size, keep_aspect) for photo in photos
    )


def train_configs(model: str, profile, seed: int = 0) -> list:
    """The runs ``colorlib train --model MODEL`` makes, in order: the book's recipes.

    ``MODEL`` names the recipe of :data:`TRAINABLE` (``unet``: "pix2pix", chapter 5;
    ``resnet-unet``: "pretrained-gan", the pretraining trick of chapter 6, preceded by its
    prerequisite "pretrained-l1"; ``ddcolor``: "ddcolor", chapter 8; ``hints``: "hints", the
    U-Net taking colour hints, chapter 10), all from the one registry
    :mod:`colorlib.training.recipes`.

    Raises:
        ValueError: a model with no recipe.
    """
    from colorlib.training import recipes

    if model not in TRAINABLE:
        raise ValueError(f"no training recipe for model {model!r}; choose one of {list(TRAINABLE)}")
    chain = recipes.recipe_chain(TRAINABLE[model])
    return [recipes.recipe_config(name, profile, seed) for name in chain]


def _stage_paths(out: Path, count: int) -> list[Path]:
    """Checkpoints of a chain of runs: the last one is ``out``, earlier ones ``<out>-N.pt``."""
    return [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(count - 1)] + [out]


def run_train(args: argparse.Namespace) -> int:
    from colorlib.data.datasets import load_datasets
    from colorlib.runtime import checkpoint_dir, get_profile, seed_everything
    from colorlib.training.loop import NonFiniteLossError, fit

    profile = get_profile(args.profile)
    if args.steps is not None or args.minutes is not None:  # the given budget, and only it
        profile = profile.with_overrides(stage_steps=args.steps, stage_minutes=args.minutes)
    from colorlib.training.recipes import recipe_chain, recipe_datasets

    configs = train_configs(args.model, profile, args.seed)
    names = recipe_chain(TRAINABLE[args.model])
    if getattr(args, "checkpoint_minutes", None) is not None:
        configs = [c.replace(checkpoint_minutes=args.checkpoint_minutes) for c in configs]
    out = Path(args.out) if args.out else checkpoint_dir() / f"{args.model}-{profile.name}.pt"
    device = _device(args.device)
    seed_everything(args.seed)
    train_set, val_set = load_datasets(profile, data=args.data, seed=args.seed)
    init_from = None
    for name, config, path in zip(names, configs, _stage_paths(out, len(configs)), strict=True):
        sets = recipe_datasets(name, train_set, val_set, args.seed)  # hints: simulated clicks
        if len(configs) > 1:
            print(f"run {config.stages[0].name}: {config.model}, checkpoint {path}")
        try:
            result = fit(
                config,
                *sets,
                device=device,
                checkpoint_path=path,
                resume=not args.fresh,
                init_from=init_from,
            )
        except NonFiniteLossError as error:  # not a bug and not a usage error: it diverged
            print(f"colorlib: error: training diverged: {error_line(error)}", file=sys.stderr)
            return 1
        init_from = path
    steps = result.history[-1]["step"] if result.history else 0
    print(f"trained {args.model} for {steps} steps; checkpoint {out}")
    if result.validations:
        metrics = result.validations[-1]["metrics"]
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    print(f"next: colorlib colorize PHOTO -o OUT --checkpoint {out}")
    return 0


def _colour_photos(
    photos: list[Path], limit: int, fail_fast: bool = False
) -> tuple[list[Path], int, dict[Path, str]]:
    """The first ``limit`` colour photos, how many gray ones were passed over, and the
    unreadable ones with their reasons; photos are scanned in slices, not all at once.

    Raises:
        UnreadableImage: the first unreadable photo, with ``fail_fast``.
    """
    from colorlib.data.grayscan import scan_photos
    from colorlib.data.images import UnreadableImage

    chosen: list[Path] = []
    gray, unreadable = 0, {}
    start = 0
    while len(chosen) < limit and start < len(photos):
        stop = start + max(2 * (limit - len(chosen)), 16)
        result = scan_photos(photos[start:stop])
        if fail_fast and result.unreadable:
            path, reason = next(iter(result.unreadable.items()))
            raise UnreadableImage(path, reason)
        chosen.extend(result.color[: limit - len(chosen)])
        gray += len(result.gray)
        unreadable.update(result.unreadable)
        start = stop
    return chosen, gray, unreadable


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: model and gray baseline scored; exit 0, or 1 when photos were unreadable."""
    from colorlib.data.images import gray_baseline, load_rgb
    from colorlib.evaluation.fid import load_inception
    from colorlib.evaluation.folders import evaluate_folders
    from colorlib.inference import colorize_iter, load_colorizer
    from colorlib.runtime import get_profile

    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data must be a folder of photos, got {data}")
    limit = args.limit or get_profile(args.profile).eval_images
    found = [p for p, _ in collect_images([data])]
    photos, gray, unreadable = _colour_photos(found, limit, args.fail_fast)
    skipped = gray + len(unreadable)
    if not photos:
        raise ValueError(
            f"no colour photos to evaluate in {data} ({gray} gray, {len(unreadable)} unreadable)"
        )
    device = _device(args.device)
    model, size = load_colorizer(args.checkpoint, device)
    size = args.size or size
    # FID and KID: one Inception for both rows; none (one printed line) -> reported as None
    inception = load_inception(device) if args.fid and len(photos) >= 2 else None
    with_fid = args.fid and (inception is not None or len(photos) < 2)
    with tempfile.TemporaryDirectory(prefix="colorlib-eval-") as tmp:
        folders = {name: Path(tmp, name) for name in ("truth", "gray", "model")}
        for folder in folders.values():
            folder.mkdir()

        def gray_inputs():  # saves the truth and the gray baseline on the way
            for index, photo in enumerate(photos):
                original = load_rgb(photo)
                gray_photo = gray_baseline(original)
                original.save(folders["truth"] / f"{index:06d}.png")
                gray_photo.save(folders["gray"] / f"{index:06d}.png")
                yield gray_photo

        coloured = colorize_iter(model, gray_inputs(), size=size, batch_size=args.batch_size)
        for index, image in enumerate(_progress(coloured, len(photos), "photo")):
            image.save(folders["model"] / f"{index:06d}.png")
        rows = {
            name: evaluate_folders(
                folders[key],
                folders["truth"],
                args.metric_size,
                with_fid=with_fid,
                device=device,
                extractor=inception,
            )
            for name, key in (("model", "model"), ("gray baseline", "gray"))
        }
    report = {
        "checkpoint": str(args.checkpoint),
        "data": str(data),
        "num_images": len(photos),
        "num_skipped": skipped,
        "unreadable": {str(path): reason for path, reason in unreadable.items()},
        "size": size,
        "metric_size": args.metric_size,
        "fid_weights": None if inception is None else inception.source,
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=json_value))
    else:
        print(
            f"{len(photos)} photos from {data} ({gray} gray and {len(unreadable)} unreadable "
            "skipped), "
            f"model input {size}px, checkpoint {args.checkpoint}"
        )
        print(format_table({name: _without(row, "count") for name, row in rows.items()}))
    for path, reason in unreadable.items():
        print(f"colorlib: skipped {path}: {reason}", file=sys.stderr)
    return 1 if unreadable else 0


def _without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


def run_info(args: argparse.Namespace) -> int:
    import numpy
    import PIL
    import torch
    import torchvision

    import colorlib
    from colorlib.models import MODELS
    from colorlib.runtime import cache_dir, checkpoint_dir, describe, get_profile

    device = _device(args.device)
    print(describe(get_profile(args.profile), device))
    versions = {
        "colorlib": colorlib.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "cuda": torch.version.cuda or "none",
    }
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    print(f"cache dir: {cache_dir()}")
    print(f"checkpoint dir: {checkpoint_dir()}")
    print(f"photos (COLORLIB_DATA): {os.environ.get('COLORLIB_DATA') or 'not set'}")
    print(f"models: {', '.join(sorted(MODELS))}")
    return 0


def error_line(error: BaseException) -> str:
    """An error as one line: ``strerror: filename`` for OS errors, the message otherwise."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.strerror}: {error.filename}"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())
