"""Tests for colorlib.data.datasets (and colorlib.data.samples): sources, splits, datasets and
loaders."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

import colorlib.data.samples
from colorlib.data.datasets import (
    ColorizationDataset,
    find_images,
    load_datasets,
    make_loader,
    resolve_photos,
    train_val_split,
)
from colorlib.data.samples import SAMPLE_NAMES, bundled_sample_paths, sample_photo
from colorlib.runtime import PROFILES

GREEN = (40, 180, 60)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORLIB_DATA", raising=False)


def _bands(path: Path, width: int = 96, height: int = 32) -> Path:
    """Red left third, ``GREEN`` middle third, blue right third: the centre crop is all green."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 3] = (255, 0, 0)
    rgb[:, width // 3 : 2 * width // 3] = GREEN
    rgb[:, 2 * width // 3 :] = (0, 0, 255)
    Image.fromarray(rgb).save(path)
    return path


def _photos(folder: Path, count: int, size=(40, 30)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        paths.append(folder / f"photo_{i:02d}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


def _bad_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    Image.new("RGB", (1, 1)).save(folder / "pixel.png")
    return [folder / "corrupt.jpg", folder / "pixel.png"]


def test_find_images_recurses_sorts_and_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["a/b/z.JPG", "a/x.png", "y.jpeg", ".hidden/h.jpg", "a/.dot.png"]:
        Image.new("RGB", (8, 8)).save(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("not a photo")
    found = find_images(tmp_path)
    assert found == sorted([tmp_path / "a/b/z.JPG", tmp_path / "a/x.png", tmp_path / "y.jpeg"])
    with pytest.raises(ValueError, match="does not exist"):
        find_images(tmp_path / "nowhere")


def test_train_val_split_is_seeded_disjoint_and_shuffled():
    paths = [Path(f"p{i:03d}.jpg") for i in range(100)]
    train, val = train_val_split(paths, 0.2, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert not set(train) & set(val) and set(train) | set(val) == set(paths)
    assert (train, val) == train_val_split(list(reversed(paths)), 0.2, seed=0)  # order-free
    assert val != sorted(paths)[:20] and val != sorted(paths)[-20:]  # shuffled, not first-N
    assert train_val_split(paths, 0.2, seed=1)[1] != val
    assert train_val_split(paths + paths[:5], 0.2, seed=0) == (train, val)  # duplicates merged


def test_train_val_split_edge_cases():
    assert train_val_split([Path("a"), Path("b")], 0.01, seed=0)[1] != []  # at least one each
    assert train_val_split([Path("a"), Path("b")], 0.0, seed=0) == ([Path("a"), Path("b")], [])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            train_val_split([Path("a")], bad)


def test_dataset_shapes_ranges_and_reference_values(tmp_path):
    path = _bands(tmp_path / "bands.png")
    L, ab = ColorizationDataset([path], 16, train=False)[0]
    assert L.shape == (1, 16, 16) and ab.shape == (2, 16, 16)
    assert L.dtype == ab.dtype == torch.float32
    lab = rgb2lab(np.array([[GREEN]], np.uint8))[0, 0]  # eval centre crop: all green
    inner = (slice(None), slice(1, -1), slice(1, -1))  # the border pixels blend in the bands
    expected_L = torch.tensor(lab[0] / 50 - 1, dtype=torch.float32)
    assert torch.allclose(L[inner], expected_L, atol=1e-3)
    expected_ab = torch.tensor(lab[1:] / 110, dtype=torch.float32).view(2, 1, 1)
    assert torch.allclose(ab[inner], expected_ab.expand(2, 14, 14), atol=1e-3)
    torch.manual_seed(0)
    for L, ab in (ColorizationDataset([path], 24, train=True)[0] for _ in range(5)):
        assert L.shape == (1, 24, 24) and ab.shape == (2, 24, 24)
        assert L.min() >= -1 and L.max() <= 1 and ab.abs().max() <= 1


def test_eval_is_deterministic_and_train_is_seeded_random(tmp_path):
    (path,) = _photos(tmp_path, 1, size=(64, 48))
    evaluation = ColorizationDataset([path], 32, train=False)
    assert all(torch.equal(a, b) for a, b in zip(evaluation[0], evaluation[0], strict=True))
    training = ColorizationDataset([path], 32, train=True)
    torch.manual_seed(3)
    first = training[0][1]
    torch.manual_seed(3)
    assert torch.equal(training[0][1], first)
    assert not all(torch.equal(training[0][1], first) for _ in range(3))


def test_train_flip_mirrors_the_crop(tmp_path):
    path = _bands(tmp_path / "bands.png", width=90, height=90)
    dataset = ColorizationDataset([path], 30, train=True, scale=(1.0, 1.0))
    torch.manual_seed(0)
    sides = set()
    for _ in range(20):
        _, ab = dataset[0]
        sides.add(bool(ab[1, :, 0].mean() < ab[1, :, -1].mean()))  # b: blue is negative
    assert sides == {True, False}  # red on the left in some crops, on the right in others


def test_dataset_with_bad_files_finishes_the_epoch_and_reports_skips(tmp_path):
    good = _photos(tmp_path / "good", 3)
    bad = _bad_files(tmp_path / "bad")
    dataset = ColorizationDataset([good[0], bad[0], good[1], bad[1], good[2]], 16, train=False)
    assert torch.equal(dataset[1][0], dataset[2][0])  # substitute: the next readable photo
    batches = list(make_loader(dataset, batch_size=2, train=False, device="cpu", num_workers=0))
    assert sum(L.shape[0] for L, _ in batches) == 5
    skipped = dataset.skipped
    assert set(skipped) == set(bad)
    assert "not a readable image" in skipped[bad[0]] and "too small" in skipped[bad[1]]


def test_skips_found_in_loader_workers_are_reported(tmp_path):
    good = _photos(tmp_path / "good", 2)
    bad = _bad_files(tmp_path / "bad")
    dataset = ColorizationDataset(good + bad, 16, train=False)
    loader = make_loader(dataset, batch_size=4, train=False, device="cpu", num_workers=1)
    assert [L.shape[0] for L, _ in loader] == [4]
    assert set(dataset.skipped) == set(bad)
    assert "too small" in dataset.skipped[bad[1]]


def test_dataset_of_only_unreadable_files_raises(tmp_path):
    dataset = ColorizationDataset(_bad_files(tmp_path), 16, train=True)
    with pytest.raises(RuntimeError, match="none of the 2 photos"):
        dataset[0]
    with pytest.raises(IndexError):
        dataset[2]
    with pytest.raises(ValueError, match="image_size"):
        ColorizationDataset([], 0, train=True)


def test_make_loader_batches_and_defaults(tmp_path):
    dataset = ColorizationDataset(_photos(tmp_path, 5), 16, train=True)
    loader = make_loader(dataset, batch_size=2, train=True, device="cpu", num_workers=0)
    shapes = [(L.shape, ab.shape) for L, ab in loader]
    assert shapes == [((2, 1, 16, 16), (2, 2, 16, 16))] * 2  # the incomplete batch is dropped
    assert not loader.pin_memory and loader.num_workers == 0
    evaluation = make_loader(dataset, batch_size=2, train=False, device="cpu", num_workers=0)
    assert [L.shape[0] for L, _ in evaluation] == [2, 2, 1]
    small = make_loader(dataset, batch_size=16, train=True, device="cpu", num_workers=0)
    assert [L.shape[0] for L, _ in small] == [5]  # never an empty epoch
    cuda = make_loader(dataset, batch_size=2, train=True, device="cuda", num_workers=2)
    assert cuda.pin_memory and cuda.persistent_workers and cuda.drop_last
    sampler = torch.utils.data.SequentialSampler(range(3))
    assert make_loader(dataset, 2, True, "cpu", 0, sampler=sampler).sampler is sampler
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(dataset, batch_size=0, train=True)


def test_make_loader_takes_workers_from_the_profile(monkeypatch, tmp_path):
    dataset = ColorizationDataset(_photos(tmp_path, 2), 16, train=False)
    monkeypatch.setenv("COLORLIB_PROFILE", "smoke")
    assert make_loader(dataset, 2, False, device="cpu").num_workers == 0
    monkeypatch.setenv("COLORLIB_PROFILE", "cpu")
    loader = make_loader(dataset, 2, False, device="cpu")
    assert 1 <= loader.num_workers <= PROFILES["cpu"].num_workers and loader.persistent_workers


def _fake_coco(monkeypatch, paths, reachable=True):
    calls = []

    def download_coco_subset(num_images, dest=None, split="train2017", base_url=None, seed=0):
        calls.append(num_images)
        return paths[:num_images]

    module = types.ModuleType("colorlib.data.coco")
    module.coco_reachable = lambda base_url=None, timeout=3.0: reachable
    module.download_coco_subset = download_coco_subset
    monkeypatch.setitem(sys.modules, "colorlib.data.coco", module)
    return calls


def test_resolve_photos_prefers_explicit_then_env_then_coco_then_bundled(
    tmp_path, monkeypatch, capsys
):
    explicit = _photos(tmp_path / "explicit", 2)
    env = _photos(tmp_path / "env", 3)
    coco = _photos(tmp_path / "coco", 4)
    bundled = _photos(tmp_path / "bundled", 1)
    monkeypatch.setattr(colorlib.data.samples, "bundled_sample_paths", lambda: bundled)
    calls = _fake_coco(monkeypatch, coco)
    monkeypatch.setenv("COLORLIB_DATA", str(tmp_path / "env"))
    profile = PROFILES["smoke"].with_overrides(num_images=4)

    assert resolve_photos(tmp_path / "explicit", profile) == explicit
    assert "2 photos from" in capsys.readouterr().out
    assert resolve_photos(explicit[:1], profile) == explicit[:1]
    assert resolve_photos(str(explicit[1]), profile) == explicit[1:]
    assert resolve_photos(None, profile) == env
    assert "COLORLIB_DATA" in capsys.readouterr().out
    monkeypatch.delenv("COLORLIB_DATA")
    assert resolve_photos(None, profile) == coco and calls == [4]
    assert "COCO" in capsys.readouterr().out
    _fake_coco(monkeypatch, coco, reachable=False)
    assert resolve_photos(None, profile) == bundled
    assert "tiny fallback" in capsys.readouterr().out


def test_resolve_photos_reports_bad_sources(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_photos(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        resolve_photos(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty list"):
        resolve_photos([])
    monkeypatch.setenv("COLORLIB_DATA", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_photos()
    monkeypatch.delenv("COLORLIB_DATA")

    def fail(*args, **kwargs):
        raise RuntimeError("server said no")

    _fake_coco(monkeypatch, [])
    monkeypatch.setattr(sys.modules["colorlib.data.coco"], "download_coco_subset", fail)
    monkeypatch.setattr(colorlib.data.samples, "bundled_sample_paths", lambda: [Path("x.png")])
    assert resolve_photos(profile=PROFILES["smoke"]) == [Path("x.png")]
    assert "server said no" in capsys.readouterr().out


def test_load_datasets_filters_trims_and_splits(tmp_path, capsys):
    folder = tmp_path / "photos"
    _photos(folder, 12)
    Image.new("RGB", (40, 30), (90, 90, 90)).save(folder / "gray.png")
    _bad_files(folder)
    profile = PROFILES["smoke"].with_overrides(num_images=10, val_fraction=0.2, image_size=16)
    train, val = load_datasets(profile, data=folder, seed=0)
    out = capsys.readouterr().out
    assert "1 gray dropped" in out and "2 unreadable dropped" in out and "8 train / 2 val" in out
    assert len(train) == 8 and len(val) == 2 and train.train and not val.train
    assert not set(train.paths) & set(val.paths)
    assert all(p.name.startswith("photo_") for p in train.paths + val.paths)
    again = load_datasets(profile, data=folder, seed=0)
    assert again[0].paths == train.paths and again[1].paths == val.paths
    L, ab = train[0]
    assert L.shape == (1, 16, 16) and ab.shape == (2, 16, 16)


def test_bundled_samples_are_exported_once_and_readable():
    paths = bundled_sample_paths()
    assert [p.stem for p in paths][:4] == ["astronaut", "coffee", "chelsea", "rocket"]
    assert {"china", "flower"} <= {p.stem for p in paths}
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert [p.stat().st_mtime_ns for p in bundled_sample_paths()] == stamps  # not rewritten
    photo = sample_photo("astronaut")
    assert photo.mode == "RGB" and photo.size == (512, 512)
    assert set(p.stem for p in paths) <= set(SAMPLE_NAMES)
    with pytest.raises(ValueError, match="unknown sample photo 'nope'"):
        sample_photo("nope")
