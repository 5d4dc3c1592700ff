"""DDColor: released state-dict layout, shapes, gradients, checkpointing, loaders, conversion."""

import copy
from dataclasses import FrozenInstanceError, asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorlib.models import build_model
from colorlib.models.convnext import ConvNeXt, convnext_from_torchvision
from colorlib.models.ddcolor import (
    PRESETS,
    DDColor,
    DDColorConfig,
    build_ddcolor,
    forward_with_maps,
    load_released_checkpoint,
)
from colorlib.models.ddcolor_color import Attention, sine_position_encoding
from colorlib.models.ddcolor_pixel import PixelShuffleUp, spectral_conv
from colorlib.models.released import compare_with_release, released_listing

TINY_WEIGHTS = "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"
# a DDColor with the ConvNeXt-T widths but one block per stage and small decoders
TRUNCATED_TINY = dict(
    encoder_depths=(1, 1, 1, 1),
    pixel_channels=(16, 16, 16),
    embed_dim=16,
    hidden_dim=16,
    num_queries=4,
    num_heads=2,
    ffn_dim=16,
    num_blocks=1,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _micro(**overrides) -> DDColor:
    torch.manual_seed(0)
    return build_ddcolor("micro", pretrained=False, **overrides)


def _L(batch=2, height=64, width=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, height, width, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def torchvision_tiny_state():
    """A torchvision convnext_tiny state dict with every tensor random (so swaps show)."""
    from torchvision.models import convnext_tiny

    torch.manual_seed(1)
    return {k: torch.randn_like(v) for k, v in convnext_tiny().state_dict().items()}


@pytest.mark.parametrize("name", ["tiny", "large"])
def test_state_dict_matches_released_checkpoint(name):
    with torch.device("meta"):  # shapes only: DDColor-large has 228 M numbers
        model = getattr(DDColor, name)(pretrained=False)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == released_listing(name)  # same keys, shapes and order
    assert compare_with_release(model, name).matches
    if name == "tiny":
        assert sum(v.numel() for v in model.state_dict().values()) == 55_051_016


def test_presets_have_the_documented_sizes():
    with torch.device("meta"):
        counts = {
            name: sum(p.numel() for p in build_ddcolor(name, pretrained=False).parameters())
            for name in PRESETS
        }
    assert counts["large"] > 4 * counts["tiny"] > 200e6
    assert counts["report"] < counts["tiny"] and counts["cpu"] < 10e6 and counts["micro"] < 0.5e6
    report = PRESETS["report"]
    assert (report.num_heads, report.num_queries, report.num_blocks) == (2, 50, 4)
    assert report.encoder_dims == PRESETS["tiny"].encoder_dims


def test_forward_shapes_micro():
    model = _micro()
    assert model(_L(2, 64, 64)).shape == (2, 2, 64, 64)
    assert model(_L(1, 64, 96)).shape == (1, 2, 64, 96)
    assert model.color_maps(torch.rand(1, 3, 32, 64)).shape == (1, 8, 32, 64)


@pytest.mark.slow
def test_forward_shapes_tiny_at_64px():
    torch.manual_seed(0)
    model = DDColor.tiny(pretrained=False).eval()
    with torch.inference_mode():
        ab = model(_L(1, 64, 64))
    assert ab.shape == (1, 2, 64, 64) and torch.isfinite(ab).all()
    assert ab.abs().max() < 1  # a fresh network predicts small, in-range chroma


def test_forward_feeds_the_released_models_gray_rgb_and_returns_normalised_ab():
    # the released DDColor sees RGB = lab2rgb(L*, 0, 0) and predicts raw Lab ab; the reference
    # conversion is scikit-image's, independent of colorlib.color
    from skimage.color import lab2rgb

    model = _micro().eval()
    L = _L(batch=1)
    lab = np.zeros((*L.shape[-2:], 3))
    lab[..., 0] = (L[0, 0].double().numpy() + 1) * 50
    rgb = torch.from_numpy(lab2rgb(lab)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        raw_ab = model.forward_rgb(rgb)
        torch.testing.assert_close(model(L), raw_ab / 110.0, atol=2e-4, rtol=1e-3)


def test_ab_of_a_fresh_model_lies_in_the_normalised_range():
    # spectral norm starts with settled power iterations: without them eval-mode outputs
    # of a fresh network were scaled by an arbitrary factor (about 1e6 here)
    for mode in ("eval", "train"):
        model = getattr(_micro(), mode)()
        with torch.no_grad():
            ab = model(_L(4))
        assert torch.isfinite(ab).all() and ab.abs().max() < 1, mode


@pytest.mark.parametrize("shape", [(1, 1, 64, 48), (1, 1, 40, 64), (1, 1, 16, 16)])
def test_sizes_that_are_not_multiples_of_32_raise(shape):
    with pytest.raises(ValueError, match=rf"multiples of 32, got {shape[2]}x{shape[3]}"):
        _micro()(torch.zeros(shape))


def test_wrong_channels_or_dtype_raise():
    model = _micro()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.forward_rgb(torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError, match="floating point"):
        model.forward_rgb(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_gradient_reaches_every_parameter():
    model = _micro()
    model(_L()).square().mean().backward()
    unused = {"encoder.arch.norm.weight", "encoder.arch.norm.bias"}  # classifier norm, unused
    for name, parameter in model.named_parameters():
        if name in unused:
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_identical_outputs_and_gradients():
    plain = _micro()
    checkpointed = copy.deepcopy(plain)
    checkpointed.gradient_checkpointing = True
    assert (
        not plain.gradient_checkpointing and checkpointed.decoder.last_shuf.gradient_checkpointing
    )
    calls = []
    block = checkpointed.encoder.arch.stages[0][0]
    block.register_forward_pre_hook(lambda *_: calls.append("encoder"))
    ffn = checkpointed.decoder.color_decoder.transformer_ffn_layers[0]
    ffn.register_forward_pre_hook(lambda *_: calls.append("colour"))
    L = _L()
    outputs = [model(L) for model in (plain, checkpointed)]
    for out in outputs:
        out.square().mean().backward()
    # bit-exact: checkpointing reruns the same forward ops on the same shapes in this process
    assert torch.equal(outputs[0], outputs[1])
    assert sorted(calls) == ["colour", "colour", "encoder", "encoder"]  # recomputed once
    grads = dict(checkpointed.named_parameters())
    for name, parameter in plain.named_parameters():
        if parameter.grad is not None:
            assert torch.equal(parameter.grad, grads[name].grad), name


def test_folded_fusion_equals_the_explicit_query_maps():
    model = _micro().eval()
    rgb = torch.rand(2, 1, 64, 64).expand(2, 3, 64, 64)
    with torch.no_grad():
        explicit = model.refine_net(torch.cat((model.color_maps(rgb), model.normalize(rgb)), 1))
        assert torch.allclose(model.forward_rgb(rgb), explicit, atol=1e-5)


def test_forward_with_maps_builds_the_query_maps_and_gives_forward_rgbs_ab():
    model = build_ddcolor("micro", pretrained=False).eval()
    rgb = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1)).expand(2, 3, 64, 64)
    fused = []
    model.refine_net.register_forward_pre_hook(lambda _, args: fused.append(args[0]))
    with torch.no_grad():
        ab = forward_with_maps(model, rgb)
        expected = model.forward_rgb(rgb)
        maps = model.color_maps(rgb)
    torch.testing.assert_close(ab, expected, atol=1e-4, rtol=1e-4)
    assert ab.shape == (2, 2, 64, 64) and ab.abs().max() > 0
    # the fusion read all Q full-resolution maps and the normalised input: 8 + 3 channels
    assert len(fused) == 1 and fused[0].shape == (2, 8 + 3, 64, 64)
    torch.testing.assert_close(fused[0][:, :8], maps)
    torch.testing.assert_close(fused[0][:, 8:], model.normalize(rgb))
    with pytest.raises(ValueError, match="multiples of 32"):
        forward_with_maps(model, torch.zeros(1, 3, 48, 64))


def test_forward_projected_equals_einsum_over_the_upsampled_map():
    torch.manual_seed(0)
    up = PixelShuffleUp(6, 5, scale=4, batch_norm=False).eval()
    x, matrix = torch.randn(2, 6, 3, 4), torch.randn(2, 3, 5)
    expected = torch.einsum("bkc,bchw->bkhw", matrix, up(x))
    assert torch.allclose(up.forward_projected(x, matrix), expected, atol=1e-5)
    with pytest.raises(ValueError, match="BatchNorm"):
        PixelShuffleUp(6, 5, 2, batch_norm=True).forward_projected(x, matrix)


def test_channels_last_gives_the_same_output():
    model = _micro().eval()
    L = _L()
    with torch.no_grad():
        expected = model(L)
        model = model.to(memory_format=torch.channels_last)
        assert torch.allclose(model(L.contiguous(memory_format=torch.channels_last)), expected)


def test_attention_matches_nn_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(16, 4)
    reference = nn.MultiheadAttention(16, 4)
    reference.load_state_dict(ours.state_dict())  # same parameter names
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    expected = reference(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1))[0]
    assert torch.allclose(ours(q, kv, kv), expected.transpose(0, 1), atol=1e-6)
    expected = reference(q.transpose(0, 1), q.transpose(0, 1), q.transpose(0, 1))[0]
    assert torch.allclose(ours(q, q, q), expected.transpose(0, 1), atol=1e-6)  # self-attention


def test_sine_position_encoding_matches_detr():
    height, width, dim = 3, 5, 8
    # DETR's PositionEmbeddingSine(dim / 2, normalize=True) on an unmasked map
    y = torch.ones(1, height, width).cumsum(1)
    x = torch.ones(1, height, width).cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * torch.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * torch.pi
    dim_t = 10000 ** (2 * (torch.arange(dim // 2) // 2) / (dim // 2))
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    expected = torch.cat((py, px), dim=3).permute(0, 3, 1, 2).flatten(2)[0].T  # (h*w, dim)
    assert torch.allclose(sine_position_encoding(height, width, dim), expected, atol=1e-6)


def test_spectral_conv_starts_with_a_good_estimate_of_the_largest_singular_value():
    torch.manual_seed(0)
    conv = spectral_conv(32, 64, 3, bias=False)
    matrix = conv.weight_orig.detach().flatten(1)
    sigma = (conv.weight_u @ matrix @ conv.weight_v).item()
    assert sigma == pytest.approx(torch.linalg.matrix_norm(matrix, ord=2).item(), rel=0.05)
    assert [k for k, _ in conv.state_dict().items()] == ["weight_orig", "weight_u", "weight_v"]


def test_released_checkpoint_round_trip(tmp_path):
    source, target = _micro(), _micro(num_queries=8)
    torch.nn.init.normal_(source.decoder.color_decoder.query_feat.weight)
    path = tmp_path / "ddcolor.pth"
    torch.save({"params": source.state_dict()}, path)
    loaded = load_released_checkpoint(target, path)
    assert loaded is target and not target.training
    with torch.no_grad():
        assert torch.equal(target(_L()), source.eval()(_L()))


@pytest.mark.slow
def test_released_checkpoint_errors_name_missing_and_unexpected_keys(tmp_path):
    model = DDColor.tiny(pretrained=False)
    state = model.state_dict()
    del state["decoder.color_decoder.level_embed.weight"]
    state["decoder.color_decoder.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({"params": state}, path)
    with pytest.raises(ValueError) as error:
        load_released_checkpoint(model, path)
    message = str(error.value)
    assert "missing keys ['decoder.color_decoder.level_embed.weight']" in message
    assert "unexpected keys ['decoder.color_decoder.extra_head.weight']" in message


def test_released_checkpoint_errors_name_shape_mismatches_and_bad_files(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"params": _micro(num_queries=4).state_dict()}, path)
    with pytest.raises(ValueError, match=r"query_feat\.weight: checkpoint \(4, 16\) vs model"):
        load_released_checkpoint(_micro(), path)
    torch.save(_micro().state_dict(), path)  # no {"params": ...} wrapper
    with pytest.raises(ValueError, match="params"):
        load_released_checkpoint(_micro(), path)


@pytest.mark.slow
def test_torchvision_convnext_tiny_names_convert_to_ours(torchvision_tiny_state):
    converted = convnext_from_torchvision(torchvision_tiny_state)
    net = ConvNeXt()
    summary = net.load_torchvision_weights(torchvision_tiny_state)
    assert "skipped 0" in summary
    ours = net.state_dict()
    assert set(converted) == set(ours) - {
        f"norm{i}.{p}" for i in range(4) for p in "weight bias".split()
    }
    kept = {k: v for k, v in torchvision_tiny_state.items() if not k.startswith("classifier.2")}
    # each torchvision tensor is used exactly once (the names map one to one)
    assert sorted(v.data_ptr() for v in converted.values()) == sorted(
        v.data_ptr() for v in kept.values()
    )
    pairs = {
        "features.0.1.bias": "downsample_layers.0.1.bias",
        "features.5.4.block.2.bias": "stages.2.4.norm.bias",
        "features.5.4.block.0.bias": "stages.2.4.dwconv.bias",
        "features.7.2.layer_scale": "stages.3.2.gamma",
        "features.6.0.weight": "downsample_layers.3.0.weight",
        "classifier.0.weight": "norm.weight",
    }
    for tv_key, key in pairs.items():
        assert torch.equal(ours[key], torchvision_tiny_state[tv_key].flatten()), key
    for key, value in converted.items():  # and was loaded unchanged
        assert torch.equal(ours[key], value), key
    assert torch.equal(ours["norm2.weight"], torch.ones(384))  # no ImageNet counterpart


def test_converted_convnext_computes_what_torchvision_computes():
    from torchvision.models.convnext import CNBlockConfig
    from torchvision.models.convnext import ConvNeXt as TorchvisionConvNeXt

    torch.manual_seed(0)
    settings = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 1)]
    settings.append(CNBlockConfig(64, None, 1))
    reference = TorchvisionConvNeXt(settings).eval()
    state = {k: torch.randn_like(v) * 0.1 for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    net = ConvNeXt((1, 2, 1, 1), (8, 16, 32, 64)).eval()
    net.load_torchvision_weights(state)
    x = h = torch.randn(1, 3, 64, 64)
    for down, stage in zip(net.downsample_layers, net.stages, strict=True):
        h = stage(down(h))  # the stage chain, before DDColor's feature norms
    assert torch.allclose(h, reference.features(x), atol=1e-4)
    truncated = ConvNeXt((1, 1, 1, 1), (8, 16, 32, 64))
    assert "skipped 1 deeper block" in truncated.load_torchvision_weights(state)
    with pytest.raises(ValueError, match="does not fit"):
        ConvNeXt((1, 1, 1, 1), (8, 16, 32, 32)).load_torchvision_weights(state)


@pytest.mark.slow
def test_pretrained_encoder_loads_from_the_hub_cache(
    tmp_path, monkeypatch, capsys, torchvision_tiny_state
):
    from torchvision.models import get_weight

    from colorlib.models.pretrained import hub_cache_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    path = hub_cache_path(get_weight(TINY_WEIGHTS).url)
    path.parent.mkdir(parents=True)
    torch.save(torchvision_tiny_state, path)
    model = build_ddcolor("tiny", pretrained=True, **TRUNCATED_TINY)
    expected = torchvision_tiny_state["features.5.0.block.3.weight"]
    assert torch.equal(model.encoder.arch.stages[2][0].pwconv1.weight, expected)
    assert "skipped 14 deeper block" in capsys.readouterr().err


def test_offline_fallback_is_random_init_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    model = build_ddcolor("tiny", pretrained=True, **TRUNCATED_TINY)
    assert "RANDOM init" in capsys.readouterr().err
    assert model(_L(1)).shape == (1, 2, 64, 64)


def test_build_model_registry_micro_trains_a_step():
    torch.manual_seed(0)
    model = build_model("ddcolor", preset="micro", pretrained=False)
    assert isinstance(model, DDColor) and model.config == PRESETS["micro"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    L, real_ab = _L(4), torch.rand(4, 2, 64, 64) * 0.2
    losses = []
    for _ in range(3):
        loss = F.l1_loss(model(L), real_ab)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_build_ddcolor_rejects_unknown_presets_and_options():
    with pytest.raises(ValueError, match="unknown DDColor preset 'huge'"):
        build_ddcolor("huge")
    with pytest.raises(ValueError, match=r"unknown DDColor option\(s\) \['num_querys'\]"):
        build_ddcolor("micro", pretrained=False, num_querys=3)
    with pytest.raises(ValueError, match="num_heads"):
        DDColorConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="encoder_depths"):
        DDColorConfig(encoder_depths=(1, 1, 1))


def test_config_is_frozen_and_rebuilds_the_model():
    model = _micro(num_queries=6)
    with pytest.raises(FrozenInstanceError):
        model.config.num_queries = 3
    stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()}
    rebuilt = build_ddcolor(**stored, pretrained=False)  # as from a checkpoint (lists)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())


def test_every_trainable_parameter_gets_a_gradient_so_ddp_works():
    """DistributedDataParallel fails on trainable parameters that a step never reaches: the
    encoder's classifier norm (held for the released checkpoints) must be frozen, the rest used.
    tests/test_distributed.py runs DDColor under DDP for real."""
    model = build_ddcolor("micro", pretrained=False)
    model(torch.rand(2, 1, 64, 64) * 2 - 1).square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert unused == []
    assert frozen == ["encoder.arch.norm.weight", "encoder.arch.norm.bias"]
