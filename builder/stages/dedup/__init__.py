"""Stage `dedup`: reject candidates that repeat an item already kept or released.

Pictures are compared one by one through their 64-bit perceptual hashes in a multi-index hash
table tuned to the search radius `d` (`builder.stages.dedup.hashindex`: exact by the pigeonhole principle,
with `d + 1` substrings or more and no bit flipping), and every hit is verified by its true
Hamming distance. An item's text is one unit vector in a faiss inner-product index, hits
verified by their exact cosine: the mean of its parts' vectors (the prompt and each image
description), each part encoded alone. So no part is cut off at the text model's length limit
(MiniLM reads 256 tokens; a long prompt and four descriptions can be more), and a part that
many items share, such as the description of a picture they all show, is encoded once. A
candidate is rejected when
- two of its own images show the same picture (within `picture_max_distance`);
- its images repeat a kept item's (same count, each slot identical by sha256 or within
  `phash_max_distance` of the other's slot);
- one of its pictures already appears in as many kept items as the reuse cap allows (within
  `picture_max_distance`: a single picture needs a closer match than a whole set of them). The
  cap is `image_reuse_max`, or `image_reuse_share` of the kept items and the round's candidates
  where that is more: a pool's pictures can fill only pool size x cap slots, so a fixed cap
  would starve a benchmark-size build;
- its text is as similar as `text_similarity` to a kept item's.
Kept items are those still in play or waiting for people (in a status the pipeline gives
from dedup onward), every earlier release given as history or recorded by the store, and the
round's candidates accepted before this one: candidates are decided in id order, so reruns
decide alike.

The indexes (`builder.stages.dedup.index`) persist under `artifacts/dedup/` and grow
incrementally: each run adds only the items not yet indexed. A row stays in the index when its
item later drops out; hits are kept only when their owner is kept now, with the same content (an
item id keeps its id when a new composer version redraws it), so stale rows never decide
anything. Earlier releases are read by `builder.stages.dedup.history`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from builder.config.sections import DedupSettings
from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage
from builder.stages.dedup.history import release_entries, release_history
from builder.stages.dedup.index import VERSION, DedupIndex, Entry, hamming, item_texts, mean_vectors

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace

__all__ = ["DedupIndex", "DedupStage", "Entry", "item_texts", "mean_vectors", "release_entries"]


class DedupStage(Stage):
    """Mark each of a round's candidates unique or rejected, against every kept item, every
    release in `history` and the candidates accepted before it (in id order, so reruns decide
    alike). `text_vectors` gives a unit vector per text, from `text_model`."""

    name = "dedup"
    gives = ItemStatus.UNIQUE
    funnel_label = "duplicates"
    Settings = DedupSettings
    whole_round = True  # duplicates are a property of the set
    batch_size = None

    def __init__(
        self,
        kept: list[Item],
        text_vectors: Callable[[list[str]], np.ndarray],
        *,
        phash_max_distance: int,
        text_similarity: float,
        picture_max_distance: int = 2,
        image_reuse_max: int = 3,
        image_reuse_share: float = 0.0,
        index_dir: Path | None = None,
        history: Iterable[tuple[str, list[Entry]]] = (),
        text_model: str = "",
    ):
        self.kept, self.text_vectors, self.text_model = kept, text_vectors, text_model
        self.picture_max_distance = picture_max_distance
        self.phash_max_distance, self.text_similarity = phash_max_distance, text_similarity
        self.image_reuse_max, self.image_reuse_share = image_reuse_max, image_reuse_share
        self.index_dir, self.history = index_dir, history

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        dedup = workspace.settings.stages.dedup
        return cls(
            workspace.store.items_with_statuses(place.onward),
            workspace.text_vectors,
            phash_max_distance=dedup.phash_max_distance,
            text_similarity=dedup.text_similarity,
            picture_max_distance=dedup.picture_max_distance,
            image_reuse_max=dedup.image_reuse_max,
            image_reuse_share=dedup.image_reuse_share,
            index_dir=workspace.artifacts / "dedup",
            history=workspace.once("release_history", lambda: release_history(workspace)),
            text_model=dedup.text_model,
        )

    def _index(self, items: list[Item]) -> tuple[DedupIndex, set[str], np.ndarray]:
        """The index with every kept item and history entry in it, the entry keys kept now, and
        the text vectors of `items`: one call for the kept entries not yet indexed and the
        round's candidates together."""
        index = DedupIndex(self.index_dir, self.text_model)
        wanted = [Entry.of(item) for item in self.kept]
        for source, entries in self.history:
            wanted += entries
            if source not in index.sources:
                index.sources.append(source)
        kept = {entry.key for entry in wanted}
        fresh = list({entry.key: entry for entry in wanted if entry.key not in index.entries}.values())
        texts = [entry.texts for entry in fresh] + [item_texts(item) for item in items]
        vectors = mean_vectors(texts, self.text_vectors)
        for entry, vector in zip(fresh, vectors[: len(fresh)], strict=True):
            index.add(entry, vector)
        return index, kept, vectors[len(fresh) :]

    def reuse_cap(self, kept: int, candidates: int) -> int:
        """How many items may show one picture, with `kept` items kept and `candidates` in the round."""
        return max(self.image_reuse_max, math.ceil(self.image_reuse_share * (kept + candidates)))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        index, kept, vectors = self._index(items)
        cap = self.reuse_cap(len(kept), len(items))
        for item, vector in zip(items, vectors, strict=True):
            verdict = self._judge(item, vector, index, kept, cap)
            if verdict.passed:
                item.verdicts.append(verdict)
                item.status = self.gives
                entry = Entry.of(item)
                index.add(entry, vector)
                kept.add(entry.key)
            else:
                item.reject(verdict)
            advance(1)
        index.save()

    def _reject(self, reason: str, detail: str, score: float) -> Verdict:
        return Verdict(name="dedup", version=VERSION, passed=False, score=score, reason=reason, detail=detail)

    def _judge(self, item: Item, vector: np.ndarray, index: DedupIndex, kept: set[str], cap: int) -> Verdict:
        limit, same_picture = self.phash_max_distance, self.picture_max_distance
        slots = item.slots
        for a in range(len(slots)):
            for b in range(a + 1, len(slots)):
                distance = hamming(slots[a].phash, slots[b].phash)
                if slots[a].sha256 == slots[b].sha256 or distance <= same_picture:
                    return self._reject(
                        "two images of one item show the same picture",
                        f"slots {a + 1} and {b + 1} (Hamming distance {distance})",
                        float(distance),
                    )
        hits = [
            [
                (key, slot, d)
                for key, slot, d in index.picture_hits(s.phash or "0", max(limit, same_picture))
                if key in kept
            ]
            for s in slots
        ]
        entry = Entry.of(item)
        for key in sorted({key for key, _, _ in hits[0]} if hits else set()):
            other = index.entries[key]
            if len(other.phash) != len(slots):
                continue
            if other.sha256 == entry.sha256:
                return self._reject(
                    "exact duplicate images", f"of {other.owner} (max Hamming distance 0)", 0.0
                )
            distances = [hamming(a, b) for a, b in zip(entry.phash, other.phash, strict=True)]
            if max(distances) <= limit:
                return self._reject(
                    "near-duplicate images",
                    f"of {other.owner} (max Hamming distance {max(distances)})",
                    float(max(distances)),
                )
        for number, slot_hits in enumerate(hits, start=1):
            owners = sorted({index.entries[key].owner for key, _, d in slot_hits if d <= same_picture})
            if len(owners) >= cap:
                return self._reject(
                    "picture reused in too many items",
                    f"slot {number} already in {len(owners)} item(s) (cap {cap}): {', '.join(owners[:5])}",
                    float(len(owners)),
                )
        text = [(key, cosine) for key, cosine in index.text_hits(vector, self.text_similarity) if key in kept]
        if text:
            key, similarity = max(text, key=lambda hit: (hit[1], hit[0]))
            return self._reject(
                "near-duplicate text",
                f"of {index.entries[key].owner} (cosine {similarity:.3f})",
                round(similarity, 4),
            )
        return Verdict(name="dedup", version=VERSION, passed=True)
