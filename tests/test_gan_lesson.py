"""Chapter 5's GAN-dynamics runs: the baseline and its L1-free twin, at a short budget."""

from __future__ import annotations

from dataclasses import replace

import pytest

from colorlib.runtime import PROFILES
from colorlib.training import recipes_unet as ru


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_the_two_variants_differ_only_in_the_l1_weight(name):
    profile = PROFILES[name]
    healthy = ru.gan_lesson(profile, "healthy")
    no_l1 = ru.gan_lesson(profile, "no-l1")
    assert (healthy.lambda_l1, no_l1.lambda_l1) == (100.0, 0.0)
    assert replace(no_l1, lambda_l1=100.0) == healthy
    # the healthy run is the chapter's pix2pix recipe, only shorter
    baseline = ru.pix2pix_baseline(profile)
    assert replace(healthy, stages=baseline.stages) == baseline


def test_the_budget_is_the_shorter_of_the_profiles_and_the_lessons():
    minutes = {n: ru.gan_lesson(PROFILES[n]).stages[0].max_minutes for n in PROFILES}
    assert minutes["cpu"] == 2.0 and minutes["gpu"] == 3.0
    assert minutes["smoke"] == PROFILES["smoke"].stage_minutes  # already shorter
    custom = PROFILES["cpu"].with_overrides(name="laptop", stage_minutes=7.0)
    assert ru.gan_lesson(custom).stages[0].max_minutes == 7.0  # not listed: its own budget
    assert ru.gan_lesson(custom).stages[0].max_steps == custom.stage_steps


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'no-gan'"):
        ru.gan_lesson(PROFILES["smoke"], "no-gan")


def test_the_lessons_are_registered_recipes_with_the_notebooks_old_checkpoint_names():
    from colorlib.training import recipes

    cpu = PROFILES["cpu"]
    for variant in ru.GAN_LESSON_VARIANTS:
        name = f"gan-lesson-{variant}"
        recipe = recipes.RECIPES[name]
        assert recipe.ablation and recipe.chapter == 5 and recipe.init_from is None
        assert recipes.recipe_config(name, cpu, 2) == ru.gan_lesson(cpu, variant, 2)
        # the names chapter 5 gave its runs before they were registered: caches stay valid
        assert recipes.checkpoint_name(name, cpu) == f"gan-lesson-{variant}-cpu"
