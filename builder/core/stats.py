"""What every stage reports: how many items came in, what became of them, how long it took.

Counts are typed: each one is what a `check` of the stage found (`reason`) and what became of
the things counted (`outcome`), never a "name: reason" string to parse back. The stage base
counts the status every item leaves in and the check and reason that ended each rejected,
failed or refused item; a stage adds what only it knows (the items a check that is off let
through, images rendered, answers replayed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

T = TypeVar("T")


class Outcome(StrEnum):
    """What became of the things a count counts."""

    STATUS = "status"  # items that left the stage in status `reason` (`check`: the stage)
    REJECTED = "rejected"  # items `check` rejected for `reason`
    FAILED = "failed"  # items `check` could not make or judge (retried by a later build)
    REFUSED = "refused"  # items a model declined to make (never retried)
    UNCHECKED = "unchecked"  # items `check` let through unchecked: it is off, for `reason`
    FIGURE = "figure"  # anything else a stage counts (images rendered, answers replayed)


class Count(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: str  # what counted: the stage, a filter, a tester, "images"
    reason: str  # what it found: a status, a verdict's reason, "rendered"
    outcome: Outcome = Outcome.FIGURE
    n: int = 0

    @property
    def key(self) -> tuple[str, str, Outcome]:
        return (self.check, self.reason, self.outcome)


class StageStats(BaseModel):
    stage: str
    items_in: int = 0
    counts: list[Count] = Field(default_factory=list)
    seconds: float = 0.0
    # Recorded by a mirbench whose counts were strings ("dropped: leakage: ..."): items in and
    # seconds are read, the counts are not shown.
    legacy: bool = False
    _index: dict[tuple[str, str, Outcome], Count] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _string_counters(cls, value: Any) -> Any:
        if isinstance(value, dict) and "outcomes" in value and "counts" not in value:
            return {key: field for key, field in value.items() if key != "outcomes"} | {"legacy": True}
        return value

    def model_post_init(self, context: Any) -> None:
        self._index = {count.key: count for count in self.counts}

    def count(self, check: str, reason: str, n: int = 1, outcome: Outcome = Outcome.FIGURE) -> None:
        key = (check, reason, Outcome(outcome))
        entry = self._index.get(key)
        if entry is None:
            entry = self._index[key] = Count(check=check, reason=reason, outcome=key[2])
            self.counts.append(entry)
        entry.n += n

    def get(self, check: str, reason: str, outcome: Outcome | None = None) -> int:
        """How many `check` counted for `reason` (with `outcome`, or any)."""
        return sum(
            count.n
            for count in self.counts
            if count.check == check and count.reason == reason and outcome in (None, count.outcome)
        )

    def of(self, outcome: Outcome) -> list[Count]:
        return [count for count in self.counts if count.outcome is outcome]

    def statuses(self) -> dict[str, int]:
        """Items that left the stage, by status."""
        return {count.reason: count.n for count in self.of(Outcome.STATUS)}

    @contextmanager
    def timed(self) -> Iterator[StageStats]:
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds += time.perf_counter() - start

    def merge(self, other: StageStats) -> StageStats:
        merged = StageStats(
            stage=self.stage,
            items_in=self.items_in + other.items_in,
            seconds=self.seconds + other.seconds,
            legacy=self.legacy or other.legacy,
        )
        for count in [*self.counts, *other.counts]:
            merged.count(count.check, count.reason, count.n, count.outcome)
        return merged


class StageOutput(BaseModel, Generic[T]):
    """A stage's answer: the items it produced or updated, and its stats."""

    items: list[T]
    stats: StageStats
