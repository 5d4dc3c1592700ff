"""colorlib.evaluation.folders: two folders scored file by file, with clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorlib.evaluation import fid_weights, metrics
from colorlib.evaluation.folders import evaluate_folders

pytestmark = pytest.mark.usefixtures("offline_empty_hub")


def _write(folder, name, array):
    folder.mkdir(exist_ok=True)
    Image.fromarray(array).save(folder / name)


def _to_tensor(array):
    return torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


def test_evaluate_folders_matches_names_and_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fid_weights, "wheel_weights_file", lambda: None)  # no FID Inception
    rng = np.random.default_rng(0)
    arrays = {n: rng.integers(0, 256, (16, 20, 3), dtype=np.uint8) for n in ("a", "b", "c")}
    for name, gt in arrays.items():
        _write(tmp_path / "gt", f"{name}.png", gt)
        pred = np.clip(gt.astype(int) + rng.integers(-20, 20, gt.shape), 0, 255).astype(np.uint8)
        _write(tmp_path / "pred", f"{name}.bmp", pred)  # another extension: matched by stem
    out = evaluate_folders(tmp_path / "pred", tmp_path / "gt", device="cpu")
    assert "FID is not computed" in capsys.readouterr().err
    assert out["fid"] is out["kid"] is out["kid_se"] is None
    accumulator = metrics.MetricAccumulator()
    for name in sorted(arrays):
        pred = np.asarray(Image.open(tmp_path / "pred" / f"{name}.bmp"))
        accumulator.update(_to_tensor(pred), _to_tensor(arrays[name]))
    expected = accumulator.compute()
    assert out["count"] == 3
    for key in ("psnr", "ssim", "colorfulness", "colorfulness_real", "delta_colorfulness"):
        assert out[key] == pytest.approx(expected[key], rel=1e-6), key
    resized = evaluate_folders(tmp_path / "pred", tmp_path / "gt", 12, with_fid=False)
    assert resized["count"] == 3 and resized["fid"] is None


def test_evaluate_folders_explains_bad_folders(tmp_path):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "gt", "a.png", image)
    _write(tmp_path / "gt", "b.png", image)
    _write(tmp_path / "pred", "a.png", image)
    _write(tmp_path / "pred", "z.png", image)
    _write(tmp_path / "small", "a.png", image[:14])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_folders(tmp_path / "missing", tmp_path / "gt")
    with pytest.raises(ValueError, match="holds no images"):
        evaluate_folders(tmp_path / "empty", tmp_path / "gt")
    with pytest.raises(ValueError, match=r"no ground truth \(e.g. \['z'\]\)"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", with_fid=False)
    _write(tmp_path / "small", "b.png", image)
    with pytest.raises(ValueError, match="pass size="):
        evaluate_folders(tmp_path / "small", tmp_path / "gt", with_fid=False)
    with pytest.raises(ValueError, match="size must be at least 11"):
        evaluate_folders(tmp_path / "small", tmp_path / "gt", size=8)
