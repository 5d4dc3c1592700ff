"""colorlib.models.patchgan: the 70x70 PatchGAN, against the reference sizes."""

import pytest
import torch
from torch import nn

from colorlib.models import build_model
from colorlib.models.blocks import count_parameters
from colorlib.models.patchgan import PatchDiscriminator


def test_reference_parameter_count_is_exact():
    net = PatchDiscriminator()
    # junyanz's NLayerDiscriminator(3, ndf=64, n_layers=3, norm_layer=BatchNorm2d):
    # 3,136 + 131,072 + 256 + 524,288 + 512 + 2,097,152 + 1,024 + 8,193
    assert count_parameters(net) == 2_765_633
    assert round(count_parameters(net) / 1e6, 2) == 2.77


def test_layer_layout_follows_the_reference():
    net = PatchDiscriminator()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 64, 2),
        (64, 128, 2),
        (128, 256, 2),
        (256, 512, 1),
        (512, 1, 1),
    ]
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3


def test_receptive_field_is_70_by_default_and_follows_the_layers():
    assert PatchDiscriminator().receptive_field() == 70
    expected = {1: 16, 2: 34, 3: 70, 4: 142}  # the pix2pix paper's 16x16 ... PatchGANs
    for num_layers, field in expected.items():
        assert PatchDiscriminator(base_channels=2, num_layers=num_layers).receptive_field() == field


@pytest.mark.parametrize("num_layers", [1, 3])
def test_receptive_field_matches_the_gradient_support_of_one_logit(num_layers):
    torch.manual_seed(0)
    net = PatchDiscriminator(base_channels=4, num_layers=num_layers).eval()
    for m in net.modules():  # unit-scale weights keep the far-reaching gradients well above 0
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight)
    L = torch.randn(1, 1, 160, 160, requires_grad=True)
    logits = net(L, torch.randn(1, 2, 160, 160))
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    rows = L.grad[0, 0].abs().sum(dim=1).nonzero()
    assert rows.max() - rows.min() + 1 == net.receptive_field()


def test_logits_are_30x30_for_256x256():
    assert PatchDiscriminator().output_size(256, 256) == (30, 30)
    net = PatchDiscriminator(base_channels=8)
    logits = net(torch.rand(2, 1, 256, 256) * 2 - 1, torch.rand(2, 2, 256, 256) * 2 - 1)
    assert logits.shape == (2, 1, 30, 30)


def test_forward_is_conditional_on_L():
    torch.manual_seed(0)
    net = PatchDiscriminator(base_channels=8).eval()
    ab = torch.rand(1, 2, 64, 64) * 2 - 1
    with torch.no_grad():
        a = net(torch.zeros(1, 1, 64, 64), ab)
        b = net(torch.ones(1, 1, 64, 64), ab)
    assert a.shape == (1, 1, *net.output_size(64, 64)) and not torch.allclose(a, b)


def test_gradient_reaches_every_parameter():
    net = PatchDiscriminator(base_channels=4)
    net(torch.randn(2, 1, 64, 64), torch.randn(2, 2, 64, 64)).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise_clear_errors():
    net = PatchDiscriminator(base_channels=4)
    L, ab = torch.zeros(1, 1, 64, 64), torch.zeros(1, 2, 64, 64)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        net(L, torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 64, 64), ab)
    with pytest.raises(ValueError, match="share"):
        net(L, torch.zeros(1, 2, 32, 64))
    with pytest.raises(ValueError, match="share"):
        net(torch.zeros(2, 1, 64, 64), ab)
    with pytest.raises(ValueError, match="16x16 is too small"):
        net(torch.zeros(1, 1, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="num_layers"):
        PatchDiscriminator(num_layers=0)


def test_init_weights_applied():
    torch.manual_seed(0)
    net = PatchDiscriminator()
    conv = net.layers[2][0]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert net.layers[2][1].weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_build_model_patchgan_and_model_kwargs():
    net = build_model("patchgan", base_channels=8, num_layers=2)
    assert isinstance(net, PatchDiscriminator) and net.receptive_field() == 34
    copy = PatchDiscriminator(**net.model_kwargs)
    copy.load_state_dict(net.state_dict())
