"""Which wave each target of a DatabaseMigrationRollout belongs to (pure).

A target that already has a child keeps the wave its child is labelled with: a wave's membership
never changes under it. The others (no child yet) are placed now, in the order of the waves and
of their Secret names, into the waves not started yet (``first_open`` on: the current wave and
the later ones, so a Secret that appears late joins the wave under way, or the last one), each
wave taking:

* ``selector``: the remaining targets whose Secret has all its labels;
* ``count``: up to ``count`` targets, those it already has included;
* ``percent``: that percentage, rounded up, of the targets not in an earlier wave;
* none of these: every remaining target.

The last wave also takes every target still left, so no target is ever without a wave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dbmigrate.api.rollout import WaveSpec


@dataclass(frozen=True)
class Target:
    """A target's Secret: its name and labels (metadata only; its data is never read)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


def matches(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` have every key and value of ``selector`` (None matches nothing)."""
    if selector is None:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def assign(
    targets: Sequence[Target],
    waves: Sequence[WaveSpec],
    fixed: Mapping[str, int],
    first_open: int = 0,
) -> dict[str, int]:
    """Target name -> wave index (see the module docstring); ``fixed``: the children's waves."""
    last = len(waves) - 1
    placed = {name: min(max(index, 0), last) for name, index in fixed.items()}
    remaining = sorted((t for t in targets if t.name not in placed), key=lambda t: t.name)
    for index, wave in enumerate(waves):
        if index < first_open or not remaining:
            continue
        has = sum(1 for i in placed.values() if i == index)
        if index == last:
            taken = remaining
        elif wave.selector is not None:
            taken = [t for t in remaining if matches(t.labels, wave.selector)]
        elif wave.count is not None:
            taken = remaining[: max(wave.count - has, 0)]
        elif wave.percent is not None:
            later = sum(1 for i in placed.values() if i >= index)
            share = math.ceil(wave.percent * (len(remaining) + later) / 100)
            taken = remaining[: max(share - has, 0)]
        else:
            taken = remaining
        chosen = {t.name for t in taken}
        placed.update(dict.fromkeys(chosen, index))
        remaining = [t for t in remaining if t.name not in chosen]
    return placed
