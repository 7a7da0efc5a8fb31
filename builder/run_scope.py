"""Which items a build run touched, so that its report and exit code speak for that run only.

Every run records the items it planned, sent back for a retry or ran a stage on (`run_items`).
A run that resumes dead runs (it superseded them when it started) answers for their items too:
their work was never reported. Counts are exclusive: an item the reviewers approved is
`approved`, never also `queued`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from builder.items import Item, ItemStatus
from builder.store import ItemRow, ReviewRow, ReviewState, RunRow, Store, _Base, _chunks

# Review states an item in status `queued` may have, and how it is counted then.
_REVIEWED = {ReviewState.APPROVED.value: "approved"}


class RunItemRow(_Base):
    """One item that one build run planned, retried or ran a stage on."""

    __tablename__ = "run_items"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)


def record_touched(store: Store, run_id: str, item_ids: Iterable[str]) -> None:
    rows = [{"run_id": run_id, "item_id": item_id} for item_id in dict.fromkeys(item_ids)]
    if not rows:
        return
    dialect = postgresql if store.engine.dialect.name == "postgresql" else sqlite
    with Session(store.engine) as session, session.begin():
        session.execute(dialect.insert(RunItemRow).on_conflict_do_nothing(), rows)


def answering_runs(store: Store, run_id: str) -> list[str]:
    """`run_id` and every dead run it resumed (transitively): the runs its report answers for."""
    with Session(store.engine) as session:
        superseded = dict(
            session.execute(
                select(RunRow.id, RunRow.superseded_by).where(RunRow.superseded_by.is_not(None))
            ).all()
        )
    runs, frontier = [run_id], [run_id]
    while frontier:
        frontier = [dead for dead, by in superseded.items() if by in frontier and dead not in runs]
        runs += frontier
    return runs


def touched_ids(store: Store, run_id: str) -> list[str]:
    """Ids of the items this run (and the dead runs it resumed) touched, in id order."""
    runs = answering_runs(store, run_id)
    query = select(RunItemRow.item_id).where(RunItemRow.run_id.in_(runs)).distinct()
    with Session(store.engine) as session:
        return sorted(session.scalars(query))


def runs_of(store: Store, item_ids: Sequence[str]) -> dict[str, list[str]]:
    """For each item, the runs that touched it, oldest first."""
    found: dict[str, list[str]] = {}
    with Session(store.engine) as session:
        for chunk in _chunks(list(item_ids)):
            query = (
                select(RunItemRow.item_id, RunItemRow.run_id)
                .where(RunItemRow.item_id.in_(chunk))
                .order_by(RunItemRow.run_id)
            )
            for item_id, run in session.execute(query):
                found.setdefault(item_id, []).append(run)
    return found


def review_states(store: Store, item_ids: Sequence[str] | None = None) -> dict[str, str]:
    """Review state of queued items (all, or those of `item_ids`)."""
    query = select(ReviewRow.item_id, ReviewRow.state)
    states: dict[str, str] = {}
    with Session(store.engine) as session:
        if item_ids is None:
            return dict(session.execute(query).all())
        for chunk in _chunks(list(item_ids)):
            states.update(session.execute(query.where(ReviewRow.item_id.in_(chunk))).all())
    return states


def exclusive_status(item: Item, review_state: str | None) -> str:
    """One status per item: a queued item the reviewers approved counts as `approved` only."""
    if item.status is ItemStatus.QUEUED and review_state in _REVIEWED:
        return _REVIEWED[review_state]
    return item.status.value


def exclusive_status_counts(store: Store) -> dict[str, int]:
    """Items by status over the whole store, approved apart from queued."""
    with Session(store.engine) as session:
        rows = session.execute(
            select(ItemRow.status, ReviewRow.state).outerjoin(ReviewRow, ReviewRow.item_id == ItemRow.id)
        ).all()
    counts: Counter[str] = Counter()
    for status, state in rows:
        counts[_REVIEWED.get(state, status) if status == ItemStatus.QUEUED.value else status] += 1
    return dict(counts)


def build_configs(store: Store, items: Sequence[Item]) -> dict[str, dict[str, object] | None]:
    """The settings of every build run that touched `items`, keyed by run id (None: a run this
    store has no record of). Items from before runs recorded their items name their own run."""
    touched = runs_of(store, [item.id for item in items])
    run_ids = sorted({run for item in items for run in touched.get(item.id, [item.provenance.run_id])})
    with Session(store.engine) as session:
        rows = dict(session.execute(select(RunRow.id, RunRow.settings).where(RunRow.id.in_(run_ids))).all())
    configs: dict[str, dict[str, object] | None] = {}
    for run in run_ids:
        settings = json.loads(rows[run]) if run in rows else None
        if settings is not None:
            settings.pop("database_url", None)  # stored hidden anyway; a release names no store
        configs[run] = settings
    return configs
