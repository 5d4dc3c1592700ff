"""colorlib.training.precision: when a CPU trains in bf16, the override, and what fit does with
the choice (autocast inside, float32 weights and losses outside, channels-last, fused Adam, the
banner line, old checkpoints)."""

import pytest
import torch
from fakes import RandomPairs
from torch import nn

from colorlib.checkpoint import load_checkpoint, save_checkpoint
from colorlib.training import precision
from colorlib.training.config import Stage, TrainConfig, build_optimizers
from colorlib.training.console import training_banner
from colorlib.training.loop import fit
from colorlib.training.losses import Pix2PixObjective
from colorlib.training.precision import CpuBf16, StepSettings, requested_precision, step_settings
from colorlib.training.steps import Precision, pretrain_step

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
SLOW = CpuBf16(False, "AVX2, no avx512_bf16 or amx_bf16")
FAST = CpuBf16(True, "AVX512, probe 1.8x", 1.8)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No override from the environment, and no verdict cached from an earlier test."""
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    precision.cpu_bf16.cache_clear()
    yield
    precision.cpu_bf16.cache_clear()


def _hardware(monkeypatch, machine="x86_64", flags=(), speedup=None, capability="AVX512"):
    """A pretend CPU; the probe, when ``speedup`` is None, must not run. Returns its calls."""
    calls = []

    def probe():
        calls.append(1)
        assert speedup is not None, "the probe ran on a CPU without bf16 instructions"
        return speedup

    monkeypatch.setattr(precision, "_machine", lambda: machine)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: None if flags is None else set(flags))
    monkeypatch.setattr(precision, "_capability", lambda: capability)
    monkeypatch.setattr(precision, "_probe_speedup", probe)
    return calls


def _verdict(monkeypatch, verdict):
    def fake():
        return verdict

    fake.cache_clear = lambda: None
    monkeypatch.setattr(precision, "cpu_bf16", fake)


# --- the override --------------------------------------------------------------------------


def test_the_requested_precision_comes_from_the_environment(monkeypatch):
    assert requested_precision() == "auto"
    for raw, chosen in [(" BF16 ", "bf16"), ("fp32", "fp32"), ("", "auto"), ("Auto", "auto")]:
        monkeypatch.setenv("COLORLIB_PRECISION", raw)
        assert requested_precision() == chosen
    assert requested_precision("fp32") == "fp32"  # an explicit value wins


@pytest.mark.parametrize("raw", ["fp16", "bfloat16", "float32", "yes"])
def test_an_invalid_precision_is_refused_clearly(monkeypatch, raw):
    monkeypatch.setenv("COLORLIB_PRECISION", raw)
    with pytest.raises(ValueError, match=f"COLORLIB_PRECISION='{raw}' is not one of auto, fp32"):
        requested_precision()
    with pytest.raises(ValueError, match="COLORLIB_PRECISION"):
        step_settings(TrainConfig(), CPU)


# --- is bf16 fast on this CPU? -------------------------------------------------------------


def test_an_x86_cpu_without_bf16_instructions_is_slow_without_probing(monkeypatch):
    calls = _hardware(monkeypatch, flags={"avx2", "fma", "avx512f"}, capability="AVX2")
    verdict = precision.cpu_bf16()
    assert not verdict.fast and verdict.speedup is None and not calls
    assert "AVX2" in verdict.reason and "amx_bf16" in verdict.reason


def test_an_arm_cpu_without_bf16_is_slow_without_probing(monkeypatch):
    calls = _hardware(monkeypatch, machine="aarch64", flags={"fp", "asimd", "sve"})
    assert not precision.cpu_bf16().fast and not calls


@pytest.mark.parametrize(
    ("flags", "speedup", "fast"),
    [
        ({"avx512f", "avx512_bf16"}, 1.8, True),
        ({"avx512f", "amx_bf16", "amx_tile"}, 2.5, True),
        ({"avx512f", "avx512_bf16"}, 1.1, False),  # has the instructions, but not clearly faster
        ({"avx512f", "avx512_bf16"}, 0.4, False),
        (None, 1.5, True),  # flags unreadable (macOS, Windows): the probe decides
        (None, 0.02, False),
    ],
)
def test_bf16_instructions_are_confirmed_by_the_probe(monkeypatch, flags, speedup, fast):
    calls = _hardware(monkeypatch, flags=flags, speedup=speedup)
    verdict = precision.cpu_bf16()
    assert verdict.fast is fast and verdict.speedup == speedup and calls == [1]
    assert f"probe {speedup:.2g}x" in verdict.reason


def test_the_verdict_is_cached_per_process(monkeypatch):
    calls = _hardware(monkeypatch, flags={"amx_bf16"}, speedup=2.0)
    assert precision.cpu_bf16() is precision.cpu_bf16()
    assert calls == [1]


def test_the_probe_is_short_and_leaves_the_random_streams_alone():
    state = torch.get_rng_state()
    speedup = precision._probe_speedup()
    assert speedup > 0 and torch.equal(torch.get_rng_state(), state)


def test_the_probe_times_a_training_step_in_both_precisions():
    state = torch.get_rng_state()
    speedup = precision._probe_speedup(repeats=1, stage_one_floor=0.0)  # both stages, here too
    assert speedup > 0 and torch.equal(torch.get_rng_state(), state)


def test_this_machine_gets_an_answer_quickly():
    import time

    start = time.perf_counter()
    verdict = precision.cpu_bf16()
    assert isinstance(verdict.fast, bool) and verdict.reason
    assert time.perf_counter() - start < 5.0  # the real thing: flags, perhaps a probe


# --- the settings fit trains with ----------------------------------------------------------


def test_a_slow_cpu_trains_in_fp32_with_channels_last_and_a_fused_optimiser(monkeypatch):
    _verdict(monkeypatch, SLOW)
    settings = step_settings(TrainConfig(), CPU)
    assert settings.precision == Precision("cpu", None) and settings.name == "fp32"
    assert settings.channels_last and settings.fused_optimizer and not settings.grad_scaler
    assert settings.reason == "this CPU runs bf16 slowly: AVX2, no avx512_bf16 or amx_bf16"
    assert not step_settings(TrainConfig(channels_last=False), CPU).channels_last


def test_a_fast_cpu_trains_in_bf16_without_loss_scaling(monkeypatch):
    _verdict(monkeypatch, FAST)
    settings = step_settings(TrainConfig(), CPU)
    assert settings.precision == Precision("cpu", torch.bfloat16) and settings.name == "bf16"
    assert not settings.grad_scaler and "fast" in settings.reason
    # under torchrun every rank must find bf16 fast, else none uses it
    agreed = step_settings(TrainConfig(), CPU, agree=lambda fast: False)
    assert agreed.name == "fp32" and "another process" in agreed.reason


def test_the_config_and_the_environment_override_the_probe(monkeypatch):
    def never():
        raise AssertionError("probed although the choice was made")

    never.cache_clear = lambda: None
    monkeypatch.setattr(precision, "cpu_bf16", never)
    assert step_settings(TrainConfig(amp=False), CPU).name == "fp32"
    monkeypatch.setenv("COLORLIB_PRECISION", "fp32")
    settings = step_settings(TrainConfig(), CPU)
    assert settings.name == "fp32" and settings.reason == "COLORLIB_PRECISION=fp32"
    monkeypatch.setenv("COLORLIB_PRECISION", "bf16")  # forced, even on a slow CPU
    assert step_settings(TrainConfig(amp=False), CPU).name == "bf16"


def test_cuda_keeps_float16_with_loss_scaling_unless_overridden(monkeypatch):
    settings = step_settings(TrainConfig(), CUDA)  # no GPU needed: only the type is read
    assert settings.name == "fp16" and settings.grad_scaler and settings.channels_last
    monkeypatch.setenv("COLORLIB_PRECISION", "bf16")
    settings = step_settings(TrainConfig(), CUDA)
    assert settings.precision == Precision("cuda", torch.bfloat16) and not settings.grad_scaler
    monkeypatch.setenv("COLORLIB_PRECISION", "fp32")
    assert step_settings(TrainConfig(), CUDA).name == "fp32"


def test_other_devices_train_in_fp32(monkeypatch):
    settings = step_settings(TrainConfig(), MPS)
    assert settings.name == "fp32" and not settings.channels_last
    assert not settings.fused_optimizer
    monkeypatch.setenv("COLORLIB_PRECISION", "bf16")
    with pytest.raises(ValueError, match="bf16 on cpu and cuda only"):
        step_settings(TrainConfig(), MPS)


def test_the_banner_says_the_precision_and_why():
    line = training_banner(
        CPU, StepSettings(Precision("cpu", None), channels_last=True, reason=SLOW.reason)
    )
    threads = torch.get_num_threads()
    assert line.startswith(f"training on cpu ({threads} thread")
    assert "| precision: fp32 (AVX2, no avx512_bf16 or amx_bf16) | channels-last" in line
    fast = StepSettings(Precision("cpu", torch.bfloat16), fused_optimizer=True, reason="probe 2x")
    assert fast.describe() == "precision: bf16 (probe 2x) | fused optimiser"
    assert "\n" not in line


# --- the step under bf16 autocast ----------------------------------------------------------


class TinyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, L):
        return torch.tanh(self.out(torch.relu(self.conv(L))))


class Recording(Pix2PixObjective):
    """Pix2Pix's objective, remembering the dtypes it was given and gave back."""

    seen: dict

    def forward(self, L, real_ab, fake_ab, fake_logits):
        losses = super().forward(L, real_ab, fake_ab, fake_logits)
        self.seen = {"fake": fake_ab.dtype, **{k: v.dtype for k, v in losses.items()}}
        return losses


