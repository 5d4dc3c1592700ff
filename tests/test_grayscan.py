"""colorlib.data.grayscan: which photos are black-and-white, measured and cached."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from fakes import quadrants, saved
from PIL import Image

from colorlib.data.grayscan import COLORFULNESS_THRESHOLD, is_gray, photo_stats, scan_photos


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))


def test_photo_stats_and_is_gray(tmp_path):
    colour = photo_stats(saved(quadrants(), tmp_path / "c.png"))
    assert colour.spread == 255 and colour.colorfulness > 50 and not is_gray(colour)
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    stats = photo_stats(saved(Image.fromarray(gray).convert("RGB"), tmp_path / "g.png"))
    assert stats.spread == 0 and stats.colorfulness == 0 and is_gray(stats)
    near = np.stack([gray, gray, np.clip(gray.astype(int) + 2, 0, 255).astype(np.uint8)], -1)
    stats = photo_stats(saved(Image.fromarray(near), tmp_path / "near.png"))
    assert stats.spread == 2 and is_gray(stats) and not is_gray(stats, tolerance=1, threshold=0)
    tinted = np.clip(gray.astype(int) - 3, 0, 255).astype(np.uint8)  # a uniformly toned print
    sepia = np.stack([gray, gray, tinted], -1)
    stats = photo_stats(saved(Image.fromarray(sepia), tmp_path / "sepia.png"))
    assert stats.spread > 2 and stats.colorfulness < COLORFULNESS_THRESHOLD and is_gray(stats)


def test_scan_photos_sorts_counts_and_caches(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    colour = saved(quadrants(), folder / "colour.jpg")
    gray = saved(quadrants().convert("L"), folder / "gray.jpg")
    tiny = saved(Image.new("RGB", (1, 1)), folder / "tiny.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    paths = [colour, gray, tiny, folder / "broken.jpg"]
    result = scan_photos(paths)
    assert result.color == [colour] and result.gray == [gray]
    assert set(result.unreadable) == {tiny, folder / "broken.jpg"}
    assert "too small" in result.unreadable[tiny]
    assert result.num_cached == 0
    summary = result.summary()
    assert "1 colour" in summary and "1 gray dropped" in summary and "2 unreadable" in summary
    assert "too small" in summary
    cache_file = Path(os.environ["COLORLIB_CACHE"]) / "photo_scan.json"
    assert cache_file.is_file()
    again = scan_photos(paths)
    assert again.num_cached == 4 and again.color == [colour] and again.gray == [gray]
    # thresholds apply to cached measurements: no rescan needed
    assert scan_photos(paths, threshold=1e9).gray == [colour, gray]
    # an edited file is measured again
    saved(quadrants().convert("L"), colour)
    os.utime(colour, ns=(1, 1))
    edited = scan_photos(paths)
    assert edited.num_cached == 3 and edited.gray == [colour, gray]


@pytest.mark.coco
def test_gray_filter_finds_coco_minis_gray_photos(tmp_path, capsys):
    root = os.environ.get("COLORLIB_DATA")
    if not root or not (Path(root) / "manifest.csv").is_file():
        pytest.skip("set COLORLIB_DATA to the coco-mini folder (with manifest.csv)")
    with open(Path(root) / "manifest.csv", newline="") as f:
        flagged = {row["file"]: row["gray"] == "1" for row in csv.DictReader(f)}
    paths = [Path(root) / "images" / name for name in flagged]
    result = scan_photos(paths, cache=False)
    found = {p.name for p in result.gray}
    true_gray = sum(flagged[name] for name in found)
    colour_dropped = sorted(name for name in found if not flagged[name])
    missed = sorted(name for name, gray in flagged.items() if gray and name not in found)
    with capsys.disabled():
        print(
            f"\ngray filter on coco-mini: {true_gray} of {sum(flagged.values())} flagged found, "
            f"{len(missed)} missed, {len(colour_dropped)} manifest-colour photos dropped "
            f"{colour_dropped}, {len(result.unreadable)} unreadable"
        )
    assert not missed and true_gray == 113
    assert len(colour_dropped) <= 10  # toned / faded prints; few in any case
    assert not result.unreadable
