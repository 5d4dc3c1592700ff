"""Image-quality metrics for colorization: PSNR, SSIM, colourfulness and delta-CF, on tensors.

Design:

* every per-image metric is a torch function on ``(B, 3, H, W)`` RGB in [0, 1] that returns one
  value per image, ``(B,)``; the reference in the tests is scikit-image (PSNR, SSIM) or a plain
  numpy transcription of the formula (colourfulness);
* :class:`MetricAccumulator` averages those per-image values over batches: it is the one
  accumulator of validation during training, chapter comparisons and folder evaluation;
* FID is in :mod:`colorlib.evaluation.fid`, two folders are compared by
  :mod:`colorlib.evaluation.folders`.

Choices, and how they relate to the literature:

* **SSIM** is Wang et al.'s Gaussian SSIM (11x11 window, sigma 1.5, K1 0.01, K2 0.03, population
  covariance), averaged over R, G, B. scikit-image filters with reflected borders and then crops
  ``(11 - 1) // 2 = 5`` pixels on every side before averaging; the cropped pixels are exactly
  those whose window touches the border, so a *valid* convolution gives the same number.
* **Colourfulness** (Hasler & Suesstrunk 2003, their M3) on the 0-255 scale: ``rg = R - G``,
  ``yb = (R + G) / 2 - B``, ``CF = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)``
  with population standard deviations. The paper uses the *signed* opponent channels
  (``variant="hasler"``). DDColor's ``calculate_cf`` (copied from a 2017 pyimagesearch post)
  takes ``abs(rg)`` and ``abs(yb)`` first; its published CF numbers (e.g. 38.26) use that, so
  ``variant="ddcolor"`` is the default here. Both give 0 for any gray image and agree on uniform
  colours (saturated red: ``0.3 * sqrt(255^2 + 127.5^2) = 85.53``); they differ on images whose
  opponent channels change sign (half red, half green: 85.53 for "ddcolor", 293.25 for "hasler").
  DDColor evaluates 8-bit images; on float images the difference is a few hundredths.
* **Delta-CF** is ``|mean CF(predictions) - mean CF(ground truth)|`` over the whole set, not the
  mean of per-image differences: DDColor's Table 1 gives, on ImageNet val5k, CF 37.66 / delta
  0.55 (tiny) and 38.26 / 0.05 (large), both implying a ground-truth CF of 38.21.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "psnr",
    "ssim",
    "colorfulness",
    "delta_colorfulness",
    "check_images",
    "SSIM_WINDOW",
    "summarize",
    "MetricAccumulator",
]

_SSIM_RADIUS, _SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 5, 1.5, 0.01, 0.03
#: side of SSIM's Gaussian window: images must be at least this large
SSIM_WINDOW = 2 * _SSIM_RADIUS + 1


def check_images(x: Tensor, name: str, channels: int | None = 3) -> None:
    """Raise a clear error unless ``x`` is a float ``(B, channels, H, W)`` image batch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        want = "(B, C, H, W)" if channels is None else f"(B, {channels}, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def _check_pair(pred: Tensor, target: Tensor) -> None:
    check_images(pred, "pred", channels=None)
    check_images(target, "target", channels=None)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")


def _at_least_float32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each image, in dB (as ``skimage.metrics``).

    Args:
        pred, target: ``(B, C, H, W)`` images, values in ``[0, data_range]``.
        data_range: the largest possible value (1 for [0, 1] images).

    Returns:
        ``(B,)``: ``10 log10(data_range^2 / MSE)``; ``inf`` for identical images.

    Example:
        >>> psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))
        tensor([20.0000])
    """
    _check_pair(pred, target)
    mse = (_at_least_float32(pred) - target).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Gaussian-window SSIM of each image, averaged over channels (differentiable).

    Matches ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=..., data_range=data_range)``.

    Args:
        pred, target: ``(B, C, H, W)`` images with ``H, W >= 11``, values in ``[0, data_range]``.
        data_range: the largest possible value (1 for [0, 1] images).

    Returns:
        ``(B,)`` mean SSIM, 1 for identical images.
    """
    _check_pair(pred, target)
    size = 2 * _SSIM_RADIUS + 1
    if min(pred.shape[-2:]) < size:
        raise ValueError(f"ssim needs images of at least {size}x{size}, got {tuple(pred.shape)}")
    x, y = _at_least_float32(pred), target.to(_at_least_float32(pred).dtype)
    channels = 5 * x.shape[1]
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    g = g / g.sum()
    stack = torch.cat((x, y, x * x, y * y, x * y), dim=1)  # (B, 5C, H, W)
    # separable 'valid' Gaussian blur: the pixels skimage crops are exactly the border ones
    stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    mu_x, mu_y, xx, yy, xy = stack.chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)


def _safe_sqrt(x: Tensor) -> Tensor:
    # sqrt with a zero (not infinite) gradient at 0, so a gray image does not poison a loss
    positive = x > 0
    return torch.where(positive, x.clamp(min=1e-30).sqrt(), torch.zeros_like(x))


