"""Which calibration an attack success rate quotes, and recording new ones.

The store keeps every calibration (`builder/store/calibrations.py`); this decides. For each
judge config and acceptance policy (what counted as success: `unsafe`, or `unsafe` and
`unknown`), the quoted calibration is the one `calibration.quote` names by id, else the one on
the most labelled answers (the latest of those): a later `--limit 20` smoke run never replaces
the figure on the whole set. Only calibrations on `unsafe` labels describe an ASR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from builder.config.sections import CalibrationSettings
from builder.core.errors import InputError
from builder.core.items import Item
from builder.stages.attack.summary import AttackSummary, CalibrationSummary, QuotedCalibrations
from builder.stages.judge.calibration.run import JudgeCalibration
from builder.store import CalibrationRecord, Store


def record_calibration(store: Store, calibration: JudgeCalibration) -> int:
    """Keep one judge's calibration (it must have figures); its id in the store."""
    assert calibration.figures is not None
    return store.add_calibration(
        judge=calibration.judge,
        judge_version=calibration.version,
        config_hash=calibration.config_hash,
        task=calibration.task,
        positive_classes=calibration.positive_classes,
        label_set=calibration.label_set,
        label_set_hash=calibration.label_set_hash,
        n=calibration.figures.n,
        kappa=calibration.figures.kappa,
        f1=calibration.figures.f1,
        report=calibration.model_dump_json(),
    )


def summary_of(record: CalibrationRecord) -> CalibrationSummary:
    return CalibrationSummary.model_validate({**asdict(record), "calibrated_at": record.created_at})


def chosen(records: Iterable[CalibrationRecord], quote: Iterable[int] = ()) -> list[CalibrationRecord]:
    """One record per (config hash, task, positive classes): the one `quote` names, else the
    largest n, then the latest. Two quoted ids for the same judge config and policy are an error."""
    picked: dict[tuple[str, str, tuple[str, ...]], CalibrationRecord] = {}
    named: dict[tuple[str, str, tuple[str, ...]], CalibrationRecord] = {}
    wanted = set(quote)
    for record in records:  # oldest first: a later one of the same n wins
        key = (record.config_hash, record.task, record.positive_classes)
        if record.id in wanted:
            if key in named:
                raise InputError(
                    f"calibration.quote names #{named[key].id} and #{record.id}, two calibrations of "
                    "the same judge config and policy: keep one"
                )
            named[key] = record
        elif key not in picked or record.n >= picked[key].n:
            picked[key] = record
    return list((picked | named).values())


def quoted_calibrations(
    store: Store, config_hashes: Iterable[str], settings: CalibrationSettings, *, strict: bool = True
) -> QuotedCalibrations:
    """The calibrations to quote for judges of `config_hashes`. `strict`: an id in
    `calibration.quote` that the store does not hold is an error (else it is reported)."""
    hashes = sorted(set(config_hashes))
    records = store.calibrations(hashes, task="unsafe") if hashes else []
    held = {record.id for record in store.calibrations()} if settings.quote else set()
    unknown = [number for number in settings.quote if number not in held]
    if unknown and strict:
        raise InputError(
            f"calibration.quote names {', '.join(f'#{n}' for n in unknown)}, which the store does not "
            "hold (`mirbench judge calibrations` lists them)"
        )
    return QuotedCalibrations(
        calibrations=[summary_of(record) for record in chosen(records, settings.quote)],
        warn_kappa=settings.warn_kappa,
        unknown_ids=unknown,
    )


def quoted_for_items(
    store: Store, items: Iterable[Item], section: Mapping[str, Any] | None
) -> QuotedCalibrations:
    """What a release of `items` quotes; `section`: the settings' `calibration` section (a
    `calibration.quote` id the store does not hold stops the release)."""
    hashes = {
        judgement.config_hash for item in items for judgement in item.judgements if judgement.config_hash
    }
    return quoted_calibrations(store, hashes, CalibrationSettings.model_validate(section or {}))


def calibrated(summary: AttackSummary, store: Store, settings: CalibrationSettings) -> AttackSummary:
    """`summary` with each deciding judge's quoted calibration; unknown quote ids are reported
    in it, not raised (a build's report is written after its work is done)."""
    hashes = (judge.config_hash for judge in summary.judges if judge.config_hash)
    return summary.with_calibrations(quoted_calibrations(store, hashes, settings, strict=False))
