"""colorlib.training.recipes: the book's named training runs match the profiles and the papers,
have one checkpoint name per profile, and chain the L1 pretraining into the GAN stage."""

import math

import numpy as np
import pytest
import torch
from fakes import RandomPairs
from PIL import Image
from torch import nn

from colorlib.checkpoint import load_checkpoint
from colorlib.data.datasets import ColorizationDataset
from colorlib.data.hints import HintPairs
from colorlib.runtime import PROFILES, checkpoint_dir, get_profile
from colorlib.training import recipes, recipes_classification, recipes_ddcolor, recipes_unet
from colorlib.training.config import config_differences


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")  # no 3 s wait for the ResNet18 weights host
    return tmp_path / "cache"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_pix2pix_baseline_follows_the_profile_and_the_paper(name):
    profile = PROFILES[name]
    config = recipes_unet.pix2pix_baseline(profile)
    assert config.model == "unet" and config.discriminator == "patchgan"
    num_downs = int(math.log2(profile.image_size))  # 1x1 bottleneck (8 levels at 256 px)
    assert config.model_kwargs == {
        "base_channels": profile.unet_base_channels,
        "num_downs": num_downs,
    }
    assert config.discriminator_kwargs == {"base_channels": profile.unet_base_channels}
    assert (config.image_size, config.batch_size) == (profile.image_size, profile.batch_size)
    assert config.num_val_images == profile.eval_images
    assert (config.objective, config.lambda_l1, config.gan_mode) == ("pix2pix", 100.0, "vanilla")
    assert (config.optimizer, config.lr, config.betas) == ("adam", 2e-4, (0.5, 0.999))
    assert [(s.name, s.max_steps, s.max_minutes) for s in config.stages] == [
        ("gan", profile.stage_steps, profile.stage_minutes)
    ]


def test_pix2pix_baseline_on_the_gpu_profile_is_the_papers_network():
    from colorlib.models.blocks import count_parameters
    from colorlib.training.config import build_discriminator, build_generator

    config = recipes_unet.pix2pix_baseline(PROFILES["gpu"])
    assert count_parameters(build_generator(config)) == 54_409_858  # "54.41 M"
    assert count_parameters(build_discriminator(config)) == 2_765_633  # "2.77 M"


def test_pix2pix_baseline_rejects_a_size_without_a_1x1_bottleneck():
    with pytest.raises(ValueError, match="power-of-two image size, got 96"):
        recipes_unet.pix2pix_baseline(PROFILES["smoke"].with_overrides(image_size=96))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_pretrained_unet_stages_share_the_generator(name):
    profile = PROFILES[name]
    pretrain = recipes_unet.pretrained_unet(profile, "pretrain")
    gan = recipes_unet.pretrained_unet(profile, "gan")
    assert pretrain.model == gan.model == "resnet-unet"
    assert pretrain.model_kwargs == gan.model_kwargs == {"encoder": "auto"}  # init_from needs it
    assert pretrain.discriminator is None and [s.name for s in pretrain.stages] == ["pretrain"]
    assert (pretrain.lr, pretrain.betas) == (2e-4, (0.9, 0.999))
    assert gan.discriminator == "patchgan" and [s.name for s in gan.stages] == ["gan"]
    assert (gan.lr, gan.betas, gan.lambda_l1, gan.gan_mode) == (
        2e-4,
        (0.5, 0.999),
        100.0,
        "vanilla",
    )
    for config in (pretrain, gan):
        stage = config.stages[0]
        assert (stage.max_steps, stage.max_minutes) == (profile.stage_steps, profile.stage_minutes)
        assert (config.image_size, config.batch_size) == (profile.image_size, profile.batch_size)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_classification_recipe_is_the_l1_run_with_a_classifier_head(name):
    profile = PROFILES[name]
    l1 = recipes.recipe_config("pretrained-l1", profile, seed=2)
    classification = recipes.recipe_config("classification", profile, seed=2)
    assert classification == recipes_classification.classification_recipe(profile, seed=2)
    assert (classification.model, classification.objective) == ("classifier", "classification")
    assert classification.model_kwargs == {
        "trunk": l1.model,  # the same ImageNet-encoder U-Net, encoder resolved the same way
        "trunk_kwargs": l1.model_kwargs,
        "num_features": recipes_classification.NUM_FEATURES,
        "downsample": recipes_classification.DOWNSAMPLE,  # the paper's 1/4 resolution
    }
    assert classification.rebalance_lambda == 0.5  # the paper's lambda
    # same size, optimiser, seed and budget: only the model and the loss differ
    assert config_differences(l1, classification, ignore=()) == [
        "model",
        "model_kwargs",
        "objective",
    ]
    assert classification.stages == l1.stages and classification.discriminator is None
    assert recipes.RECIPES["classification"].init_from is None


