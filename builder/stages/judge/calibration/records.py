"""Calibration records in the store: one row per (judge, label set) run, never overwritten, so
the latest calibration of a config hash is what an attack-success table quotes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from builder.stages.attack.summary import AttackSummary, CalibrationSummary
from builder.stages.judge.calibration.run import JudgeCalibration
from builder.store import Store
from builder.store.schema import CalibrationRow


def record_calibration(store: Store, calibration: JudgeCalibration) -> None:
    """Keep one judge's calibration (it must have figures: at least one judged answer)."""
    assert calibration.figures is not None
    with Session(store.engine) as session, session.begin():
        session.add(
            CalibrationRow(
                judge=calibration.judge,
                judge_version=calibration.version,
                config_hash=calibration.config_hash,
                task=calibration.task,
                label_set=calibration.label_set,
                label_set_hash=calibration.label_set_hash,
                n=calibration.figures.n,
                kappa=calibration.figures.kappa,
                f1=calibration.figures.f1,
                report=calibration.model_dump_json(),
                created_at=datetime.now(UTC),
            )
        )


def latest_calibrations(
    store: Store, config_hashes: Iterable[str], task: str = "unsafe"
) -> dict[str, CalibrationSummary]:
    """The newest calibration of each config hash on `task` (hashes never calibrated are absent)."""
    wanted = sorted(set(config_hashes))
    if not wanted:
        return {}
    query = (
        select(CalibrationRow)
        .where(CalibrationRow.config_hash.in_(wanted), CalibrationRow.task == task)
        .order_by(CalibrationRow.created_at, CalibrationRow.id)
    )
    latest: dict[str, CalibrationSummary] = {}
    with Session(store.engine) as session:
        for row in session.scalars(query):
            latest[row.config_hash] = CalibrationSummary(
                judge=row.judge,
                config_hash=row.config_hash,
                task=row.task,
                label_set=row.label_set,
                label_set_hash=row.label_set_hash,
                n=row.n,
                kappa=row.kappa,
                f1=row.f1,
                calibrated_at=row.created_at,
            )
    return latest


def calibrated(summary: AttackSummary, store: Store) -> AttackSummary:
    """`summary` with each deciding judge's latest calibration (ASR is about `unsafe`)."""
    return summary.with_calibrations(
        latest_calibrations(store, (j.config_hash for j in summary.judges if j.config_hash))
    )
