"""What was run and what was released: runs (a new run supersedes the ones that died unfinished),
the items each run touched, the stats each orchestrated task reported, releases and the intents
recorded while one is being written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from builder.core.errors import InputError
from builder.store.engine import StoreBase, in_chunks
from builder.store.schema import ReleaseIntentRow, ReleaseRow, RunItemRow, RunRow, TaskRecordRow, _now

# A written release, or one being written: the same columns in two tables.
ReleaseTable = TypeVar("ReleaseTable", ReleaseRow, ReleaseIntentRow)


def _release_values(version: str, location: str, items: int, manifest_sha256: str) -> dict[str, Any]:
    return {
        "version": version,
        "location": location,
        "items": items,
        "manifest_sha256": manifest_sha256,
        "created_at": _now(),
    }


class LedgerStore(StoreBase):
    # --- runs and their tasks ----------------------------------------------------------

    def start_run(self, run_id: str, settings: dict[str, Any]) -> None:
        """Record a new run; runs that died unfinished are superseded by it (it resumes them)."""
        with self._session() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.finished_at.is_(None), RunRow.superseded_by.is_(None))
                .values(superseded_by=run_id)
            )
            session.add(RunRow(id=run_id, settings=json.dumps(settings, sort_keys=True)))

    def record_task(self, run_id: str, task: str, stats: dict[str, Any]) -> None:
        row = {
            "run_id": run_id,
            "task": task,
            "stage": stats["stage"],
            "stats": json.dumps(stats, sort_keys=True),
            "recorded_at": _now(),
        }
        with self._session() as session:
            self._upsert(session, TaskRecordRow.__table__, [row], ["run_id", "task"])

    def task_records(self, run_id: str) -> list[dict[str, Any]]:
        query = select(TaskRecordRow.stats).where(TaskRecordRow.run_id == run_id).order_by(TaskRecordRow.task)
        with Session(self.engine) as session:
            return [json.loads(stats) for stats in session.scalars(query)]

    def finish_run(self, run_id: str, stats: dict[str, Any]) -> None:
        with self._session() as session:
            row = session.get(RunRow, run_id)
            if row is not None:
                row.finished_at, row.stats = _now(), json.dumps(stats, sort_keys=True)

    def runs(self, limit: int = 5) -> list[RunRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)))

    # --- the items each run touched ----------------------------------------------------

    def record_touched(self, run_id: str, item_ids: Iterable[str]) -> None:
        """Record that run `run_id` planned, retried or ran a stage on `item_ids`."""
        rows = [{"run_id": run_id, "item_id": item_id} for item_id in dict.fromkeys(item_ids)]
        if not rows:
            return
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self._session() as session:
            session.execute(dialect.insert(RunItemRow).on_conflict_do_nothing(), rows)

    def answering_runs(self, run_id: str) -> list[str]:
        """`run_id` and every dead run it resumed (transitively): the runs its report answers for."""
        query = select(RunRow.id, RunRow.superseded_by).where(RunRow.superseded_by.is_not(None))
        with Session(self.engine) as session:
            superseded = dict(session.execute(query).all())
        runs, frontier = [run_id], [run_id]
        while frontier:
            frontier = [dead for dead, by in superseded.items() if by in frontier and dead not in runs]
            runs += frontier
        return runs

    def touched_ids(self, run_id: str) -> list[str]:
        """Ids of the items this run (and the dead runs it resumed) touched, in id order."""
        runs = self.answering_runs(run_id)
        query = select(RunItemRow.item_id).where(RunItemRow.run_id.in_(runs)).distinct()
        with Session(self.engine) as session:
            return sorted(session.scalars(query))

    def runs_of(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        """For each item, the runs that touched it, oldest first."""
        found: dict[str, list[str]] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(item_ids)):
                query = (
                    select(RunItemRow.item_id, RunItemRow.run_id)
                    .where(RunItemRow.item_id.in_(chunk))
                    .order_by(RunItemRow.run_id)
                )
                for item_id, run in session.execute(query):
                    found.setdefault(item_id, []).append(run)
        return found

    def run_settings(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The recorded settings of those of `run_ids` this store knows."""
        query = select(RunRow.id, RunRow.settings).where(RunRow.id.in_(list(run_ids)))
        with Session(self.engine) as session:
            return {run: json.loads(settings) for run, settings in session.execute(query)}

    # --- releases ----------------------------------------------------------------------

    def record_release(self, version: str, location: str, items: int, manifest_sha256: str) -> None:
        """Record a written release (it completes its intent); versions are immutable."""
        with self._session() as session:
            if session.get(ReleaseRow, version) is not None:
                raise InputError(f"release {version} already exists; versions are immutable")
            session.add(ReleaseRow(**_release_values(version, location, items, manifest_sha256)))
            session.execute(delete(ReleaseIntentRow).where(ReleaseIntentRow.version == version))

    def record_release_intent(self, version: str, location: str, items: int, manifest_sha256: str) -> None:
        """Record the release about to be moved into place (replacing an earlier attempt's)."""
        row = _release_values(version, location, items, manifest_sha256)
        with self._session() as session:
            self._upsert(session, ReleaseIntentRow.__table__, [row], "version")

    def release(self, version: str) -> ReleaseRow | None:
        return self._release(ReleaseRow, version)

    def release_intent(self, version: str) -> ReleaseIntentRow | None:
        return self._release(ReleaseIntentRow, version)

    def releases(self) -> list[ReleaseRow]:
        return self._releases(ReleaseRow)

    def release_intents(self) -> list[ReleaseIntentRow]:
        return self._releases(ReleaseIntentRow)

    def _release(self, table: type[ReleaseTable], version: str) -> ReleaseTable | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(table, version)

    def _releases(self, table: type[ReleaseTable]) -> list[ReleaseTable]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(table).order_by(table.created_at)))
