"""Stage `queue`: hand candidates that passed every automatic check to human review."""

from __future__ import annotations

from typing import Protocol

from builder import progress
from builder.items import Item, ItemStatus
from builder.stats import StageOutput, StageStats


class ReviewQueue(Protocol):
    def enqueue(self, items: list[Item]) -> None: ...


def queue_items(items: list[Item], queue: ReviewQueue) -> StageOutput[Item]:
    stats = StageStats(stage="queue", items_in=len(items))
    advance = progress.track("queue", len(items))
    with stats.timed():
        ready = [item for item in items if item.status is ItemStatus.PASSED]
        queue.enqueue(ready)
        stats.count(ItemStatus.QUEUED.value, len(ready))
        stats.count("skipped", len(items) - len(ready))
        advance(len(items))
    return StageOutput[Item](items=items, stats=stats)
