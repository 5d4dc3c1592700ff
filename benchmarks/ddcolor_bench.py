"""DDColor speed and memory: colorlib's implementation against the authors' formulation.

(a) Inference, DDColor-tiny, one image, warm. *ours*: ``torch.inference_mode``, channels-last,
fused attention (``F.scaled_dot_product_attention``) and the folded fusion (no query maps).
*authors*: the same weights run the way the released code runs them (patched in by the
context manager :func:`authors_formulation`): ``nn.MultiheadAttention``'s default path
(``need_weights=True``: an explicit ``softmax(QK^T)V`` that also averages the attention maps),
the Q full-resolution query maps concatenated with the input and the 1x1 fusion conv,
ConvNeXt's hand-written channels-first LayerNorm, input projections as NCHW convs,
``torch.no_grad`` only, contiguous NCHW. Both must give the same output (max abs diff printed).

(b) Training step, DDColor-tiny at 256x256 (forward, L1 loss, backward, AdamW step), with and
without gradient checkpointing and bf16 autocast, each in fresh subprocesses: one times the
steps, one measures memory: the peak resident set during a step above the resident set after
the warm-up step (weights and AdamW state), read from ``/proc/self/status`` after resetting its
peak, with large blocks mmapped so that freed tensors leave at once (mmap's page faults would
slow the timed run, hence two processes; on CUDA: ``max_memory_allocated`` above the base).
Gradient accumulation is a training-loop matter; the batch here is the micro-batch.

Example::

    python benchmarks/ddcolor_bench.py --sizes 256 512 --iters 3
    python benchmarks/ddcolor_bench.py --skip-inference --batch-size 2 --steps 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from colorlib.models import convnext, ddcolor_color
from colorlib.models.ddcolor import DDColor, build_ddcolor


def _mha_default_path(self, query, key, value):
    # nn.MultiheadAttention(query, key, value)[0] with its defaults: sequence-first,
    # need_weights=True (explicit softmax(QK^T)V plus head-averaged attention weights)
    dim = self.in_proj_weight.shape[1]
    out, _ = F.multi_head_attention_forward(
        query.transpose(0, 1),
        key.transpose(0, 1),
        value.transpose(0, 1),
        dim,
        self.num_heads,
        self.in_proj_weight,
        self.in_proj_bias,
        None,
        None,
        False,
        0.0,
        self.out_proj.weight,
        self.out_proj.bias,
        training=self.training,
        need_weights=True,
    )
    return out.transpose(0, 1)


def _explicit_fusion(self, x, finest, color_embed):
    # Q full-resolution maps, concatenated with the input, then the spectral-norm 1x1 conv
    maps = torch.einsum("bqc,bchw->bqhw", color_embed, self.decoder.embed(finest))
    return self.refine_net(torch.cat((maps, x), dim=1))


def _channels_first_layer_norm(self, x):
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + self.eps)
    return self.weight[:, None, None] * x + self.bias[:, None, None]


def _convnext_block(self, x):
    y = self.dwconv(x).permute(0, 2, 3, 1)
    y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
    return x + (self.gamma * y).permute(0, 3, 1, 2)


def _conv_tokens(self, level, x):
    value = self.input_proj[level](x).flatten(2) + self.level_embed.weight[level][None, :, None]
    value = value.permute(0, 2, 1)
    pos = ddcolor_color.sine_position_encoding(x.shape[2], x.shape[3], value.shape[-1])
    pos = pos.to(x.device).expand(x.shape[0], -1, -1)  # one copy per image, as DETR's
    return value + pos, value


@contextlib.contextmanager
def authors_formulation():
    """Temporarily run DDColor the way the released code does (same weights, same outputs)."""
    patches = [
        (ddcolor_color.Attention, "forward", _mha_default_path),
        (DDColor, "_fuse", _explicit_fusion),
        (convnext.LayerNorm2d, "forward", _channels_first_layer_norm),
        (convnext.ConvNeXtBlock, "forward", _convnext_block),
        (ddcolor_color.ColorDecoder, "_tokens", _conv_tokens),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    try:
        for owner, name, function in patches:
            setattr(owner, name, function)
        yield
    finally:
        for owner, name, function in saved:
            setattr(owner, name, function)


def _time(fn, iters: int) -> list[float]:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_inference(sizes, iters: int, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    model = DDColor.tiny(pretrained=False).eval().to(device)
    ours = DDColor.tiny(pretrained=False).eval().to(device, memory_format=torch.channels_last)
    ours.load_state_dict(model.state_dict())
    print(f"\n(a) inference, DDColor-tiny, batch 1, {device}, {iters} timed runs after 1 warm-up")
    print("seconds per image, median (min) of the timed runs; max |diff| in raw ab units")
    print(f"{'size':>6} {'authors s':>15} {'ours s':>15} {'speed-up':>9} {'max |diff|':>11}")
    rows = []
    for size in sizes:
        rgb = torch.rand(1, 1, size, size, device=device).expand(1, 3, size, size).contiguous()
        rgb_cl = rgb.contiguous(memory_format=torch.channels_last)

        def run_ours(rgb_cl=rgb_cl):
            with torch.inference_mode():
                return ours.forward_rgb(rgb_cl)

        def run_authors(rgb=rgb):
            with authors_formulation(), torch.no_grad():
                return model.forward_rgb(rgb)

        diff = (run_ours() - run_authors()).abs().max().item()  # also the warm-up
        t_ours, t_authors = [], []
        for _ in range(iters):  # interleaved, so load changes on a shared machine hit both
            t_authors += _time(lambda: _sync(run_authors(), device), 1)
            t_ours += _time(lambda: _sync(run_ours(), device), 1)
        a, o = statistics.median(t_authors), statistics.median(t_ours)
        a_text = f"{a:.3f} ({min(t_authors):.3f})"
        o_text = f"{o:.3f} ({min(t_ours):.3f})"
        print(f"{size:>6} {a_text:>15} {o_text:>15} {a / o:>8.2f}x {diff:>11.2e}")
        rows.append({"size": size, "authors_s": a, "ours_s": o, "speedup": a / o, "max_diff": diff})
    return rows


def _sync(result, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result


def train_variant(args) -> dict:
    """One training-step measurement (runs in its own process)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_ddcolor("tiny", pretrained=False, gradient_checkpointing=args.checkpointing)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    size, batch = args.train_size, args.batch_size
    L = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    real_ab = torch.rand(batch, 2, size, size, device=device) * 0.4 - 0.2
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=args.amp):
            loss = (model(L).float() - real_ab).abs().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(None, device)

    step()  # warm-up: kernel selection, AdamW state
    # from here on, memory above the weights + AdamW state is the step's own
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _proc_status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as file:  # reset the peak (VmHWM) to now
            file.write("5")
    times = _time(step, args.steps)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = _proc_status_bytes("VmHWM") - base
    return {
        "s_per_step": statistics.median(times),
        "peak_mib": peak / 2**20,
        "base_mib": base / 2**20,
    }


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as file:
        return 1024 * int(re.search(rf"{field}:\s+(\d+)", file.read())[1])


