"""colorlib.profiling: saved activations, peak memory and timing, checked on known sizes."""

import time

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from colorlib.profiling import PeakMemory, Timing, saved_for_backward, time_it

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
