"""Which (seed, relation) pairs a build makes (builder/config/pairing.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from builder.config.pairing import build_pairs as deal
from builder.config.pairing import pairs_of

RELATIONS = ["a", "b", "c", "d"]


@dataclass
class _Seed:
    id: str
    category: str


def _seeds(counts: dict[str, int]) -> list[_Seed]:
    # categories interleaved, as a seed file may order them
    seeds = [_Seed(f"{category}-{n}", category) for category, count in counts.items() for n in range(count)]
    return sorted(seeds, key=lambda seed: int(seed.id.split("-")[1]))


def test_every_relation_by_default_and_when_asked_for_as_many() -> None:
    seeds = _seeds({"x": 2, "y": 1})
    everything = [(seed.id, relation) for seed in seeds for relation in RELATIONS]
    assert pairs_of(seeds, RELATIONS, None) == everything
    assert pairs_of(seeds, RELATIONS, 4) == pairs_of(seeds, RELATIONS, 9) == everything
    # every relation needs no category: the seeds' files need not even be read
    assert deal(["s"], lambda _: pytest.fail("asked"), RELATIONS, None) == [("s", r) for r in RELATIONS]


def test_each_category_spreads_evenly_over_the_relations() -> None:
    seeds = _seeds({"x": 6, "y": 3})
    pairs = pairs_of(seeds, RELATIONS, 1)
    assert [relation for seed_id, relation in pairs if seed_id.startswith("x")] == [
        "a",
        "b",
        "c",
        "d",
        "a",
        "b",
    ]
    assert [relation for seed_id, relation in pairs if seed_id.startswith("y")] == ["a", "b", "c"]
    assert [seed_id for seed_id, _ in pairs] == [seed.id for seed in seeds]


def test_several_relations_per_seed_are_distinct_and_balanced() -> None:
    seeds = _seeds({"x": 6})
    pairs = pairs_of(seeds, RELATIONS, 2)
    per_seed = Counter(seed_id for seed_id, _ in pairs)
    assert set(per_seed.values()) == {2} and len(set(pairs)) == len(pairs)
    assert sorted(Counter(relation for _, relation in pairs).values()) == [3, 3, 3, 3]
    assert pairs_of(seeds, RELATIONS, 2) == pairs  # the same inputs deal the same pairs
