"""Test-session settings: one torch thread (2 xdist workers share 2 cores), Agg plots."""

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
