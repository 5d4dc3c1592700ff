"""colorlib.data.hints: the hint encoding, the simulated users of Zhang et al. 2017, HintPairs."""

import pytest
import torch
from fakes import RandomPairs

from colorlib.data.hints import (
    GEOMETRIC_P,
    NO_HINT_SHARE,
    Hint,
    HintPairs,
    hint_channels,
    join_hints,
    sample_hint_points,
    split_hints,
)


def _ab(size=16, seed=0):
    return torch.rand(2, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _hinted_input(pairs, index, L):
    """What HintPairs should give for item ``index`` (seeded: its hints are reproducible)."""
    return join_hints(L, hint_channels(pairs.hints(index, pairs.dataset[index][1]), 16, 16))


def _draws(n, seed=0, size=16, **options):
    generator = torch.Generator().manual_seed(seed)
    ab = _ab(size, seed)
    return [sample_hint_points(ab, generator, **options) for _ in range(n)]


def test_hint_channels_paint_the_patch_and_the_mask():
    x = hint_channels([Hint(2, 3, (0.5, -0.25), size=3)], 8, 8)
    assert x.shape == (3, 8, 8)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[1:4, 2:5] = True
    assert torch.equal(x[2], inside.float())
    assert torch.all(x[0][inside] == 0.5) and torch.all(x[1][inside] == -0.25)
    assert torch.all(x[:2, ~inside] == 0)


def test_even_patches_reach_down_right_and_border_patches_are_cut():
    even = hint_channels([Hint(4, 4, (0.1, 0.1), size=2)], 8, 8)[2]
    assert torch.nonzero(even).tolist() == [[4, 4], [4, 5], [5, 4], [5, 5]]
    corner = hint_channels([Hint(0, 7, (0.1, 0.1), size=5)], 8, 8)[2]
    assert corner.sum() == 3 * 3 and corner[0, 7] == 1 and corner[2, 5] == 1


def test_no_hints_is_all_zeros_and_later_hints_win():
    assert torch.equal(hint_channels([], 4, 6), torch.zeros(3, 4, 6))
    x = hint_channels([Hint(1, 1, (0.5, 0.5), 3), Hint(1, 1, (-0.5, 0.2))], 4, 4)
    assert x[:2, 1, 1].tolist() == pytest.approx([-0.5, 0.2]) and x[0, 0, 0] == 0.5


@pytest.mark.parametrize(
    "hint, match",
    [
        (Hint(8, 0, (0.0, 0.0)), "outside the 8x8"),
        (Hint(0, -1, (0.0, 0.0)), "outside"),
        (Hint(0, 0, (0.0, 0.0), size=0), "size"),
        (Hint(0, 0, (1.5, 0.0)), r"\[-1, 1\]"),
    ],
)
def test_bad_hints_are_refused_by_name(hint, match):
    with pytest.raises(ValueError, match=match):
        hint_channels([hint], 8, 8)


def test_join_and_split_are_inverse():
    L, hints = torch.rand(2, 1, 4, 5), torch.rand(2, 3, 4, 5)
    x = join_hints(L, hints)
    assert x.shape == (2, 4, 4, 5)
    back_L, ab_hint, mask = split_hints(x)
    assert torch.equal(back_L, L) and torch.equal(ab_hint, hints[:, :2])
    assert torch.equal(mask, hints[:, 2:])
    with pytest.raises(ValueError, match=r"\(\*, 4, H, W\)"):
        split_hints(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="same size"):
        join_hints(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 5))


def test_counts_follow_the_geometric_law_with_a_share_of_none():
    counts = torch.tensor([len(h) for h in _draws(2000, sides=(1,))], dtype=torch.float64)
    none = (counts == 0).double().mean()
    assert abs(none - NO_HINT_SHARE) < 0.03  # standard error about 0.007
    hinted = counts[counts > 0]
    assert abs(hinted.mean() - 1 / GEOMETRIC_P) < 0.8  # standard error about 0.18
    assert hinted.min() == 1 and (hinted == 1).double().mean() == pytest.approx(1 / 8, abs=0.03)


