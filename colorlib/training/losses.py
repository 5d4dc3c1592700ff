"""Training objectives: adversarial losses, L1, and the pix2pix and DDColor objectives.

Design:

* every adversarial loss is a named function of logits, one per (GAN mode, player):
  :func:`vanilla_discriminator_loss` / :func:`vanilla_generator_loss` (binary cross-entropy on
  logits, pix2pix's ``gan_mode="vanilla"``) and :func:`lsgan_discriminator_loss` /
  :func:`lsgan_generator_loss` (least squares, ``gan_mode="lsgan"``). No ``target_is_real``
  flags: the name says who is being trained;
* :func:`discriminator_loss` is the discriminator's whole objective (it never contains L1);
* an *objective* is a small ``nn.Module`` called as
  ``objective(L, real_ab, fake_ab, fake_logits_or_None) -> dict[str, Tensor]``: key ``"total"``
  (what the generator minimises) plus one key per term holding that term's *unweighted* value.
  ``fake_logits=None`` drops the adversarial term (L1 / pixel-only pretraining). Terms whose
  weight is 0 are skipped (not computed, no key);
* every RGB-space term converts with :func:`colorlib.color.L_ab_to_rgb`, in float32 even under
  mixed precision, so gradients reach the predicted ``ab``.

>>> objective = Pix2PixObjective(lambda_l1=100.0)
>>> losses = objective(L, real_ab, fake_ab, discriminator(L, fake_ab))
>>> losses["total"].backward()
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorlib.color import AB_SCALE, L_ab_to_rgb

__all__ = [
    "GAN_MODES",
    "vanilla_discriminator_loss",
    "vanilla_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "discriminator_real_loss",
    "discriminator_fake_loss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "l1_loss",
    "SMOOTH_L1_DELTA",
    "PIXEL_LOSSES",
    "smooth_l1_loss",
    "colorfulness_loss",
    "Pix2PixObjective",
    "DDColorObjective",
]

#: the GAN modes every objective and :func:`discriminator_loss` accept
GAN_MODES = ("vanilla", "lsgan")
#: pix2pix-style pixel terms: ``"l1"`` (pix2pix) or ``"smooth-l1"`` (Zhang et al. 2017's hints)
PIXEL_LOSSES = ("l1", "smooth-l1")
#: the smooth L1's quadratic zone: 1 Lab unit (Zhang et al. 2017's delta), on ``ab / 110``
SMOOTH_L1_DELTA = 1.0 / AB_SCALE


def vanilla_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy of the discriminator: real patches -> 1, fake patches -> 0.

    Args:
        real_logits: ``(B, 1, h, w)`` logits on real pairs.
        fake_logits: ``(B, 1, h, w)`` logits on generated pairs (detached from the generator).

    Returns:
        ``(real_loss, fake_loss)``, two scalars; at logits 0 both equal ``log 2``.
    """
    return _bce(real_logits, 1.0), _bce(fake_logits, 0.0)


def vanilla_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: BCE pushing the discriminator's fake logits towards 1."""
    return _bce(fake_logits, 1.0)


def lsgan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Least squares (Mao et al. 2017): ``(mean((real - 1)^2), mean(fake^2))``."""
    return _squared(real_logits, 1.0), _squared(fake_logits, 0.0)


def lsgan_generator_loss(fake_logits: Tensor) -> Tensor:
    """Least-squares generator loss: ``mean((fake_logits - 1)^2)``."""
    return _squared(fake_logits, 1.0)


def _bce(logits: Tensor, target: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _squared(logits: Tensor, target: float) -> Tensor:
    return (logits.float() - target).square().mean()


# gan_mode -> the per-side loss of a batch of logits that should read "real" / "fake"
_REAL_SIDE = {"vanilla": lambda x: _bce(x, 1.0), "lsgan": lambda x: _squared(x, 1.0)}
_FAKE_SIDE = {"vanilla": lambda x: _bce(x, 0.0), "lsgan": lambda x: _squared(x, 0.0)}
_GENERATOR_LOSSES = {"vanilla": vanilla_generator_loss, "lsgan": lsgan_generator_loss}


def _check_gan_mode(gan_mode: str) -> None:
    if gan_mode not in GAN_MODES:
        raise ValueError(f"unknown gan_mode {gan_mode!r}; choose one of {list(GAN_MODES)}")


def discriminator_real_loss(real_logits: Tensor, gan_mode: str) -> Tensor:
    """The discriminator's loss on real pairs alone (for a separate backward pass)."""
    _check_gan_mode(gan_mode)
    return _REAL_SIDE[gan_mode](real_logits)


