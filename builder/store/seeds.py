"""Seeds imported for curation in the store (`seed_candidates`): adding them, reading them by
state and source, and writing what import, merge and triage decided (builder/curation/)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from builder.store.engine import StoreBase
from builder.store.schema import SeedRow, SeedState


class SeedStore(StoreBase):
    def known_seed_source_ids(self, source: str) -> set[str]:
        with Session(self.engine) as session:
            return set(session.scalars(select(SeedRow.source_id).where(SeedRow.source == source)))

    def add_seeds(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new seeds in one transaction: an import lands whole or not at all."""
        if not rows:
            return
        with self._session() as session:
            session.execute(SeedRow.__table__.insert(), list(rows))

    def seed_candidates(
        self, states: Iterable[SeedState] | None = None, sources: Iterable[str] | None = None
    ) -> list[SeedRow]:
        """Seeds in import order (then id), optionally only those in `states` / from `sources`."""
        query = select(SeedRow).order_by(SeedRow.imported_at, SeedRow.id)
        if states is not None:
            query = query.where(SeedRow.state.in_([state.value for state in states]))
        if sources is not None:
            query = query.where(SeedRow.source.in_(list(sources)))
        with Session(self.engine, expire_on_commit=False) as session:
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def seed_candidate(self, seed_id: str) -> SeedRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(SeedRow, seed_id)
            if row is not None:
                session.expunge(row)
            return row

    def update_seeds(self, values: Sequence[dict[str, Any]]) -> None:
        """Per-seed column updates (each dict holds `id` and the new values), in one transaction."""
        with self._session() as session:
            for row in values:
                changes = {key: value for key, value in row.items() if key != "id"}
                session.execute(update(SeedRow).where(SeedRow.id == row["id"]).values(**changes))

    def seed_state_counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return dict(session.execute(select(SeedRow.state, func.count()).group_by(SeedRow.state)).all())
