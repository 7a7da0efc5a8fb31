"""The lease query, one for every queue a reviewer is dealt from: the review queue's items and
the seed queue's seeds. A `LeaseQueue` says which table holds the queue, its key, its state
column and order, and which filters it takes; the SQL (the lease a reviewer already holds, else
the oldest pending row they have neither voted on nor skipped that still needs a vote beyond
those cast and leased to others, locked without waiting) is built from it. Votes and leases are
the review's own `decisions` and `leases` rows, keyed by the item's or the seed's id."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from builder.store.schema import DecisionRow, ItemRow, LeaseRow, ReviewRow, SeedRow

_PENDING = "pending"  # ReviewState.PENDING and SeedState.PENDING alike


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the SQL is cached per queue
class LeaseQueue:
    table: Any  # the ORM class whose rows are dealt
    key: Any  # its id column (what decisions and leases are keyed by)
    state: Any
    order: tuple[Any, ...]
    filters: tuple[tuple[str, Any], ...]  # filter name -> column
    join: tuple[Any, Any] | None = None  # (table, on) the filter columns need


ITEM_QUEUE = LeaseQueue(
    ReviewRow,
    ReviewRow.item_id,
    ReviewRow.state,
    (ReviewRow.queued_at, ReviewRow.item_id),
    (("category", ItemRow.category), ("relation", ItemRow.relation)),
    (ItemRow, ItemRow.id == ReviewRow.item_id),
)
SEED_QUEUE = LeaseQueue(
    SeedRow, SeedRow.id, SeedRow.state, (SeedRow.imported_at, SeedRow.id), (("category", SeedRow.category),)
)


def voted(queue: LeaseQueue, reviewer: Any) -> Any:
    """SQL: `reviewer` has an active vote on the queue row's item or seed."""
    return (
        select(DecisionRow.id)
        .where(
            DecisionRow.item_id == queue.key,
            DecisionRow.reviewer == reviewer,
            DecisionRow.kind == "vote",
            DecisionRow.superseded.is_(False),
        )
        .exists()
    )


def claims(item_id: Any, now: Any, excluding: Any = None) -> Any:
    """SQL: active votes on the item (or seed) plus live, unskipped leases on it (not `excluding`'s)."""
    votes = (
        select(func.count())
        .select_from(DecisionRow)
        .where(DecisionRow.item_id == item_id, DecisionRow.kind == "vote", DecisionRow.superseded.is_(False))
        .scalar_subquery()
    )
    leases = (
        select(func.count())
        .select_from(LeaseRow)
        .where(LeaseRow.item_id == item_id, LeaseRow.skipped.is_(False), LeaseRow.expires_at > now)
    )
    if excluding is not None:
        leases = leases.where(LeaseRow.reviewer != excluding)
    return votes + leases.scalar_subquery()


@functools.cache
def claims_query() -> Any:
    """`claims` (bound: claimed, now, excluding), built once: it runs on every item handed out."""
    return select(claims(bindparam("claimed"), bindparam("now"), excluding=bindparam("excluding")))


def candidates(queue: LeaseQueue, filtered: tuple[str, ...]) -> Any:
    """SQL (bound: reviewer, needed, now, and each filter in `filtered`): pending rows, oldest
    first, that the reviewer has neither voted on nor skipped and that still need a vote beyond
    those cast and those leased to others."""
    reviewer, now = bindparam("reviewer"), bindparam("now")
    skipped = (
        select(LeaseRow.item_id)
        .where(LeaseRow.reviewer == reviewer, LeaseRow.skipped.is_(True), LeaseRow.item_id == queue.key)
        .exists()
    )
    query = (
        select(queue.key)
        .where(
            queue.state == _PENDING,
            ~voted(queue, reviewer),
            ~skipped,
            claims(queue.key, now) < bindparam("needed"),
        )
        .order_by(*queue.order)
    )
    columns = dict(queue.filters)
    if filtered and queue.join is not None:
        query = query.join(*queue.join)
    for name in filtered:
        query = query.where(columns[name] == bindparam(name))
    return query


@functools.cache
def choice(queue: LeaseQueue, filtered: tuple[str, ...] = ()) -> Any:
    """SQL (bound as `candidates`): the id a reviewer is leased next, or NULL: the pending row
    they hold a live lease on and have not voted on, else the first candidate, its row locked
    without waiting (rows other transactions hold are skipped)."""
    reviewer, now = bindparam("reviewer"), bindparam("now")
    held = (
        select(LeaseRow.item_id)
        .join(queue.table, queue.key == LeaseRow.item_id)
        .where(
            LeaseRow.reviewer == reviewer,
            LeaseRow.skipped.is_(False),
            LeaseRow.expires_at > now,
            queue.state == _PENDING,
            ~voted(queue, reviewer),
        )
        .order_by(LeaseRow.expires_at)
        .limit(1)
        .scalar_subquery()
    )
    first = candidates(queue, filtered).limit(1)
    candidate = first.with_for_update(skip_locked=True, of=queue.table).scalar_subquery()
    # COALESCE evaluates (and locks) the candidate only when no lease is held
    return select(func.coalesce(held, candidate).label("item_id"))
