"""colorlib.training.losses: reference values, term bookkeeping, and gradient flow of every term."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from colorlib.color import AB_SCALE, L_ab_to_rgb
from colorlib.training import losses

LOG2 = math.log(2.0)


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def _batch(size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(2, 1, size, size, generator=g) * 2 - 1
    real_ab = (torch.rand(2, 2, size, size, generator=g) * 2 - 1) * 0.4
    return L, real_ab


class TinyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))

    def forward(self, L):
        return torch.tanh(self.net(L))


class TinyDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))

    def forward(self, L, ab):
        return self.net(torch.cat((L, ab), dim=1))


@pytest.fixture(scope="module")
def full_objective():
    """DDColor's objective with all four terms (VGG16-BN is slow to build: build it once)."""
    return losses.DDColorObjective(perceptual_pretrained=False)


# --- adversarial losses ------------------------------------------------------------------------


def test_vanilla_losses_at_zero_logits_equal_log2():
    zeros = torch.zeros(2, 1, 4, 4)
    real, fake = losses.vanilla_discriminator_loss(zeros, zeros)
    assert real.item() == pytest.approx(LOG2) and fake.item() == pytest.approx(LOG2)
    assert losses.vanilla_generator_loss(zeros).item() == pytest.approx(LOG2)
    assert losses.discriminator_loss(zeros, zeros, "vanilla")["total"].item() == pytest.approx(LOG2)


def test_vanilla_losses_match_the_softplus_formulas():
    real_logits, fake_logits = _logits(3, 1, 5, 5), _logits(3, 1, 5, 5, seed=1)
    real, fake = losses.vanilla_discriminator_loss(real_logits, fake_logits)
    # -log(sigmoid(x)) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    assert torch.allclose(real, nn.functional.softplus(-real_logits).mean())
    assert torch.allclose(fake, nn.functional.softplus(fake_logits).mean())
    assert torch.allclose(
        losses.vanilla_generator_loss(fake_logits), nn.functional.softplus(-fake_logits).mean()
    )


def test_lsgan_losses_reference_values():
    zeros = torch.zeros(2, 1, 4, 4)
    real, fake = losses.lsgan_discriminator_loss(zeros, zeros)
    assert (real.item(), fake.item()) == (1.0, 0.0)
    assert losses.lsgan_generator_loss(zeros).item() == 1.0
    x = _logits(2, 1, 3, 3)
    real, fake = losses.lsgan_discriminator_loss(x, x)
    assert torch.allclose(real, ((x - 1) ** 2).mean()) and torch.allclose(fake, (x**2).mean())
    assert losses.lsgan_generator_loss(torch.ones(1, 1, 2, 2)).item() == 0.0


def test_discriminator_loss_is_halved_sum_and_has_no_l1():
    real_logits, fake_logits = _logits(2, 1, 4, 4), _logits(2, 1, 4, 4, seed=3)
    for mode in losses.GAN_MODES:
        out = losses.discriminator_loss(real_logits, fake_logits, mode)
        assert set(out) == {"real", "fake", "total"}
        assert torch.allclose(out["total"], 0.5 * (out["real"] + out["fake"]))
        assert torch.allclose(out["real"], losses.discriminator_real_loss(real_logits, mode))
        assert torch.allclose(out["fake"], losses.discriminator_fake_loss(fake_logits, mode))


def test_generator_adversarial_loss_has_each_modes_closed_form():
    x = _logits(2, 1, 4, 4)
    z = x.double().numpy()
    vanilla = np.mean(np.log1p(np.exp(-z)))  # -log sigmoid(x): fakes called real
    lsgan = np.mean((z - 1) ** 2)  # Mao et al. 2017
    got = {mode: losses.generator_adversarial_loss(x, mode).item() for mode in losses.GAN_MODES}
    assert got == pytest.approx({"vanilla": vanilla, "lsgan": lsgan}, rel=1e-5)


def test_unknown_gan_mode_is_named_in_the_error():
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="wgan"):
        losses.discriminator_loss(x, x, "wgan")
    with pytest.raises(ValueError, match="hinge"):
        losses.Pix2PixObjective(gan_mode="hinge")


