"""Why candidates failed, in the shape people act on: grouped by (stage, reason), each group
with one full message, every attempt of an item in order, and which items used up their tries.

A failure is a verdict with `version == "error"` (a backend error after its retries); its
`stage` and `reason` (the kind of error) are structured fields, never parsed back from a message.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from builder.core.items import Item, ItemStatus, Verdict


class FailureGroup(BaseModel):
    stage: str
    reason: str
    count: int
    item_id: str  # one item of the group
    message: str  # that item's full failure message (backend, host, what happened)

    @property
    def label(self) -> str:
        return f"{self.stage}: {self.reason}"


def current_failure(item: Item) -> Verdict | None:
    return item.rejection if item.status is ItemStatus.FAILED else None


def attempts(item: Item) -> list[Verdict]:
    """Every failed attempt of an item, oldest first (the current one last, while it is failed)."""
    failure = current_failure(item)
    return [*item.failures, *([failure] if failure is not None else [])]


def exhausted(item: Item, max_attempts: int) -> bool:
    """Failed with every attempt used: no build retries it; `mirbench retry` reopens it."""
    return item.status is ItemStatus.FAILED and item.attempts >= max_attempts


def failure_groups(items: Iterable[Item]) -> list[FailureGroup]:
    """The current failures of `items` by (stage, reason), most common first."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for item in items:
        failure = current_failure(item)
        if failure is None:
            continue
        key = (failure.stage, failure.reason)
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = FailureGroup(
                stage=failure.stage,
                reason=failure.reason,
                count=1,
                item_id=item.id,
                message=failure.detail or failure.reason,
            )
    return sorted(groups.values(), key=lambda group: (-group.count, group.label))


def summary(groups: list[FailureGroup]) -> str:
    """`attack: connection 4, judge: server_error 1`: one line for an `error:` message."""
    return ", ".join(f"{group.label} {group.count}" for group in groups)
