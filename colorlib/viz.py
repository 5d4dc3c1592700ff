"""The book's figures: image grids, Lab channels, loss curves and before/after comparisons.

Each function takes tensors or PIL images, draws with matplotlib and returns the ``Figure`` (so
notebooks display it and tests can inspect it). Nothing here computes colour maths of its own:
conversions go through :mod:`colorlib.color`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from colorlib.color import L_CENTER, L_ab_to_rgb, gray_ab_like, lab_to_rgb, rgb_to_lab

__all__ = [
    "to_numpy_image",
    "show_images",
    "show_lab_channels",
    "plot_history",
    "colorization_grid",
]


def to_numpy_image(image: Tensor | Image.Image | np.ndarray) -> np.ndarray:
    """A ``(3|1, H, W)`` tensor in [0, 1], PIL image or array -> ``(H, W[, 3])`` array."""
    if isinstance(image, Image.Image):
        return np.asarray(image)
    if isinstance(image, Tensor):
        image = image.detach().float().cpu()
        if image.dim() == 4 and image.shape[0] == 1:
            image = image[0]
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a (3, H, W) or (1, H, W) tensor, got {tuple(image.shape)}")
        array = image.clamp(0, 1).movedim(0, -1).numpy()
        return array[..., 0] if array.shape[-1] == 1 else array
    if isinstance(image, np.ndarray):
        return image
    raise TypeError(f"cannot show an object of type {type(image).__name__}")


def show_images(
    images: Sequence,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 2.5,
    suptitle: str | None = None,
):
    """Show images in a grid (gray images with a gray colour map). Returns the figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    ncols = ncols or min(len(images), 6)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        array = to_numpy_image(images[index])
        ax.imshow(
            array,
            cmap="gray" if array.ndim == 2 else None,
            vmin=0,
            vmax=1 if array.dtype.kind == "f" else 255,
        )
        if titles is not None and index < len(titles):
            ax.set_title(titles[index], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_lab_channels(rgb: Tensor, size: float = 2.6):
    """One photo and its Lab channels: L, a, b, and the chroma alone at constant lightness.

    Args:
        rgb: ``(3, H, W)`` in [0, 1].
    """
    import matplotlib.pyplot as plt

    lab = rgb_to_lab(rgb.unsqueeze(0).double())[0]
    chroma_only = lab.clone()
    chroma_only[0] = L_CENTER  # every pixel at L = 50: what ab alone says
    panels = [
        (to_numpy_image(rgb), "RGB photo", None, None),
        (lab[0].numpy(), "L (lightness, 0-100)", "gray", (0, 100)),
        (lab[1].numpy(), "a (green - red)", "RdYlGn_r", (-80, 80)),
        (lab[2].numpy(), "b (blue - yellow)", "YlGnBu_r", (-80, 80)),
        (to_numpy_image(lab_to_rgb(chroma_only.unsqueeze(0))[0]), "ab at L = 50", None, None),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size))
    for ax, (array, title, cmap, limits) in zip(axes, panels, strict=True):
        shown = ax.imshow(
            array, cmap=cmap, **({} if limits is None else dict(vmin=limits[0], vmax=limits[1]))
        )
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        if cmap is not None:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def plot_history(
    history: Sequence[Mapping], keys: Sequence[str] | None = None, smooth: int = 1, title=None
):
    """Loss curves from a training history (a list of ``{"step": .., name: value}`` dicts)."""
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("the history is empty: nothing to plot")
    if keys is None:
        keys = sorted(
            {
                k
                for row in history
                for k, v in row.items()
                if k != "step" and isinstance(v, int | float)
            }
        )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key in keys:
        points = [(row["step"], row[key]) for row in history if key in row]
        if not points:
            continue
        steps, values = map(np.asarray, zip(*points, strict=True))
        if smooth > 1 and len(values) >= smooth:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            steps = steps[smooth - 1 :]
        ax.plot(steps, values, label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log" if all(row.get(k, 1) > 0 for row in history for k in keys) else "linear")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def colorization_grid(
    L: Tensor, predictions: Mapping[str, Tensor], real_ab: Tensor | None = None, size: float = 2.2
):
    """Rows of photos, columns: gray input, each model's colours, and the original.

    Args:
        L: ``(B, 1, H, W)`` normalised lightness.
        predictions: column title -> ``(B, 2, H, W)`` normalised ab.
        real_ab: ``(B, 2, H, W)`` ground truth, shown last when given.
    """
    import matplotlib.pyplot as plt

    L = L.detach().float().cpu()
    columns = {"gray input": gray_ab_like(L)}
    columns.update({k: v.detach().float().cpu() for k, v in predictions.items()})
    if real_ab is not None:
        columns["original"] = real_ab.detach().float().cpu()
    rows, cols = L.shape[0], len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    with torch.no_grad():
        rgbs = {k: L_ab_to_rgb(L, ab) for k, ab in columns.items()}
    for c, (title, rgb) in enumerate(rgbs.items()):
        axes[0, c].set_title(title, fontsize=9)
        for r in range(rows):
            axes[r, c].imshow(to_numpy_image(rgb[r]))
            axes[r, c].axis("off")
    fig.tight_layout()
    return fig
