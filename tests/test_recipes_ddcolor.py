"""colorlib.training.recipes_ddcolor: DDColor's recipe has the paper's objective and
optimiser, is sized by
the profile, scales the paper's learning-rate schedule to the budget, and its ablation variants
differ only in the objective (names and training: test_recipes.py)."""

import dataclasses

import pytest

from colorlib.runtime import PROFILES
from colorlib.training import recipes_ddcolor as rd


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORLIB_OFFLINE", "1")
    return tmp_path / "cache"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_ddcolor_recipe_has_the_papers_objective_and_optimiser(name):
    profile = PROFILES[name]
    config = rd.ddcolor_recipe(profile)
    assert config.model == "ddcolor"
    preset = profile.ddcolor_preset
    auto = {"encoder": "auto"} if preset == "cpu" else {}  # spelled out: resolved when built
    assert config.model_kwargs == {"preset": preset, **auto}
    assert (config.objective, config.gan_mode) == ("ddcolor", "vanilla")
    weights = (
        config.pixel_weight,
        config.perceptual_weight,
        config.adversarial_weight,
        config.colorfulness_weight,
    )
    assert weights == (0.1, 5.0, 1.0, 0.5)
    assert config.perceptual_pretrained
    assert (config.optimizer, config.lr, config.betas, config.weight_decay) == (
        "adamw",
        1e-4,
        (0.9, 0.99),
        0.01,
    )
    assert config.lr_gamma == 0.5
    assert config.discriminator == "patchgan"
    assert config.discriminator_kwargs == {"base_channels": profile.unet_base_channels}
    assert config.image_size == profile.image_size
    assert config.num_val_images == profile.eval_images
    # every loss from the first step, except on the cpu profile (measured: see the module) and
    # the smoke profile that stands in for it in CI
    warmup = ["pretrain"] if name in ("cpu", "smoke") else []
    assert [s.name for s in config.stages] == [*warmup, "gan"]


def test_ddcolor_recipe_budgets_per_profile():
    smoke, cpu, gpu = (rd.ddcolor_recipe(PROFILES[n]) for n in ("smoke", "cpu", "gpu"))
    assert (smoke.batch_size, cpu.batch_size, gpu.batch_size) == (4, 8, 16)
    budgets = [[(s.max_steps, s.max_minutes) for s in c.stages] for c in (smoke, cpu, gpu)]
    assert budgets == [[(2, 0.25), (3, 0.25)], [(500, 10.0), (500, 10.0)], [(10_000, 20.0)]]
    assert smoke.lr_milestones == ()  # 3 steps: no schedule
    # cpu: a constant rate (measured: the halvings stopped the critic's colour); gpu: the
    # paper's halvings at its fractions of the budget
    assert cpu.lr_milestones == () and not rd.TRAINING["cpu"].schedule
    assert gpu.lr_milestones == tuple(range(2000, 10_000, 1000))
    # off by default everywhere: 7.3 GiB at the gpu profile's size with AMP (H100 measurement)
    assert not any(c.grad_checkpointing for c in (smoke, cpu, gpu))
    assert rd.ddcolor_recipe(PROFILES["gpu"], grad_checkpointing=True).grad_checkpointing


def test_the_tighter_budget_wins():
    cpu = PROFILES["cpu"]
    stages = rd.ddcolor_recipe(cpu.with_overrides(stage_minutes=2.0, stage_steps=900)).stages
    assert [(s.max_steps, s.max_minutes) for s in stages] == [(500, 2.0), (500, 2.0)]
    short = rd.ddcolor_recipe(cpu.with_overrides(stage_steps=150))
    assert [s.max_steps for s in short.stages] == [150, 150]
    gpu = rd.ddcolor_recipe(PROFILES["gpu"].with_overrides(stage_steps=150))
    assert gpu.lr_milestones == (30, 45, 60, 75, 90, 105, 120, 135)  # the schedule, scaled
    # with a warm-up stage, the halvings belong to the gan stage
    warm = rd._config(
        PROFILES["gpu"], rd.Budget(max_steps=10_000, pretrain_steps=50), "full", 0, None
    )
    assert warm.lr_milestones == tuple(m + 50 for m in rd.scaled_milestones(10_000))


