"""colorlib.training.distributed and fit() under DDP: two CPU processes (gloo) end with
identical weights."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from fakes import RandomPairs

from colorlib.training import distributed as ddp

SIZE = 16


# --- EpochSampler ------------------------------------------------------------------------------


def test_epoch_sampler_depends_only_on_seed_and_epoch():
    a, b = ddp.EpochSampler(10, 2, seed=3), ddp.EpochSampler(10, 2, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(2)
    assert list(a) != list(b)
    assert list(ddp.EpochSampler(10, 2, seed=4)) != list(ddp.EpochSampler(10, 2, seed=3))


def test_epoch_sampler_skips_consumed_batches():
    sampler = ddp.EpochSampler(10, 3, seed=0)  # 3 full batches, one photo dropped
    full = list(sampler)
    assert len(full) == 9 == len(sampler) and sampler.batches_per_epoch == 3
    sampler.set_epoch(0, skip_batches=2)
    assert list(sampler) == full[6:] and len(sampler) == 3
    with pytest.raises(ValueError, match="skip_batches"):
        sampler.set_epoch(0, skip_batches=4)


def test_epoch_sampler_shards_disjointly_with_equal_lengths():
    shards = [list(ddp.EpochSampler(11, 2, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4  # 11 photos -> 2 batches of 2 per rank
    assert not set(shards[0]) & set(shards[1])
    tiny = [list(ddp.EpochSampler(3, 2, world_size=2, rank=r)) for r in range(2)]
    assert [len(shard) for shard in tiny] == [2, 2]  # repeated to fill one batch per rank
    assert sorted(set(tiny[0] + tiny[1])) == [0, 1, 2]
    with pytest.raises(ValueError, match="non-empty"):
        ddp.EpochSampler(0, 2)


def test_single_process_helpers_are_no_ops():
    info, device = ddp.init_from_env(torch.device("cpu"))
    assert info == ddp.DistInfo() and info.is_main and not info.enabled
    module = torch.nn.Linear(2, 2)
    assert ddp.wrap(module, info, device) is module and ddp.unwrap(module) is module
    assert ddp.any_rank(True, device) and not ddp.any_rank(False, device)
    with ddp.sync_grads(module, sync=False):
        pass


# --- fit under DDP -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, folder: str, model: str = "unet") -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    from colorlib.training.config import Stage, TrainConfig
    from colorlib.training.loop import fit

    size = SIZE if model == "unet" else 32  # DDColor needs multiples of 32
    if model == "unet":
        networks = dict(model="unet", model_kwargs={"base_channels": 4, "num_downs": 3})
    else:  # DDColor's encoder holds a classifier norm its forward never uses
        networks = dict(
            model="ddcolor",
            model_kwargs={"preset": "micro", "pretrained": False},
            objective="ddcolor",
            optimizer="adamw",
            perceptual_pretrained=False,
        )
    config = TrainConfig(
        **networks,
        discriminator_kwargs={"base_channels": 4, "num_layers": 2},
        image_size=size,
        batch_size=2,
        stages=(Stage("pretrain", max_steps=1), Stage("gan", max_steps=2)),
        num_val_images=2,
        num_workers=0,
        accumulate_steps=2,
    )
    result = fit(
        config,
        RandomPairs(16, flip=True, size=size),
        RandomPairs(2, 1, flip=True, size=size),
        "cpu",
        f"{folder}/ddp.pt",
        progress=False,
    )
    torch.save(
        {
            "generator": result.generator.state_dict(),
            "discriminator": result.discriminator.state_dict(),
            "losses": [row["losses"] for row in result.history],
            "validations": len(result.validations),
        },
        f"{folder}/rank{rank}.pt",
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["unet", "ddcolor"])
def test_fit_under_ddp_ends_with_identical_weights_on_both_ranks(tmp_path, model):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), model), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ("generator", "discriminator"):
        a, b = ranks[0][key], ranks[1][key]
        # bit-exact: both ranks apply the same all-reduced gradients with the same kernels
        assert all(torch.equal(a[k], b[k]) for k in a), key
    # each rank saw its own half of the data: the losses differ, the updates were shared
    assert ranks[0]["losses"] != ranks[1]["losses"] and len(ranks[0]["losses"]) == 3
    assert ranks[0]["validations"] > 0 and ranks[1]["validations"] == 0  # rank 0 only
    state = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert state["complete"] and state["progress"]["step"] == 3
    assert all(
        torch.equal(state["generator"][k], ranks[0]["generator"][k]) for k in state["generator"]
    )
