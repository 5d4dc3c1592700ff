"""colorlib.profiling: saved activations, peak memory and timing, checked on known sizes."""

import time

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from colorlib.profiling import PeakMemory, Timing, l1_training_step, saved_for_backward, time_it

MB4 = 1000 * 1000 * 4  # bytes of a float32 (1000, 1000) tensor


def _leaves(*shape, dtype=torch.float32, device="cpu"):
    make = lambda: torch.ones(*shape, dtype=dtype, device=device, requires_grad=True)  # noqa: E731
    return make(), make()


def test_saved_for_backward_counts_a_known_graph():
    x, w = _leaves(100, 10)  # 4,000 bytes each
    # mul saves both operands, relu its output (4,000 bytes), sum only a shape
    assert saved_for_backward(lambda: (x * w).relu().sum()) == 12_000
    assert saved_for_backward(lambda: (x * w).relu().sum(), ignore=[w]) == 8_000
    assert saved_for_backward(lambda: (x * w).relu().sum(), ignore=[x, w]) == 4_000


def test_saved_for_backward_counts_bytes_of_the_dtype():
    x, w = _leaves(100, 10, dtype=torch.float16)
    assert saved_for_backward(lambda: (x * w).relu().sum()) == 6_000


def test_saved_for_backward_counts_a_tensor_saved_twice_once():
    x, _ = _leaves(100, 10)
    assert saved_for_backward(lambda: (x * x).sum()) == 4_000  # mul saves x as both operands


def test_saved_for_backward_counts_views_of_a_storage_once():
    x, _ = _leaves(100, 10)
    assert saved_for_backward(lambda: (x.t() * x.t()).sum()) == 4_000
    assert saved_for_backward(lambda: (x[:50] * x[50:]).sum()) == 4_000  # two halves of x
    assert saved_for_backward(lambda: (x.t() * 2).relu().sum(), ignore=[x]) == 4_000  # relu out


def test_saved_for_backward_leaves_out_views_of_ignored_parameters():
    layer = nn.Linear(10, 20)
    x = torch.ones(8, 10, requires_grad=True)
    # linear saves its input and weight.t() (a view of the weight), relu its output
    saved = saved_for_backward(lambda: layer(x).relu(), ignore=layer.parameters())
    assert saved == (8 * 10 + 8 * 20) * 4
    assert saved_for_backward(lambda: layer(x).relu()) == saved + 20 * 10 * 4


def test_saved_for_backward_is_zero_without_autograd():
    x, w = _leaves(100, 10)
    with torch.no_grad():
        assert saved_for_backward(lambda: (x * w).relu().sum()) == 0
    assert saved_for_backward(lambda: (x.detach() * 2).relu()) == 0


def test_saved_for_backward_works_on_meta_without_memory():
    with torch.device("meta"):
        layer = nn.Linear(10, 20)
        x = torch.zeros(8, 10)
    # linear saves its input (8x10) for the weight's gradient, relu its output (8x20)
    saved = saved_for_backward(lambda: layer(x).relu(), ignore=layer.parameters())
    assert saved == (8 * 10 + 8 * 20) * 4


def test_saved_for_backward_rejects_bad_inputs():
    x, _ = _leaves(2)
    with pytest.raises(TypeError, match="callable"):
        saved_for_backward(x * 2)
    with pytest.raises(TypeError, match="ignore must hold tensors, got list"):
        saved_for_backward(lambda: x * 2, ignore=[[x]])


def test_peak_memory_reports_a_known_allocation():
    with PeakMemory() as tracker:
        x = torch.empty(1000, 1000)
    assert MB4 <= tracker.peak <= 1.01 * MB4
    assert tracker.now == MB4  # x is still alive
    del x
    assert tracker.now == 0  # freed after the block: still noticed