def colorfulness(rgb: Tensor, variant: str = "ddcolor") -> Tensor:
    """Hasler & Suesstrunk colourfulness (M3) of each image, on the 0-255 scale (differentiable).

    Args:
        rgb: ``(B, 3, H, W)`` in [0, 1].
        variant: ``"ddcolor"`` (absolute opponent channels, as DDColor's evaluation code and its
            published numbers) or ``"hasler"`` (signed channels, as the paper). See the module
            docstring.

    Returns:
        ``(B,)``: 0 for gray images; about 15 "slightly", 33 "moderately", 59 "quite", 109
        "extremely" colourful (the paper's scale).

    Example:
        >>> red = torch.zeros(1, 3, 8, 8); red[:, 0] = 1
        >>> colorfulness(red)  # 0.3 * sqrt(255^2 + 127.5^2)
        tensor([85.5304])
    """
    check_images(rgb, "rgb")
    if variant not in ("ddcolor", "hasler"):
        raise ValueError(f"variant must be 'ddcolor' or 'hasler', got {variant!r}")
    r, g, b = (_at_least_float32(rgb) * 255.0).flatten(2).unbind(1)  # each (B, H*W)
    rg, yb = r - g, 0.5 * (r + g) - b
    if variant == "ddcolor":
        rg, yb = rg.abs(), yb.abs()
    spread = _safe_sqrt(rg.var(1, correction=0) + yb.var(1, correction=0))
    level = _safe_sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return spread + 0.3 * level


def delta_colorfulness(pred: Tensor, target: Tensor, variant: str = "ddcolor") -> Tensor:
    """``|mean CF(pred) - mean CF(target)|`` over the set, as DDColor reports delta-CF.

    Args:
        pred, target: ``(B, 3, H, W)`` in [0, 1] (the same number of images each).
        variant: see :func:`colorfulness`.

    Returns:
        A 0-dim tensor. For a set split into batches use :class:`MetricAccumulator`, which keeps
        the two means and takes the difference at the end.
    """
    _check_pair(pred, target)
    return (colorfulness(pred, variant).mean() - colorfulness(target, variant).mean()).abs()


# --- averaging over batches and folders ------------------------------------------------------


def summarize(metric_batches: Iterable[Mapping[str, Tensor]]) -> dict[str, float]:
    """Average per-image metric values over batches (every image counts once).

    Args:
        metric_batches: dicts of per-image values, each ``(B,)``, with the same keys.

    Returns:
        ``{key: mean over all images}`` plus ``"count"``, the number of images.

    Example:
        >>> summarize([{"psnr": torch.tensor([20.0, 30.0])}, {"psnr": torch.tensor([40.0])}])
        {'psnr': 30.0, 'count': 3}
    """
    values: dict[str, list[Tensor]] = {}
    for batch in metric_batches:
        for key, value in batch.items():
            values.setdefault(key, []).append(torch.as_tensor(value).detach().double().flatten())
    counts = {key: sum(len(v) for v in parts) for key, parts in values.items()}
    if not counts or 0 in counts.values():
        raise ValueError(f"summarize needs per-image values, got image counts {counts}")
    if len(set(counts.values())) != 1:
        raise ValueError(f"every metric must cover the same images, got image counts {counts}")
    summary: dict[str, float] = {
        k: float(torch.cat([v.cpu() for v in p]).mean()) for k, p in values.items()
    }
    summary["count"] = next(iter(counts.values()))
    return summary


class MetricAccumulator:
    """PSNR, SSIM and colourfulness per image over validation batches; delta-CF at the end.

    Args:
        variant: colourfulness variant, see :func:`colorfulness`.

    Example:
        >>> metrics = MetricAccumulator()
        >>> for fake_rgb, real_rgb in batches:
        ...     metrics.update(fake_rgb, real_rgb)
        >>> metrics.compute()  # psnr, ssim, colorfulness(_real), delta_colorfulness, count
    """

    def __init__(self, variant: str = "ddcolor") -> None:
        self.variant = variant
        self._batches: list[dict[str, Tensor]] = []

    def update(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Add a batch of ``(B, 3, H, W)`` RGB in [0, 1]; returns its per-image values ``(B,)``."""
        with torch.no_grad():
            values = {
                "psnr": psnr(pred, target),
                "ssim": ssim(pred, target),
                "colorfulness": colorfulness(pred, self.variant),
                "colorfulness_real": colorfulness(target, self.variant),
            }
        values = {key: value.detach().cpu() for key, value in values.items()}
        self._batches.append(values)
        return values

    def __len__(self) -> int:
        return sum(len(batch["psnr"]) for batch in self._batches)

    def reset(self) -> None:
        self._batches.clear()

    def compute(self) -> dict[str, float]:
        """Means over every image seen, and ``delta_colorfulness`` from the two CF means."""
        if not self._batches:
            raise ValueError("MetricAccumulator.compute() was called before any update()")
        summary = summarize(self._batches)
        summary["delta_colorfulness"] = abs(summary["colorfulness"] - summary["colorfulness_real"])
        return summary
