"""Near-duplicates across sources: public sets share many behaviours (JailbreakBench took some
of AdvBench's and HarmBench's). Seeds are MiniLM vectors in dedup's faiss text index; in import
order, each seed either joins the index as a representative or, when it is as similar as the
threshold to one already there, is recorded as that one's alias (with its source kept)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from builder.stages.dedup import DedupIndex, Entry
from builder.store import SeedState, Store


@dataclass(frozen=True)
class MergeReport:
    seeds: int  # representatives and aliases looked at
    new_aliases: int
    aliases: int  # in all, after this run


def merge_near_duplicates(
    store: Store, text_vectors: Callable[[list[str]], np.ndarray], similarity: float
) -> MergeReport:
    rows = [row for row in store.seed_candidates() if row.state != SeedState.ALIAS]
    index = DedupIndex()  # in memory: the seeds are few next to items, and re-read each run
    vectors = text_vectors([row.text for row in rows]) if rows else np.zeros((0, 0), np.float32)
    changes: list[dict[str, object]] = []
    for row, vector in zip(rows, vectors, strict=True):
        hits = index.text_hits(vector, similarity)
        if not hits:
            index.add(Entry(row.id, (), (), (row.text,)), vector)
            continue
        key, cosine = max(hits, key=lambda hit: (hit[1], hit[0]))
        changes.append(
            {
                "id": row.id,
                "alias_of": index.entries[key].owner,
                "alias_similarity": round(cosine, 4),
                "state": SeedState.ALIAS.value,
            }
        )
    store.update_seeds(changes)
    return MergeReport(len(rows), len(changes), store.seed_state_counts().get(SeedState.ALIAS.value, 0))
