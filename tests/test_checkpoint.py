"""colorlib.checkpoint: atomic writes, safe loads with clear errors, RNG states, load_generator."""

import random

import numpy as np
import pytest
import torch
from fakes import RandomPairs

from colorlib import checkpoint
from colorlib.checkpoint import CheckpointError
from colorlib.training.config import Stage, TrainConfig
from colorlib.training.loop import fit
from colorlib.training.runstate import get_rng_state, set_rng_state

SIZE = 16


def _config():
    return TrainConfig(
        model="unet",
        model_kwargs={"base_channels": 4, "num_downs": 3},
        discriminator=None,
        image_size=SIZE,
        batch_size=4,
        stages=(Stage("pretrain", max_steps=2),),
        num_val_images=4,
        num_workers=0,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    result = fit(_config(), RandomPairs(8), RandomPairs(4, seed=1), "cpu", path, progress=False)
    return path, result


def test_save_and_load_round_trip(tmp_path):
    state = {"config": {"a": 1}, "generator": {"w": torch.arange(3.0)}, "progress": {"step": 4}}
    path = checkpoint.save_checkpoint(tmp_path / "sub" / "x.pt", state)
    loaded = checkpoint.load_checkpoint(path)
    assert loaded["format"] == checkpoint.FORMAT and loaded["version"] == checkpoint.VERSION
    assert torch.equal(loaded["generator"]["w"], torch.arange(3.0))
    assert loaded["progress"] == {"step": 4} and isinstance(loaded["torch_version"], str)
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]  # no temporary file left


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    state = {"config": {}, "generator": {}, "progress": {"step": 1}}
    path = checkpoint.save_checkpoint(tmp_path / "x.pt", state)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save_checkpoint(path, {**state, "progress": {"step": 2}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_and_truncated_files_raise_checkpoint_error(tmp_path, trained):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained[0].read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load_checkpoint(truncated)


@pytest.mark.parametrize(
    "junk",
    [b"junk", b"J", b"q.n(IK", b"hF}.vmpbrh", b"X\xe2\xa1\xa7\xdcI\xdb"],
    ids=["struct-error", "one-byte", "index-error", "key-error", "unicode-error"],
)
def test_few_byte_junk_files_raise_checkpoint_error(tmp_path, junk):
    # torch's unpickler fails on these with struct.error ("unpack requires a buffer of 4
    # bytes"), IndexError, KeyError or UnicodeDecodeError rather than its own errors
    path = tmp_path / "junk.pt"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError, match="junk.pt: corrupt, truncated or not a torch file"):
        checkpoint.load_checkpoint(path)


def test_weights_only_refusals_give_a_one_line_message(tmp_path):
    code = {"format": checkpoint.FORMAT, "version": 1, "hook": RandomPairs}
    torch.save(code, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as raised:
        checkpoint.load_checkpoint(tmp_path / "evil.pt")
    message = str(raised.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.endswith("(not a plain weights-only checkpoint))")
    assert "Weights only load failed" in message


def test_wrong_format_raises_checkpoint_error(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a colorlib checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "plain.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list"):
        checkpoint.load_checkpoint(tmp_path / "list.pt")
    future = {"format": checkpoint.FORMAT, "version": 99, "config": {}, "generator": {}}
    torch.save(future, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        checkpoint.load_checkpoint(tmp_path / "future.pt")


def test_files_holding_code_are_refused(tmp_path):
    code = {"format": checkpoint.FORMAT, "version": 1, "hook": RandomPairs}
    torch.save(code, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        checkpoint.load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    torch.manual_seed(1)
    state = {"config": {}, "generator": {}, "progress": {}, "rng": get_rng_state()}
    checkpoint.save_checkpoint(tmp_path / "rng.pt", state)

    def draw():
        return random.random(), np.random.rand(), torch.rand(2).tolist()  # noqa: NPY002

    first = draw()
    set_rng_state(checkpoint.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draw() == first


def test_load_generator_rebuilds_the_trained_network(trained):
    path, result = trained
    generator, config = checkpoint.load_generator(path)
    assert TrainConfig.from_dict(config) == _config() and not generator.training
    L = RandomPairs(2, seed=5).L
    with torch.no_grad():
        # bit-exact: same process, same input shapes, the same weights after the round trip
        assert torch.equal(generator(L), result.generator(L))


def test_load_generator_reports_weights_that_do_not_fit(tmp_path, trained):
    state = checkpoint.load_checkpoint(trained[0])
    assert state["generator_kwargs"]["base_channels"] == 4  # the architecture, defaults resolved
    state["generator_kwargs"] = {"base_channels": 8, "num_downs": 3}
    bad = tmp_path / "bad.pt"
    checkpoint.save_checkpoint(bad, state)
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.load_generator(bad)
    state["config"]["model"] = "nonsense"  # inference reads only the network's name and size
    checkpoint.save_checkpoint(bad, state)
    with pytest.raises(CheckpointError, match="invalid training config: unknown model 'nonsense'"):
        checkpoint.load_generator(bad)
    del state["config"]["model"]
    checkpoint.save_checkpoint(bad, state)
    with pytest.raises(CheckpointError, match="no model name"):
        checkpoint.load_generator(bad)


def test_load_generator_uses_the_architecture_the_network_reported(tmp_path, trained):
    # e.g. ResNetUNet(encoder="auto") resolves to an encoder at build time: the checkpoint
    # keeps the resolved arguments, and rebuilding follows them rather than the config
    state = checkpoint.load_checkpoint(trained[0])
    state["config"]["model_kwargs"] = {"base_channels": 4, "num_downs": 3, "dropout": 0.1}
    path = checkpoint.save_checkpoint(tmp_path / "resolved.pt", state)
    generator, config = checkpoint.load_generator(path)
    assert config["model_kwargs"]["dropout"] == 0.1
    assert generator.model_kwargs == state["generator_kwargs"]
