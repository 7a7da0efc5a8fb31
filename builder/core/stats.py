"""What every stage reports: how many items came in, what became of them, how long it took."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class StageStats(BaseModel):
    stage: str
    items_in: int = 0
    outcomes: Counter[str] = Field(default_factory=Counter)
    seconds: float = 0.0

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] += n

    @contextmanager
    def timed(self) -> Iterator[StageStats]:
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds += time.perf_counter() - start

    def merge(self, other: StageStats) -> StageStats:
        return StageStats(
            stage=self.stage,
            items_in=self.items_in + other.items_in,
            outcomes=self.outcomes + other.outcomes,
            seconds=self.seconds + other.seconds,
        )


class StageOutput(BaseModel, Generic[T]):
    """A stage's answer: the items it produced or updated, and its stats."""

    items: list[T]
    stats: StageStats
