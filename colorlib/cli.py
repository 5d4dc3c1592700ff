"""The ``colorlib`` command line: colorize photos, train a model, evaluate it, show the setup.

    colorlib colorize old.jpg scans/ -o coloured/ --checkpoint model.pt
    colorlib train --model resnet-unet --profile cpu --out model.pt
    colorlib evaluate --checkpoint model.pt --data photos/ --json
    colorlib info

(``python -m colorlib ...`` is the same.) Design: each subcommand is a small ``_run_<name>(args)
-> int`` that calls the library; nothing here computes anything itself. Expected failures (a
missing file, an unreadable photo, a corrupt checkpoint or one for another model, a bad
argument value) are caught in :func:`main` and reported as ONE line, ``colorlib: error: ...``,
with exit code 2 (argparse's code for usage errors). Anything else is a bug and keeps its
traceback.
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

__all__ = [
    "main",
    "build_parser",
    "collect_images",
    "plan_outputs",
    "train_configs",
    "format_table",
]

#: Generators ``colorlib train`` has a recipe for (see :func:`train_configs`).
TRAINABLE = ("unet", "resnet-unet", "ddcolor")
#: the recipes ``train --model resnet-unet`` runs one after the other
PRETRAINING_TRICK = ("pretrained-l1", "pretrained-gan")

EXIT_ERROR = 2


# ----------------------------------------------------------------------------- inputs and outputs


def collect_images(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(photo, name relative to its input)``.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: a folder without photos.
    """
    from colorlib.data import IMAGE_EXTENSIONS, find_images  # torchvision: not for --help

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


def plan_outputs(items: Sequence[tuple[Path, Path]], out: Path) -> list[Path]:
    """Where each colorized photo goes: ``out/<relative name>.png``, or ``out`` itself for a
    single input when ``out`` ends in an image suffix.

    Raises:
        ValueError: several inputs and a file name as ``out``, two inputs that would be written
            to the same file, or an output that would overwrite its own input.
    """
    from colorlib.data import IMAGE_EXTENSIONS

    if out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        if len(items) != 1:
            raise ValueError(f"-o {out} names a file, but there are {len(items)} input photos")
        targets = [out]
    else:
        targets = [out / relative.with_suffix(".png") for _, relative in items]
    seen: dict[Path, Path] = {}
    for (source, _), target in zip(items, targets, strict=True):
        key = target.resolve()
        if key == source.resolve():
            raise ValueError(f"the output {target} would overwrite its input; choose another -o")
        if key in seen:
            raise ValueError(f"{seen[key]} and {source} would both be written to {target}")
        seen[key] = source
    return targets


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


# ----------------------------------------------------------------------------- subcommands


def _run_colorize(args: argparse.Namespace) -> int:
    from colorlib.infer import colorize_iter, load_colorizer

    items = collect_images(args.inputs)
    targets = plan_outputs(items, Path(args.output))
    model, size = load_colorizer(args.checkpoint, _device(args.device))
    photos = colorize_iter(
        model,
        (source for source, _ in items),
        size=args.size or size,
        batch_size=args.batch_size,
        keep_aspect=args.keep_aspect,
    )
    for target, image in _progress(zip(targets, photos, strict=True), len(targets), "photo"):
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)
    where = targets[0] if len(targets) == 1 else args.output
    print(f"colorized {len(targets)} photo(s) -> {where}")
    return 0


def train_configs(model: str, profile, seed: int = 0) -> list:
    """The runs ``colorlib train --model MODEL`` makes, in order: the book's recipes.

    * ``unet``: :func:`colorlib.recipes.pix2pix_baseline` (chapter 5);
    * ``resnet-unet``: the pretraining trick of chapter 6: ``pretrained-l1`` (L1 alone), then
      ``pretrained-gan`` started from its weights;
    * ``ddcolor``: :func:`colorlib.recipes_ddcolor.ddcolor_recipe` (chapter 7).

    Raises:
        ValueError: a model with no recipe.
    """
    from colorlib import recipes, recipes_ddcolor

    if model == "unet":
        return [recipes.recipe_config("pix2pix", profile, seed)]
    if model == "resnet-unet":
        return [recipes.recipe_config(name, profile, seed) for name in PRETRAINING_TRICK]
    if model == "ddcolor":
        return [recipes_ddcolor.ddcolor_recipe(profile, seed=seed)]
    raise ValueError(f"no training recipe for model {model!r}; choose one of {list(TRAINABLE)}")


