"""colorlib.training.recipes_hints: the hints recipe is "pretrained-l1" plus hint channels, and a
hint model trains through the generic fit (L1 stage and GAN stage) on hint_datasets."""

import math

import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.checkpoint import load_generator
from colorlib.data.hints import HintPairs, split_hints
from colorlib.runtime import PROFILES
from colorlib.training.config import Stage, TrainConfig, build_objective, config_differences
from colorlib.training.loop import fit
from colorlib.training.losses import Pix2PixObjective
from colorlib.training.recipes_hints import hint_datasets, hints_recipe
from colorlib.training.recipes_unet import pretrained_unet
from colorlib.training.steps import gan_step, lightness, pretrain_step

SIZE = 32
TINY = {
    "encoder": "resnet18",
    "hint_channels": 3,
    "hint_decoder": True,
    "decoder_channels": [8] * 5,
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_hints_recipe_is_pretrained_l1_with_hint_channels_and_the_smooth_l1(name):
    profile = PROFILES[name]
    config, l1 = hints_recipe(profile, seed=3), pretrained_unet(profile, "pretrain", seed=3)
    assert config_differences(config, l1, ignore=()) == ["model_kwargs", "pixel_loss"]
    assert config.model_kwargs == {"encoder": "auto", "hint_channels": 3, "hint_decoder": True}
    assert config.pixel_loss == "smooth-l1"
    assert config.discriminator is None and [s.name for s in config.stages] == ["pretrain"]
    objective = build_objective(config)
    assert objective.pixel_loss == "smooth-l1" and objective.lambda_l1 == 100.0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_gan_option_is_pretrained_gan_with_the_same_two_changes(name):
    profile = PROFILES[name]
    config, gan = hints_recipe(profile, 1, "gan"), pretrained_unet(profile, "gan", 1)
    assert config_differences(config, gan, ignore=()) == ["model_kwargs", "pixel_loss"]
    assert config.discriminator == "patchgan" and [s.name for s in config.stages] == ["gan"]
    # init_from needs the same generator as the hint run it starts from
    assert config.model_kwargs == hints_recipe(profile, 1).model_kwargs
    with pytest.raises(ValueError, match="unknown stage 'l2'"):
        hints_recipe(profile, stage="l2")


def test_config_rejects_an_unknown_pixel_loss():
    with pytest.raises(ValueError, match="unknown pixel_loss 'huber'"):
        TrainConfig(pixel_loss="huber")


def test_hint_datasets_wrap_training_and_optionally_validation():
    train_set, val_set = RandomPairs(4, size=SIZE), RandomPairs(2, seed=1, size=SIZE)
    train, val = hint_datasets(train_set, val_set, seed=5)
    assert isinstance(train, HintPairs) and train.seed is None and val is val_set
    assert train[0][0].shape == (4, SIZE, SIZE)
    train, val = hint_datasets(train_set, val_set, seed=5, val_hints=True, val_points=3)
    assert isinstance(val, HintPairs) and val.seed == 5
    assert torch.equal(val[1][0], val[1][0])  # fixed hints
    mask = split_hints(val[1][0])[2]
    assert mask.sum() >= 1 and len(val.hints(1, val_set[1][1])) == 3


def _config(stage: str, steps: int = 2) -> TrainConfig:
    gan = stage == "gan"
    return TrainConfig(
        model="resnet-unet",
        model_kwargs={**TINY, "pretrained": False},
        discriminator="patchgan" if gan else None,
        discriminator_kwargs={"base_channels": 4, "num_layers": 1} if gan else {},
        image_size=SIZE,
        batch_size=4,
        stages=(Stage(stage, max_steps=steps),),
        val_every=0,
        num_val_images=2,
        num_sample_images=2,
        amp=False,
        channels_last=False,
        num_workers=0,
    )


@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_a_hint_model_trains_with_fit_and_its_checkpoint_rebuilds_it(stage, tmp_path):
    sets = hint_datasets(RandomPairs(8, size=SIZE), RandomPairs(2, seed=1, size=SIZE))
    path = tmp_path / "hints.pt"
    result = fit(_config(stage), *sets, device="cpu", checkpoint_path=path, progress=False)
    assert len(result.history) == 2 and result.validations  # validated on L alone
    generator, _ = load_generator(path)
    assert generator.hint_channels == 3 and generator.model_kwargs["hint_channels"] == 3
    x = sets[0][0][0][None]
    with torch.no_grad():
        assert torch.equal(generator.eval()(x), result.generator.eval()(x))


def test_fit_validates_with_fixed_hints_and_keeps_the_lightness_as_samples(tmp_path):
    sets = hint_datasets(
        RandomPairs(8, size=SIZE), RandomPairs(2, seed=1, size=SIZE), val_hints=True, val_points=3
    )
    result = fit(_config("pretrain"), *sets, device="cpu", progress=False)
    metrics = result.validations[-1]["metrics"]
    assert all(math.isfinite(v) for v in metrics.values())
    assert result.samples["L"].shape[1] == 1  # the photo, not its hint channels


class _Recorder(nn.Module):
    """A PatchGAN stand-in recording the L it is given."""

    def __init__(self):
        super().__init__()
        self.conv, self.seen = nn.Conv2d(3, 1, 3, padding=1), []

    def forward(self, L, ab):
        self.seen.append(L.shape[1])
        return self.conv(torch.cat([L, ab], 1))


class _HintGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


def test_steps_give_the_objective_and_the_discriminator_the_lightness_alone():
    torch.manual_seed(0)
    generator, critic = _HintGenerator(), _Recorder()
    seen_by_objective = []

    class Objective(Pix2PixObjective):
        def forward(self, L, real_ab, fake_ab, fake_logits):
            seen_by_objective.append(L.shape[1])
            return super().forward(L, real_ab, fake_ab, fake_logits)

    x, ab = torch.rand(2, 4, 8, 8), torch.rand(2, 2, 8, 8)
    g_opt = torch.optim.Adam(generator.parameters())
    d_opt = torch.optim.Adam(critic.parameters())
    pretrain_step(generator, g_opt, Objective(), (x, ab))
    losses = gan_step(generator, critic, g_opt, d_opt, Objective(), (x, ab))
    assert set(seen_by_objective) == {1} and critic.seen == [1, 1, 1]  # real, fake, generator
    assert "d_total" in losses and generator.conv.weight.grad is not None
    assert torch.equal(lightness(x), x[:, :1])
