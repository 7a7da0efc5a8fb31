"""Which (seed, relation) pairs a build makes.

Every seed against every relation by default. With `relations_per_seed = k`, each seed gets k
relations, dealt in turn within its category: the category's n-th seed takes relations
n*k .. n*k + k - 1 (modulo the relation count). Every category then spreads its seeds evenly
over the relations, so a category with at least as many seeds as relations fills all its cells,
the way MIR-SafetyBench builds 2,676 items from 600 seeds rather than 600 x 9.

The deal depends only on the seeds' order and categories and on the relations' order, so every
process of a build (and every rerun with the same inputs) computes the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

Pair = tuple[str, str]


class Categorised(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def category(self) -> str: ...


def build_pairs(
    seed_ids: Sequence[str], category_of: Callable[[str], str], relations: list[str], per_seed: int | None
) -> list[Pair]:
    """The (seed id, relation slug) pairs, in seed order, each seed's relations in the deal's
    order; `category_of` is asked only when relations are dealt."""
    if per_seed is None or per_seed >= len(relations):
        return [(seed_id, relation) for seed_id in seed_ids for relation in relations]
    dealt: dict[str, int] = {}
    pairs: list[Pair] = []
    for seed_id in seed_ids:
        category = category_of(seed_id)
        turn = dealt.get(category, 0)
        dealt[category] = turn + 1
        start = turn * per_seed
        pairs += [(seed_id, relations[(start + offset) % len(relations)]) for offset in range(per_seed)]
    return pairs


def pairs_of(seeds: Iterable[Categorised], relations: list[str], per_seed: int | None) -> list[Pair]:
    """`build_pairs` of seeds at hand, in their order."""
    categories = {seed.id: seed.category for seed in seeds}
    return build_pairs(list(categories), categories.__getitem__, relations, per_seed)
