"""The book's trained models, by name: one registry for the chapters, the CLI and the tests.

A *recipe* is a name ("pix2pix", "pretrained-l1", "pretrained-gan", "classification",
"ddcolor", "hints", "hints-gan", "gan-lesson-<variant>", "ddcolor-ablation-<variant>",
"trick-ablation-<variant>")
for a function ``(profile, seed) -> TrainConfig``, plus the recipe whose finished weights
start it and, for the hint models, how its photos become training pairs. The
chapters, the command line and the evaluation chapter all ask this registry, so "the pix2pix
baseline" is the same run everywhere:

* the configs themselves are built by :mod:`colorlib.training.recipes_unet` (chapters 5 and 6),
  :mod:`colorlib.training.recipes_trick` (chapter 6's ablation),
  :mod:`colorlib.training.recipes_classification` (Zhang et al.'s colorization as
  classification, on the "pretrained-l1" trunk and budget; chapter 7) and
  :mod:`colorlib.training.recipes_ddcolor` (chapter 8) and
  :mod:`colorlib.training.recipes_hints` (user-guided colorization, chapter 10);
* :func:`recipe_datasets` turns the ``(L, ab)`` photos into the pairs a recipe trains on
  (the hint recipes add simulated hints, :func:`~colorlib.training.recipes_hints.hint_datasets`);
  :func:`train_recipe` calls it, so every caller passes plain ``(L, ab)`` datasets;
* :func:`checkpoint_name` gives each (recipe, profile, seed) its own
  :func:`~colorlib.training.runs.train_or_load` name (``"pix2pix-cpu"``,
  ``"ddcolor-ablation-pixel-cpu"``), so smoke, cpu and gpu runs never overwrite one another;
* :func:`recipe_chain` lists the runs a recipe needs, prerequisites first, and
  :func:`train_recipe` trains (or loads) them in that order;
* :func:`recipe_profile` is the profile a recipe's data is loaded with (the DDColor ablation
  trains smaller crops than the profile's).

>>> from colorlib.training import recipes
>>> result = recipes.train_recipe("pretrained-gan", profile, train_set, val_set)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from colorlib.runtime import Profile
from colorlib.training.config import TrainConfig
from colorlib.training.recipes_classification import classification_recipe
from colorlib.training.recipes_ddcolor import (
    LOSS_VARIANTS,
    ablation_profile,
    ablation_recipe,
    ddcolor_recipe,
)
from colorlib.training.recipes_hints import hint_datasets, hints_recipe
from colorlib.training.recipes_trick import TRICK_VARIANTS, trick_profile, trick_recipe
from colorlib.training.recipes_unet import (
    GAN_LESSON_VARIANTS,
    gan_lesson,
    pix2pix_baseline,
    pretrained_unet,
)
from colorlib.training.runs import train_or_load
from colorlib.training.runstate import TrainResult

__all__ = [
    "Recipe",
    "RECIPES",
    "recipe_config",
    "recipe_profile",
    "recipe_chain",
    "recipe_datasets",
    "checkpoint_name",
    "train_recipe",
]


def _same_profile(profile: Profile) -> Profile:
    return profile


def _same_pairs(train_set, val_set, seed: int = 0):
    return train_set, val_set


@dataclass(frozen=True)
class Recipe:
    """A named training run.

    Attributes:
        name: the recipe's name (a key of :data:`RECIPES`).
        summary: one line for tables and the command line.
        build: ``(profile, seed) -> TrainConfig``.
        init_from: the recipe whose finished generator starts this one, or None.
        data_profile: ``profile -> profile`` the run's photos are loaded with (its image and
            batch size); the profile itself for most recipes.
        ablation: a short side run of an ablation, not one of the book's main models.
        label: a short name for people (menus, legends); the recipe's name when empty.
        chapter: the book's chapter that trains it.
        datasets: ``(train_set, val_set, seed) -> (train, val)``, the pairs the run trains
            on, from ``(L, ab)`` datasets; unchanged for most recipes.
    """

    name: str
    summary: str
    build: Callable[[Profile, int], TrainConfig]
    init_from: str | None = None
    data_profile: Callable[[Profile], Profile] = _same_profile
    ablation: bool = False
    label: str = ""
    chapter: int = 8
    datasets: Callable = _same_pairs


def _ablation(variant: str) -> Recipe:
    return Recipe(
        f"ddcolor-ablation-{variant}",
        f"DDColor loss ablation, terms kept: {', '.join(LOSS_VARIANTS[variant])}",
        lambda profile, seed=0: ablation_recipe(profile, variant, seed),
        data_profile=ablation_profile,
        ablation=True,
        label=f"DDColor loss ablation '{variant}'",
    )


def _lesson(variant: str) -> Recipe:
    return Recipe(
        f"gan-lesson-{variant}",
        f"chapter 5's GAN-dynamics run, lambda_L1 = {GAN_LESSON_VARIANTS[variant]:g}",
        lambda profile, seed=0: gan_lesson(profile, variant, seed),
        ablation=True,
        label=f"GAN lesson '{variant}'",
        chapter=5,
    )


def _trick(variant: str) -> Recipe:
    return Recipe(
        f"trick-ablation-{variant}",
        f"pretraining-trick ablation {TRICK_VARIANTS[variant]}",
        lambda profile, seed=0: trick_recipe(profile, variant, seed),
        data_profile=trick_profile,
        ablation=True,
        label=f"trick ablation '{variant}'",
        chapter=6,
    )


#: every model the book trains, in the book's order; ablation runs last
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "pix2pix",
            "pix2pix from scratch: U-Net + 70x70 PatchGAN, L_cGAN + 100 L1",
            pix2pix_baseline,
            label="pix2pix: U-Net + PatchGAN, from scratch",
            chapter=5,
        ),
        Recipe(
            "pretrained-l1",
            "U-Net on an ImageNet encoder, trained with L1 alone",
            lambda profile, seed=0: pretrained_unet(profile, "pretrain", seed),
            label="U-Net, ImageNet encoder, L1",
            chapter=6,
        ),
        Recipe(
            "pretrained-gan",
            "the L1-pretrained U-Net fine-tuned as a pix2pix generator",
            lambda profile, seed=0: pretrained_unet(profile, "gan", seed),
            init_from="pretrained-l1",
            label="U-Net, ImageNet encoder, L1 + GAN",
            chapter=6,
        ),
        Recipe(
            "classification",
            "the same U-Net predicting 229 colour bins, rebalanced cross-entropy (Zhang 2016)",
            classification_recipe,
            label="U-Net, ImageNet encoder, classification (Zhang 2016)",
            chapter=7,
        ),
        Recipe(
            "ddcolor",
            "DDColor: ConvNeXt encoder, pixel and colour decoders, its four losses",
            lambda profile, seed=0: ddcolor_recipe(profile, seed=seed),
            label="DDColor, trained in the book",
        ),
        Recipe(
            "hints",
            "the ImageNet-encoder U-Net with colour hints as input, smooth L1 (Zhang 2017)",
            hints_recipe,
            label="U-Net with colour hints (Zhang 2017)",
            chapter=10,
            datasets=hint_datasets,
        ),
        Recipe(
            "hints-gan",
            "the hint U-Net fine-tuned with a PatchGAN critic",
            lambda profile, seed=0: hints_recipe(profile, seed, "gan"),
            init_from="hints",
            label="U-Net with colour hints, + GAN",
            chapter=10,
            datasets=hint_datasets,
        ),
        *(_lesson(variant) for variant in GAN_LESSON_VARIANTS),
        *(_trick(variant) for variant in TRICK_VARIANTS),
        *(_ablation(variant) for variant in LOSS_VARIANTS),
    )
}


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {list(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, profile: Profile, seed: int = 0) -> TrainConfig:
    """The :class:`~colorlib.training.config.TrainConfig` of recipe ``name`` for ``profile``."""
    return _recipe(name).build(profile, seed)


def recipe_profile(name: str, profile: Profile) -> Profile:
    """The profile to load recipe ``name``'s photos with (``load_datasets(...)``)."""
    return _recipe(name).data_profile(profile)