def test_adversarial_losses_are_float32_under_bfloat16_autocast():
    x = _logits(2, 1, 4, 4).bfloat16()
    assert losses.vanilla_generator_loss(x).dtype == torch.float32
    assert losses.lsgan_discriminator_loss(x, x)[0].dtype == torch.float32


# --- L1 and colourfulness ----------------------------------------------------------------------


def test_l1_loss_reference_value_and_shape_check():
    a, b = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.25)
    assert losses.l1_loss(a, b).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 3\)"):
        losses.l1_loss(a, torch.zeros(1, 2, 3, 3))


def _huber_lab(fake_lab: np.ndarray, real_lab: np.ndarray, delta: float = 1.0) -> float:
    # Zhang et al. (2017)'s smooth L1 in Lab units, written out with NumPy
    e = np.abs(fake_lab - real_lab)
    return float(np.where(e < delta, 0.5 * e**2, delta * (e - 0.5 * delta)).mean())


def test_smooth_l1_is_the_papers_huber_in_lab_units_divided_by_110():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2, 2, 8, 8, generator=g) * 0.3
    # errors on both sides of the 1-Lab-unit kink: quadratic below, linear above
    fake = real + torch.randn(2, 2, 8, 8, generator=g) * (3.0 / AB_SCALE)
    errors = ((fake - real).abs() * AB_SCALE).flatten()
    assert (errors < 1).any() and (errors > 1).any()
    expected = _huber_lab(fake.double().numpy() * AB_SCALE, real.double().numpy() * AB_SCALE)
    got = losses.smooth_l1_loss(fake, real).item()
    assert got * AB_SCALE == pytest.approx(expected, rel=1e-4)
    # on L1's scale: large errors cost L1 minus delta / 2
    far = real + 0.5
    assert losses.smooth_l1_loss(far, real).item() == pytest.approx(0.5 - 0.5 / AB_SCALE)
    with pytest.raises(ValueError, match="must match"):
        losses.smooth_l1_loss(fake, real[:1])
    with pytest.raises(ValueError, match="delta"):
        losses.smooth_l1_loss(fake, real, delta=0.0)


def test_pix2pix_objective_takes_the_smooth_l1_in_l1s_place():
    L, real_ab = _batch()
    fake_ab, logits = real_ab + 0.004, _logits(2, 1, 3, 3)  # 0.44 Lab units: quadratic zone
    out = losses.Pix2PixObjective(lambda_l1=100.0, pixel_loss="smooth-l1")(
        L, real_ab, fake_ab, logits
    )
    assert set(out) == {"adversarial", "smooth_l1", "total"}
    assert out["smooth_l1"].item() == pytest.approx(0.004**2 / 2 * AB_SCALE, rel=1e-3)
    assert torch.allclose(out["total"], out["adversarial"] + 100.0 * out["smooth_l1"])
    with pytest.raises(ValueError, match="unknown pixel_loss 'l2'"):
        losses.Pix2PixObjective(pixel_loss="l2")


def test_colorfulness_loss_reference_values():
    gray = torch.full((1, 3, 8, 8), 0.4)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    expected_red = 1.0 - 0.3 * math.hypot(255.0, 127.5) / 100.0  # CF / 100, as in the paper
    assert losses.colorfulness_loss(gray).item() == pytest.approx(1.0)
    assert losses.colorfulness_loss(red).item() == pytest.approx(expected_red, abs=1e-4)
    # a mean over the batch, not a sum: the weight does not depend on the batch size
    both = losses.colorfulness_loss(torch.cat((gray, red)))
    assert both.item() == pytest.approx((1.0 + expected_red) / 2, abs=1e-4)


def test_colorfulness_loss_gradient_is_finite_on_gray_images():
    rgb = torch.full((2, 3, 8, 8), 0.5, requires_grad=True)
    losses.colorfulness_loss(rgb).backward()
    assert torch.isfinite(rgb.grad).all()


def test_colorfulness_loss_prefers_more_colourful_images():
    L, real_ab = _batch()
    dull = losses.colorfulness_loss(L_ab_to_rgb(L, real_ab * 0.2))
    vivid = losses.colorfulness_loss(L_ab_to_rgb(L, real_ab))
    assert vivid < dull


# --- objectives --------------------------------------------------------------------------------


