"""The CUDA paths: AMP + GradScaler + channels-last training, checkpoints written on the GPU and
read on the CPU, inference on the GPU against the CPU, DDColor under float16 autocast.

Every test is skipped without a GPU (CI has none); ``benchmarks/gpu_checks.sh`` runs this module
on a lent GPU machine and records the result in ``benchmarks/results/``.
"""

import numpy as np
import pytest
import torch
from fakes import RandomPairs

from colorlib.checkpoint import load_checkpoint, load_generator
from colorlib.inference import colorize
from colorlib.models.ddcolor import DDColor, build_ddcolor
from colorlib.training.config import Stage, TrainConfig
from colorlib.training.loop import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _config(**changes) -> TrainConfig:
    values = dict(
        model="unet",
        model_kwargs={"base_channels": 8, "num_downs": 5},
        discriminator="patchgan",
        discriminator_kwargs={"base_channels": 8, "num_layers": 2},
        image_size=32,
        batch_size=8,
        stages=(Stage("pretrain", max_steps=4), Stage("gan", max_steps=6)),
        val_every=5,
        num_val_images=8,
        num_sample_images=2,
        checkpoint_every=5,
        num_workers=0,
        amp=True,
        channels_last=True,
    )
    values.update(changes)
    return TrainConfig(**values)


def test_amp_fit_on_cuda_trains_checkpoints_and_loads_on_cpu(tmp_path):
    path = tmp_path / "amp.pt"
    data, val = RandomPairs(32, size=32), RandomPairs(8, seed=1, size=32)
    result = fit(_config(), data, val, "cuda", path, progress=False)
    losses = [value for row in result.history for value in row["losses"].values()]
    assert losses and np.isfinite(losses).all()
    assert next(result.generator.parameters()).is_cuda
    state = load_checkpoint(path, map_location="cpu")
    assert state["progress"]["step"] == 10
    generator, config = load_generator(path, device="cpu")
    assert config["amp"] and config["channels_last"]
    assert not next(generator.parameters()).is_cuda


def _max_diff(a, b) -> float:
    pairs = zip(a.generator.state_dict().values(), b.generator.state_dict().values(), strict=True)
    return max((x.double() - y.double()).abs().max().item() for x, y in pairs)


def test_resume_on_cuda_is_as_reproducible_as_a_straight_run(tmp_path):
    """cuDNN's fastest convolution kernels are not deterministic, so two straight runs already
    differ in the last bits; a stop and resume must not add more than that (bit-identical on
    the CPU: tests/test_train.py)."""
    data, val = RandomPairs(32, size=32), RandomPairs(8, seed=1, size=32)
    full = _config(amp=False, channels_last=False)
    part = full.replace(stages=(Stage("pretrain", max_steps=4), Stage("gan", max_steps=2)))
    straight = fit(full, data, val, "cuda", tmp_path / "a.pt", progress=False)
    again = fit(full, data, val, "cuda", tmp_path / "c.pt", progress=False)
    fit(part, data, val, "cuda", tmp_path / "b.pt", progress=False)
    resumed = fit(full, data, val, "cuda", tmp_path / "b.pt", progress=False)
    noise = _max_diff(straight, again)
    assert _max_diff(straight, resumed) <= 10 * noise + 1e-6, f"run-to-run noise {noise:.2e}"


def test_colorize_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = build_ddcolor("micro", pretrained=False)
    gray = np.random.default_rng(0).integers(0, 256, (61, 97), dtype=np.uint8)
    on_cpu = np.asarray(colorize(model, gray, size=64, device="cpu"), dtype=np.float64)
    on_gpu = np.asarray(colorize(model, gray, size=64, device="cuda"), dtype=np.float64)
    assert on_gpu.shape == on_cpu.shape == (61, 97, 3)
    assert np.abs(on_gpu - on_cpu).max() <= 2  # 8-bit rounding of TF32/cuDNN differences


def test_ddcolor_fp16_autocast_stays_close_to_fp32():
    torch.manual_seed(0)
    model = DDColor.tiny(pretrained=False).cuda().eval()
    L = torch.rand(2, 1, 256, 256, device="cuda") * 2 - 1
    with torch.inference_mode():
        ref = model(L)
        with torch.autocast("cuda", dtype=torch.float16):
            half = model(L).float()
    assert torch.isfinite(half).all()
    rel = (half - ref).norm() / ref.norm()
    assert rel < 2e-2, f"relative error {rel:.2e}"


def test_ddcolor_training_step_backward_with_checkpointing_on_cuda():
    torch.manual_seed(0)
    plain = DDColor.tiny(pretrained=False).cuda().train()
    ckpt = DDColor.tiny(pretrained=False, gradient_checkpointing=True).cuda().train()
    ckpt.load_state_dict(plain.state_dict())
    L = torch.rand(2, 1, 128, 128, device="cuda") * 2 - 1
    for model in (plain, ckpt):
        model(L).abs().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=name)
