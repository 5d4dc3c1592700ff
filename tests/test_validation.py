"""colorlib.evaluation.validation: validation pairs, validate() in eval mode with the one
MetricAccumulator, and the chapters' comparisons against the gray baseline."""

import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.color import L_ab_to_rgb
from colorlib.evaluation.metrics import MetricAccumulator, psnr
from colorlib.evaluation.validation import (
    VALIDATION_METRICS,
    evaluate_predictions,
    fork_rng,
    predict_ab,
    validate,
    validation_pairs,
)
from colorlib.training.steps import FULL_PRECISION


def test_validation_pairs_stack_the_first_pairs_without_moving_the_rng():
    data = RandomPairs(10, size=16)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    L, ab = validation_pairs(data, 6)
    assert torch.equal(torch.rand(3), expected)
    assert L.shape == (6, 1, 16, 16) and ab.shape == (6, 2, 16, 16)
    assert torch.equal(L, data.L[:6]) and torch.equal(ab, data.ab[:6])
    assert validation_pairs(data, 50)[0].shape[0] == 10
    with pytest.raises(ValueError, match="non-empty validation set, got 4 and 0 pairs"):
        validation_pairs(RandomPairs(0), 4)
    with pytest.raises(ValueError, match="num_images >= 1"):
        validation_pairs(data, 0)


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
    assert set(metrics) == set(VALIDATION_METRICS)
    pred = L_ab_to_rgb(data.L, torch.full_like(data.ab, 0.2))
    real = L_ab_to_rgb(data.L, data.ab)
    assert metrics["psnr"] == pytest.approx(psnr(pred, real).mean().item(), rel=1e-5)
    whole = MetricAccumulator()
    whole.update(pred, real)  # the batches of 2 add up to the mean over all 5 photos
    for key in VALIDATION_METRICS:
        assert metrics[key] == pytest.approx(whole.compute()[key], rel=1e-5)
    assert validate(model, data.L, data.ab, 2, FULL_PRECISION, torch.device("cpu"))[1] is None


def test_fork_rng_restores_the_cpu_stream():
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    with fork_rng(torch.device("cpu")):
        torch.rand(100)
    assert torch.equal(torch.rand(2), expected)


def test_validation_pairs_and_predict_ab_keep_order_and_mode():
    L = torch.rand(5, 1, 8, 8) * 2 - 1
    val_set = [(L[i], torch.zeros(2, 8, 8)) for i in range(5)]
    first_L, first_ab = validation_pairs(val_set, 3)
    assert torch.equal(first_L, L[:3]) and first_ab.shape == (3, 2, 8, 8)
    assert validation_pairs(val_set, 99)[0].shape[0] == 5
    with pytest.raises(ValueError, match="num_images >= 1"):
        validation_pairs(val_set, 0)

    generator = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Dropout(0.5)).train()
    ab = predict_ab(generator, first_L, batch_size=2)
    # eval mode: no dropout (which would change half the values); another batch size may
    # round differently (another kernel), so close, not bit-equal
    torch.testing.assert_close(ab, predict_ab(generator, first_L), rtol=1e-6, atol=1e-6)
    assert generator.training and not ab.requires_grad


def test_evaluate_predictions_scores_against_the_gray_baseline():
    torch.manual_seed(0)
    L = torch.rand(3, 1, 16, 16) * 2 - 1
    real_ab = 0.3 * torch.randn(3, 2, 16, 16)
    rows = evaluate_predictions({"perfect": real_ab, "half": real_ab / 2}, L, real_ab)
    assert list(rows) == ["perfect", "half", "gray baseline", "real photos"]
    assert rows["perfect"]["psnr"] > 60 and rows["perfect"]["delta_colorfulness"] < 1e-3
    assert rows["gray baseline"]["colorfulness"] == pytest.approx(0.0, abs=0.05)
    assert rows["gray baseline"]["psnr"] < rows["half"]["psnr"] < rows["perfect"]["psnr"]
    real_cf = rows["real photos"]["colorfulness"]
    assert rows["perfect"]["colorfulness"] == pytest.approx(real_cf, rel=1e-4)
    assert rows["gray baseline"]["delta_colorfulness"] == pytest.approx(real_cf, rel=1e-4)
    with pytest.raises(ValueError, match="prediction 'small' has shape"):
        evaluate_predictions({"small": real_ab[:, :, :8]}, L, real_ab)
