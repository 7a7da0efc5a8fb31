"""The review queue in the store: queueing items, reading the queue and the decision log,
reviewers and their login sessions, and `ReviewTransaction`, the persistence primitives (pair
locks, votes, leases) that builder.review.service composes into one decision."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, bindparam, delete, false, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus
from builder.store.engine import StoreBase, in_chunks
from builder.store.items import item_values
from builder.store.leases import ITEM_QUEUE, LeaseQueue, choice, claims_query
from builder.store.schema import (
    DecisionRow,
    ItemRow,
    LeaseRow,
    ReviewerRow,
    ReviewRow,
    ReviewSessionRow,
    ReviewState,
    _now,
)


@dataclass(frozen=True)
class ReviewEntry:
    item: Item
    state: ReviewState
    reviewer: str | None
    reason: str | None
    decided_at: datetime | None


def _entry(review: ReviewRow, data: str) -> ReviewEntry:
    return ReviewEntry(
        Item.model_validate_json(data),
        ReviewState(review.state),
        review.reviewer,
        review.reason,
        review.decided_at,
    )


@dataclass(frozen=True)
class PairMember:
    item_id: str
    iteration: int
    state: ReviewState | None  # None: not in the review queue


class ReviewStore(StoreBase):
    def review_states(self, item_ids: Sequence[str]) -> dict[str, str]:
        """The review state of those of `item_ids` that were queued."""
        states: dict[str, str] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(item_ids)):
                query = select(ReviewRow.item_id, ReviewRow.state).where(ReviewRow.item_id.in_(chunk))
                states.update(session.execute(query).all())
        return states

    def enqueue(self, items: Sequence[Item]) -> None:
        """Mark items queued and open a pending review for each, in one transaction: the review
        app never sees a queued item without its review, or a review of an item not yet queued."""
        for item in items:
            item.status = ItemStatus.QUEUED
        with self._session() as session:
            self._upsert(session, ItemRow.__table__, [item_values(item) for item in items], "id")
            existing = set(
                session.scalars(select(ReviewRow.item_id).where(ReviewRow.item_id.in_([i.id for i in items])))
            )
            session.add_all(
                ReviewRow(item_id=i.id, state=ReviewState.PENDING.value, queued_at=_now())
                for i in items
                if i.id not in existing
            )

    def reviews(
        self,
        state: ReviewState | None = None,
        limit: int | None = None,
        category: str | None = None,
        relation: str | None = None,
        reviewer: str | None = None,
    ) -> list[ReviewEntry]:
        query = select(ReviewRow, ItemRow.data).join(ItemRow, ItemRow.id == ReviewRow.item_id)
        if state is not None:
            query = query.where(ReviewRow.state == state.value)
        if category:
            query = query.where(ItemRow.category == category)
        if relation:
            query = query.where(ItemRow.relation == relation)
        if reviewer:
            query = query.where(
                ReviewRow.item_id.in_(select(DecisionRow.item_id).where(DecisionRow.reviewer == reviewer))
            )
        query = query.order_by(ReviewRow.queued_at, ReviewRow.item_id).limit(limit)
        with Session(self.engine) as session:
            return [_entry(review, data) for review, data in session.execute(query)]

    def review_entry(self, item_id: str) -> ReviewEntry | None:
        query = (
            select(ReviewRow, ItemRow.data)
            .join(ItemRow, ItemRow.id == ReviewRow.item_id)
            .where(ReviewRow.item_id == item_id)
        )
        with Session(self.engine) as session:
            row = session.execute(query).first()
        return _entry(*row) if row is not None else None

    def pending_ids(self) -> list[str]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(ReviewRow.item_id)
                    .where(ReviewRow.state == ReviewState.PENDING.value)
                    .order_by(ReviewRow.queued_at, ReviewRow.item_id)
                )
            )

    def review_counts(self) -> dict[str, int]:
        query = select(ReviewRow.state, func.count()).group_by(ReviewRow.state)
        with Session(self.engine) as session:
            return {state: count for state, count in session.execute(query)}

    def approved_items(self) -> list[Item]:
        query = (
            select(ItemRow.data)
            .join(ReviewRow, ReviewRow.item_id == ItemRow.id)
            .where(ReviewRow.state == ReviewState.APPROVED.value)
            .order_by(ItemRow.category, ItemRow.relation, ItemRow.id)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    def decision_log(self, item_ids: Sequence[str] | None = None) -> list[DecisionRow]:
        """Every decision, oldest first (superseded ones included: the log is the history)."""
        query = select(DecisionRow).order_by(DecisionRow.id)
        if item_ids is not None:
            query = query.where(DecisionRow.item_id.in_(list(item_ids)))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    @contextmanager
    def review_transaction(self) -> Iterator[ReviewTransaction]:
        """One review transaction (SQLite: holding the write lock from its start)."""
        bind = self.engine.execution_options(sqlite_immediate=True)
        with Session(bind) as session, session.begin():
            yield ReviewTransaction(session)

    # --- reviewers and their sessions --------------------------------------------------

    def add_reviewer(self, name: str, token_sha256: str, admin: bool) -> None:
        with self._session() as session:
            if session.get(ReviewerRow, name) is not None:
                raise InputError(f"reviewer {name!r} already exists")
            session.add(ReviewerRow(name=name, token_sha256=token_sha256, admin=admin))

    def reviewer_by_token(self, token_sha256: str) -> ReviewerRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalar(select(ReviewerRow).where(ReviewerRow.token_sha256 == token_sha256))

    def open_session(self, token_sha256: str, reviewer: str, csrf: str, expires_at: datetime) -> None:
        with self._session() as session:
            session.execute(delete(ReviewSessionRow).where(ReviewSessionRow.expires_at < _now()))
            session.add(
                ReviewSessionRow(
                    token_sha256=token_sha256, reviewer=reviewer, csrf=csrf, expires_at=expires_at
                )
            )

    def session_of(self, token_sha256: str) -> tuple[ReviewerRow, str] | None:
        """The reviewer and CSRF token of a live session, if any."""
        query = (
            select(ReviewerRow, ReviewSessionRow.csrf)
            .join(ReviewSessionRow, ReviewSessionRow.reviewer == ReviewerRow.name)
            .where(ReviewSessionRow.token_sha256 == token_sha256, ReviewSessionRow.expires_at > _now())
        )
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.execute(query).first()
            return (row[0], row[1]) if row is not None else None

    def close_session(self, token_sha256: str) -> None:
        with self._session() as session:
            session.execute(delete(ReviewSessionRow).where(ReviewSessionRow.token_sha256 == token_sha256))


class ReviewTransaction:
    """Persistence primitives for one review transaction; builder.review.service decides."""

    def __init__(self, session: Session):
        self.session = session

    def lock_pair(self, item_id: str) -> list[PairMember] | None:
        """Lock the review rows of every item of `item_id`'s (seed, relation) pair, in id order
        (concurrent decisions on one pair then queue up instead of deadlocking). None: unknown."""
        target = select(ItemRow.seed_id, ItemRow.relation).where(ItemRow.id == item_id).subquery()
        same_pair = (ItemRow.seed_id == target.c.seed_id) & (ItemRow.relation == target.c.relation)
        rounds = dict(
            self.session.execute(select(ItemRow.id, ItemRow.iteration).join(target, same_pair)).all()
        )
        if item_id not in rounds:
            return None
        states = dict(
            self.session.execute(
                select(ReviewRow.item_id, ReviewRow.state)
                .where(ReviewRow.item_id.in_(list(rounds)))
                .order_by(ReviewRow.item_id)
                .with_for_update()
            ).all()
        )
        return [
            PairMember(member, iteration, ReviewState(states[member]) if member in states else None)
            for member, iteration in sorted(rounds.items())
        ]

    def active_decisions(self, item_id: str) -> list[DecisionRow]:
        query = (
            select(DecisionRow)
            .where(DecisionRow.item_id == item_id, DecisionRow.superseded.is_(False))
            .order_by(DecisionRow.id)
        )
        return list(self.session.scalars(query))

    def supersede(self, decision_ids: Sequence[int]) -> None:
        if decision_ids:
            self.session.execute(
                update(DecisionRow).where(DecisionRow.id.in_(list(decision_ids))).values(superseded=True)
            )

    def add_decision(self, item_id: str, reviewer: str, decision: str, kind: str, reason: str | None) -> None:
        self.session.add(
            DecisionRow(
                item_id=item_id, reviewer=reviewer, decision=decision, kind=kind, reason=reason, at=_now()
            )
        )
        self.session.flush()

    def set_review(self, item_id: str, state: ReviewState, reviewer: str | None, reason: str | None) -> None:
        decided = state in (ReviewState.APPROVED, ReviewState.REJECTED)
        self.session.execute(
            update(ReviewRow)
            .where(ReviewRow.item_id == item_id)
            .values(
                state=state.value, reviewer=reviewer, reason=reason, decided_at=_now() if decided else None
            )
        )

    def item(self, item_id: str) -> Item:
        return Item.model_validate_json(
            self.session.scalar(select(ItemRow.data).where(ItemRow.id == item_id))
        )

    def save_item(self, item: Item) -> None:
        self.session.execute(update(ItemRow).where(ItemRow.id == item.id).values(item_values(item)))

    def drop_leases(self, item_id: str, reviewer: str | None = None) -> None:
        """Release an item's leases (one reviewer's, or everyone's); skips are kept."""
        statement = delete(LeaseRow).where(LeaseRow.item_id == item_id, LeaseRow.skipped.is_(False))
        if reviewer is not None:
            statement = statement.where(LeaseRow.reviewer == reviewer)
        self.session.execute(statement)

    def lease_next(
        self,
        reviewer: str,
        votes_required: int,
        now: datetime,
        expires_at: datetime,
        category: str | None = None,
        relation: str | None = None,
    ) -> Item | None:
        """Lease `reviewer` an item and return it (the lease query of `builder.store.leases`). On
        PostgreSQL the choice, the lease and the item's data are one statement."""
        filters = {name: value for name, value in (("category", category), ("relation", relation)) if value}
        dialect = self.session.get_bind().dialect
        if dialect.name != "postgresql":  # SQLite: the transaction holds the write lock
            item_id = self.lease_next_id(ITEM_QUEUE, reviewer, votes_required, now, expires_at, filters)
            return self.item(item_id) if item_id is not None else None
        values: dict[str, Any] = {"reviewer": reviewer, "needed": votes_required, "now": now, **filters}
        sql, constants = _lease_next_sql(dialect, tuple(sorted(filters)))
        values |= {"lease_reviewer": reviewer, "lease_expires": expires_at}
        data = self.session.connection().exec_driver_sql(sql, {**constants, **values}).scalar()
        return Item.model_validate_json(data) if data is not None else None

    def lease_next_id(
        self,
        queue: LeaseQueue,
        reviewer: str,
        votes_required: int,
        now: datetime,
        expires_at: datetime,
        filters: dict[str, str] | None = None,
    ) -> str | None:
        """Lease `reviewer` the next item or seed of `queue` (`filters`: e.g. its category) and
        return its id; None when nothing is left for them."""
        filters = filters or {}
        values: dict[str, Any] = {"reviewer": reviewer, "needed": votes_required, "now": now, **filters}
        chosen = self.session.scalar(choice(queue, tuple(sorted(filters))), values)
        if chosen is not None:
            self.lease(chosen, reviewer, expires_at)
        return chosen

    def claims(self, item_id: str, now: datetime, reviewer: str) -> int:
        """Votes cast on an item plus live leases on it held by reviewers other than `reviewer`."""
        values = {"claimed": item_id, "now": now, "excluding": reviewer}
        return int(self.session.scalar(claims_query(), values) or 0)

    def lease(self, item_id: str, reviewer: str, expires_at: datetime, skipped: bool = False) -> None:
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(LeaseRow).values(
            item_id=item_id, reviewer=reviewer, expires_at=expires_at, skipped=skipped
        )
        self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["item_id", "reviewer"], set_={"expires_at": expires_at, "skipped": skipped}
            )
        )


@functools.cache
def _lease_next_sql(dialect: Dialect, filtered: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: choose, lease and return the item's data in one statement, compiled once
    (SQLAlchemy does not cache PostgreSQL's INSERT ... ON CONFLICT); with its constant values."""
    picked = choice(ITEM_QUEUE, filtered).cte("chosen")
    leased = postgresql.insert(LeaseRow).from_select(
        ["item_id", "reviewer", "expires_at", "skipped"],
        select(
            picked.c.item_id,
            bindparam("lease_reviewer", type_=String(128)),
            bindparam("lease_expires", type_=DateTime(timezone=True)),
            false(),
        ).where(picked.c.item_id.is_not(None)),
    )
    leased = leased.on_conflict_do_update(
        index_elements=["item_id", "reviewer"],
        set_={"expires_at": leased.excluded.expires_at, "skipped": False},
    ).returning(LeaseRow.item_id)
    returned = leased.cte("leased")
    compiled = select(ItemRow.data).join(returned, returned.c.item_id == ItemRow.id).compile(dialect=dialect)
    variable = {"reviewer", "needed", "now", "category", "relation", "lease_reviewer", "lease_expires"}
    return compiled.string, {k: v for k, v in compiled.params.items() if k not in variable}