def test_share_of_none_and_exact_counts_are_parameters():
    assert all(h for h in _draws(200, no_hint_share=0.0, sides=(1,)))
    half = sum(not h for h in _draws(1000, no_hint_share=0.5, sides=(1,))) / 1000
    assert abs(half - 0.5) < 0.06
    assert {len(h) for h in _draws(50, p=1.0, no_hint_share=0.0)} == {1}
    assert {len(h) for h in _draws(20, num_points=5)} == {5}


def test_patches_lie_inside_and_carry_the_patch_mean():
    ab = _ab(12, 3)
    generator = torch.Generator().manual_seed(3)
    seen = 0
    for _ in range(100):
        hints = sample_hint_points(ab, generator, locations="uniform")
        for hint in hints:
            top, left, bottom, right = hint.box()
            assert 0 <= top and 0 <= left and bottom <= 12 and right <= 12
            assert 1 <= hint.size <= 9 and bottom - top == hint.size
            mean = ab[:, top:bottom, left:right].mean(dim=(-2, -1))
            assert torch.equal(torch.tensor(hint.ab, dtype=torch.float32), mean)
            seen += 1
    assert seen > 200


def test_patch_sides_cover_one_to_nine_and_shrink_to_small_images():
    sides = {h.size for hints in _draws(200, size=32, no_hint_share=0.0) for h in hints}
    assert sides == set(range(1, 10))
    tiny = {h.size for hints in _draws(50, size=4, no_hint_share=0.0) for h in hints}
    assert max(tiny) == 4


def test_gaussian_locations_gather_in_the_middle():
    def central_share(locations):
        rows = [
            h.row for hints in _draws(400, size=64, sides=(1,), locations=locations) for h in hints
        ]
        return sum(16 <= r < 48 for r in rows) / len(rows)

    assert central_share("gaussian") > 0.62  # a 2-D Gaussian of std H/4: about 68 % per axis
    assert central_share("uniform") < 0.56  # uniform: 50 %


def test_same_seed_same_hints_other_seed_other_hints():
    first, again = _draws(20, seed=5), _draws(20, seed=5)
    assert first == again and first != _draws(20, seed=6)


def test_hint_pairs_items_are_L_then_hints():
    data = RandomPairs(4, size=16)
    pairs = HintPairs(data, seed=0, no_hint_share=0.0)
    x, ab = pairs[1]
    assert x.shape == (4, 16, 16) and torch.equal(ab, data[1][1])
    L, ab_hint, mask = split_hints(x)
    assert torch.equal(L, data[1][0])
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.all(ab_hint[:, mask[0] == 0] == 0)
    assert torch.equal(x, _hinted_input(pairs, 1, L))


def test_seeded_hint_pairs_are_fixed_per_item():
    pairs = HintPairs(RandomPairs(6, size=16), seed=7, no_hint_share=0.0)
    assert torch.equal(pairs[2][0], pairs[2][0]) and torch.equal(pairs[-1][0], pairs[5][0])
    assert not torch.equal(pairs[2][0][1:], pairs[3][0][1:])  # other items, other hints
    other = HintPairs(RandomPairs(6, size=16), seed=8, no_hint_share=0.0)
    assert not torch.equal(pairs[2][0], other[2][0])


def test_unseeded_hint_pairs_draw_fresh_hints_from_torchs_rng():
    pairs = HintPairs(RandomPairs(2, size=16), no_hint_share=0.0)
    torch.manual_seed(0)
    first = [pairs[0][0] for _ in range(4)]
    torch.manual_seed(0)
    again = [pairs[0][0] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(first[0], x) for x in first[1:])  # new hints each access


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p": 0.0}, "0 < p"),
        ({"no_hint_share": 1.5}, "no_hint_share"),
        ({"locations": "edges"}, "edges"),
        ({"sides": ()}, "sides"),
        ({"seed": -1}, "seed"),
        ({"num_points": -2}, "num_points"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HintPairs(RandomPairs(2), **kwargs)