def recipe_chain(name: str) -> list[str]:
    """The recipes a run of ``name`` needs, prerequisites first, ``name`` last."""
    chain = [_recipe(name).name]
    while RECIPES[chain[0]].init_from is not None:
        chain.insert(0, _recipe(RECIPES[chain[0]].init_from).name)
    return chain


def recipe_datasets(name: str, train_set, val_set, seed: int = 0):
    """The ``(train, val)`` datasets recipe ``name`` trains on, from ``(L, ab)`` datasets.

    Most recipes train on the photos as they are; "hints" and "hints-gan" train on them with
    simulated colour hints (:func:`~colorlib.training.recipes_hints.hint_datasets`; their
    validation stays automatic colorization).
    """
    return _recipe(name).datasets(train_set, val_set, seed)


def checkpoint_name(recipe: str, profile: Profile, seed: int = 0) -> str:
    """The ``train_or_load`` name of a recipe's run: ``"<recipe>-<profile>"`` (``-seed<n>``
    appended for a seed other than 0), e.g. ``"pix2pix-cpu"``.

    Raises:
        ValueError: an unknown recipe.
    """
    _recipe(recipe)
    suffix = f"-seed{seed}" if seed else ""
    return f"{recipe}-{profile.name}{suffix}"


def train_recipe(
    name: str,
    profile: Profile,
    train_set,
    val_set,
    device=None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Load the finished run of recipe ``name``, or train it (after its prerequisite).

    A recipe with ``init_from`` first trains or loads that recipe, then starts from its
    weights. When the prerequisite had to be (re)trained, this run is retrained too: its old
    checkpoint started from other weights.

    Args:
        name: a key of :data:`RECIPES`.
        profile: sizes and budgets (see :func:`colorlib.runtime.get_profile`).
        train_set, val_set: ``(L, ab)`` datasets, loaded with :func:`recipe_profile`'s profile
            (e.g. ``load_datasets(recipe_profile(name, profile))``); :func:`recipe_datasets`
            makes the recipe's pairs of them.
        device: where to train (None: the best available).
        seed: the runs' seed (part of the checkpoint names).
        force: retrain this recipe (not its prerequisite) even if a finished run exists.
        progress: show progress bars.

    Returns:
        The :class:`~colorlib.training.runstate.TrainResult` of recipe ``name``.
    """
    recipe = _recipe(name)
    init_from = None
    if recipe.init_from is not None:
        before = train_recipe(
            recipe.init_from, profile, train_set, val_set, device, seed, progress=progress
        )
        force = force or not before.loaded
        init_from = checkpoint_name(recipe.init_from, profile, seed)
    return train_or_load(
        recipe.build(profile, seed),
        checkpoint_name(name, profile, seed),
        *recipe.datasets(train_set, val_set, seed),
        device=device,
        force=force,
        init_from=init_from,
        progress=progress,
    )
