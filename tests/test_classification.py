"""Colorization as classification: ClassificationColorizer (colorlib.models.classification), its
rebalanced cross-entropy (colorlib.training.classification) and a run of fit() with both.
Tiny U-Net trunks on 16 px synthetic pairs keep every test to about a second."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import RandomPairs
from torch import nn

from colorlib.ab_bins import annealed_mean, gamut_bins, mode_ab, soft_encode
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
LOW = SIZE // 4  # the logits' side at the default downsample


@pytest.fixture(scope="module")
def centres():
    return gamut_bins()


def tiny(**kwargs) -> ClassificationColorizer:
    torch.manual_seed(0)
    return ClassificationColorizer("unet", dict(TRUNK), num_features=8, **kwargs)


def _L(n=2, seed=0):
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _upsampled(ab):
    return F.interpolate(ab, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def test_the_classifier_gives_full_size_ab_and_quarter_resolution_logits():
    net = tiny().eval()
    L = _L()
    logits, ab = net.logits(L), net(L)
    assert logits.shape == (2, 229, LOW, LOW) and ab.shape == (2, 2, SIZE, SIZE)
    assert net.num_bins == 229 and net.required_multiple == 8 and net.downsample == 4
    # one process, the same input and shapes, eval mode: the same computation, bit for bit
    assert torch.equal(ab, net.decode(logits, size=L.shape[-2:]))
    assert torch.equal(ab, _upsampled(annealed_mean(logits, net.centres, net.temperature)))
    assert torch.equal(net(L, return_logits=True), logits)
    assert net.decode(logits).shape == (2, 2, LOW, LOW)  # no size: the logits' resolution
    assert torch.equal(net.decode(logits, size=(LOW, LOW)), net.decode(logits))
    assert (ab.abs() <= net.centres.abs().max() / AB_SCALE + 1e-6).all()
    mode = net.decode_mode(logits, size=L.shape[-2:])
    assert torch.equal(mode, _upsampled(mode_ab(logits, net.centres)))
    assert torch.equal(net.decode_mode(logits), mode_ab(logits, net.centres))
    assert "downsample=4" in repr(net)


def test_the_pooled_features_head_is_the_pool_of_full_resolution_logits():
    net = tiny().eval()
    L = _L()
    with torch.no_grad():
        full = net.head(net.trunk(L))  # (B, Q, H, W): the head on every pixel
        pooled = F.avg_pool2d(full, kernel_size=4, stride=4)
        logits = net.logits(L)
    # a 1x1 conv is affine per pixel, so it commutes with the average; equal up to float
    # rounding only, since the sums run in another order (16 features, then 8 channels)
    torch.testing.assert_close(logits, pooled, rtol=1e-5, atol=1e-5)
    assert logits.shape == pooled.shape == (2, 229, LOW, LOW)


def test_downsample_one_predicts_per_pixel_as_before():
    net = tiny(downsample=1).eval()
    L = _L()
    logits = net.logits(L)
    assert logits.shape == (2, 229, SIZE, SIZE)
    assert torch.equal(logits, net.head(net.trunk(L)))  # no pooling at all
    assert torch.equal(net(L), annealed_mean(logits, net.centres, net.temperature))
    assert torch.equal(net(L), net.decode(logits))  # size given or not: nothing to resize
    assert torch.equal(net.decode_mode(logits, size=(SIZE, SIZE)), mode_ab(logits, net.centres))
    assert net.model_kwargs["downsample"] == 1 and "downsample=1" in repr(net)


def test_bad_downsamples_and_sizes_raise():
    for bad in (0, -4, 2.0, True, "4"):
        with pytest.raises(ValueError, match="downsample must be an int >= 1"):
            tiny(downsample=bad)
    with pytest.raises(
        ValueError, match="downsample 3 must divide the trunk's required_multiple 8"
    ):
        tiny(downsample=3)
    net = tiny(downsample=4)
    with pytest.raises(ValueError, match="input size 18x16 must be divisible by downsample 4"):
        net(torch.zeros(1, 1, 18, 16))
    with pytest.raises(ValueError, match="multiples of 8"):  # the trunk's own check
        net(torch.zeros(1, 1, 20, 16))
    with pytest.raises(ValueError, match="size must be"):
        net.decode(torch.zeros(1, 229, 4, 4), size=(16,))


def test_temperature_is_settable_and_used_by_forward():
    net = tiny(temperature=0.5).eval()
    L = _L()
    net.temperature = 1.0
    torch.testing.assert_close(net(L), _upsampled(annealed_mean(net.logits(L), net.centres, 1.0)))
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


@pytest.mark.parametrize("downsample", [1, 2, 8])
def test_downsample_travels_in_model_kwargs(downsample):
    net = tiny(downsample=downsample)
    assert net.model_kwargs["downsample"] == downsample
    again = build_model("classifier", pretrained=False, **net.model_kwargs)
    assert again.downsample == downsample and again.model_kwargs == net.model_kwargs
    again.load_state_dict(net.state_dict())
    L = _L()
    side = SIZE // downsample
    assert again.eval().logits(L).shape == (2, 229, side, side)
    torch.testing.assert_close(again(L), net.eval()(L))


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


def test_low_resolution_logits_are_scored_against_the_pooled_truth(centres):
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, len(centres), 2, 3, generator=g) * 2  # 1/4 of 8x12
    real_ab = (torch.rand(2, 2, 8, 12, generator=g) - 0.5) * 1.2
    weights = torch.rand(len(centres), generator=g) + 0.5
    objective = ClassificationObjective(centres, weights)
    losses = objective(None, real_ab, logits)
    pooled = real_ab.reshape(2, 2, 2, 4, 3, 4).mean(dim=(3, 5))  # the mean ab of each 4x4 cell
    at_low = objective(None, pooled, logits)  # same size: scored as it is
    torch.testing.assert_close(losses["total"], at_low["total"])
    expected = _numpy_loss(
        logits.double().numpy(),
        pooled.double().numpy(),
        centres.double().numpy(),
        weights.double().numpy(),
    )
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
    for side in (6, 2):  # not a multiple of the logits' 4, or smaller
        with pytest.raises(ValueError, match=rf"real_ab \(1, 2, {side}, {side}\) must be"):
            objective(None, torch.zeros(1, 2, side, side), logits)
    with pytest.raises(ValueError, match=r"real_ab \(2, 2, 4, 4\) must be"):
        objective(None, torch.zeros(2, 2, 4, 4), logits)
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


def test_a_classifier_saved_before_downsample_existed_reloads_at_full_resolution(tmp_path):
    data, val = RandomPairs(8, size=SIZE, learnable=True), RandomPairs(2, seed=1, size=SIZE)
    config = _config()
    config = config.replace(model_kwargs={**config.model_kwargs, "downsample": 1})
    path = tmp_path / "old.pt"
    result = fit(config, data, val, "cpu", path, progress=False)
    state = torch.load(path, weights_only=False)
    for kwargs in (state.get("generator_kwargs"), state["config"]["model_kwargs"]):
        if kwargs:
            kwargs.pop("downsample")  # as the checkpoints of the first classifier were
    torch.save(state, path)
    generator, _ = load_generator(path)
    assert generator.downsample == 1
    torch.testing.assert_close(generator(val.L), result.generator(val.L))
