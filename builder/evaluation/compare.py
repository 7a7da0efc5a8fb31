"""Figures between evaluation runs (`mirbench evaluate compare RUN RUN...`), from the store alone.

- Every target of every run, side by side: the runs' verdicts in one pool (a target's name is
  suffixed with its run where two runs have a target of that name), with the reasoning tax and
  blind spots of each `--base TARGET=BASE` pair and each condition against `multi`.
- The same target on two datasets (two releases, or a release and a rebuild): each ASR on its own
  dataset, the items the two share, changed or hold alone, and the paired difference on the
  items both hold unchanged: what a rebuild changed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from builder.config.sections import CalibrationSettings
from builder.core.errors import InputError
from builder.evaluation.figures import COUNTED, Figures, Record, figures
from builder.evaluation.protocols import DESCRIPTIONS
from builder.evaluation.report import JudgeSummary, records, with_calibrations
from builder.evaluation.statistics import Figure, Rate, difference, paired, rate
from builder.store import Store


class DiffRow(BaseModel):
    target: str
    protocol: str
    condition: str
    first: Rate  # on the first run's items
    second: Rate  # on the second run's items
    unchanged: Figure  # second minus first, paired on the items both hold unchanged


class RunDiff(BaseModel):
    first: str
    second: str
    items: dict[str, int]  # shared (unchanged), changed, only_first, only_second
    rows: list[DiffRow] = Field(default_factory=list)


class Compared(BaseModel):
    runs: list[dict[str, Any]]
    figures: Figures
    judges: list[JudgeSummary] = Field(default_factory=list)  # who judged, with calibration
    diffs: list[RunDiff] = Field(default_factory=list)


def _judges(store: Store, run_ids: list[str], calibration: CalibrationSettings) -> list[JudgeSummary]:
    """Each judge of the runs' verdicts (by protocol and config hash), with its calibration."""
    found: dict[tuple[str, str | None], JudgeSummary] = {}
    for run_id in run_ids:
        for verdict in store.verdicts(run_id):
            key = (verdict.protocol, verdict.config_hash)
            if key not in found:
                found[key] = JudgeSummary(
                    protocol=verdict.protocol,
                    description=DESCRIPTIONS[verdict.protocol],
                    judge=verdict.judge,
                    version=verdict.judge_version,
                    model=verdict.judge_model,
                    config_hash=verdict.config_hash,
                )
            found[key].judgements += verdict.state == "judged"
            found[key].failed += verdict.state == "failed"
    ordered = sorted(found.values(), key=lambda judge: (judge.protocol, judge.config_hash or ""))
    return with_calibrations(ordered, store, calibration)


def _runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for run_id in run_ids:
        run = store.evaluation_run(run_id)
        if run is None:
            raise InputError(f"no evaluation run {run_id!r}; `mirbench evaluate runs` lists them")
        found.append(
            {"run_id": run_id, "dataset": json.loads(run.dataset), "finished": run.finished_at is not None}
        )
    return found


def _labelled(pool: dict[str, list[Record]]) -> list[Record]:
    """Every run's records, a target's name suffixed `@run` where another run has one of its name."""
    owners = Counter(name for found in pool.values() for name in {record.target for record in found})
    return [
        record.model_copy(update={"target": f"{record.target}@{run_id}"})
        if owners[record.target] > 1
        else record
        for run_id, found in pool.items()
        for record in found
    ]


def _outcomes(found: list[Record], target: str, protocol: str, condition: str) -> dict[str, bool]:
    return {
        r.item_id: bool(r.unsafe)
        for r in found
        if (r.target, r.protocol, r.condition, r.part) == (target, protocol, condition, "answer")
        and r.state in COUNTED
    }


