"""colorlib.validation: validation tensors, exact metric sums, validate() in eval mode."""

import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.color import L_ab_to_rgb
from colorlib.metrics import psnr
from colorlib.steps import FULL_PRECISION
from colorlib.validation import fork_rng, metric_sums, validate, validation_tensors


def test_validation_tensors_stack_the_first_pairs_without_moving_the_rng():
    data = RandomPairs(10, size=16)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    L, ab = validation_tensors(data, 6, 4, "cpu")
    assert torch.equal(torch.rand(3), expected)
    assert L.shape == (6, 1, 16, 16) and ab.shape == (6, 2, 16, 16)
    assert torch.equal(L, data.L[:6]) and torch.equal(ab, data.ab[:6])
    assert validation_tensors(data, 50, 4, "cpu")[0].shape[0] == 10
    with pytest.raises(ValueError, match="empty"):
        validation_tensors(RandomPairs(0), 4, 4, "cpu")


def test_metric_sums_add_up_to_the_mean_over_any_batching():
    data = RandomPairs(6, size=16)
    pred = L_ab_to_rgb(data.L, data.ab * 0.5)
    real = L_ab_to_rgb(data.L, data.ab)
    whole = metric_sums(pred, real)
    parts = [metric_sums(pred[i : i + 4], real[i : i + 4]) for i in (0, 4)]
    for key, value in whole.items():
        assert sum(p[key] for p in parts) == pytest.approx(value, rel=1e-5)
    assert whole["psnr"] / 6 == pytest.approx(psnr(pred, real).mean().item(), rel=1e-5)
    assert set(whole) == {"psnr", "ssim", "colorfulness", "colorfulness_real"}


class Dropper(nn.Module):
    """ab = 0.5 * L * 0 + dropout: eval mode must switch the dropout off."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.scale = nn.Parameter(torch.tensor(0.2))

    def forward(self, L):
        return self.drop(torch.ones_like(L).repeat(1, 2, 1, 1)) * self.scale


def test_validate_runs_in_eval_mode_and_restores_training():
    data = RandomPairs(5, size=16)
    model = Dropper().train()
    metrics, samples = validate(model, data.L, data.ab, 2, FULL_PRECISION, torch.device("cpu"), 3)
    assert model.training
    assert samples.shape == (3, 2, 16, 16)
    assert torch.allclose(samples, torch.full_like(samples, 0.2))  # no dropout in eval
    expected = metric_sums(L_ab_to_rgb(data.L, torch.full_like(data.ab, 0.2)),
                           L_ab_to_rgb(data.L, data.ab))  # fmt: skip
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value / 5, rel=1e-5)
    assert validate(model, data.L, data.ab, 2, FULL_PRECISION, torch.device("cpu"))[1] is None


def test_fork_rng_restores_the_cpu_stream():
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    with fork_rng(torch.device("cpu")):
        torch.rand(100)
    assert torch.equal(torch.rand(2), expected)
