"""colorlib.runtime: profiles, device choice, seeding, cache folders."""

import random

import numpy as np
import pytest
import torch

from colorlib import runtime


def test_profile_from_argument_env_and_hardware(monkeypatch):
    monkeypatch.delenv("COLORLIB_PROFILE", raising=False)
    assert runtime.get_profile("smoke").name == "smoke"
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert runtime.get_profile().name == expected
    monkeypatch.setenv("COLORLIB_PROFILE", "smoke")
    assert runtime.get_profile().name == "smoke"
    assert runtime.get_profile("gpu").name == "gpu"  # an explicit name wins over the env


def test_unknown_profile_names_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="cpu.*gpu.*smoke"):
        runtime.get_profile("huge")
    monkeypatch.setenv("COLORLIB_PROFILE", "nope")
    with pytest.raises(ValueError, match="'nope'"):
        runtime.get_profile()


def test_profiles_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = (runtime.PROFILES[n] for n in ("smoke", "cpu", "gpu"))
    assert smoke.image_size < cpu.image_size < gpu.image_size == 256  # the papers' size
    assert gpu.batch_size == 16 and gpu.num_images == 10000  # the original report's data
    assert smoke.num_images < cpu.num_images < gpu.num_images
    for p in (smoke, cpu, gpu):
        assert p.image_size % 32 == 0 and 0 < p.val_fraction < 1


def test_profiles_are_frozen_and_overridable():
    smoke = runtime.PROFILES["smoke"]
    with pytest.raises(AttributeError):
        smoke.image_size = 1
    bigger = smoke.with_overrides(image_size=96)
    assert bigger.image_size == 96 and smoke.image_size == 64
    with pytest.raises(ValueError, match="image_sise"):
        smoke.with_overrides(image_sise=96)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_device_choice_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("COLORLIB_PROFILE", raising=False)  # `make unit` sets it
    assert runtime.get_device().type == expected
    assert runtime.get_device("cpu") == torch.device("cpu")  # a name always wins
    assert runtime.get_device("cuda:1") == torch.device("cuda", 1)
    assert runtime.get_profile().name == ("gpu" if cuda else "cpu")


def test_seed_everything_makes_sampling_repeatable():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first


def test_cache_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "c"))
    assert runtime.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert runtime.checkpoint_dir() == tmp_path / "c" / "checkpoints"
    assert runtime.checkpoint_dir().is_dir()


def test_setup_prints_the_banner(capsys, monkeypatch):
    monkeypatch.setenv("COLORLIB_PROFILE", "smoke")
    profile, device = runtime.setup()
    out = capsys.readouterr().out
    assert profile.name == "smoke" and "profile 'smoke'" in out and "64px" in out
    assert device.type in out


def test_atomic_write_is_whole_or_nothing(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    assert runtime.atomic_write(target, lambda f: f.write(b"first")) == target
    assert target.read_bytes() == b"first"

    def half_then_crash(file):
        file.write(b"half of the sec")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runtime.atomic_write(target, half_then_crash)
    assert target.read_bytes() == b"first"  # the old content, whole
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temporary left