def discriminator_fake_loss(fake_logits: Tensor, gan_mode: str) -> Tensor:
    """The discriminator's loss on generated pairs alone."""
    _check_gan_mode(gan_mode)
    return _FAKE_SIDE[gan_mode](fake_logits)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, gan_mode: str) -> dict:
    """The discriminator's objective (no L1: that belongs to the generator alone).

    As in pix2pix the sum is halved, which slows the discriminator relative to the generator.

    Returns:
        ``{"real": ..., "fake": ..., "total": (real + fake) / 2}``, scalar tensors.
    """
    real = discriminator_real_loss(real_logits, gan_mode)
    fake = discriminator_fake_loss(fake_logits, gan_mode)
    return {"real": real, "fake": fake, "total": 0.5 * (real + fake)}


def generator_adversarial_loss(fake_logits: Tensor, gan_mode: str) -> Tensor:
    """The generator's adversarial term for ``gan_mode`` (``vanilla`` or ``lsgan``)."""
    _check_gan_mode(gan_mode)
    return _GENERATOR_LOSSES[gan_mode](fake_logits)


def l1_loss(fake_ab: Tensor, real_ab: Tensor) -> Tensor:
    """Mean absolute error between predicted and true ``(B, 2, H, W)`` chroma (same units)."""
    if fake_ab.shape != real_ab.shape:
        raise ValueError(
            f"fake_ab {tuple(fake_ab.shape)} and real_ab {tuple(real_ab.shape)} must match"
        )
    return F.l1_loss(fake_ab.float(), real_ab.float())


def smooth_l1_loss(fake_ab: Tensor, real_ab: Tensor, delta: float = SMOOTH_L1_DELTA) -> Tensor:
    """Smooth L1 (Huber) between normalised ``(B, 2, H, W)`` chroma, on L1's scale.

    Per element ``e = |fake - real|``: ``e**2 / (2 delta)`` for ``e < delta``, else
    ``e - delta / 2`` (``torch.nn.functional.smooth_l1_loss`` with ``beta = delta``), mean over
    elements. Zhang et al. (2017) use the Huber loss with ``delta = 1`` in Lab units; on
    ``ab / 110`` with ``delta = 1/110`` this is that loss divided by 110, so a weight tuned for
    :func:`l1_loss` (pix2pix's 100) keeps its meaning: the two differ only on errors under one
    Lab unit, where the smooth loss's gradient shrinks to zero instead of staying at +-1.
    """
    if fake_ab.shape != real_ab.shape:
        raise ValueError(
            f"fake_ab {tuple(fake_ab.shape)} and real_ab {tuple(real_ab.shape)} must match"
        )
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    return F.smooth_l1_loss(fake_ab.float(), real_ab.float(), beta=float(delta))


