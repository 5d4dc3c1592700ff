"""colorlib.models.unet: the pix2pix U-Net, against the reference sizes and layer layout."""

import pytest
import torch
from torch import nn

from colorlib.models import build_model
from colorlib.models.blocks import count_parameters
from colorlib.models.unet import UNetGenerator


def _tiny(**kwargs):
    torch.manual_seed(0)
    return UNetGenerator(**{"base_channels": 8, "num_downs": 5, **kwargs})


@pytest.fixture(scope="module")
def reference_net():
    return UNetGenerator()  # built once (about a second), never run: forward is slow on CPU


def test_reference_parameter_count_is_exact(reference_net):
    net = reference_net
    # junyanz's UnetGenerator(1, 2, 8, ngf=64, norm_layer=BatchNorm2d), counted by hand:
    # encoder 19,535,616 + decoder 34,874,242
    assert count_parameters(net) == 54_409_858
    assert round(count_parameters(net) / 1e6, 2) == 54.41
    assert net.channels == (1, 64, 128, 256, 512, 512, 512, 512, 512)
    assert net.required_multiple == 256


def test_layer_layout_and_bias_choices_follow_the_reference(reference_net):
    net = reference_net
    outer_down, inner_down = net.down[0], net.down[-1]
    assert [type(m) for m in outer_down] == [nn.Conv2d]  # no activation, no norm
    assert [type(m) for m in inner_down] == [nn.LeakyReLU, nn.Conv2d]  # no norm at 1x1
    assert all(m.negative_slope == 0.2 for m in net.modules() if isinstance(m, nn.LeakyReLU))
    assert [type(m) for m in net.up[0]] == [nn.ReLU, nn.ConvTranspose2d, nn.Tanh]
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    # modules list down[0..7] then up[0..7]; only the head up[0] has a bias
    assert [m.bias is not None for m in convs] == [False] * 8 + [True] + [False] * 7
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in convs)


def test_dropout_sits_in_the_three_decoder_blocks_after_the_innermost():
    net = UNetGenerator(base_channels=2, num_downs=8)
    with_dropout = [i for i, up in enumerate(net.up) if any(isinstance(m, nn.Dropout) for m in up)]
    # up[i] doubles level i + 1 to level i: outputs at 1/16, 1/32 and 1/64 of the input;
    # the innermost decoder block (up[7]) and the outer four have none, as in junyanz's code
    assert with_dropout == [4, 5, 6]
    assert all(m.p == 0.5 for m in net.modules() if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(2, 2, 2, 8, dropout=0.0).up)
    assert not any(isinstance(m, nn.Dropout) for m in _tiny().modules())  # 5 levels: none


def test_dropout_makes_training_stochastic_and_eval_deterministic():
    net = UNetGenerator(base_channels=4, num_downs=6)  # one dropout block, at 1/16
    L = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        net.train()
        assert not torch.equal(net(L), net(L))
        net.eval()
        assert torch.equal(net(L), net(L))  # bit-exact: same process, same input, same kernel


def test_init_weights_statistics():
    net = UNetGenerator(base_channels=16, num_downs=6)
    weights = torch.cat(
        [
            m.weight.flatten()
            for m in net.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
        ]
    )
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(
        0.02, rel=0.02
    )
    scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert scales.std().item() == pytest.approx(0.02, rel=0.2)
    biases = [m.bias for m in net.modules() if getattr(m, "bias", None) is not None]
    assert all(torch.all(b == 0) for b in biases)


@pytest.mark.parametrize("size", [(32, 32), (64, 96)])
def test_forward_shape_and_range(size):
    net = _tiny().eval()
    L = torch.rand(3, 1, *size) * 2 - 1
    with torch.no_grad():
        ab = net(L)
    assert ab.shape == (3, 2, *size) and ab.dtype == torch.float32
    assert ab.abs().max() <= 1.0 and ab.std() > 0


def test_gradient_reaches_every_parameter():
    net = _tiny(num_downs=6)
    net(torch.rand(2, 1, 64, 64) * 2 - 1).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise_clear_errors():
    net = _tiny()
    with pytest.raises(ValueError, match="40x40.*multiples of 32"):
        net(torch.zeros(1, 1, 40, 40))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.zeros(1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.zeros(1, 1, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="dropout"):
        UNetGenerator(dropout=1.0)
    with pytest.raises(ValueError, match="num_downs"):
        UNetGenerator(num_downs=0)


def test_for_image_size_picks_log2_levels():
    assert UNetGenerator.for_image_size(256, base_channels=2).num_downs == 8
    net = UNetGenerator.for_image_size(32, base_channels=4, dropout=0.0)
    assert net.num_downs == 5 and net.required_multiple == 32
    assert net.model_kwargs["dropout"] == 0.0
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    for bad in (100, 0, 1, 96.0):
        with pytest.raises(ValueError, match=str(bad)):
            UNetGenerator.for_image_size(bad)


def test_model_kwargs_rebuild_the_same_network():
    net = UNetGenerator.for_image_size(64, base_channels=4)
    copy = UNetGenerator(**net.model_kwargs)
    copy.load_state_dict(net.state_dict())  # strict: same keys and shapes
    assert net.model_kwargs == dict(
        in_channels=1, out_channels=2, base_channels=4, num_downs=6, dropout=0.5
    )


def test_build_model_unet():
    net = build_model("unet", base_channels=8, num_downs=5)
    assert isinstance(net, UNetGenerator)
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2, 32, 32)
