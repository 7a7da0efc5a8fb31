"""Judge calibrations in the store (`judge_calibrations`): one row per (judge, label set, policy)
run, never overwritten. The store keeps and returns them; which one a card quotes is decided in
`builder/stages/judge/calibration/quote.py`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from builder.store.engine import StoreBase
from builder.store.schema import CalibrationRow


@dataclass(frozen=True)
class CalibrationRecord:
    """One stored calibration's headline figures (the full report is `calibration_report`)."""

    id: int
    judge: str
    judge_version: str
    config_hash: str
    task: str
    positive_classes: tuple[str, ...]
    label_set: str
    label_set_hash: str
    n: int
    kappa: float | None
    f1: float
    created_at: datetime  # always timezone-aware (UTC)


def _record(row: CalibrationRow) -> CalibrationRecord:
    created = row.created_at
    return CalibrationRecord(
        id=row.id,
        judge=row.judge,
        judge_version=row.judge_version,
        config_hash=row.config_hash,
        task=row.task,
        positive_classes=tuple(row.positive_classes.split(",")),
        label_set=row.label_set,
        label_set_hash=row.label_set_hash,
        n=row.n,
        kappa=row.kappa,
        f1=row.f1,
        # SQLite hands back what it was given without its zone; every time stored is UTC
        created_at=created if created.tzinfo is not None else created.replace(tzinfo=UTC),
    )


class CalibrationStore(StoreBase):
    def add_calibration(
        self,
        *,
        judge: str,
        judge_version: str,
        config_hash: str,
        task: str,
        positive_classes: Iterable[str],
        label_set: str,
        label_set_hash: str,
        n: int,
        kappa: float | None,
        f1: float,
        report: str,
    ) -> int:
        """Keep one calibration; its id (what `calibration.quote` names)."""
        row = CalibrationRow(
            judge=judge,
            judge_version=judge_version,
            config_hash=config_hash,
            task=task,
            positive_classes=",".join(positive_classes),
            label_set=label_set,
            label_set_hash=label_set_hash,
            n=n,
            kappa=kappa,
            f1=f1,
            report=report,
            created_at=datetime.now(UTC),
        )
        with self._session() as session:
            session.add(row)
            session.flush()
            return row.id

    def calibrations(
        self, config_hashes: Iterable[str] | None = None, task: str | None = None
    ) -> list[CalibrationRecord]:
        """Stored calibrations, oldest first; only those of `config_hashes` / on `task` if given."""
        query = select(CalibrationRow).order_by(CalibrationRow.created_at, CalibrationRow.id)
        if config_hashes is not None:
            query = query.where(CalibrationRow.config_hash.in_(sorted(set(config_hashes))))
        if task is not None:
            query = query.where(CalibrationRow.task == task)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def calibration_report(self, calibration_id: int) -> str | None:
        """The whole report of one calibration, as `judge calibrate --json` wrote it (JSON)."""
        with Session(self.engine) as session:
            row = session.get(CalibrationRow, calibration_id)
            return None if row is None else row.report