def test_bf16_autocast_runs_the_network_in_bf16_and_keeps_weights_and_losses_float32():
    torch.manual_seed(0)
    generator, objective = TinyGenerator(), Recording(lambda_l1=1.0)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3, fused=True)
    data = RandomPairs(4, learnable=True)
    before = [p.detach().clone() for p in generator.parameters()]
    losses = pretrain_step(
        generator,
        optimizer,
        objective,
        (data.L, data.ab),
        precision=Precision("cpu", torch.bfloat16),
    )
    assert objective.seen == {"fake": torch.bfloat16, "l1": torch.float32, "total": torch.float32}
    assert all(
        p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in generator.parameters()
    )
    assert all(s.dtype == torch.float32 for v in optimizer.state.values() for s in v.values())
    assert not any(torch.equal(a, p) for a, p in zip(before, generator.parameters(), strict=True))
    assert set(losses) == {"l1", "total"} and all(isinstance(v, float) for v in losses.values())
    with Precision("cpu", torch.bfloat16).autocast():
        assert (data.L[0, 0] @ data.L[0, 0]).dtype == torch.bfloat16
    assert (data.L[0, 0] @ data.L[0, 0]).dtype == torch.float32  # outside: float32 again


# --- fit -----------------------------------------------------------------------------------


def _config(**changes):
    values = dict(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator="patchgan",
        discriminator_kwargs={"base_channels": 4, "num_layers": 2},
        image_size=16,
        batch_size=4,
        stages=(Stage("pretrain", max_steps=2), Stage("gan", max_steps=1)),
        val_every=0,
        num_val_images=4,
        num_sample_images=0,
        checkpoint_every=0,
        num_workers=0,
    )
    return TrainConfig(**{**values, **changes})


