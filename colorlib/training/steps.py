"""Training steps: one optimisation step of pix2pix-style training, as plain functions.

Design:

* a step is a function of the networks, optimisers, objective and a batch, returning its loss
  terms as floats; no trainer object, no hidden state. :func:`pretrain_step` updates the
  generator alone (no adversarial term; an objective with ``prediction = "logits"`` is given
  the classifier's bin logits instead of ab, :mod:`colorlib.training.classification`);
  :func:`gan_step` = :func:`discriminator_update` (on real pairs and detached fakes) then
  :func:`generator_update` (through the :func:`frozen`, just-updated discriminator), as in
  pix2pix;
* a *batch* is an ``(L, real_ab)`` pair or a list of them: micro-batches whose gradients are
  accumulated into one optimiser step (DDP synchronises on the last one only). ``L`` is the
  generator's input: the lightness ``(B, 1, H, W)``, possibly followed by extra channels (colour
  hints, :mod:`colorlib.data.hints`); the objective and the discriminator see the lightness
  alone (:func:`lightness`), so a hint model trains with the same steps and the same critic;
* :class:`Precision` carries the autocast settings (float16 on CUDA, bfloat16 on a CPU that
  runs it fast: :mod:`colorlib.training.precision` decides) and an optional
  ``torch.amp.GradScaler`` scales the losses (float16 only); the weights stay float32 and every
  loss term is float32 (:mod:`colorlib.training.losses`); every loss is checked *after*
  backward and *before* the optimiser step, so a NaN/inf loss raises
  :class:`NonFiniteLossError` and changes no weight (on every rank, under DDP).

:func:`colorlib.training.loop.fit` drives these steps through a config's stages; this module
does not
know about configs, data loaders or checkpoints.

>>> losses = gan_step(generator, discriminator, g_optimizer, d_optimizer, objective, (L, ab))
>>> losses["g_total"], losses["d_total"]
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorlib.training import distributed as ddp
from colorlib.training.losses import discriminator_fake_loss, discriminator_real_loss

__all__ = [
    "Precision",
    "NonFiniteLossError",
    "frozen",
    "lightness",
    "pretrain_step",
    "discriminator_update",
    "generator_update",
    "gan_step",
]


@dataclass(frozen=True)
class Precision:
    """Autocast settings: ``dtype`` None means full precision."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