def test_an_unknown_profile_name_uses_the_profiles_own_values():
    custom = dataclasses.replace(PROFILES["cpu"], name="laptop", stage_steps=None)
    config = rd.ddcolor_recipe(custom)
    assert (config.image_size, config.batch_size) == (128, 16)
    assert (config.stages[0].max_steps, config.stages[0].max_minutes) == (None, 10.0)
    assert config.lr_milestones == ()


def test_scaled_milestones_keep_the_papers_fractions():
    assert rd.PAPER_MILESTONES == (80_000, 120_000, 160_000, 200_000, 240_000, 280_000,
                                   320_000, 360_000)  # fmt: skip
    assert rd.scaled_milestones(400_000) == rd.PAPER_MILESTONES
    assert rd.scaled_milestones(400) == (80, 120, 160, 200, 240, 280, 320, 360)
    assert rd.scaled_milestones(99) == () and rd.scaled_milestones(None) == ()


def test_loss_variants_zero_the_left_out_terms():
    smoke = PROFILES["smoke"]
    pixel = rd.ddcolor_recipe(smoke, "pixel")
    assert (pixel.pixel_weight, pixel.perceptual_weight) == (0.1, 0.0)
    assert (pixel.adversarial_weight, pixel.colorfulness_weight) == (0.0, 0.0)
    assert pixel.discriminator is None and pixel.discriminator_kwargs == {}
    assert [s.name for s in pixel.stages] == ["pretrain"]  # no critic: no GAN stage
    no_cf = rd.ddcolor_recipe(smoke, "no-colorfulness")
    assert no_cf.colorfulness_weight == 0.0 and no_cf.perceptual_weight == 5.0
    assert no_cf.discriminator == "patchgan" and no_cf.stages[-1].name == "gan"
    with pytest.raises(ValueError, match="unknown loss variant 'l2'"):
        rd.ddcolor_recipe(smoke, "l2")


def test_ablation_variants_differ_only_in_the_objective():
    cpu = PROFILES["cpu"]
    configs = {v: rd.ablation_recipe(cpu, v) for v in rd.LOSS_VARIANTS}
    objective_fields = {
        "pixel_weight",
        "perceptual_weight",
        "adversarial_weight",
        "colorfulness_weight",
        "discriminator",
        "discriminator_kwargs",
        "stages",
    }
    full = configs["full"]
    for config in configs.values():
        differing = {
            f.name
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(full, f.name)
        }
        assert differing <= objective_fields
        stage = config.stages[0]
        assert (stage.max_steps, stage.max_minutes) == (500, 3.0)
    assert (full.image_size, full.batch_size, full.lr_milestones) == (64, 8, ())
    profile = rd.ablation_profile(cpu)
    assert (profile.image_size, profile.batch_size, profile.name) == (64, 8, "cpu")


def test_ablation_budgets_on_the_gpu_profile():
    gpu = PROFILES["gpu"]
    config = rd.ablation_recipe(gpu, "pixel")
    assert (config.image_size, config.batch_size) == (256, 16)
    assert (config.stages[0].max_steps, config.stages[0].max_minutes) == (1000, 5.0)
    assert config.lr_milestones == ()  # short runs: a constant rate
    assert config.grad_checkpointing == rd.ddcolor_recipe(gpu).grad_checkpointing  # as the main


def test_smoke_ablation_of_the_full_loss_is_the_main_run():
    smoke = PROFILES["smoke"]
    assert rd.ablation_recipe(smoke, "full") == rd.ddcolor_recipe(smoke, "full")
    assert rd.ablation_profile(smoke) == smoke


def test_recipe_builds_the_profiles_preset():
    from colorlib.training.config import build_discriminator, build_generator, build_objective

    config = rd.ddcolor_recipe(PROFILES["smoke"], "pixel")
    generator = build_generator(config, pretrained=False)
    assert generator.config.num_queries == 8  # the "micro" preset
    assert build_discriminator(config) is None
    objective = build_objective(config)
    assert objective.perceptual_loss is None  # weight 0: no VGG built
    assert objective.weights == {
        "pixel": 0.1,
        "perceptual": 0.0,
        "adversarial": 0.0,
        "colorfulness": 0.0,
    }