def test_fit_prints_its_precision_and_trains_channels_last_with_fused_adam(
    monkeypatch, capsys, tmp_path
):
    _verdict(monkeypatch, SLOW)
    data = RandomPairs(8, learnable=True)
    result = fit(_config(), data, RandomPairs(4, seed=1), "cpu", tmp_path / "a.pt", progress=False)
    out = capsys.readouterr().out
    assert "precision: fp32 (this CPU runs bf16 slowly: AVX2, no avx512_bf16" in out
    assert "channels-last | fused optimiser" in out
    weights = [p for p in result.generator.parameters() if p.dim() == 4]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    state = load_checkpoint(tmp_path / "a.pt")
    assert all(group["fused"] for group in state["g_optimizer"]["param_groups"])
    plain = fit(_config(channels_last=False), data, RandomPairs(4, seed=1), "cpu", progress=False)
    assert all(p.is_contiguous() for p in plain.generator.parameters())


def test_fit_in_bf16_on_request_keeps_float32_weights(monkeypatch, capsys):
    monkeypatch.setenv("COLORLIB_PRECISION", "bf16")
    config = _config(stages=(Stage("pretrain", max_steps=1), Stage("gan", max_steps=1)))
    result = fit(
        config, RandomPairs(8, learnable=True), RandomPairs(4, seed=1), "cpu", progress=False
    )
    assert "precision: bf16 (COLORLIB_PRECISION=bf16)" in capsys.readouterr().out
    assert all(p.dtype == torch.float32 for p in result.generator.parameters())
    assert all(p.dtype == torch.float32 for p in result.discriminator.parameters())
    assert len(result.history) == 2 and all(
        isinstance(v, float) for row in result.history for v in row["losses"].values()
    )


def test_an_old_checkpoint_resumes_with_the_fused_optimiser(monkeypatch, tmp_path, capsys):
    """A checkpoint written before: no precision anywhere, the per-tensor Adam's flags."""
    _verdict(monkeypatch, SLOW)
    data, val, path = RandomPairs(8, learnable=True), RandomPairs(4, seed=1), tmp_path / "old.pt"
    config = _config(stages=(Stage("pretrain", max_steps=1), Stage("gan", max_steps=1)))
    fit(
        config.replace(stages=config.stages[:1] + (Stage("gan", max_steps=0),)),
        data,
        val,
        "cpu",
        path,
        progress=False,
    )
    state = load_checkpoint(path)
    for key in ("g_optimizer", "d_optimizer"):
        for group in state[key]["param_groups"]:
            group["fused"] = False  # as build_optimizers made it on a CPU until now
    for old in ("amp", "channels_last", "accumulate_steps", "checkpoint_minutes"):
        state["config"].pop(old)  # fields an older config may lack: their defaults
    save_checkpoint(path, state)
    assert TrainConfig.from_dict(state["config"]) == config.replace(
        stages=(Stage("pretrain", max_steps=1), Stage("gan", max_steps=0))
    )
    result = fit(config, data, val, "cpu", path, progress=False)
    assert "resuming from" in capsys.readouterr().out and len(result.history) == 2
    resumed = load_checkpoint(path)
    for key in ("g_optimizer", "d_optimizer"):
        assert all(group["fused"] for group in resumed[key]["param_groups"])
        steps = [s["step"] for s in resumed[key]["state"].values()]
        assert steps and all(s.dtype == torch.float32 for s in steps)


def test_build_optimizers_fuses_on_the_cpu_unless_told_not_to():
    generator = TinyGenerator()
    config = TrainConfig(model="unet", discriminator=None, stages=(Stage("pretrain", max_steps=1),))
    g_opt, d_opt = build_optimizers(config, generator)
    assert g_opt.param_groups[0]["fused"] and d_opt is None
    g_opt, _ = build_optimizers(config, generator, fused=False)
    assert not g_opt.param_groups[0]["fused"]
