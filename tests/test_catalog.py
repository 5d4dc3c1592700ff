"""colorlib.catalog: a menu of models for people, the book's order, ablations hidden."""

import pytest
import torch

from colorlib import catalog
from colorlib.checkpoint import save_checkpoint
from colorlib.runtime import checkpoint_dir
from colorlib.training.config import Stage, TrainConfig, build_generator


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")


def _run(path, steps=7, model="unet"):
    """A real (tiny) colorlib checkpoint at ``path`` that says it ran ``steps`` steps."""
    config = TrainConfig(
        model=model,
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator=None,
        image_size=8,
        stages=(Stage("pretrain", max_steps=steps),),
    )
    torch.manual_seed(0)
    state = {"config": config.to_dict(), "generator": build_generator(config).state_dict()}
    return save_checkpoint(path, {**state, "progress": {"step": steps}})


def test_find_checkpoints_lists_pt_and_pth_files(tmp_path):
    assert catalog.find_checkpoints(tmp_path / "missing") == {}
    for name in ("b.pt", "a.pth", "notes.txt", ".b.pt.123.tmp", ".hidden.pt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.pt").mkdir()
    assert catalog.find_checkpoints(tmp_path) == {
        "a.pth": tmp_path / "a.pth",
        "b.pt": tmp_path / "b.pt",
    }
    with pytest.raises(ValueError, match="directory"):
        catalog.find_checkpoints(tmp_path / "b.pt")


def test_find_checkpoints_defaults_to_the_checkpoint_dir():

    (checkpoint_dir() / "x.pt").write_bytes(b"x")
    assert list(catalog.find_checkpoints()) == ["x.pt"]


def test_describe_checkpoint_reads_recipe_profile_and_steps(tmp_path):
    entry = catalog.describe_checkpoint(_run(tmp_path / "pretrained-gan-cpu.pt", steps=464))
    assert (entry.recipe, entry.profile, entry.steps, entry.ablation) == (
        "pretrained-gan",
        "cpu",
        464,
        False,
    )
    assert entry.label == "U-Net, ImageNet encoder, L1 + GAN - chapter 6, cpu profile, 464 steps"
    seeded = catalog.describe_checkpoint(_run(tmp_path / "pix2pix-gpu-seed3.pt"))
    assert (seeded.recipe, seeded.profile) == ("pix2pix", "gpu")
    other = catalog.describe_checkpoint(_run(tmp_path / "my-model.pt", steps=12))
    assert other.recipe is None and other.label == "my-model.pt (unet, 12 steps)"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert catalog.describe_checkpoint(tmp_path / "junk.pt").label == "junk.pt (unreadable)"


def test_book_models_in_the_books_order_without_ablations(tmp_path):
    for name in (
        "ddcolor-ablation-full-cpu",  # alphabetically first: must not lead the menu
        "ddcolor-cpu",
        "pix2pix-cpu",
        "pretrained-gan-cpu",
        "pretrained-l1-cpu",
        "pix2pix-smoke",
        "zz-mine",
    ):
        _run(tmp_path / f"{name}.pt")
    models = catalog.book_models(tmp_path, profile="cpu")
    assert [p.stem for p in models.values()] == [
        "pix2pix-cpu",
        "pretrained-l1-cpu",
        "pretrained-gan-cpu",
        "ddcolor-cpu",
        "zz-mine",
    ]
    everything = catalog.book_models(tmp_path, show_all=True, profile="cpu")
    assert len(everything) == 7 and "pix2pix-smoke" in {p.stem for p in everything.values()}
    smoke = catalog.book_models(tmp_path, profile="smoke")
    assert "pix2pix-smoke" in {p.stem for p in smoke.values()}  # a smoke run is real in smoke


def test_default_model_follows_the_documented_preference(tmp_path):
    for name in ("pix2pix-cpu", "ddcolor-cpu", "ddcolor-ablation-pixel-cpu"):
        _run(tmp_path / f"{name}.pt")
    models = catalog.book_models(tmp_path, profile="cpu")
    assert models[catalog.default_model(models)].stem == "ddcolor-cpu"  # preferred to pix2pix
    _run(tmp_path / "pretrained-gan-cpu.pt")
    models = catalog.book_models(tmp_path, profile="cpu")
    assert models[catalog.default_model(models)].stem == "pretrained-gan-cpu"
    assert catalog.default_model({}) is None


def test_released_models_offline_and_uncached_say_why(monkeypatch):
    offered, why = catalog.released_models()
    assert offered == {} and "need the internet once" in why
