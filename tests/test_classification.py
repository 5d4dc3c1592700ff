"""Colorization as classification: ClassificationColorizer (colorlib.models.classification), its
rebalanced cross-entropy (colorlib.training.classification) and a run of fit() with both.
Tiny U-Net trunks on 16 px synthetic pairs keep every test to about a second."""

import numpy as np
import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.ab_bins import annealed_mean, gamut_bins, soft_encode
from colorlib.checkpoint import load_generator
from colorlib.color import AB_SCALE
from colorlib.models import build_model
from colorlib.models.classification import ClassificationColorizer
from colorlib.training.classification import (
    ClassificationObjective,
    build_classification_objective,
    photo_rebalance_weights,
)
from colorlib.training.config import Stage, TrainConfig, build_generator, build_objective
from colorlib.training.loop import fit
from colorlib.training.steps import pretrain_step

SIZE = 16
TRUNK = {"base_channels": 4, "num_downs": 3}


@pytest.fixture(scope="module")
def centres():
    return gamut_bins()


def tiny(**kwargs) -> ClassificationColorizer:
    torch.manual_seed(0)
    return ClassificationColorizer("unet", dict(TRUNK), num_features=8, **kwargs)


def _L(n=2, seed=0):
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_classifier_gives_ab_and_bin_logits():
    net = tiny().eval()
    L = _L()
    logits, ab = net.logits(L), net(L)
    assert logits.shape == (2, 229, SIZE, SIZE) and ab.shape == (2, 2, SIZE, SIZE)
    assert net.num_bins == 229 and net.required_multiple == 8
    # one process, the same input and shapes, eval mode: the same computation, bit for bit
    assert torch.equal(ab, net.decode(logits))
    assert torch.equal(net(L, return_logits=True), logits)
    assert (ab.abs() <= net.centres.abs().max() / AB_SCALE + 1e-6).all()


def test_temperature_is_settable_and_used_by_forward():
    net = tiny(temperature=0.5).eval()
    L = _L()
    net.temperature = 1.0
    torch.testing.assert_close(net(L), annealed_mean(net.logits(L), net.centres, 1.0))
    assert net.model_kwargs["temperature"] == 1.0
    for bad in (0, -0.1, "warm"):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            net.temperature = bad


def test_model_kwargs_rebuild_the_same_network():
    net = tiny()
    again = build_model("classifier", pretrained=False, **net.model_kwargs)
    own, rebuilt = net.state_dict(), again.state_dict()
    assert own.keys() == rebuilt.keys()
    assert all(own[k].shape == rebuilt[k].shape for k in own)
    assert "centres" in own and torch.equal(own["centres"], rebuilt["centres"])
    again.load_state_dict(own)
    L = _L()
    torch.testing.assert_close(again.eval()(L), net.eval()(L))


def test_custom_centres_travel_in_model_kwargs():
    ring = [[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [-40.0, 0.0], [0.0, -40.0]]
    net = tiny(centres=ring)
    assert net.head.out_channels == 5 and net.model_kwargs["centres"] == ring
    again = build_model("classifier", **net.model_kwargs)
    assert torch.equal(again.centres, torch.tensor(ring))


def test_a_resnet_trunk_resolves_auto_and_adopts_a_checkpoints_encoder():
    small = {"decoder_channels": [8, 8, 8, 8, 8]}
    net = ClassificationColorizer("resnet-unet", {**small, "encoder": "auto"}, 8, pretrained=False)
    assert net.model_kwargs["trunk_kwargs"]["encoder"] == "resnet18"  # "auto" resolved
    lite = ClassificationColorizer(
        "resnet-unet", {**small, "encoder": "efficientnet-lite0"}, 8, pretrained=False
    )
    net.load_state_dict(lite.state_dict())  # built with "auto": the trunk rebuilds around lite0
    assert net.trunk.encoder_name == "efficientnet-lite0"
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2, 32, 32)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="unknown trunk 'ddcolor'"):
        ClassificationColorizer("ddcolor")
    with pytest.raises(ValueError, match="num_features must be an int >= 1, got 0"):
        ClassificationColorizer("unet", TRUNK, num_features=0)
    with pytest.raises(ValueError, match="must not set out_channels"):
        ClassificationColorizer("unet", {**TRUNK, "out_channels": 2})
    with pytest.raises(ValueError, match="centres must be a list"):
        ClassificationColorizer("unet", TRUNK, centres=[[1.0, 2.0, 3.0]])