def _run_variant(command: list[str], env) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_training(args) -> list[dict]:
    print(
        f"\n(b) training step, DDColor-tiny, {args.train_size}x{args.train_size}, batch "
        f"{args.batch_size}, {args.device}, median of {args.steps} steps after 1 warm-up"
    )
    print("step memory: peak above weights + AdamW state (activations, gradients, workspace)")
    memory = "peak +MiB" if args.device.startswith("cuda") else "peak RSS +MiB"
    print(
        f"{'checkpointing':>13} {'amp':>5} {'s/step':>8} {'img/s':>7} {memory:>14} {'base MiB':>9}"
    )
    rows = []
    for checkpointing, amp in ((False, False), (True, False), (False, True), (True, True)):
        command = [sys.executable, __file__, "--train-variant", "--device", args.device]
        command += ["--train-size", str(args.train_size), "--batch-size", str(args.batch_size)]
        command += ["--threads", str(args.threads)]
        command += ["--checkpointing"] * checkpointing + ["--amp"] * amp
        result = _run_variant(command + ["--steps", str(args.steps)], os.environ)
        # large blocks straight from mmap, so that freed tensors leave the resident set at once
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        memory = _run_variant(command + ["--steps", "1"], env)
        result.update(peak_mib=memory["peak_mib"], base_mib=memory["base_mib"])
        rows.append(result | {"checkpointing": checkpointing, "amp": amp})
        ips = args.batch_size / result["s_per_step"]
        print(
            f"{checkpointing!s:>13} {amp!s:>5} {result['s_per_step']:>8.2f} {ips:>7.2f} "
            f"{result['peak_mib']:>14.0f} {result['base_mib']:>9.0f}"
        )
    base = rows[0]
    for row, name in zip(rows[1:], ("checkpointing", "bf16/fp16 autocast", "both"), strict=True):
        print(
            f"{name}: memory x{row['peak_mib'] / base['peak_mib']:.2f}, "
            f"time x{row['s_per_step'] / base['s_per_step']:.2f} of the plain fp32 step"
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iters", type=int, default=3, help="timed inference runs per size")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2, help="micro-batch of a step")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--amp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-variant", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.train_variant:
        print(json.dumps(train_variant(args)))
        return
    device = torch.device(args.device)
    hardware = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {args.threads} threads"
    )
    print(f"torch {torch.__version__}, {hardware}")
    result = {"benchmark": "ddcolor_bench", "hardware": hardware, "torch": torch.__version__}
    if not args.skip_inference:
        result["inference"] = bench_inference(args.sizes, args.iters, device)
    if not args.skip_training:
        result["training"] = bench_training(args)
        result |= {"train_size": args.train_size, "batch_size": args.batch_size}
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