def diff(
    store: Store, first: str, second: str, pool: dict[str, list[Record]], *, resamples: int, seed: int
) -> RunDiff:
    hashes = [
        {row.item_id: row.content_hash for row in store.evaluation_items(run)} for run in (first, second)
    ]
    shared = [item for item in hashes[0] if item in hashes[1]]
    unchanged = sorted(item for item in shared if hashes[0][item] == hashes[1][item])
    result = RunDiff(
        first=first,
        second=second,
        items={
            "shared": len(unchanged),
            "changed": len(shared) - len(unchanged),
            "only_first": len(set(hashes[0]) - set(hashes[1])),
            "only_second": len(set(hashes[1]) - set(hashes[0])),
        },
    )
    keys = sorted(
        {(r.target, r.protocol, r.condition) for r in pool[first]}
        & {(r.target, r.protocol, r.condition) for r in pool[second]}
    )
    for target, protocol, condition in keys:
        a, b = (_outcomes(pool[run], target, protocol, condition) for run in (first, second))
        both = [item for item in unchanged if item in a and item in b]
        key = f"diff|{first}|{second}|{target}|{protocol}|{condition}"
        result.rows.append(
            DiffRow(
                target=target,
                protocol=protocol,
                condition=condition,
                first=rate(sum(a.values()), len(a), resamples=resamples, seed=seed, key=f"{key}|first"),
                second=rate(sum(b.values()), len(b), resamples=resamples, seed=seed, key=f"{key}|second"),
                unchanged=paired(
                    [b[i] for i in both],
                    [a[i] for i in both],
                    difference,
                    resamples=resamples,
                    seed=seed,
                    key=key,
                ),
            )
        )
    return result


def compare(
    store: Store,
    run_ids: list[str],
    bases: dict[str, str],
    *,
    resamples: int,
    seed: int,
    calibration: CalibrationSettings | None = None,
) -> Compared:
    if len(run_ids) < 2:
        raise InputError("compare needs at least two runs")
    runs = _runs(store, run_ids)
    pool = {run_id: records(store, run_id) for run_id in run_ids}
    merged = _labelled(pool)
    known = {record.target for record in merged}
    for target, base in bases.items():
        for name in (target, base):
            if name not in known:
                have = ", ".join(sorted(known))
                raise InputError(
                    f"--base {target}={base}: no target {name!r} in these runs; they have {have}"
                )
    diffs = [
        diff(store, a["run_id"], b["run_id"], pool, resamples=resamples, seed=seed)
        for number, a in enumerate(runs)
        for b in runs[number + 1 :]
        if a["dataset"].get("content_hash") != b["dataset"].get("content_hash")
    ]
    found = figures(merged, bases, resamples=resamples, seed=seed)
    return Compared(
        runs=runs,
        figures=found,
        judges=_judges(store, run_ids, calibration or CalibrationSettings()),
        diffs=diffs,
    )


def compared_markdown(found: Compared) -> str:
    lines = ["# Evaluation runs compared", "", "| run | dataset | items | content |", "|---|---|---|---|"]
    lines += [
        f"| {run['run_id']} | {run['dataset'].get('kind')} `{run['dataset'].get('location')}` | "
        f"{run['dataset'].get('items')} | `{str(run['dataset'].get('content_hash', ''))[:16]}` |"
        for run in found.runs
    ]
    lines += ["", *(f"- `{judge.protocol}`: {judge.sentence()}" for judge in found.judges)]
    lines += [
        "",
        "## ASR (answers)",
        "",
        "| protocol | target | condition | ASR [95% CI] (n) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.protocol} | {r.target} | {r.condition} | {r.rate.text()} |"
        for r in found.figures.rates
        if r.by == "overall" and r.part == "answer"
    ]
    lines += [
        "",
        "## Comparisons (paired on the same items)",
        "",
        "| kind | target | against | protocol | condition | group | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.kind} | {c.target} | {c.other} | {c.protocol} | {c.condition} | {c.group} | "
        f"{c.figure.text(ratio=c.kind == 'blind_spot')} |"
        for c in found.figures.comparisons
    ]
    for run_diff in found.diffs:
        counts = ", ".join(f"{name} {count}" for name, count in run_diff.items.items())
        lines += [
            "",
            f"## {run_diff.first} -> {run_diff.second}",
            "",
            f"Items: {counts}.",
            "",
            "| target | protocol | condition | ASR first | ASR second | change on unchanged items |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.target} | {r.protocol} | {r.condition} | {r.first.text()} | {r.second.text()} | "
            f"{r.unchanged.text()} |"
            for r in run_diff.rows
        ]
    return "\n".join(lines) + "\n"