# --- the objective -------------------------------------------------------------------------


def _numpy_loss(logits, real_ab, centres, class_weights, k=5, sigma=5.0):
    """Eq. 2 of the paper, pixel by pixel: ``(rebalanced, plain)`` mean cross-entropy."""
    z = logits.transpose(0, 2, 3, 1).reshape(-1, logits.shape[1])  # (P, Q)
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    pixels = real_ab.transpose(0, 2, 3, 1).reshape(-1, 2) * AB_SCALE  # (P, 2)
    total, plain = [], []
    for pixel, row in zip(pixels, log_p, strict=True):
        d2 = ((centres - pixel) ** 2).sum(1)
        nearest = np.argsort(d2)[:k]
        target = np.exp(-d2[nearest] / (2 * sigma**2))
        ce = -(target / target.sum() * row[nearest]).sum()
        plain.append(ce)
        total.append(class_weights[nearest[0]] * ce)
    return np.mean(total), np.mean(plain)


def test_the_loss_is_the_papers_rebalanced_soft_cross_entropy(centres):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, len(centres), 3, 3, generator=g) * 2
    real_ab = (torch.rand(2, 2, 3, 3, generator=g) - 0.5) * 1.2
    weights = torch.rand(len(centres), generator=g) + 0.5
    losses = ClassificationObjective(centres, weights)(None, real_ab, logits)
    expected = _numpy_loss(
        logits.double().numpy(),
        real_ab.double().numpy(),
        centres.double().numpy(),
        weights.double().numpy(),
    )
    assert set(losses) == {"total", "ce"}
    np.testing.assert_allclose([losses["total"].item(), losses["ce"].item()], expected, rtol=1e-5)


def test_the_loss_is_smallest_at_the_truth(centres):
    objective = ClassificationObjective(centres)
    real_ab = (torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(5)) - 0.5) * 0.8
    truth = torch.log(soft_encode(real_ab, centres) + 1e-9).requires_grad_()
    wrong = torch.zeros_like(truth)
    wrong[:, len(centres) - 1] = 20.0  # every pixel sure of the last bin (a far saturated one)
    at_truth = objective(None, real_ab, truth)["total"]
    assert at_truth < objective(None, real_ab, wrong)["total"] - 5
    assert at_truth < objective(None, real_ab, torch.zeros_like(wrong))["total"]  # uniform
    at_truth.backward()  # d CE / d logits = softmax - Z: zero at the truth
    assert truth.grad.abs().max() < 1e-6


def test_gradients_reach_the_trunk_and_the_head(centres):
    net = tiny()
    real_ab = RandomPairs(2, size=SIZE).ab
    losses = ClassificationObjective(centres)(None, real_ab, net.logits(_L()))
    losses["total"].backward()
    first_conv = net.trunk.down[0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert net.head.weight.grad.abs().sum() > 0 and net.head.bias.grad.abs().sum() > 0


def test_the_objective_rejects_bad_inputs(centres):
    objective = ClassificationObjective(centres)
    logits = torch.zeros(1, len(centres), 4, 4)
    with pytest.raises(ValueError, match=r"logits must be \(B, 229, H, W\), got \(1, 2, 4, 4\)"):
        objective(None, torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"real_ab \(1, 2, 8, 8\) must be"):
        objective(None, torch.zeros(1, 2, 8, 8), logits)
    with pytest.raises(ValueError, match="no adversarial term"):
        objective(None, torch.zeros(1, 2, 4, 4), logits, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 229\], got 0"):
        ClassificationObjective(centres, k=0)
    with pytest.raises(ValueError, match="229 positive values"):
        ClassificationObjective(centres, torch.zeros(len(centres)))


def test_photo_weights_are_seeded_and_leave_the_global_rng_alone(centres):
    photos = RandomPairs(12, size=8, flip=True)  # its flips draw from torch's RNG
    before = torch.get_rng_state()
    first = photo_rebalance_weights(photos, centres, seed=3, max_photos=5)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, photo_rebalance_weights(photos, centres, seed=3, max_photos=5))
    assert (first > 0).all() and first.shape == (len(centres),)
    everything = photo_rebalance_weights(photos, centres, max_photos=12)
    p = torch.bincount(  # the photos' own nearest-bin histogram: the weights average 1 on it
        soft_encode(photos.ab, centres).argmax(1).flatten(), minlength=len(centres)
    )
    assert float((p / p.sum() * everything).sum()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="train_set is empty"):
        photo_rebalance_weights(RandomPairs(0), centres)