def _stage_paths(out: Path, count: int) -> list[Path]:
    """Checkpoints of a chain of runs: the last one is ``out``, earlier ones ``<out>-N.pt``."""
    return [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(count - 1)] + [out]


def _run_train(args: argparse.Namespace) -> int:
    from colorlib.data import load_datasets
    from colorlib.runtime import checkpoint_dir, get_profile, seed_everything
    from colorlib.train import NonFiniteLossError, fit

    profile = get_profile(args.profile)
    if args.steps is not None or args.minutes is not None:  # the given budget, and only it
        profile = profile.with_overrides(stage_steps=args.steps, stage_minutes=args.minutes)
    configs = train_configs(args.model, profile, args.seed)
    out = Path(args.out) if args.out else checkpoint_dir() / f"{args.model}-{profile.name}.pt"
    device = _device(args.device)
    seed_everything(args.seed)
    train_set, val_set = load_datasets(profile, data=args.data, seed=args.seed)
    init_from = None
    for config, path in zip(configs, _stage_paths(out, len(configs)), strict=True):
        if len(configs) > 1:
            print(f"run {config.stages[0].name}: {config.model}, checkpoint {path}")
        try:
            result = fit(
                config,
                train_set,
                val_set,
                device=device,
                checkpoint_path=path,
                resume=not args.fresh,
                init_from=init_from,
            )
        except NonFiniteLossError as error:  # not a bug and not a usage error: it diverged
            print(f"colorlib: error: training diverged: {_one_line(error)}", file=sys.stderr)
            return 1
        init_from = path
    steps = result.history[-1]["step"] if result.history else 0
    print(f"trained {args.model} for {steps} steps; checkpoint {out}")
    if result.validations:
        metrics = result.validations[-1]["metrics"]
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    print(f"next: colorlib colorize PHOTO -o OUT --checkpoint {out}")
    return 0


def _colour_photos(photos: list[Path], limit: int) -> tuple[list[Path], int]:
    """The first ``limit`` colour photos (gray and unreadable ones skipped) and how many were
    skipped on the way; photos are scanned in slices, not all at once."""
    from colorlib.images import scan_photos

    chosen: list[Path] = []
    skipped = 0
    start = 0
    while len(chosen) < limit and start < len(photos):
        stop = start + max(2 * (limit - len(chosen)), 16)
        result = scan_photos(photos[start:stop])
        kept = result.color[: limit - len(chosen)]
        chosen.extend(kept)
        skipped += len(result.gray) + len(result.unreadable)
        start = stop
    return chosen, skipped


def _run_evaluate(args: argparse.Namespace) -> int:
    from colorlib.images import load_rgb
    from colorlib.infer import colorize_iter, gray_baseline, load_colorizer
    from colorlib.metrics import evaluate_folders
    from colorlib.runtime import get_profile

    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data must be a folder of photos, got {data}")
    limit = args.limit or get_profile(args.profile).eval_images
    photos, skipped = _colour_photos([p for p, _ in collect_images([data])], limit)
    if not photos:
        raise ValueError(f"no colour photos to evaluate in {data} ({skipped} gray/unreadable)")
    device = _device(args.device)
    model, size = load_colorizer(args.checkpoint, device)
    size = args.size or size
    with tempfile.TemporaryDirectory(prefix="colorlib-eval-") as tmp:
        folders = {name: Path(tmp, name) for name in ("truth", "gray", "model")}
        for folder in folders.values():
            folder.mkdir()

        def gray_inputs():  # saves the truth and the gray baseline on the way
            for index, photo in enumerate(photos):
                original = load_rgb(photo)
                gray = gray_baseline(original)
                original.save(folders["truth"] / f"{index:06d}.png")
                gray.save(folders["gray"] / f"{index:06d}.png")
                yield gray

        coloured = colorize_iter(model, gray_inputs(), size=size, batch_size=args.batch_size)
        for index, image in enumerate(_progress(coloured, len(photos), "photo")):
            image.save(folders["model"] / f"{index:06d}.png")
        rows = {
            name: evaluate_folders(folders[key], folders["truth"], args.metric_size, device=device)
            for name, key in (("model", "model"), ("gray baseline", "gray"))
        }
    report = {
        "checkpoint": str(args.checkpoint),
        "data": str(data),
        "num_images": len(photos),
        "num_skipped": skipped,
        "size": size,
        "metric_size": args.metric_size,
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(
            f"{len(photos)} photos from {data} ({skipped} gray/unreadable skipped), "
            f"model input {size}px, checkpoint {args.checkpoint}"
        )
        print(format_table({name: _without(row, "count") for name, row in rows.items()}))
    return 0


def _without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


def _json_default(value):
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def format_table(rows: dict[str, dict]) -> str:
    """Rows of metrics as an aligned text table; ``None`` (not computed) shows as ``-``."""
    columns: list[str] = []
    for metrics in rows.values():
        for key, value in metrics.items():
            if key not in columns and (value is None or _is_number(value)):
                columns.append(key)
    width = max(len(name) for name in rows)
    widths = {column: max(10, len(column)) for column in columns}
    lines = [" ".join([" " * width] + [f"{c:>{w}}" for c, w in widths.items()])]
    for name, metrics in rows.items():
        cells = [
            f"{float(metrics[c]):>{w}.4g}" if _is_number(metrics.get(c)) else f"{'-':>{w}}"
            for c, w in widths.items()
        ]
        lines.append(" ".join([f"{name:<{width}}", *cells]))
    return "\n".join(lines)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bool))


