"""Test-session settings: one torch thread per xdist worker (2 workers on 2 cores), Agg plots."""

import os

import matplotlib
import torch

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