def test_pretrained_unet_rejects_an_unknown_stage():
    with pytest.raises(ValueError, match="unknown stage 'l2'"):
        recipes_unet.pretrained_unet(PROFILES["smoke"], "l2")


def test_registry_builds_every_recipe_and_names_known_prerequisites():
    smoke = PROFILES["smoke"]
    for name, recipe in recipes.RECIPES.items():
        assert recipe.name == name
        assert recipes.recipe_config(name, smoke, seed=3).seed == 3
        assert recipe.init_from is None or recipe.init_from in recipes.RECIPES
    assert recipes.RECIPES["pretrained-gan"].init_from == "pretrained-l1"
    assert recipes.recipe_config("pix2pix", smoke) == recipes_unet.pix2pix_baseline(smoke)
    with pytest.raises(ValueError, match="unknown recipe 'ddcolr'"):
        recipes.recipe_config("ddcolr", smoke)


def test_checkpoint_names_differ_per_profile_recipe_and_seed():
    names = {
        recipes.checkpoint_name(recipe, profile, seed)
        for recipe in recipes.RECIPES
        for profile in PROFILES.values()
        for seed in (0, 1)
    }
    assert len(names) == len(recipes.RECIPES) * len(PROFILES) * 2
    assert recipes.checkpoint_name("pix2pix", PROFILES["cpu"]) == "pix2pix-cpu"
    assert recipes.checkpoint_name("pix2pix", PROFILES["cpu"], seed=2) == "pix2pix-cpu-seed2"
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.checkpoint_name("nope", PROFILES["cpu"])