def test_pix2pix_objective_total_is_adversarial_plus_lambda_l1():
    L, real_ab = _batch()
    fake_ab, logits = real_ab + 0.1, _logits(2, 1, 3, 3)
    out = losses.Pix2PixObjective(lambda_l1=100.0)(L, real_ab, fake_ab, logits)
    assert set(out) == {"adversarial", "l1", "total"}
    assert out["l1"].item() == pytest.approx(0.1, abs=1e-5)
    assert torch.allclose(out["total"], out["adversarial"] + 100.0 * out["l1"])
    assert torch.allclose(out["adversarial"], losses.vanilla_generator_loss(logits))


def test_pix2pix_objective_without_logits_is_l1_only():
    L, real_ab = _batch()
    out = losses.Pix2PixObjective(lambda_l1=10.0, gan_mode="lsgan")(L, real_ab, real_ab * 0, None)
    assert set(out) == {"l1", "total"}
    assert torch.allclose(out["total"], 10.0 * out["l1"])
    no_l1 = losses.Pix2PixObjective(lambda_l1=0.0)(L, real_ab, real_ab, torch.zeros(2, 1, 3, 3))
    assert set(no_l1) == {"adversarial", "total"}


def test_objective_weights_must_be_non_negative_numbers():
    with pytest.raises(ValueError, match="lambda_l1"):
        losses.Pix2PixObjective(lambda_l1=-1.0)
    with pytest.raises(ValueError, match="colorfulness"):
        losses.DDColorObjective(colorfulness=float("nan"), perceptual=0.0)


def test_ddcolor_objective_terms_and_weighted_total(full_objective):
    L, real_ab = _batch()
    fake_ab, logits = real_ab * 0.5, _logits(2, 1, 3, 3)
    objective = full_objective
    out = objective(L, real_ab, fake_ab, logits)
    assert set(out) == {"pixel", "perceptual", "adversarial", "colorfulness", "total"}
    # the pixel term is L1 in Lab units, so the paper's weight 0.1 means what it meant there
    assert torch.allclose(out["pixel"], AB_SCALE * losses.l1_loss(fake_ab, real_ab))
    expected = (
        0.1 * out["pixel"]
        + 5.0 * out["perceptual"]
        + 1.0 * out["adversarial"]
        + 0.5 * out["colorfulness"]
    )
    assert torch.allclose(out["total"], expected)
    assert "adversarial" not in objective(L, real_ab, fake_ab, None)


def test_ddcolor_objective_skips_zero_weight_terms_and_vgg():
    objective = losses.DDColorObjective(perceptual=0.0)
    assert objective.perceptual_loss is None  # no VGG built when it is not used
    L, real_ab = _batch()
    assert set(objective(L, real_ab, real_ab, None)) == {"pixel", "colorfulness", "total"}


@pytest.mark.parametrize("term", ["pixel", "perceptual", "adversarial", "colorfulness"])
def test_each_ddcolor_term_alone_sends_gradient_to_the_generator(term, full_objective):
    torch.manual_seed(0)
    weights = {name: 0.0 for name in ("pixel", "perceptual", "adversarial", "colorfulness")}
    weights[term] = 1.0
    if term == "perceptual":  # reuse the VGG already built, with the other weights set to 0
        objective = copy.copy(full_objective)
        objective.weights = weights
    else:
        objective = losses.DDColorObjective(**weights)
        assert objective.perceptual_loss is None
    generator, discriminator = TinyGenerator(), TinyDiscriminator()
    L, real_ab = _batch()
    fake_ab = generator(L)
    out = objective(L, real_ab, fake_ab, discriminator(L, fake_ab))
    assert set(out) == {term, "total"}
    out["total"].backward()
    grads = [p.grad for p in generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


def test_pix2pix_terms_send_gradient_to_the_generator():
    torch.manual_seed(0)
    generator, discriminator = TinyGenerator(), TinyDiscriminator()
    L, real_ab = _batch()
    for lambda_l1, logits in ((100.0, None), (0.0, True)):
        generator.zero_grad()
        fake_ab = generator(L)
        fake_logits = discriminator(L, fake_ab) if logits else None
        losses.Pix2PixObjective(lambda_l1=lambda_l1)(L, real_ab, fake_ab, fake_logits)[
            "total"
        ].backward()
        assert sum(p.grad.abs().sum().item() for p in generator.parameters()) > 0