def test_peak_memory_is_the_most_alive_at_once():
    with PeakMemory() as tracker:
        x = torch.zeros(1000, 1000)
        del x
        y = torch.zeros(250, 1000)  # 1 MB after 4 MB was freed
    assert tracker.peak == MB4 and tracker.now == MB4 // 4
    with PeakMemory() as tracker:
        x, y = torch.zeros(1000, 1000), torch.zeros(250, 1000)  # both alive
    assert tracker.peak == MB4 + MB4 // 4
    del x, y


def test_peak_memory_ignores_existing_tensors_and_views():
    a = torch.ones(1000, 1000)
    with PeakMemory(ignore=[a]) as tracker:
        a.add_(1)  # in place: a's own storage
        a.view(-1)[:10].mul_(2)
    assert tracker.peak == 0
    with PeakMemory() as tracker:
        a.add_(1)  # not ignored: counted (once) as a storage the block touched
        a.t()
    assert tracker.peak == MB4


def test_peak_memory_counts_the_backward_pass():
    x, w = _leaves(1000, 1000)
    with PeakMemory(ignore=[x, w]) as tracker:
        (x * w).sum().backward()  # the product is freed by the sum; two gradients stay
    assert 2 * MB4 <= tracker.peak < 3 * MB4
    assert tracker.now >= 2 * MB4  # x.grad and w.grad are alive


def test_peak_memory_skips_meta_tensors():
    with PeakMemory() as tracker:
        torch.empty(10**9, device="meta")
    assert tracker.peak == 0 and tracker.allocator_peak is None


def test_peak_memory_leaves_the_mode_on_error():
    with pytest.raises(RuntimeError, match="boom"), PeakMemory():
        raise RuntimeError("boom")
    assert _get_current_dispatch_mode() is None


def test_peak_memory_rejects_bad_inputs():
    with pytest.raises(TypeError, match="ignore must hold tensors, got int"):
        PeakMemory(ignore=[3])
    with pytest.raises(ValueError, match="device=cpu: only a CUDA device"):
        PeakMemory(device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PeakMemory(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_peak_memory_reads_the_cuda_allocator():
    w = torch.ones(10, device="cuda")
    with PeakMemory(ignore=[w]) as tracker:  # device inferred from the CUDA tensor
        x = torch.empty(1000, 1000, device="cuda")
    assert tracker.device.type == "cuda"
    assert MB4 <= tracker.peak <= 1.01 * MB4
    assert MB4 <= tracker.allocator_peak <= MB4 + 2**21  # the allocator rounds up blocks
    del x


def test_time_it_counts_warmup_and_repeats():
    calls = []
    timing = time_it(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.times) == 3


def test_time_it_measures_wall_clock():
    # sleep() never returns early, so 0.02 s is a guaranteed floor; no ceiling (a loaded
    # machine may take any time), but sleeping must measure longer than doing nothing
    timing = time_it(lambda: time.sleep(0.02), repeats=3, warmup=0)
    nothing = time_it(lambda: None, repeats=3, warmup=0)
    assert 0.02 <= timing.best <= timing.median
    assert nothing.best < timing.best


def test_timing_median_and_best():
    timing = Timing((3.0, 1.0, 2.0, 10.0))
    assert timing.median == 2.5 and timing.best == 1.0


def test_time_it_rejects_bad_inputs():
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        time_it(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0, got -1"):
        time_it(lambda: None, warmup=-1)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 2.5"):
        time_it(lambda: None, repeats=2.5)
    with pytest.raises(TypeError, match="callable"):
        time_it(None)


def _conv(*weights_and_biases):
    """A 1x1 conv from 1 channel to len(weights) channels with the given weights and biases."""
    weights, biases = zip(*weights_and_biases, strict=True)
    conv = nn.Conv2d(1, len(weights), 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights).view(-1, 1, 1, 1))
        conv.bias.copy_(torch.tensor(biases))
    return conv


def test_l1_training_step_loss_and_gradients_by_hand():
    # a = 2 L + 0.5 = 1.5 and b = -L = -0.5 everywhere, target 0: loss = (1.5 + 0.5) / 2 = 1;
    # d loss / d w_a = mean over both channels of sign(a) L = 0.5 / 2, d / d bias_a = 1 / 2
    conv = _conv((2.0, 0.5), (-1.0, 0.0))
    L, real_ab = torch.full((3, 1, 4, 4), 0.5), torch.zeros(3, 2, 4, 4)
    for _ in range(2):  # the second step zeroes the first one's gradients
        assert l1_training_step(conv, L, real_ab) == pytest.approx(1.0)
        assert conv.weight.grad.flatten().tolist() == pytest.approx([0.25, -0.25])
        assert conv.bias.grad.tolist() == pytest.approx([0.5, -0.5])


def _small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 2, 1))


