"""A generator on held-back pairs: the metrics ``fit`` logs while it trains, and comparisons.

* :func:`validation_pairs` takes the first ``num_images`` validation pairs once, into memory
  (deterministic centre crops; the caller's random streams are left untouched);
* :func:`validate` runs the generator in eval mode (its training flag restored after) under
  the run's precision and returns the mean metrics (one
  :class:`~colorlib.evaluation.metrics.MetricAccumulator`) and the first predictions, kept as
  sample colourisations in the checkpoint;
* :func:`predict_ab` and :func:`evaluate_predictions` are the chapters' comparisons: any number
  of generators' predictions scored with the same metrics, next to the gray baseline
  (``ab = 0``) and the real photos' colourfulness.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from colorlib.color import L_ab_to_rgb, gray_ab_like
from colorlib.evaluation.metrics import MetricAccumulator

__all__ = [
    "fork_rng",
    "validation_pairs",
    "validate",
    "predict_ab",
    "evaluate_predictions",
    "VALIDATION_METRICS",
]

#: what :func:`validate` reports (means over the validation photos)
VALIDATION_METRICS = ("psnr", "ssim", "colorfulness", "colorfulness_real", "delta_colorfulness")


def fork_rng(device: torch.device):
    """A context in which side work (validation) draws random numbers without moving the
    training random streams of ``device`` (and of the CPU)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type)


def validation_pairs(val_set, num_images: int) -> tuple[Tensor, Tensor]:
    """The first ``num_images`` pairs of ``val_set``, stacked on the CPU:
    ``(L (n, 1, S, S), ab (n, 2, S, S))``.

    Raises:
        ValueError: ``num_images < 1`` or an empty validation set.
    """
    n = min(int(num_images), len(val_set))
    if num_images < 1 or n < 1:
        raise ValueError(
            f"need num_images >= 1 and a non-empty validation set, got {num_images} and "
            f"{len(val_set)} pairs"
        )
    with fork_rng(torch.device("cpu")):
        pairs = [val_set[i] for i in range(n)]
    return torch.stack([L for L, _ in pairs]), torch.stack([ab for _, ab in pairs])


def validate(
    generator: nn.Module,
    val_L: Tensor,
    val_ab: Tensor,
    batch_size: int,
    precision,
    device: torch.device,
    num_samples: int = 0,
) -> tuple[dict[str, float], Tensor | None]:
    """Mean metrics of ``generator`` on the validation pairs, and its first predictions.

    Args:
        generator: ``L -> ab``; run in eval mode, its training flag restored afterwards.
        val_L, val_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)`` from :func:`validation_pairs`;
            ``val_L`` may carry extra input channels after the lightness (``(n, 4, S, S)``: colour
            hints, :mod:`colorlib.data.hints`), which the generator gets and the metrics skip.
        batch_size: pairs per forward pass.
        precision: a :class:`colorlib.training.steps.Precision` (its ``autocast()`` context).
        device: where to run.
        num_samples: how many predictions to return (0: None).

    Returns:
        ``(metrics, sample_ab)``: means over the ``n`` photos (:data:`VALIDATION_METRICS`) and
        the first ``num_samples`` predicted ``ab`` (float32, on ``device``) or None.
    """
    training = generator.training
    generator.eval()
    accumulator = MetricAccumulator()
    keep = []
    try:
        with torch.no_grad(), fork_rng(device):
            for start in range(0, len(val_L), batch_size):
                L = val_L[start : start + batch_size].to(device)
                real_ab = val_ab[start : start + batch_size].to(device)
                with precision.autocast():
                    fake_ab = generator(L).float()
                L = L[:, :1]  # the lightness: the photo the metrics compare
                accumulator.update(L_ab_to_rgb(L, fake_ab), L_ab_to_rgb(L, real_ab))
                if start < num_samples:
                    keep.append(fake_ab)
    finally:
        generator.train(training)
    summary = accumulator.compute()
    metrics = {k: summary[k] for k in VALIDATION_METRICS}
    return metrics, torch.cat(keep)[:num_samples] if keep else None


@torch.no_grad()
def predict_ab(generator: nn.Module, L: Tensor, batch_size: int = 16) -> Tensor:
    """Run ``generator`` in eval mode on ``L (n, 1, S, S)``: ``ab (n, 2, S, S)`` on the CPU.

    The generator stays where it is (inputs are moved to its device); its training flag is
    restored afterwards.
    """
    device = next(generator.parameters()).device
    training = generator.training
    generator.eval()
    try:
        parts = [
            generator(L[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(L), batch_size)
        ]
    finally:
        generator.train(training)
    return torch.cat(parts)


def evaluate_predictions(
    predictions: Mapping[str, Tensor], L: Tensor, real_ab: Tensor
) -> dict[str, dict[str, float]]:
    """Score predictions against the real photos, next to the gray baseline.

    Args:
        predictions: row name -> ``ab (n, 2, S, S)`` for the photos ``L``.
        L, real_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)`` (e.g. from :func:`validation_pairs`).

    Returns:
        Rows ``{name: {"psnr", "ssim", "colorfulness", "delta_colorfulness"}}`` (means over the
        photos; PSNR in dB, colourfulness on the 0-255 scale) for every prediction and for
        ``"gray baseline"`` (``ab = 0``), then ``"real photos"`` with its colourfulness alone.
    """
    real_rgb = L_ab_to_rgb(L, real_ab)
    rows: dict[str, dict[str, float]] = {}
    truth = 0.0
    for name, ab in {**predictions, "gray baseline": gray_ab_like(L)}.items():
        if ab.shape != real_ab.shape:
            raise ValueError(
                f"prediction {name!r} has shape {tuple(ab.shape)}, expected {tuple(real_ab.shape)}"
            )
        accumulator = MetricAccumulator()
        accumulator.update(L_ab_to_rgb(L, ab.to(L.dtype)), real_rgb)
        summary = accumulator.compute()
        truth = summary["colorfulness_real"]
        keys = ("psnr", "ssim", "colorfulness", "delta_colorfulness")
        rows[name] = {k: summary[k] for k in keys}
    rows["real photos"] = {"colorfulness": truth}
    return rows
