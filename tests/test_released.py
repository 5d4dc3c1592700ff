"""colorlib.models.released: the packaged listings of the released DDColor state dicts."""

import math

import pytest
import torch
from torch import nn

from colorlib.models.released import RELEASED, compare_with_release, released_listing


@pytest.mark.parametrize(
    ("name", "entries", "numbers"),
    # entry counts from the released checkpoints (440 and 602 entries); tiny holds 55.05 M
    [("tiny", 440, 55_051_016), ("large", 602, None)],
)
def test_listing_has_the_released_size(name, entries, numbers):
    listing = released_listing(name)
    assert len(listing) == entries
    assert listing[0] == ("mean", (1, 3, 1, 1)) and listing[1] == ("std", (1, 3, 1, 1))
    assert len({key for key, _ in listing}) == entries  # no key twice
    if numbers is not None:
        assert sum(math.prod(shape) for _, shape in listing) == numbers


def test_listing_keeps_the_legacy_spectral_norm_names():
    keys = {key for key, _ in released_listing("tiny")}
    assert any(key.endswith("weight_orig") for key in keys)
    assert any(key.endswith("weight_u") for key in keys)


def test_unknown_listing_is_refused():
    with pytest.raises(ValueError, match="unknown released DDColor 'huge'"):
        released_listing("huge")
    assert RELEASED == ("tiny", "large")


def _state(listing):
    return {key: torch.empty(shape, device="meta") for key, shape in listing}


def test_compare_finds_every_kind_of_difference():
    listing = released_listing("tiny")
    assert compare_with_release(_state(listing), "tiny").matches
    assert "all 440 entries match" in str(compare_with_release(_state(listing), "tiny"))
    changed = _state(listing[1:])  # "mean" missing
    changed["extra.weight"] = torch.empty(3, device="meta")
    key, shape = listing[5]
    changed[key] = torch.empty(*shape, 2, device="meta")
    match = compare_with_release(changed, "tiny")
    assert not match.matches
    assert match.missing == ("mean",) and match.unexpected == ("extra.weight",)
    assert match.wrong_shape == ((key, (*shape, 2), shape),)
    assert "missing ['mean']" in str(match)


def test_compare_notices_a_different_order_and_takes_modules():
    listing = released_listing("tiny")
    swapped = [listing[1], listing[0], *listing[2:]]
    match = compare_with_release(_state(swapped), "tiny")
    assert not match.missing and not match.wrong_shape and not match.same_order
    assert not match.matches
    assert not compare_with_release(nn.Linear(2, 2), "tiny").matches
