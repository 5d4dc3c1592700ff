"""Two folders of photos compared file by file: the ``colorlib evaluate`` command's metrics.

Predictions and originals are matched by file name (the extension may differ), read with the
one photo decoder (:func:`colorlib.data.images.load_rgb`), optionally resized as DDColor's
evaluation does (256, bicubic), and scored with the same
:class:`~colorlib.evaluation.metrics.MetricAccumulator` as validation, plus FID and KID with its
standard error (:mod:`colorlib.evaluation.fid`: prediction ``i`` and original ``i`` are one
photo pair) when the FID Inception's weights can be had.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from colorlib.data.images import IMAGE_EXTENSIONS, load_rgb
from colorlib.evaluation.fid import fid_kid_from_features, load_inception
from colorlib.evaluation.metrics import SSIM_WINDOW, MetricAccumulator
from colorlib.runtime import get_device, say

__all__ = ["evaluate_folders"]


def _image_files(folder: str | os.PathLike, role: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{role} folder {str(folder)!r} does not exist or is not a folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in files:
                raise ValueError(
                    f"{role} folder {str(folder)!r} holds two images named {path.stem!r}: "
                    f"{files[path.stem].name} and {path.name}"
                )
            files[path.stem] = path
    if not files:
        raise ValueError(
            f"{role} folder {str(folder)!r} holds no images "
            f"(looked for {'/'.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return files


def _matched_pairs(pred_dir, gt_dir) -> list[tuple[Path, Path]]:
    preds, gts = _image_files(pred_dir, "prediction"), _image_files(gt_dir, "ground-truth")
    only_pred, only_gt = sorted(preds.keys() - gts.keys()), sorted(gts.keys() - preds.keys())
    if only_pred or only_gt:
        raise ValueError(
            "the folders must hold the same file names (extensions may differ): "
            f"{len(only_pred)} predictions have no ground truth (e.g. {only_pred[:5]}), "
            f"{len(only_gt)} ground truths have no prediction (e.g. {only_gt[:5]})"
        )
    return [(preds[name], gts[name]) for name in sorted(preds)]


def _read_rgb(path: Path, size: int | None) -> Tensor:
    image = load_rgb(path)
    if size is not None:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    size: int | None = None,
    *,
    with_fid: bool = True,
    device: torch.device | str | None = None,
    variant: str = "ddcolor",
    extractor: torch.nn.Module | None = None,
) -> dict[str, float | int | None]:
    """All metrics over two folders of images matched by file name (extension ignored).

    Args:
        pred_dir: colorized images.
        gt_dir: the original colour photos, one per prediction.
        size: resize both images to ``size x size`` (bicubic) first, as DDColor's evaluation
            does at 256; ``None``: use them as they are (the sizes of each pair must agree).
        with_fid: also compute FID and KID (``None`` when no Inception weights or fewer than 2
            images; ``kid_se`` also ``None`` below 3).
        device: where to compute (default :func:`colorlib.runtime.get_device`).
        variant: colourfulness variant, see :func:`colorlib.evaluation.metrics.colorfulness`.
        extractor: a loaded FID Inception (:func:`colorlib.evaluation.fid.load_inception`) to
            reuse across calls; by default one is loaded when ``with_fid``.

    Returns:
        ``psnr``, ``ssim``, ``colorfulness`` (predictions), ``colorfulness_real``,
        ``delta_colorfulness``, ``fid``, ``kid``, ``kid_se`` (floats or ``None``) and ``count``.

    Raises:
        FileNotFoundError: a folder is missing. ValueError: no images, names that do not match,
        or a pair of different sizes without ``size``.
    """
    if size is not None and size < SSIM_WINDOW:
        raise ValueError(f"size must be at least {SSIM_WINDOW} (SSIM window), got {size}")
    pairs = _matched_pairs(pred_dir, gt_dir)
    device = get_device(None if device is None else str(device))
    if not with_fid:
        extractor = None
    elif len(pairs) < 2:
        say(f"FID is not computed (nor KID): it needs at least 2 images, got {len(pairs)}")
        extractor = None
    elif extractor is None:
        extractor = load_inception(device)
    accumulator, features = MetricAccumulator(variant), ([], [])
    for pred_path, gt_path in pairs:
        pred, real = _read_rgb(pred_path, size).to(device), _read_rgb(gt_path, size).to(device)
        if pred.shape != real.shape:
            raise ValueError(
                f"{pred_path.name} is {tuple(pred.shape[-2:])} but {gt_path.name} is "
                f"{tuple(real.shape[-2:])} (height, width); pass size= to resize both"
            )
        accumulator.update(pred, real)
        if extractor is not None:
            with torch.inference_mode():
                features[0].append(extractor(pred).cpu())
                features[1].append(extractor(real).cpu())
    results: dict[str, float | int | None] = dict(accumulator.compute())
    results |= {"fid": None, "kid": None, "kid_se": None}
    if extractor is not None:
        results |= fid_kid_from_features(*(torch.cat(f).double().numpy() for f in features))
    return results