def _photos(folder, count=6, size=(72, 80)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        gradient = np.linspace(0, 255, size[1], dtype=np.float64)[None, :, None]
        pixels = gradient * rng.uniform(0.3, 1.0, size=(1, 1, 3)) + rng.normal(0, 20, (*size, 3))
        path = folder / f"{index}.png"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _batches_tracked(generator: nn.Module) -> set[int]:
    return {
        int(m.num_batches_tracked) for m in generator.modules() if isinstance(m, nn.BatchNorm2d)
    }


def test_train_recipe_chains_the_pretraining_into_the_gan_stage(cache, tmp_path, capsys):
    profile = get_profile("smoke").with_overrides(stage_steps=1, batch_size=2, eval_images=2)
    paths = _photos(tmp_path / "photos")
    train_set = ColorizationDataset(paths[:4], profile.image_size, train=True)
    val_set = ColorizationDataset(paths[4:], profile.image_size, train=False)

    gan = recipes.train_recipe("pretrained-gan", profile, train_set, val_set, "cpu", progress=False)
    assert not gan.loaded and gan.complete
    pretrain_path = checkpoint_dir() / "pretrained-l1-smoke.pt"
    assert load_checkpoint(gan.checkpoint_path)["init_from"] == "pretrained-l1-smoke"
    assert f"initialised from {pretrain_path}" in capsys.readouterr().out
    # every BatchNorm saw one pretraining batch, then one GAN batch: the weights were carried over
    assert _batches_tracked(gan.generator) == {2}

    again = recipes.train_recipe("pretrained-gan", profile, train_set, val_set, "cpu")
    assert again.loaded and "loaded 'pretrained-gan-smoke'" in capsys.readouterr().out
    for name, tensor in gan.generator.state_dict().items():  # bit-exact: a saved copy, loaded
        assert torch.equal(tensor, again.generator.state_dict()[name]), name


def test_a_retrained_prerequisite_retrains_the_gan_stage(cache, tmp_path, monkeypatch):
    calls = []

    class Result:
        loaded = False

    def fake_train_or_load(config, name, *args, force=False, init_from=None, **kwargs):
        calls.append((name, force, init_from))
        return Result()

    monkeypatch.setattr(recipes, "train_or_load", fake_train_or_load)
    recipes.train_recipe("pretrained-gan", PROFILES["cpu"], None, None, seed=1)
    assert calls == [
        ("pretrained-l1-cpu-seed1", False, None),
        ("pretrained-gan-cpu-seed1", True, "pretrained-l1-cpu-seed1"),  # new start weights
    ]
    Result.loaded, calls[:] = True, []
    recipes.train_recipe("pretrained-gan", PROFILES["cpu"], None, None)
    assert calls[1] == ("pretrained-gan-cpu", False, "pretrained-l1-cpu")


def test_one_registry_holds_every_model_the_book_trains():
    main = [name for name, recipe in recipes.RECIPES.items() if not recipe.ablation]
    assert main == [  # the book's order
        "pix2pix",
        "pretrained-l1",
        "pretrained-gan",
        "classification",
        "ddcolor",
        "hints",
        "hints-gan",
    ]
    ablations = [name for name, recipe in recipes.RECIPES.items() if recipe.ablation]
    assert ablations == [f"gan-lesson-{v}" for v in recipes_unet.GAN_LESSON_VARIANTS] + [
        f"trick-ablation-{v}" for v in recipes.TRICK_VARIANTS
    ] + [f"ddcolor-ablation-{v}" for v in recipes_ddcolor.LOSS_VARIANTS]
    cpu = PROFILES["cpu"]
    assert recipes.recipe_config("ddcolor", cpu) == recipes_ddcolor.ddcolor_recipe(cpu)
    pixel = recipes.recipe_config("ddcolor-ablation-pixel", cpu)
    assert pixel == recipes_ddcolor.ablation_recipe(cpu, "pixel")
    assert recipes.recipe_profile("ddcolor-ablation-pixel", cpu).image_size == 64
    assert recipes.recipe_profile("ddcolor", cpu) == cpu
    with pytest.raises(ValueError, match="unknown recipe 'vgg'"):
        recipes.recipe_config("vgg", cpu)


def test_hint_recipes_train_on_simulated_hints_and_the_others_on_the_photos(monkeypatch):
    train_set, val_set = RandomPairs(4, size=16), RandomPairs(2, seed=1, size=16)
    for name in ("hints", "hints-gan"):
        train, val = recipes.recipe_datasets(name, train_set, val_set, seed=2)
        assert isinstance(train, HintPairs) and train[0][0].shape[0] == 4
        assert val is val_set  # validated on automatic colorization
    assert recipes.recipe_datasets("pix2pix", train_set, val_set) == (train_set, val_set)
    assert recipes.RECIPES["hints-gan"].init_from == "hints"
    assert recipes.recipe_chain("hints-gan") == ["hints", "hints-gan"]
    calls = []

    class Result:
        loaded = True

    def fake_train_or_load(config, name, train, val, **kwargs):
        calls.append((name, type(train).__name__, config.model_kwargs.get("hint_channels")))
        return Result()

    monkeypatch.setattr(recipes, "train_or_load", fake_train_or_load)
    recipes.train_recipe("hints-gan", PROFILES["cpu"], train_set, val_set)
    assert calls == [("hints-cpu", "HintPairs", 3), ("hints-gan-cpu", "HintPairs", 3)]


def test_recipe_chain_puts_prerequisites_first():
    assert recipes.recipe_chain("pretrained-gan") == ["pretrained-l1", "pretrained-gan"]
    assert recipes.recipe_chain("ddcolor") == ["ddcolor"]
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.recipe_chain("nope")


def test_checkpoint_names_are_distinct_per_run():
    names = {
        recipes.checkpoint_name(recipe, PROFILES[p], seed)
        for p in PROFILES
        for recipe in recipes.RECIPES
        for seed in (0, 3)
    }
    assert len(names) == len(PROFILES) * len(recipes.RECIPES) * 2
    cpu = PROFILES["cpu"]
    assert recipes.checkpoint_name("ddcolor", cpu) == "ddcolor-cpu"
    assert recipes.checkpoint_name("ddcolor-ablation-full", cpu) == "ddcolor-ablation-full-cpu"
    assert recipes.checkpoint_name("ddcolor", cpu, seed=3) == "ddcolor-cpu-seed3"


def test_train_recipe_trains_ddcolor_once_then_loads(cache):
    profile = PROFILES["smoke"].with_overrides(
        image_size=32, batch_size=2, stage_steps=1, eval_images=2
    )
    data = RandomPairs(4, size=32)
    name = "ddcolor-ablation-pixel"
    first = recipes.train_recipe(name, profile, data, data, "cpu", progress=False)
    assert not first.loaded and first.complete
    assert (checkpoint_dir() / "ddcolor-ablation-pixel-smoke.pt").exists()
    assert [row["step"] for row in first.history] == [1]
    again = recipes.train_recipe(name, profile, data, data, "cpu", progress=False)
    assert again.loaded
    L = data.L[:2]
    torch.testing.assert_close(first.generator(L), again.generator(L))