def _config(**changes) -> TrainConfig:
    values = dict(
        model="classifier",
        model_kwargs={"trunk": "unet", "trunk_kwargs": TRUNK, "num_features": 8},
        discriminator=None,
        objective="classification",
        image_size=SIZE,
        batch_size=4,
        stages=(Stage("pretrain", max_steps=3),),
        val_every=0,
        num_val_images=2,
        num_sample_images=1,
        num_workers=0,
    )
    return TrainConfig(**{**values, **changes})


def test_the_config_builds_the_objective_from_the_training_photos():
    photos = RandomPairs(6, size=SIZE)
    objective = build_objective(_config(), photos)
    assert isinstance(objective, ClassificationObjective) and objective.prediction == "logits"
    assert objective.class_weights.std() > 0  # rebalanced
    flat = build_objective(_config(rebalance_lambda=1.0))  # no photos needed
    assert torch.equal(flat.class_weights, torch.ones(229))
    with pytest.raises(ValueError, match="needs train_set"):
        build_objective(_config())
    with pytest.raises(ValueError, match="'pretrain' stages only"):
        _config(stages=(Stage("gan", max_steps=1),), discriminator="patchgan")
    with pytest.raises(ValueError, match=r"rebalance_lambda must be in \(0, 1\], got 0"):
        _config(rebalance_lambda=0)
    with pytest.raises(ValueError, match="needs train_set"):
        build_classification_objective(None, lam=0.5)


def test_pretrain_step_asks_the_generator_for_logits_through_its_forward():
    net = build_generator(_config())
    calls = []

    class Wrapper(nn.Module):  # stands for DDP: only its forward may be called
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, L, **kwargs):
            calls.append(kwargs)
            return self.module(L, **kwargs)

    data = RandomPairs(4, size=SIZE, learnable=True)
    objective = build_objective(_config(), data)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    batch = (data.L, data.ab)
    losses = [pretrain_step(Wrapper(net), optimizer, objective, batch) for _ in range(6)]
    assert calls == [{"return_logits": True}] * 6
    assert set(losses[0]) == {"total", "ce"}
    assert losses[-1]["total"] < losses[0]["total"]  # one batch, overfitted a little


def test_fit_trains_saves_and_reloads_the_classifier(tmp_path):
    data, val = RandomPairs(8, size=SIZE, learnable=True), RandomPairs(2, seed=1, size=SIZE)
    path = tmp_path / "classifier.pt"
    result = fit(_config(), data, val, "cpu", path, progress=False)
    assert result.complete and [row["step"] for row in result.history] == [1, 2, 3]
    assert set(result.history[0]["losses"]) == {"total", "ce"}
    assert result.validations[-1]["metrics"]["psnr"] > 0  # validation ran on decoded ab
    generator, config = load_generator(path)
    assert (
        isinstance(generator, ClassificationColorizer) and config["objective"] == "classification"
    )
    assert generator.temperature == pytest.approx(0.38)
    torch.testing.assert_close(generator(val.L), result.generator(val.L))
