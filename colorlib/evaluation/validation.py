"""What :func:`colorlib.train.fit` measures while it trains: validation metrics and samples.

* :func:`validation_tensors` decodes the first ``num_val_images`` validation pairs once, into
  memory (deterministic centre crops; the training random streams are left untouched);
* :func:`metric_sums` gives per-batch *sums* of PSNR, SSIM and the colourfulness of the
  prediction and of the real photo, so that batches of any size add up to exact means;
* :func:`validate` runs the generator in eval mode (its training flag restored after) under
  the run's precision and returns the mean metrics and the first predictions, kept as sample
  colourisations in the checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorlib.color import L_ab_to_rgb

__all__ = ["fork_rng", "validation_tensors", "metric_sums", "validate"]


def fork_rng(device: torch.device):
    """A context in which side work (validation) draws random numbers without moving the
    training random streams of ``device`` (and of the CPU)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices, device_type=device.type)


def validation_tensors(val_set, num_images: int, batch_size: int, device) -> tuple[Tensor, Tensor]:
    """The first ``num_images`` pairs of ``val_set``, stacked on the CPU: ``(L, ab)``.

    Raises:
        ValueError: an empty validation set.
    """
    from colorlib.data import make_loader

    n = min(num_images, len(val_set))
    if n == 0:
        raise ValueError("the validation set is empty")
    subset = torch.utils.data.Subset(val_set, range(n))
    loader = make_loader(subset, batch_size, False, device=device, num_workers=0)
    with fork_rng(torch.device("cpu")):
        pairs = list(loader)
    return torch.cat([L for L, _ in pairs]), torch.cat([ab for _, ab in pairs])


def metric_sums(pred_rgb: Tensor, real_rgb: Tensor) -> dict[str, float]:
    """Per-batch sums of the validation metrics (per-image values, or a batch mean times B).

    Returns:
        ``{"psnr", "ssim", "colorfulness", "colorfulness_real"}`` summed over the batch.
    """
    from colorlib import metrics

    values = {
        "psnr": metrics.psnr(pred_rgb, real_rgb),
        "ssim": metrics.ssim(pred_rgb, real_rgb),
        "colorfulness": metrics.colorfulness(pred_rgb),
        "colorfulness_real": metrics.colorfulness(real_rgb),
    }
    batch = pred_rgb.shape[0]
    return {k: float(v.float().sum()) if v.dim() else float(v) * batch for k, v in values.items()}


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
        val_L, val_ab: ``(n, 1, S, S)`` and ``(n, 2, S, S)`` from :func:`validation_tensors`.
        batch_size: pairs per forward pass.
        precision: a :class:`colorlib.steps.Precision` (its ``autocast()`` context).
        device: where to run.
        num_samples: how many predictions to return (0: None).

    Returns:
        ``(metrics, sample_ab)``: means over the ``n`` photos (see :func:`metric_sums`) and the
        first ``num_samples`` predicted ``ab`` (float32, on ``device``) or None.
    """
    training = generator.training
    generator.eval()
    sums: dict[str, float] = {}
    keep = []
    try:
        with torch.no_grad(), fork_rng(device):
            for start in range(0, len(val_L), batch_size):
                L = val_L[start : start + batch_size].to(device)
                real_ab = val_ab[start : start + batch_size].to(device)
                with precision.autocast():
                    fake_ab = generator(L).float()
                batch = metric_sums(L_ab_to_rgb(L, fake_ab), L_ab_to_rgb(L, real_ab))
                sums = {k: sums.get(k, 0.0) + v for k, v in batch.items()}
                if start < num_samples:
                    keep.append(fake_ab)
    finally:
        generator.train(training)
    metrics = {k: v / len(val_L) for k, v in sums.items()}
    return metrics, torch.cat(keep)[:num_samples] if keep else None
