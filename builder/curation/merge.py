"""Near-duplicates across sources: public sets share many behaviours (JailbreakBench took some
of AdvBench's and HarmBench's). Seeds are MiniLM vectors in dedup's faiss text index. Which copy
is kept does not depend on import order: every merge ranks all seeds, the higher-priority source
first (its profile's `priority`), then the seed with more labels, then by source and id, and in
that order each seed either joins the index as a representative or, when it is as similar as the
threshold to one already there, becomes that one's alias (its source kept). Below the threshold,
down to `behaviour_similarity`, a pair merges only when its words say it asks for the same thing
(`same_behaviour`): rewordings of one request merge, requests on one template with another
target or means stay apart. A seed people have decided stays a representative: when a seed that
outranks it repeats it, the newcomer becomes its alias and the merge warns."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from builder.curation.same_behaviour import same_behaviour
from builder.curation.triage import TRIAGE_DECIDER
from builder.stages.dedup import DedupIndex, Entry
from builder.store import SeedRow, SeedState, Store


@dataclass(frozen=True)
class MergeReport:
    seeds: int  # representatives and aliases looked at
    new_aliases: int
    restored: int  # former aliases that are representatives again (a better copy left, or ranks changed)
    aliases: int  # in all, after this run
    by_behaviour: int = 0  # of the new aliases, those below the threshold that the words merged
    warnings: list[str] = field(default_factory=list)


def _decided_by_people(row: SeedRow) -> bool:
    return row.state != SeedState.ALIAS and row.decided_by not in (None, TRIAGE_DECIDER)


def merge_near_duplicates(
    store: Store,
    text_vectors: Callable[[list[str]], np.ndarray],
    similarity: float,
    priorities: dict[str, int] | None = None,
    behaviour_similarity: float | None = None,
) -> MergeReport:
    priorities = priorities or {}
    floor = min(similarity, behaviour_similarity or similarity)

    def rank(row: SeedRow) -> tuple[bool, int, int, str, str]:
        labels = len(json.loads(row.labels))
        return (
            not _decided_by_people(row),
            -priorities.get(row.source, 0),
            -labels,
            row.source,
            row.source_id,
        )

    rows = sorted(store.seed_candidates(), key=rank)
    index = DedupIndex()  # in memory: the seeds are few next to items, and re-read each run
    vectors = text_vectors([row.text for row in rows]) if rows else np.zeros((0, 0), np.float32)
    by_id = {row.id: row for row in rows}
    changes: list[dict[str, object]] = []
    warnings: list[str] = []
    new_aliases = restored = by_behaviour = 0
    for row, vector in zip(rows, vectors, strict=True):
        hits = [
            (key, cosine)
            for key, cosine in index.text_hits(vector, floor)
            if cosine >= similarity or same_behaviour(row.text, by_id[index.entries[key].owner].text)
        ]
        if not hits:
            index.add(Entry(row.id, (), (), (row.text,)), vector)
            if row.state == SeedState.ALIAS:
                restored += 1
                changes.append(
                    {
                        "id": row.id,
                        "alias_of": None,
                        "alias_similarity": None,
                        "state": SeedState.IMPORTED.value,
                    }
                )
            continue
        key, cosine = max(hits, key=lambda hit: (hit[1], hit[0]))
        canonical = by_id[index.entries[key].owner]
        if rank(row)[1:] < rank(canonical)[1:]:
            warnings.append(
                f"{row.id} ({row.source} {row.source_id}) outranks {canonical.id} ({canonical.source} "
                f"{canonical.source_id}), which people decided: it stays an alias of that seed"
            )
        if row.state == SeedState.ALIAS and row.alias_of == canonical.id:
            continue
        new_aliases += 1
        by_behaviour += cosine < similarity
        changes.append(
            {
                "id": row.id,
                "alias_of": canonical.id,
                "alias_similarity": round(cosine, 4),
                "state": SeedState.ALIAS.value,
            }
        )
    store.update_seeds(changes)
    aliases = store.seed_state_counts().get(SeedState.ALIAS.value, 0)
    return MergeReport(len(rows), new_aliases, restored, aliases, by_behaviour, warnings)
