"""What a build tells its user: the funnel of candidates, per-stage stats, cells covered.

Stats come from what each task recorded in the store when it finished, so the report of a
build is complete whatever process ran its tasks, and a killed run keeps the stats it had. The
funnel counts the items the run touched (and those of dead runs it resumed), nothing older.

The funnel groups rejections by the fields of the verdict that ended each item (`stage`,
`name`, `reason`), along the pipeline: what failed before dedup, dedup's duplicates, what a
stage of the attack loop failed or its policy rejected, and the rest (filters, review and any
stage added later).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from builder.config.sections import CalibrationSettings
from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import StageStats
from builder.run.failures import FailureGroup, exhausted, failure_groups
from builder.run.picture_figures import PictureFigures
from builder.run.scope import exclusive_status, exclusive_status_counts
from builder.stages import pipeline
from builder.stages.ablation import AblationStage, ablation_rates
from builder.stages.attack.summary import AttackSummary, summarize
from builder.stages.dedup import DedupStage
from builder.stages.filters import OFF
from builder.stages.judge.calibration.quote import calibrated
from builder.store import Store

_ENDED = (ItemStatus.REJECTED, ItemStatus.FAILED, ItemStatus.REFUSED)
EXHAUSTED_LABEL = "failed, attempts used up (not retried; see `mirbench retry --help`)"


class FunnelRow(BaseModel):
    label: str
    count: int
    indent: int = 0


class BuildReport(BaseModel):
    run_id: str
    seeds: int
    pairs: int
    funnel: list[FunnelRow]
    cells_queued: int
    cells_total: int
    stages: dict[str, StageStats]
    attack: AttackSummary | None = None  # None: the attack loop was off
    failures: list[FailureGroup] = []  # this run's failed candidates, most common reason first
    exhausted: int = 0  # failed candidates of this run's pairs with every attempt used
    store_total: dict[str, int] = {}  # items by status over the whole store, every run
    pictures: PictureFigures | None = None  # of the items queued for review
    stats_file: Path | None = None

    @property
    def failed(self) -> int:
        return sum(group.count for group in self.failures)

    def markdown(self) -> str:
        rows = "\n".join(f"| {'&nbsp;' * 4 * row.indent}{row.label} | {row.count} |" for row in self.funnel)
        stages = "\n".join(
            f"| {name} | {stats.items_in} | {stats.seconds:.1f} |" for name, stats in self.stages.items()
        )
        return (
            f"# mirbench build {self.run_id}\n\n"
            f"Cells with queued items: **{self.cells_queued}/{self.cells_total}**\n\n"
            f"| funnel | items |\n|---|---:|\n{rows}\n\n"
            f"| stage | items in | seconds |\n|---|---:|---:|\n{stages}\n\n"
            + "".join(f"- {line}\n" for line in (self.pictures.lines() if self.pictures else []))
            + "\n## Construction-time attack success\n\n"
            f"{(self.attack or AttackSummary()).markdown()}"
        )


def merged_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, StageStats]:
    merged: dict[str, StageStats] = {}
    for record in records:
        stats = StageStats.model_validate(record)
        previous = merged.get(stats.stage)
        merged[stats.stage] = previous.merge(stats) if previous else stats
    return merged


def rejections(items: Iterable[Item]) -> list[tuple[ItemStatus, Verdict]]:
    """The status and the ending verdict of every rejected, failed or refused item."""
    return [
        (item.status, item.rejection)
        for item in items
        if item.status in _ENDED and item.rejection is not None
    ]


def funnel(
    items: list[Item],
    review_states: Mapping[str, str],
    seeds: int,
    pairs: int,
    attack: AttackSummary | None = None,
    exhausted: int = 0,
) -> list[FunnelRow]:
    """The funnel of `items`: the candidates one run touched (its pairs' rounds), each counted
    once, under one status (an approved item is not also queued)."""
    statuses = Counter(exclusive_status(item, review_states.get(item.id)) for item in items)
    total = len(items)
    order = pipeline.names()
    before_dedup = set(order[: order.index(DedupStage.name)])
    attack_loop = pipeline.tester_stages()
    early: Counter[str] = Counter()  # before dedup: failed while composing or rendering
    refused = 0  # by the composer model
    attack_failures: Counter[str] = Counter()
    policy_rejected = 0
    not_needed: Counter[str] = Counter()  # rejected by the needs-every-image check
    duplicates: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for status, verdict in rejections(items):
        label = f"{verdict.name}: {verdict.reason}"
        if verdict.stage in before_dedup and status is ItemStatus.REFUSED:
            refused += 1
        elif verdict.stage in before_dedup:
            early[label] += 1
        elif verdict.stage == AblationStage.name and status is ItemStatus.REJECTED:
            not_needed[verdict.reason] += 1
        elif verdict.stage in attack_loop and status is ItemStatus.REJECTED:
            policy_rejected += 1
        elif verdict.stage in attack_loop:
            attack_failures[label] += 1
        elif verdict.stage == DedupStage.name:
            duplicates[verdict.reason] += 1
        else:
            rejected[label] += 1
    rows = [
        FunnelRow(label="seeds", count=seeds),
        FunnelRow(label="(seed, relation) pairs", count=pairs),
        FunnelRow(label="candidates composed (all rounds)", count=total),
        FunnelRow(label="refused by the composer model", count=statuses.get(ItemStatus.REFUSED.value, 0)),
        FunnelRow(label="failed", count=statuses.get(ItemStatus.FAILED.value, 0)),
        *(FunnelRow(label=k, count=v, indent=1) for k, v in sorted(early.items())),
        *(FunnelRow(label=k, count=v, indent=1) for k, v in sorted(attack_failures.items())),
        FunnelRow(label=EXHAUSTED_LABEL, count=exhausted),
        FunnelRow(label="rendered", count=total - sum(early.values()) - refused),
        FunnelRow(label="duplicates", count=sum(duplicates.values())),
        *(FunnelRow(label=k, count=v, indent=1) for k, v in sorted(duplicates.items())),
        FunnelRow(label="rejected by filter or review", count=sum(rejected.values())),
        *(FunnelRow(label=k, count=v, indent=1) for k, v in sorted(rejected.items())),
    ]
    if attack is None:
        untested = statuses.get(ItemStatus.QUEUED.value, 0)
        rows.append(FunnelRow(label="not tested against a model (attack: none)", count=untested))
    else:
        rows.append(FunnelRow(label="tested against the models and judged", count=attack.items_judged))
        for role, counts in attack.classes.items():
            rows += [
                FunnelRow(label=f"{role.replace('_', '-')} answers: {name}", count=count, indent=1)
                for name, count in counts.items()
            ]
        rows.append(FunnelRow(label="rejected by the attack policy", count=policy_rejected))
        rows.append(FunnelRow(label="accepted by the attack policy", count=attack.accepted))
        checked = sum(rate.checked for rate in ablation_rates(items))
        if checked:
            rows.append(FunnelRow(label="checked that every image is needed", count=checked, indent=1))
            rows.append(FunnelRow(label="an image not needed", count=sum(not_needed.values()), indent=1))
            rows += [FunnelRow(label=k, count=v, indent=2) for k, v in sorted(not_needed.items())]
    rows.append(FunnelRow(label="queued for review", count=statuses.get(ItemStatus.QUEUED.value, 0)))
    return rows


def build_report(
    store: Store,
    run_id: str,
    items: list[Item],
    pairs: list[tuple[str, str]],
    categories: Mapping[str, Any],
    *,
    attack: bool = False,
    max_attempts: int = 3,
    calibration: CalibrationSettings | None = None,
) -> BuildReport:
    """The report of run `run_id` from `items`, what it (and any dead run it resumed) touched
    (`Store.touched_ids`), nothing older. `categories` maps each seed id to its seed (anything
    with a `category`); `attack`: the attack loop was on."""
    states = store.review_states([item.id for item in items])
    pending = {item.id for item in items if exclusive_status(item, states.get(item.id)) == "queued"}
    summary = None
    if attack:
        judged = (ItemStatus.ACCEPTED, ItemStatus.QUEUED, ItemStatus.REJECTED)
        summary = calibrated(
            summarize(item for item in items if item.status in judged),
            store,
            calibration or CalibrationSettings(),
        )
    failed = store.get_items(store.ids_with_status(ItemStatus.FAILED, None, pairs))
    stuck = sum(exhausted(item, max_attempts) for item in failed)
    stages = merged_stats(store.task_records(run_id))
    rows = funnel(
        items,
        states,
        len({seed_id for seed_id, _ in pairs}),
        len(pairs),
        summary,
        stuck,
    )
    if "filters" in stages:  # checks that were off: how many items they let through unchecked
        rows += [
            FunnelRow(label=f"{label} (items not checked)", count=count)
            for label, count in sorted(stages["filters"].outcomes.items())
            if label.startswith(OFF)
        ]
    wanted = {(categories[seed_id].category, relation) for seed_id, relation in pairs}
    queued_cells = {(item.category, item.relation) for item in items if item.id in pending}
    return BuildReport(
        run_id=run_id,
        seeds=len({seed_id for seed_id, _ in pairs}),
        pairs=len(pairs),
        funnel=rows,
        cells_queued=len(wanted & queued_cells),
        cells_total=len(wanted),
        stages=stages,
        attack=summary,
        failures=failure_groups(items),
        exhausted=stuck,
        store_total=exclusive_status_counts(store),
    )
