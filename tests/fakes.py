"""Stand-in data shared by the training-loop tests (not a test module)."""

import torch
from torch.utils.data import Dataset


class RandomPairs(Dataset):
    """``n`` fixed random ``(L (1, S, S), ab (2, S, S))`` pairs; with ``flip``, a horizontal flip
    drawn from torch's global RNG per item, like the real dataset's augmentation stream."""

    def __init__(self, n, seed=0, flip=False, size=16):
        g = torch.Generator().manual_seed(seed)
        self.L = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        self.ab = 0.3 * torch.rand(n, 2, size, size, generator=g)
        self.flip = flip

    def __len__(self):
        return len(self.L)

    def __getitem__(self, i):
        L, ab = self.L[i], self.ab[i]
        if self.flip and torch.rand(()) < 0.5:
            L, ab = L.flip(-1), ab.flip(-1)
        return L, ab