def _batch(size=5, side=16):
    generator = torch.Generator().manual_seed(1)
    L = torch.rand(size, 1, side, side, generator=generator) * 2 - 1
    return L, torch.rand(size, 2, side, side, generator=generator) - 0.5


def test_l1_training_step_matches_a_direct_computation_and_reaches_every_parameter():
    net, (L, real_ab) = _small_net(), _batch()
    params = list(net.parameters())
    expected = (net(L) - real_ab).abs().mean()
    expected_grads = torch.autograd.grad(expected, params)
    assert l1_training_step(net, L, real_ab) == pytest.approx(expected.detach().item(), rel=1e-6)
    for param, grad in zip(params, expected_grads, strict=True):
        assert param.grad is not None and param.grad.abs().sum() > 0
        torch.testing.assert_close(param.grad, grad)


@pytest.mark.parametrize("accumulate", [2, 3, 5])
def test_l1_training_step_accumulation_gives_the_full_batch_step(accumulate):
    net, (L, real_ab) = _small_net(), _batch(size=5)  # 3: micro-batches of 2, 2 and 1
    loss = l1_training_step(net, L, real_ab)
    grads = [p.grad.clone() for p in net.parameters()]
    assert l1_training_step(net, L, real_ab, accumulate=accumulate) == pytest.approx(loss)
    for param, grad in zip(net.parameters(), grads, strict=True):
        torch.testing.assert_close(param.grad, grad, atol=1e-6, rtol=1e-5)


def test_l1_training_step_accumulation_keeps_one_micro_batch_of_activations():
    net, (L, real_ab) = _small_net(), _batch(size=8, side=64)
    peaks = {}
    for accumulate in (1, 4):
        with PeakMemory(ignore=[*net.parameters(), L, real_ab]) as tracker:
            l1_training_step(net, L, real_ab, accumulate=accumulate)
        peaks[accumulate] = tracker.peak
    activation = 8 * 8 * 64 * 64 * 4  # the first conv's output, float32: 1 MiB
    assert peaks[1] > activation and peaks[4] < 0.5 * peaks[1]


def test_l1_training_step_amp_runs_in_bfloat16_on_the_cpu():
    net, (L, real_ab) = _small_net(), _batch()
    seen = []
    net[2].register_forward_pre_hook(lambda _, args: seen.append(args[0].dtype))
    loss = l1_training_step(net, L, real_ab, amp=True)
    l1_training_step(net, L, real_ab)
    # autocast casts inside the first conv, so its output (the second conv's input) shows it
    assert seen == [torch.bfloat16, torch.float32]
    reference = (net(L) - real_ab).abs().mean().item()
    assert loss == pytest.approx(reference, rel=0.05)  # bfloat16 keeps about 3 digits
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())


def test_l1_training_step_rejects_bad_inputs():
    net, (L, real_ab) = _small_net(), _batch(size=4)
    with pytest.raises(ValueError, match="batch sizes differ"):
        l1_training_step(net, L, real_ab[:3])
    with pytest.raises(ValueError, match=r"predicts \(4, 2, 16, 16\) for real_ab \(4, 3, 16, 16\)"):
        l1_training_step(net, L, torch.zeros(4, 3, 16, 16))
    for bad in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match="accumulate must be an integer from 1 to the batch"):
            l1_training_step(net, L, real_ab, accumulate=bad)
