"""Fréchet Inception distance (FID): the Inception-v3 features and the Fréchet distance.

Design:

* FID needs an ImageNet Inception-v3. :func:`load_inception` asks
  :func:`colorlib.models.pretrained.load_torchvision_state_dict` for torchvision's weights and
  returns ``None`` (after one printed line) when they cannot be had; :func:`fid` then returns
  ``None`` rather than a number from a random network. :class:`InceptionFeatures` is the
  network up to its 2048-d pool3 features, frozen and always in eval mode;
* the distance itself is numpy in float64: :func:`frechet_distance` between two Gaussians, and
  :func:`fid_from_features` between two feature sets, which takes an exact ``(N1, N2)``
  shortcut when there are fewer images than feature dimensions (any small evaluation).

Choices, and how they relate to the literature:

* **FID** uses torchvision's ``Inception_V3_Weights.IMAGENET1K_V1`` pool3 features (2048-d, after
  a bilinear resize to 299x299). The literature's FID uses the TF-ported "pt_inception" weights
  of pytorch-fid; torchvision's weights are a different port, so values are close to but not the
  same as published ones. (DDColor's own ``custom_fid.py`` also loads a torchvision Inception
  file, and rescales its [0, 1] inputs as if they were in [-1, 1], so its FIDs are not strictly
  comparable either.) FID is biased upwards for small sets: compare only at equal image counts.

:mod:`colorlib.evaluation.metrics` re-exports every name here and runs FID over folders of images
(:func:`colorlib.evaluation.folders.evaluate_folders`).

>>> fid(torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64))  # offline: None
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.evaluation.metrics import check_images
from colorlib.runtime import say

__all__ = [
    "InceptionFeatures",
    "load_inception",
    "frechet_distance",
    "fid_from_features",
    "fid",
]

INCEPTION_WEIGHTS = "Inception_V3_Weights.IMAGENET1K_V1"


class InceptionFeatures(nn.Module):
    """torchvision Inception-v3 up to the 2048-d pool3 features, always in eval mode.

    Args:
        state_dict: a torchvision ``inception_v3`` state dict (with the ``AuxLogits`` entries).

    Shape:
        ``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 2048)``; inputs are resized to 299x299.
    """

    def __init__(self, state_dict: Mapping[str, Tensor]) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(state_dict)
        # the classifier heads are not needed: pool3 is what comes out once fc is the identity
        net.AuxLogits, net.aux_logits, net.fc = None, False, nn.Identity()
        self.net = net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, rgb: Tensor) -> Tensor:
        check_images(rgb, "rgb")
        if rgb.shape[-2:] != (299, 299):
            rgb = F.interpolate(rgb, size=(299, 299), mode="bilinear", align_corners=False)
        # ImageNet normalisation followed by torchvision's transform_input is exactly 2x - 1
        return self.net(rgb * 2.0 - 1.0)


def load_inception(device: torch.device | str | None = None) -> InceptionFeatures | None:
    """The FID feature extractor, or ``None`` (with one printed line) without ImageNet weights."""
    from colorlib.models.pretrained import load_torchvision_state_dict

    weights = load_torchvision_state_dict(INCEPTION_WEIGHTS)
    if weights.state_dict is None:
        say(
            "FID is not computed: it needs torchvision's ImageNet Inception-v3 weights, which are "
            "not in the torch hub cache and cannot be downloaded here (FID is reported as None)"
        )
        return None
    return InceptionFeatures(weights.state_dict).to(device)


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


def _features(images: Tensor | Sequence[Tensor], extractor: nn.Module, batch_size: int):
    if isinstance(images, Tensor):
        check_images(images, "images")
        images = images.split(batch_size)
    device = next(extractor.parameters()).device
    out = []
    with torch.inference_mode():
        for x in images:
            out.append(extractor((x.unsqueeze(0) if x.dim() == 3 else x).to(device)).cpu())
    if not out:
        raise ValueError("no images were given to compute FID features of")
    return torch.cat(out).double().numpy()


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
        extractor: a loaded :class:`InceptionFeatures` (reuse it across calls); by default
            :func:`load_inception` on the device of the first tensor.
        batch_size: images per Inception forward pass when a tensor is given.

    Returns:
        The FID (lower is better), or ``None`` when no Inception weights can be had.

    Example:
        >>> fid(torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64))  # offline: None
    """
    if extractor is None:
        first = pred_images if isinstance(pred_images, Tensor) else pred_images[0]
        extractor = load_inception(first.device)
        if extractor is None:
            return None
    return fid_from_features(
        _features(pred_images, extractor, batch_size), _features(real_images, extractor, batch_size)
    )