def colorfulness_loss(rgb: Tensor) -> Tensor:
    """DDColor's colourfulness loss ``mean(1 - CF(rgb) / 100)``.

    ``CF`` is :func:`colorlib.evaluation.metrics.colorfulness` (Hasler & Suesstrunk's M3 on the
    0-255
    scale, with DDColor's absolute opponent channels): 0 for a gray photo, about 33
    "moderately", 59 "quite" and 109 "extremely" colourful.

    Normalisation: the DDColor paper writes the loss as ``1 - CF / 100``; its released code
    (basicsr ``ColorfulnessLoss``) evaluates CF on [0, 1] RGB, i.e. ``CF / 255``, and *sums*
    ``1 - CF / 255`` over the batch. We follow the paper: dividing by 100 keeps the term about
    [0, 1] for real photos, so the paper's weight 0.5 sits beside the other terms as intended,
    and averaging (not summing) over the batch keeps that weight independent of the batch size
    (the released code's gradient per unit of CF is ``B * 100 / 255`` times ours: about 6x at
    batch 16). The loss is 1 for gray images and falls below 0 above CF 100.

    Args:
        rgb: ``(B, 3, H, W)`` sRGB in [0, 1].

    Returns:
        A 0-dim tensor.

    Example:
        >>> red = torch.zeros(1, 3, 8, 8); red[:, 0] = 1
        >>> colorfulness_loss(red)  # 1 - 0.3 * sqrt(255^2 + 127.5^2) / 100
        tensor(0.1447)
    """
    from colorlib.evaluation.metrics import colorfulness

    return (1.0 - colorfulness(rgb.float()) / 100.0).mean()