def _run_info(args: argparse.Namespace) -> int:
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


# ----------------------------------------------------------------------------- parser and main


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _profile_names() -> list[str]:
    from colorlib.runtime import PROFILES

    return sorted(PROFILES)


def _add_colorize(commands) -> None:
    parser = commands.add_parser(
        "colorize",
        help="colorize photos (files or folders) at full resolution",
        description="Colorize photos at their full resolution; writes OUT/<name>.png.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", help="photo files or folders")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="folder (or file, for one photo)"
    )
    parser.add_argument("--checkpoint", required=True, help="colorlib or released DDColor file")
    parser.add_argument("--size", type=_positive_int, help="model input size (default: trained)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--batch-size", type=_positive_int, default=8)
    parser.add_argument(
        "--keep-aspect",
        action="store_true",
        help="keep the aspect ratio (models that take any multiple of 32, e.g. DDColor)",
    )
    parser.set_defaults(run=_run_colorize)


def _add_train(commands) -> None:
    parser = commands.add_parser("train", help="train a colorizer on a folder of photos")
    parser.add_argument("--model", required=True, choices=TRAINABLE)
    parser.add_argument("--data", help="folder of colour photos (default: COLORLIB_DATA, ...)")
    parser.add_argument("--profile", choices=_profile_names(), help="default: by hardware")
    parser.add_argument("--steps", type=_positive_int, help="step cap per training stage")
    parser.add_argument("--minutes", type=float, help="time budget per training stage")
    parser.add_argument("--out", help="checkpoint to write (default: in the checkpoint dir)")
    parser.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming --out's run"
    )
    parser.add_argument("--device")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_train)


def _add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="colorize gray copies of photos and score them against the originals",
        description="Scores the model and the gray baseline (ab = 0): PSNR, SSIM, "
        "colourfulness, delta-colourfulness (and FID when an Inception net is available).",
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="folder of colour photos")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--size", type=_positive_int, help="model input size (default: trained)")
    parser.add_argument(
        "--metric-size",
        type=_positive_int,
        help="resize to this square before scoring (DDColor's tables: 256; default: full size)",
    )
    parser.add_argument("--limit", type=_positive_int, help="photos (default: profile's)")
    parser.add_argument("--profile", choices=_profile_names())
    parser.add_argument("--device")
    parser.add_argument("--batch-size", type=_positive_int, default=8)
    parser.set_defaults(run=_run_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The ``colorlib`` argument parser with its four subcommands."""
    from colorlib import __version__

    parser = argparse.ArgumentParser(
        prog="colorlib", description="Automatic image colorization, from Lab to DDColor."
    )
    parser.add_argument("--version", action="version", version=f"colorlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_colorize(commands)
    _add_train(commands)
    _add_evaluate(commands)
    info = commands.add_parser("info", help="profile, device, versions and cache folders")
    info.add_argument("--profile", choices=_profile_names())
    info.add_argument("--device")
    info.set_defaults(run=_run_info)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The failures a user can cause; everything else is a bug and keeps its traceback."""
    from colorlib.checkpoint import CheckpointError
    from colorlib.images import UnreadableImage

    return (OSError, UnreadableImage, CheckpointError, ValueError)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.strerror}: {error.filename}"
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 usage or input error).

    Example:
        >>> main(["colorize", "old.jpg", "-o", "out/", "--checkpoint", "unet.pt"])  # doctest: +SKIP
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    try:
        return args.run(args)
    except _expected_errors() as error:
        print(f"colorlib: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("colorlib: interrupted", file=sys.stderr)
        return 130
