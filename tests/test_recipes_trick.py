"""colorlib.training.recipes_trick: chapter 6's ablation of the pretraining trick."""

import pytest

from colorlib.runtime import PROFILES
from colorlib.training import recipes, recipes_trick
from colorlib.training.config import build_generator
from colorlib.training.recipes_unet import PIX2PIX_OPTIMIZER

IMAGENET_ENCODER = recipes_trick.imagenet_encoder  # before the fixture replaces it


@pytest.mark.parametrize("available, expected", [(True, "resnet18"), (False, "efficientnet-lite0")])
def test_imagenet_encoder_follows_the_resnet18_weights(monkeypatch, available, expected):
    from colorlib.models import pretrained

    class Weights:
        pass

    asked = []

    def fake(name):
        asked.append(name)
        weights = Weights()
        weights.available = available
        return weights

    monkeypatch.setattr(pretrained, "load_torchvision_state_dict", fake)
    IMAGENET_ENCODER.cache_clear()
    try:
        assert IMAGENET_ENCODER() == expected and IMAGENET_ENCODER() == expected
        assert asked == ["ResNet18_Weights.IMAGENET1K_V1"]  # asked once per process
    finally:
        IMAGENET_ENCODER.cache_clear()


@pytest.fixture(autouse=True)
def _offline_encoder(monkeypatch):
    # which encoder has ImageNet weights depends on the machine; pin it (no network asked)
    monkeypatch.setattr(recipes_trick, "imagenet_encoder", lambda: "efficientnet-lite0")


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_variant_trains_the_same_total_time_with_one_optimiser(profile):
    profile = PROFILES[profile]
    configs = {v: recipes_trick.trick_recipe(profile, v) for v in recipes_trick.TRICK_VARIANTS}
    totals = {v: sum(s.max_minutes for s in c.stages) for v, c in configs.items()}
    assert len(set(totals.values())) == 1, totals
    steps = {v: sum(s.max_steps or 0 for s in c.stages) for v, c in configs.items()}
    assert len(set(steps.values())) == 1, steps  # a step cap, when any, is equal too
    for variant, config in configs.items():
        names = [s.name for s in config.stages]
        assert names == (["gan"] if variant == "gan-only" else ["pretrain", "gan"])
        assert (config.lr, config.betas) == (PIX2PIX_OPTIMIZER["lr"], PIX2PIX_OPTIMIZER["betas"])
        assert config.discriminator == "patchgan" and config.lambda_l1 == 100
    size = recipes_trick.trick_profile(profile).image_size
    assert all(c.image_size == size for c in configs.values())
    if profile.name == "cpu":
        assert size == 64 and totals["recipe"] == 3.0


def test_variants_differ_in_exactly_their_ingredient():
    smoke = PROFILES["smoke"]
    config = {v: recipes_trick.trick_recipe(smoke, v) for v in recipes_trick.TRICK_VARIANTS}
    assert config["scratch-unet"].model == "unet"
    assert config["random-encoder"].model_kwargs == {
        "encoder": "efficientnet-lite0",
        "pretrained": False,
    }
    assert config["recipe"].model_kwargs == config["gan-only"].model_kwargs == {"encoder": "auto"}
    # (b) builds the very architecture (d) starts from ImageNet, with random weights
    random_net = build_generator(config["random-encoder"])
    assert random_net.encoder_name == "efficientnet-lite0"
    assert random_net.encoder_source == "random"
    with pytest.raises(ValueError, match="unknown variant 'l2'"):
        recipes_trick.trick_recipe(smoke, "l2")


def test_the_registry_names_the_variants_as_chapter_6_ablations():
    cpu = PROFILES["cpu"]
    for variant in recipes_trick.TRICK_VARIANTS:
        name = f"trick-ablation-{variant}"
        recipe = recipes.RECIPES[name]
        assert recipe.ablation and recipe.chapter == 6
        assert recipes.recipe_config(name, cpu) == recipes_trick.trick_recipe(cpu, variant)
        assert recipes.recipe_profile(name, cpu).image_size == 64
        assert recipes.checkpoint_name(name, cpu) == f"{name}-cpu"