def _rgb_pair(L: Tensor, real_ab: Tensor, fake_ab: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted and true sRGB in float32, whatever the surrounding autocast says."""
    with torch.autocast(device_type=fake_ab.device.type, enabled=False):
        fake_rgb = L_ab_to_rgb(L.float(), fake_ab.float())
        with torch.no_grad():
            real_rgb = L_ab_to_rgb(L.float(), real_ab.float())
    return fake_rgb, real_rgb


def _check_weights(**weights: float) -> None:
    for name, value in weights.items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class Pix2PixObjective(nn.Module):
    """pix2pix's generator objective: ``adversarial + lambda_l1 * L1(fake_ab, real_ab)``.

    ``G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G)`` (Isola et al. 2017), with L1 on
    the normalised ``ab`` (``ab / 110``), as the original report trained it.
    ``pixel_loss="smooth-l1"`` puts :func:`smooth_l1_loss` (Zhang et al. 2017) in L1's place.

    Args:
        lambda_l1: weight of the pixel term (``lambda``, 100 in pix2pix).
        gan_mode: ``"vanilla"`` (BCE with logits) or ``"lsgan"`` (least squares).
        pixel_loss: ``"l1"`` or ``"smooth-l1"`` (:data:`PIXEL_LOSSES`).

    Returns (when called):
        ``{"adversarial", "l1", "total"}`` (``"smooth_l1"`` in place of ``"l1"`` with the
        smooth loss; no ``"adversarial"`` when ``fake_logits`` is None).
    """

    def __init__(
        self, lambda_l1: float = 100.0, gan_mode: str = "vanilla", pixel_loss: str = "l1"
    ) -> None:
        super().__init__()
        _check_weights(lambda_l1=lambda_l1)
        _check_gan_mode(gan_mode)
        if pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"unknown pixel_loss {pixel_loss!r}; choose one of {PIXEL_LOSSES}")
        self.lambda_l1 = float(lambda_l1)
        self.gan_mode, self.pixel_loss = gan_mode, pixel_loss

    def forward(
        self, L: Tensor, real_ab: Tensor, fake_ab: Tensor, fake_logits: Tensor | None
    ) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        total = fake_ab.new_zeros((), dtype=torch.float32)
        if fake_logits is not None:
            losses["adversarial"] = generator_adversarial_loss(fake_logits, self.gan_mode)
            total = total + losses["adversarial"]
        if self.lambda_l1 > 0:
            smooth = self.pixel_loss == "smooth-l1"
            key = "smooth_l1" if smooth else "l1"
            losses[key] = (smooth_l1_loss if smooth else l1_loss)(fake_ab, real_ab)
            total = total + self.lambda_l1 * losses[key]
        losses["total"] = total
        return losses

    def extra_repr(self) -> str:
        pixel = "" if self.pixel_loss == "l1" else f", pixel_loss={self.pixel_loss!r}"
        return f"lambda_l1={self.lambda_l1}, gan_mode={self.gan_mode!r}{pixel}"


class DDColorObjective(nn.Module):
    """DDColor's generator objective (Kang et al. 2023), weights as in the paper.

    ``total = pixel * L1_Lab(ab) + perceptual * VGG(rgb) + adversarial * GAN + colorfulness *
    (1 - CF / 100)``. The pixel term is L1 on ``ab`` in *Lab units* (``ab * 110``), because
    DDColor's targets are raw Lab ``ab``: this keeps the paper's weight 0.1 meaningful. The
    perceptual term is :class:`colorlib.training.perceptual.PerceptualLoss` on sRGB in [0, 1]
    (VGG16-BN's ImageNet features; where those cannot be had, EfficientNet-Lite0's, which it
    says; ``perceptual_loss.description`` tells which); the colourfulness term is
    :func:`colorfulness_loss` (see there for the normalisation).

    Args:
        pixel: weight of the L1 pixel term (0.1).
        perceptual: weight of the perceptual term (5.0).
        adversarial: weight of the generator's GAN term (1.0).
        colorfulness: weight of the colourfulness term (0.5).
        gan_mode: ``"vanilla"`` or ``"lsgan"``.
        perceptual_pretrained: ImageNet weights for the perceptual network (see
            :class:`~colorlib.training.perceptual.PerceptualLoss`).

    Returns (when called):
        ``"total"`` plus ``"pixel"``, ``"perceptual"``, ``"adversarial"``, ``"colorfulness"``
        for every term with a weight > 0 (no ``"adversarial"`` when ``fake_logits`` is None).
    """

    def __init__(
        self,
        pixel: float = 0.1,
        perceptual: float = 5.0,
        adversarial: float = 1.0,
        colorfulness: float = 0.5,
        gan_mode: str = "vanilla",
        perceptual_pretrained: bool = True,
    ) -> None:
        super().__init__()
        _check_weights(
            pixel=pixel, perceptual=perceptual, adversarial=adversarial, colorfulness=colorfulness
        )
        _check_gan_mode(gan_mode)
        self.weights = {
            "pixel": float(pixel),
            "perceptual": float(perceptual),
            "adversarial": float(adversarial),
            "colorfulness": float(colorfulness),
        }
        self.gan_mode = gan_mode
        self.perceptual_loss: nn.Module | None = None
        if perceptual > 0:  # the perceptual network is large: only build it when it is used
            from colorlib.training.perceptual import PerceptualLoss

            self.perceptual_loss = PerceptualLoss(pretrained=perceptual_pretrained)
            self.perceptual_loss.requires_grad_(False)

    def _terms(self, L, real_ab, fake_ab, fake_logits) -> dict[str, Tensor]:
        w = self.weights
        terms: dict[str, Tensor] = {}
        if w["pixel"] > 0:
            terms["pixel"] = l1_loss(fake_ab, real_ab) * AB_SCALE
        if w["perceptual"] > 0 or w["colorfulness"] > 0:
            fake_rgb, real_rgb = _rgb_pair(L, real_ab, fake_ab)
            if w["perceptual"] > 0:
                terms["perceptual"] = self.perceptual_loss(fake_rgb, real_rgb).float()
            if w["colorfulness"] > 0:
                terms["colorfulness"] = colorfulness_loss(fake_rgb)
        if fake_logits is not None and w["adversarial"] > 0:
            terms["adversarial"] = generator_adversarial_loss(fake_logits, self.gan_mode)
        return terms

    def forward(
        self, L: Tensor, real_ab: Tensor, fake_ab: Tensor, fake_logits: Tensor | None
    ) -> dict[str, Tensor]:
        terms = self._terms(L, real_ab, fake_ab, fake_logits)
        total = fake_ab.new_zeros((), dtype=torch.float32)
        for name, value in terms.items():
            total = total + self.weights[name] * value
        terms["total"] = total
        return terms

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return f"{weights}, gan_mode={self.gan_mode!r}"
