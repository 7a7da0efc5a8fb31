"""Stage `queue`: hand candidates that passed every automatic check to human review."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from builder.core.items import Item, ItemStatus
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace
    from builder.store import Store


class QueueStage(Stage):
    """Marks items queued; saving them opens their reviews."""

    name = "queue"
    gives = ItemStatus.QUEUED

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls()

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        for item in items:
            item.status = self.gives

    def save(self, store: Store, items: list[Item]) -> None:
        store.enqueue(items)
