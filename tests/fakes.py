"""Stand-in data shared by the tests (not a test module): pairs for training, small photos."""

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


def quadrants(width: int = 64, height: int = 48) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2, : width // 2] = (255, 0, 0)
    rgb[: height // 2, width // 2 :] = (0, 255, 0)
    rgb[height // 2 :, : width // 2] = (0, 0, 255)
    rgb[height // 2 :, width // 2 :] = 255
    return Image.fromarray(rgb)


def saved(image: Image.Image, path: Path, **kwargs) -> Path:
    """``image`` written to ``path`` (format from the suffix); returns ``path``."""
    image.save(path, **kwargs)
    return path


class RandomPairs(Dataset):
    """``n`` fixed random ``(L (1, S, S), ab (2, S, S))`` pairs; with ``flip``, a horizontal flip
    drawn from torch's global RNG per item, like the real dataset's augmentation stream. With
    ``learnable``, ab follows L (``(0.3, -0.2) * L`` plus a little noise), so a network can
    learn it and a loss must fall; otherwise ab is uniform noise in [0, 0.3)."""

    def __init__(self, n, seed=0, flip=False, size=16, learnable=False):
        g = torch.Generator().manual_seed(seed)
        self.L = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        if learnable:
            scale = torch.tensor([0.3, -0.2]).view(2, 1, 1)
            self.ab = (self.L.repeat(1, 2, 1, 1) * scale).clone()
            self.ab += 0.05 * torch.randn(n, 2, size, size, generator=g)
        else:
            self.ab = 0.3 * torch.rand(n, 2, size, size, generator=g)
        self.flip = flip

    def __len__(self):
        return len(self.L)

    def __getitem__(self, i):
        L, ab = self.L[i], self.ab[i]
        if self.flip and torch.rand(()) < 0.5:
            L, ab = L.flip(-1), ab.flip(-1)
        return L, ab


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` RGB, with one row of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(3 * min(width, 1000)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
