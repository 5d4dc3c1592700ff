"""The released DDColor checkpoints' state-dict layout, shipped with colorlib.

The DDColor authors released four checkpoints (``ddcolor_paper_tiny.pth``, ``ddcolor_paper.pth``,
``ddcolor_modelscope.pth``, ``ddcolor_artistic.pth``): two architectures, ConvNeXt-T ("tiny")
and ConvNeXt-L ("large"). Their state dicts are listed here, one ``key (shape)`` line per entry,
in ``colorlib/models/listings/``: a few tens of KB of package data, so the key-and-shape check
runs anywhere (Colab included) without the checkpoints themselves.

>>> from colorlib.models.released import compare_with_release
>>> compare_with_release(DDColor.tiny(pretrained=False), "tiny").matches  # doctest: +SKIP
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from torch import nn

__all__ = ["RELEASED", "released_listing", "compare_with_release", "ReleaseMatch"]

#: the released architectures whose listings ship with colorlib
RELEASED = ("tiny", "large")


def released_listing(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The released state dict of DDColor ``name`` ("tiny" or "large"), in its own order.

    Returns:
        ``[(key, shape), ...]``, e.g. ``("mean", (1, 3, 1, 1))`` first.

    Raises:
        ValueError: for a name other than "tiny" or "large".
    """
    if name not in RELEASED:
        raise ValueError(f"unknown released DDColor {name!r}; choose one of {list(RELEASED)}")
    text = (
        resources.files("colorlib.models")
        .joinpath("listings", f"ddcolor_{name}_state_dict.txt")
        .read_text(encoding="utf-8")
    )
    entries = []
    for line in text.splitlines():
        key, shape = line.split(" ", 1)
        entries.append((key, tuple(int(v) for v in re.findall(r"\d+", shape))))
    return entries


@dataclass(frozen=True)
class ReleaseMatch:
    """How a state dict compares with a released listing, key by key."""

    name: str
    num_entries: int
    num_released: int
    missing: tuple[str, ...]  # in the release, not in ours
    unexpected: tuple[str, ...]  # in ours, not in the release
    wrong_shape: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # (key, ours, released)
    same_order: bool

    @property
    def matches(self) -> bool:
        """Same keys, same shapes, same order: the released checkpoint loads strictly."""
        return not (self.missing or self.unexpected or self.wrong_shape) and self.same_order

    def __str__(self) -> str:
        if self.matches:
            count = self.num_entries
            return f"{self.name}: all {count} entries match the release (keys, shapes, order)"
        return (
            f"{self.name}: {self.num_entries} entries vs {self.num_released} released; "
            f"missing {list(self.missing)[:5]}, unexpected {list(self.unexpected)[:5]}, "
            f"wrong shapes {list(self.wrong_shape)[:5]}, same order: {self.same_order}"
        )


def compare_with_release(model: nn.Module | dict, name: str) -> ReleaseMatch:
    """Compare a model (or a state dict) with the released DDColor ``name``, key by key.

    Works on the ``meta`` device too, so the large model costs no memory.
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    ours = [(key, tuple(value.shape)) for key, value in state.items()]
    released = released_listing(name)
    own_shapes, release_shapes = dict(ours), dict(released)
    return ReleaseMatch(
        name=name,
        num_entries=len(ours),
        num_released=len(released),
        missing=tuple(k for k in release_shapes if k not in own_shapes),
        unexpected=tuple(k for k in own_shapes if k not in release_shapes),
        wrong_shape=tuple(
            (k, own_shapes[k], shape)
            for k, shape in release_shapes.items()
            if k in own_shapes and own_shapes[k] != shape
        ),
        same_order=[k for k, _ in ours] == [k for k, _ in released],
    )
