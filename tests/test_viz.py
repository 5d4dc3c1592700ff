"""colorlib.viz: the book's figures draw what they are given."""

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

matplotlib.use("Agg")

from colorlib import viz  # noqa: E402
from colorlib.color import rgb_to_L_ab  # noqa: E402


def test_to_numpy_image_handles_tensors_pil_and_bad_input():
    rgb = torch.rand(3, 5, 7)
    assert viz.to_numpy_image(rgb).shape == (5, 7, 3)
    assert viz.to_numpy_image(torch.rand(1, 5, 7)).shape == (5, 7)
    assert viz.to_numpy_image(Image.new("RGB", (7, 5))).shape == (5, 7, 3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        viz.to_numpy_image(torch.rand(4, 5, 7))
    with pytest.raises(TypeError, match="list"):
        viz.to_numpy_image([1, 2])


def test_show_images_grid_and_titles():
    fig = viz.show_images([torch.rand(3, 8, 8)] * 5, titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:5]] == list("abcde")
    with pytest.raises(ValueError, match="at least one"):
        viz.show_images([])


def test_show_lab_channels_shows_the_lightness():
    rgb = torch.rand(3, 6, 6)
    fig = viz.show_lab_channels(rgb)
    titles = [ax.get_title() for ax in fig.axes]
    assert "L (lightness, 0-100)" in titles and "ab at L = 50" in titles
    shown_L = fig.axes[1].images[0].get_array()
    assert 0 <= shown_L.min() and shown_L.max() <= 100


def test_plot_history_plots_each_key():
    history = [{"step": i, "g_l1": 1.0 / (i + 1), "d_loss": 0.7} for i in range(10)]
    fig = viz.plot_history(history, smooth=3)
    labels = sorted(line.get_label() for line in fig.axes[0].lines)
    assert labels == ["d_loss", "g_l1"]
    assert len(fig.axes[0].lines[0].get_xdata()) == 8
    with pytest.raises(ValueError, match="empty"):
        viz.plot_history([])


def test_colorization_grid_shows_the_original_colours():
    rgb = torch.rand(2, 3, 8, 8)
    L, ab = rgb_to_L_ab(rgb)
    fig = viz.colorization_grid(L, {"model": ab * 0.5}, real_ab=ab)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["gray input", "model", "original"]
    original = fig.axes[2].images[0].get_array()  # row 0, last column
    assert np.allclose(original, rgb[0].permute(1, 2, 0).numpy(), atol=1e-4)
    gray = fig.axes[0].images[0].get_array()
    assert np.allclose(gray[..., 0], gray[..., 1], atol=2e-3)
