"""colorlib.models.blocks: pix2pix initialisation, conv units, input checks."""

import pytest
import torch
from torch import nn

from colorlib.models.blocks import (
    ConvNormAct,
    DecoderBlock,
    check_image_batch,
    count_parameters,
    init_weights,
)


def test_init_weights_statistics_match_pix2pix():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(64, 128, 3),
        nn.BatchNorm2d(4096),
        nn.ConvTranspose2d(128, 64, 4),
        nn.Linear(256, 256),
        nn.GroupNorm(8, 4096),
    )
    assert init_weights(net, std=0.02) is net
    for layer in (net[0], net[2], net[3]):
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 1e-3
        assert w.std().item() == pytest.approx(0.02, rel=0.02)
        assert torch.all(layer.bias == 0)
    for norm in (net[1], net[4]):
        assert norm.weight.mean().item() == pytest.approx(1.0, abs=2e-3)
        assert norm.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.all(norm.bias == 0)


def test_init_weights_honours_std_and_rejects_bad_std():
    torch.manual_seed(0)
    conv = init_weights(nn.Conv2d(64, 64, 3), std=0.1)
    assert conv.weight.std().item() == pytest.approx(0.1, rel=0.03)
    with pytest.raises(ValueError, match="std"):
        init_weights(conv, std=0.0)


def test_count_parameters_counts_parameters_not_buffers():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))
    assert count_parameters(net) == 3 * 8 * 9 + 2 * 8
    net[0].weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 16


def test_conv_norm_act_layers_shape_and_bias():
    block = ConvNormAct(3, 8, kernel_size=4, stride=2, padding=1, activation="leaky_relu")
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert block[0].bias is None  # the norm's shift replaces it
    assert block[2].negative_slope == 0.2
    assert block(torch.zeros(2, 3, 16, 16)).shape == (2, 8, 8, 8)
    plain = ConvNormAct(3, 8, norm=False, activation=None)
    assert len(plain) == 1 and plain[0].bias is not None
    assert plain(torch.zeros(1, 3, 5, 7)).shape == (1, 8, 5, 7)  # padding k // 2 keeps size


def test_conv_norm_act_rejects_unknown_activation():
    with pytest.raises(ValueError, match="gelu"):
        ConvNormAct(3, 8, activation="gelu")


def test_decoder_block_upsamples_and_fuses_the_skip():
    block = DecoderBlock(16, 8, 4)
    out = block(torch.randn(2, 16, 4, 6), torch.randn(2, 8, 8, 12))
    assert out.shape == (2, 4, 8, 12)
    assert (out >= 0).all()  # ends in ReLU
    no_skip = DecoderBlock(16, 0, 4)
    assert no_skip(torch.randn(1, 16, 3, 3)).shape == (1, 4, 6, 6)


def test_decoder_block_rejects_a_skip_that_does_not_fit():
    block = DecoderBlock(16, 8, 4)
    with pytest.raises(ValueError, match="skip"):
        block(torch.randn(1, 16, 4, 4), torch.randn(1, 8, 4, 4))  # wrong resolution
    with pytest.raises(ValueError, match="8 channels"):
        block(torch.randn(1, 16, 4, 4), torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="skip"):
        block(torch.randn(1, 16, 4, 4))


def test_check_image_batch_accepts_good_and_names_bad_input():
    check_image_batch(torch.zeros(2, 1, 64, 32), "L", 1, multiple=32)
    with pytest.raises(TypeError, match="floating-point"):
        check_image_batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "L", 1)
    with pytest.raises(TypeError, match="ndarray"):
        check_image_batch(torch.zeros(1, 1, 8, 8).numpy(), "L", 1)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*\(1, 8, 8\)"):
        check_image_batch(torch.zeros(1, 8, 8), "L", 1)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\)"):
        check_image_batch(torch.zeros(2, 3, 8, 8), "L", 1)
    with pytest.raises(ValueError, match="48x64.*multiples of 32"):
        check_image_batch(torch.zeros(1, 1, 48, 64), "L", 1, multiple=32)
