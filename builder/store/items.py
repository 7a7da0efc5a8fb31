"""Items in the store: saving them (one row per item, its full data as JSON beside the columns
the queries filter on), loading them by id or status, and the counts the funnel reports."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus, Verdict
from builder.store.engine import StoreBase, in_chunks
from builder.store.schema import ItemRow, ReviewRow, _now


@dataclass(frozen=True)
class Candidate:
    """The latest candidate of one (seed, relation) pair, as the planner sees it."""

    item_id: str
    iteration: int
    status: ItemStatus
    feedback: list[str]


def _reason(verdict: Verdict | None) -> str:
    return f"{verdict.name}: {verdict.reason}" if verdict is not None else ""


def item_values(item: Item) -> dict[str, Any]:
    """The `items` row of `item`."""
    return {
        "id": item.id,
        "seed_id": item.seed_id,
        "category": item.category,
        "relation": item.relation,
        "iteration": item.iteration,
        "status": item.status.value,
        "reason": _reason(item.rejection),
        "data": item.model_dump_json(),
        "updated_at": _now(),
    }


class ItemStore(StoreBase):
    def save_items(self, items: Iterable[Item]) -> None:
        with self._session() as session:
            self._upsert(session, ItemRow.__table__, [item_values(item) for item in items], "id")

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        found: dict[str, Item] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(ids)):
                for data in session.scalars(select(ItemRow.data).where(ItemRow.id.in_(chunk))):
                    item = Item.model_validate_json(data)
                    found[item.id] = item
        missing = [item_id for item_id in ids if item_id not in found]
        if missing:
            raise InputError(f"unknown item id(s): {', '.join(missing[:10])}")
        return [found[item_id] for item_id in ids]

    def ids_with_status(
        self, status: ItemStatus, iteration: int | None, pairs: Collection[tuple[str, str]]
    ) -> list[str]:
        """Ids of the (seed, relation) `pairs`' items of one round (every round's, if
        `iteration` is None) in `status`, ordered by id so every run orders them alike."""
        wanted = set(pairs)
        query = (
            select(ItemRow.id, ItemRow.seed_id, ItemRow.relation)
            .where(
                ItemRow.status == status.value,
                ItemRow.relation.in_(sorted({relation for _, relation in wanted})),
            )
            .order_by(ItemRow.id)
        )
        if iteration is not None:
            query = query.where(ItemRow.iteration == iteration)
        with Session(self.engine) as session:
            return [row.id for row in session.execute(query) if (row.seed_id, row.relation) in wanted]

    def items_with_statuses(self, statuses: Iterable[ItemStatus]) -> list[Item]:
        query = (
            select(ItemRow.data)
            .where(ItemRow.status.in_([status.value for status in statuses]))
            .order_by(ItemRow.iteration, ItemRow.id)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    def pair_rounds(self, item: Item) -> list[Item]:
        """Every round of an item's (seed, relation) pair, oldest first."""
        query = (
            select(ItemRow.data)
            .where(ItemRow.seed_id == item.seed_id, ItemRow.relation == item.relation)
            .order_by(ItemRow.iteration)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    def latest_candidates(self, relations: Iterable[str]) -> dict[tuple[str, str], Candidate]:
        """For every (seed, relation) pair with a candidate, its highest-round candidate."""
        query = select(
            ItemRow.id,
            ItemRow.seed_id,
            ItemRow.relation,
            ItemRow.iteration,
            ItemRow.status,
            ItemRow.reason,
        ).where(ItemRow.relation.in_(list(relations)))
        latest: dict[tuple[str, str], Candidate] = {}
        with Session(self.engine) as session:
            for row in session.execute(query):
                pair = (row.seed_id, row.relation)
                if pair not in latest or latest[pair].iteration < row.iteration:
                    feedback = [row.reason] if row.reason else []
                    latest[pair] = Candidate(row.id, row.iteration, ItemStatus(row.status), feedback)
        return latest

    def statuses_with_review(self) -> list[tuple[str, str | None]]:
        """Every item's status and its review state (None: never queued)."""
        query = select(ItemRow.status, ReviewRow.state).outerjoin(ReviewRow, ReviewRow.item_id == ItemRow.id)
        with Session(self.engine) as session:
            return [(status, state) for status, state in session.execute(query)]
