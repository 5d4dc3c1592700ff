"""Test-session settings: one torch thread (2 xdist workers share 2 cores), Agg plots.

The torch hub cache is a fresh temporary folder. ``COLORLIB_TEST_THREADS=2`` runs the suite
with 2 torch threads instead: results must not
depend on the thread count (nor on the CPU kind or the test order).
"""

import os
import tempfile

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ.get("COLORLIB_TEST_THREADS", "1")))
# A torch hub cache of the test run's own: a test that seeds fake ImageNet weights must never
# leave them where the book (or the user) would load them as real ones.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="colorlib-test-torch-")


@pytest.fixture
def offline_empty_hub(tmp_path, monkeypatch):
    """No network probes and an empty torch hub cache: the offline fallbacks are exercised."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module, whatever ``COLORLIB_TEST_THREADS`` says: the CI machine's
    2 cores are shared, and one thread is faster and steadier for tiny tensors."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