FULL_PRECISION = Precision()


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stopped before the optimiser step."""


def _micro_batches(batch) -> list:
    if isinstance(batch, tuple | list) and len(batch) == 2 and isinstance(batch[0], Tensor):
        return [tuple(batch)]
    batches = list(batch)
    if not batches:
        raise ValueError("a step needs at least one (L, real_ab) batch")
    return batches


def _values(losses: dict[str, Tensor], module: nn.Module) -> dict[str, float]:
    """Loss tensors -> floats (one device sync); raise if any is NaN/inf (agreed across ranks).

    Called after backward and before the optimiser step, so a bad loss changes no weight.
    """
    names = list(losses)
    values = torch.stack([losses[k].detach().float() for k in names]).tolist()
    bad = [(k, v) for k, v in zip(names, values, strict=True) if not math.isfinite(v)]
    if isinstance(module, nn.parallel.DistributedDataParallel):
        if ddp.any_rank(bool(bad), next(module.parameters()).device) and not bad:
            raise NonFiniteLossError("a loss became non-finite on another process")
    if bad:
        raise NonFiniteLossError(f"{bad[0][0]} = {bad[0][1]}")
    return dict(zip(names, values, strict=True))


def _mean(logs: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(log[k] for log in logs) / len(logs) for k in logs[0]}


def _backward(loss: Tensor, scaler) -> None:
    (loss if scaler is None else scaler.scale(loss)).backward()


def _step(optimizer, scaler) -> None:
    optimizer.step() if scaler is None else scaler.step(optimizer)


def lightness(L: Tensor) -> Tensor:
    """The lightness ``(B, 1, H, W)`` of a generator input ``(B, 1 + extra, H, W)`` (a view)."""
    return L[:, :1]


def _prediction(generator, objective, L: Tensor) -> Tensor:
    """What ``objective`` scores: the generator's ab, or its bin logits when the objective's
    ``prediction`` is ``"logits"`` (asked through the wrapper's forward: DDP keeps syncing)."""
    if getattr(objective, "prediction", "ab") == "logits":
        return generator(L, return_logits=True)  # (B, Q, H, W)
    return generator(L)  # (B, 2, H, W)


def pretrain_step(
    generator, optimizer, objective, batch, *, scaler=None, precision=FULL_PRECISION
) -> dict[str, float]:
    """One generator update without a discriminator: ``objective(L, real, fake, None)``.

    An objective whose ``prediction`` is ``"logits"`` (colorization as classification) gets
    ``generator(L, return_logits=True)`` in place of ``fake``.

    Args:
        batch: ``(L, real_ab)`` (``(B, 1, H, W)``, ``(B, 2, H, W)``) or a list of them
            (micro-batches accumulated into this one step).
        scaler: a ``torch.amp.GradScaler`` under float16 autocast, else None.

    Returns:
        The objective's terms as floats, averaged over micro-batches (``"total"``, ``"l1"``...).

    Raises:
        NonFiniteLossError: a loss is NaN/inf (before any weight changes).
    """
    batches = _micro_batches(batch)
    optimizer.zero_grad(set_to_none=True)
    logs = []
    for i, (L, real_ab) in enumerate(batches):
        with ddp.sync_grads(generator, i == len(batches) - 1):
            with precision.autocast():
                fake = _prediction(generator, objective, L)
                losses = objective(lightness(L), real_ab, fake, None)
            _backward(losses["total"] / len(batches), scaler)
        logs.append(_values(losses, generator))
    _step(optimizer, scaler)
    if scaler is not None:
        scaler.update()
    return _mean(logs)


def discriminator_update(
    discriminator, optimizer, batches, gan_mode: str, *, scaler=None, precision=FULL_PRECISION
) -> dict[str, float]:
    """One discriminator update on real and generated pairs (the fakes are detached here).

    Real and fake pairs go through the discriminator separately (BatchNorm sees pure batches,
    as in pix2pix), each followed by its own backward pass (which DDP requires).

    Args:
        batches: list of ``(L, real_ab, fake_ab)`` micro-batches (``L``: the generator's input;
            the discriminator gets its lightness).

    Returns:
        ``{"real", "fake", "total"}`` as in
        :func:`colorlib.training.losses.discriminator_loss`, floats.
    """
    optimizer.zero_grad(set_to_none=True)
    logs, n = [], len(batches)
    for i, (L, real_ab, fake_ab) in enumerate(batches):
        with ddp.sync_grads(discriminator, False):
            with precision.autocast():
                real = discriminator_real_loss(discriminator(lightness(L), real_ab), gan_mode)
            _backward(0.5 * real / n, scaler)
        with ddp.sync_grads(discriminator, i == n - 1):
            with precision.autocast():
                fake_logits = discriminator(lightness(L), fake_ab.detach())
                fake = discriminator_fake_loss(fake_logits, gan_mode)
            _backward(0.5 * fake / n, scaler)
        logs.append({"real": real, "fake": fake, "total": 0.5 * (real + fake)})
    logs = [_values(log, discriminator) for log in logs]
    _step(optimizer, scaler)
    return _mean(logs)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Context: ``requires_grad=False`` on every parameter, restored afterwards."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def generator_update(
    generator,
    discriminator,
    optimizer,
    objective,
    batches,
    *,
    fakes=None,
    scaler=None,
    precision=FULL_PRECISION,
) -> dict[str, float]:
    """One generator update through a frozen discriminator: ``objective(L, real, fake, D(fake))``.

    Args:
        batches: list of ``(L, real_ab)`` micro-batches.
        fakes: the generator's outputs for ``batches`` with their graphs, if already computed
            (saves a forward pass); otherwise the generator is run here.

    Returns:
        The objective's terms as floats (``"total"``, ``"adversarial"``, ``"l1"``...).
    """
    critic = ddp.unwrap(discriminator)  # frozen: no DDP gradient sync needed for it
    optimizer.zero_grad(set_to_none=True)
    logs, n = [], len(batches)
    with frozen(critic):
        for i, (L, real_ab) in enumerate(batches):
            with ddp.sync_grads(generator, i == n - 1):
                with precision.autocast():
                    fake_ab = generator(L) if fakes is None else fakes[i]
                    L_only = lightness(L)
                    losses = objective(L_only, real_ab, fake_ab, critic(L_only, fake_ab))
                _backward(losses["total"] / n, scaler)
            logs.append(_values(losses, generator))
    _step(optimizer, scaler)
    return _mean(logs)


def gan_step(
    generator,
    discriminator,
    g_optimizer,
    d_optimizer,
    objective,
    batch,
    *,
    scaler=None,
    precision=FULL_PRECISION,
) -> dict[str, float]:
    """One pix2pix iteration: update D on real/fake pairs, then G through the updated, frozen D.

    With one micro-batch the generator runs once (its output is detached for D and reused,
    graph and all, for G); with several it runs without gradients for D and again for G, so
    memory stays that of one micro-batch.

    Returns:
        ``d_real``, ``d_fake``, ``d_total`` and ``g_<term>`` for each generator term, floats.
    """
    batches = _micro_batches(batch)
    keep = len(batches) == 1
    fakes = []
    for L, _ in batches:
        with torch.set_grad_enabled(keep), precision.autocast():
            fakes.append(generator(L))
    d_batches = [(L, ab, fake.detach()) for (L, ab), fake in zip(batches, fakes, strict=True)]
    d_logs = discriminator_update(
        discriminator,
        d_optimizer,
        d_batches,
        objective.gan_mode,
        scaler=scaler,
        precision=precision,
    )
    g_logs = generator_update(
        generator,
        discriminator,
        g_optimizer,
        objective,
        batches,
        fakes=fakes if keep else None,
        scaler=scaler,
        precision=precision,
    )
    if scaler is not None:
        scaler.update()
    return {**{f"d_{k}": v for k, v in d_logs.items()}, **{f"g_{k}": v for k, v in g_logs.items()}}
