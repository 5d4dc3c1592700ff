"""colorlib.training.runs: train_briefly's budgets (train_or_load is in test_train.py)."""

import pytest
import torch
from torch import nn

from colorlib.runtime import PROFILES
from colorlib.training.losses import Pix2PixObjective
from colorlib.training.runs import train_briefly


def test_train_briefly_takes_the_budget_in_steps_or_minutes():
    torch.manual_seed(0)
    L = torch.rand(8, 1, 8, 8) * 2 - 1
    pairs = [(L[i], 0.5 * L[i].repeat(2, 1, 1)) for i in range(8)]  # ab follows L: learnable
    generator = nn.Conv2d(1, 2, 3, padding=1)
    objective = Pix2PixObjective(lambda_l1=1.0)
    profile = PROFILES["smoke"].with_overrides(batch_size=4)

    def loss():
        with torch.no_grad():
            return float(objective(L, 0.5 * L.repeat(1, 2, 1, 1), generator(L), None)["total"])

    before = loss()
    steps = train_briefly(generator, objective, pairs, profile, "cpu", max_steps=30)
    after = loss()
    assert steps == 30 and after < before
    assert train_briefly(generator, objective, pairs, profile, "cpu", minutes=0) == 1
    with pytest.raises(ValueError, match="needs max_steps and/or minutes"):
        train_briefly(generator, objective, pairs, profile)
    with pytest.raises(ValueError, match="max_steps >= 1"):
        train_briefly(generator, objective, pairs, profile, max_steps=0)
    with pytest.raises(ValueError, match="empty"):
        train_briefly(generator, objective, [], profile, max_steps=1)
