"""Evaluation runs in the store: the run and its plan, its items, every target's responses and
every protocol's verdicts (`builder/evaluation/` decides; this keeps).

Responses hold no text: a response row points at the answers table (`answer_key`), which is
the target's own response cache, so a rerun, a resumed run or another run with the same
request pays nothing. Verdict rationales may quote a response: `purge_evaluation_rationales`
clears them with the answers (`mirbench answers purge`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from builder.store.engine import StoreBase, in_chunks
from builder.store.schema import (
    EvaluationItemRow,
    EvaluationResponseRow,
    EvaluationRunRow,
    EvaluationVerdictRow,
    _now,
)


class EvaluationStore(StoreBase):
    # --- runs ------------------------------------------------------------------------------

    def start_evaluation(
        self, run_id: str, plan_hash: str, dataset: dict[str, Any], plan: dict[str, Any]
    ) -> None:
        with self._session() as session:
            session.add(
                EvaluationRunRow(
                    id=run_id,
                    plan_hash=plan_hash,
                    dataset=json.dumps(dataset, sort_keys=True),
                    plan=json.dumps(plan, sort_keys=True),
                )
            )

    def unfinished_evaluation(self, plan_hash: str) -> str | None:
        """The latest run of this plan that has not finished (a rerun resumes it)."""
        query = (
            select(EvaluationRunRow.id)
            .where(EvaluationRunRow.plan_hash == plan_hash, EvaluationRunRow.finished_at.is_(None))
            .order_by(EvaluationRunRow.started_at.desc())
            .limit(1)
        )
        with Session(self.engine) as session:
            return session.scalar(query)

    def evaluation_run(self, run_id: str) -> EvaluationRunRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(EvaluationRunRow, run_id)

    def evaluation_runs(self) -> list[EvaluationRunRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(EvaluationRunRow).order_by(EvaluationRunRow.started_at)))

    def finish_evaluation(self, run_id: str, summary: dict[str, Any]) -> None:
        with self._session() as session:
            session.execute(
                update(EvaluationRunRow)
                .where(EvaluationRunRow.id == run_id)
                .values(finished_at=_now(), summary=json.dumps(summary, sort_keys=True))
            )

    def reopen_evaluation(self, run_id: str) -> None:
        """A finished run asked to go on (its failed requests retried): unfinished again."""
        with self._session() as session:
            session.execute(
                update(EvaluationRunRow).where(EvaluationRunRow.id == run_id).values(finished_at=None)
            )

    # --- items -----------------------------------------------------------------------------

    def save_evaluation_items(self, rows: list[dict[str, Any]]) -> None:
        """Record a run's items; an item already recorded for the run stays as it is."""
        self._insert_new(EvaluationItemRow.__table__, rows, ["run_id", "item_id"])

    def evaluation_items(self, run_id: str, ids: Sequence[str] | None = None) -> list[EvaluationItemRow]:
        query = select(EvaluationItemRow).where(EvaluationItemRow.run_id == run_id)
        with Session(self.engine, expire_on_commit=False) as session:
            if ids is None:
                return list(session.scalars(query.order_by(EvaluationItemRow.item_id)))
            found: list[EvaluationItemRow] = []
            for chunk in in_chunks(list(ids)):
                found += session.scalars(query.where(EvaluationItemRow.item_id.in_(chunk)))
            return found

    # --- responses -------------------------------------------------------------------------

    def plan_responses(self, rows: list[dict[str, Any]]) -> None:
        """Record the responses a run asks for; one already planned keeps its state."""
        self._insert_new(EvaluationResponseRow.__table__, rows, ["run_id", "target", "item_id", "condition"])

    def responses(
        self,
        run_id: str,
        states: Iterable[str] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[EvaluationResponseRow]:
        """A run's responses in id order (only those in `states`, or with `ids`, when given)."""
        query = select(EvaluationResponseRow).where(EvaluationResponseRow.run_id == run_id)
        if states is not None:
            query = query.where(EvaluationResponseRow.state.in_(list(states)))
        with Session(self.engine, expire_on_commit=False) as session:
            if ids is None:
                return list(session.scalars(query.order_by(EvaluationResponseRow.id)))
            found: list[EvaluationResponseRow] = []
            for chunk in in_chunks(list(ids)):  # type: ignore[arg-type]
                found += session.scalars(query.where(EvaluationResponseRow.id.in_(chunk)))
            return sorted(found, key=lambda row: row.id)

    def update_responses(self, changes: list[dict[str, Any]]) -> None:
        """Apply `changes` (each names its row's `id`) in one transaction."""
        if not changes:
            return
        with self._session() as session:
            session.execute(update(EvaluationResponseRow), changes)  # by primary key, in bulk

    # --- verdicts --------------------------------------------------------------------------

    def save_verdicts(self, rows: list[dict[str, Any]]) -> None:
        with self._session() as session:
            self._upsert(session, EvaluationVerdictRow.__table__, rows, ["response_id", "protocol", "part"])

    def verdicts(self, run_id: str) -> list[EvaluationVerdictRow]:
        query = (
            select(EvaluationVerdictRow)
            .where(EvaluationVerdictRow.run_id == run_id)
            .order_by(
                EvaluationVerdictRow.response_id, EvaluationVerdictRow.protocol, EvaluationVerdictRow.part
            )
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def purge_evaluation_rationales(self) -> tuple[int, set[str]]:
        """Clear every evaluation verdict's rationale (it may quote the response); returns how
        many there were and the judge models whose cached responses hold them."""
        with self._session() as session:
            models = {
                model
                for joined in session.scalars(select(EvaluationVerdictRow.judge_model).distinct())
                for model in (joined or "").split(",")  # an ensemble's members, comma-joined
                if model
            }
            cleared = session.execute(
                update(EvaluationVerdictRow).where(EvaluationVerdictRow.rationale != "").values(rationale="")
            )
        return cleared.rowcount or 0, models
