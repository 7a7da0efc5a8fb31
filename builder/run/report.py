"""What a build tells its user: the funnel of candidates, per-stage stats, cells covered.

Stats come from what each task recorded in the store when it finished, so the report of a
build is complete whatever process ran its tasks, and a killed run keeps the stats it had. The
funnel counts the items the run touched (and those of dead runs it resumed), nothing older.

The funnel groups candidates by the fields of the verdict that ended each one (`stage`, `name`,
`reason`), where that stage's declared funnel group puts them (`Stage.funnel_group`,
`Stage.funnel_label`): it names no stage and knows no stage's place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from builder.config.sections import CalibrationSettings
from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import Outcome, StageStats
from builder.run.failures import FailureGroup, exhausted, failure_groups
from builder.run.picture_figures import PictureFigures
from builder.run.scope import exclusive_status, exclusive_status_counts
from builder.stages import pipeline
from builder.stages.attack.summary import AttackSummary, summarize
from builder.stages.base import FunnelGroup, Stage
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
    notes: list[str] = []  # what a reader of the figures must know (stats an older mirbench recorded)
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


def _stage_of(name: str) -> type[Stage]:
    """The pipeline stage `name`; a verdict of anything else (review, a plug-in no longer
    installed) counts as the base's: rejected by filter or review."""
    try:
        return pipeline.stage(name)
    except KeyError:
        return Stage


def _rows(counts: Counter[str], indent: int = 1) -> list[FunnelRow]:
    return [FunnelRow(label=label, count=count, indent=indent) for label, count in sorted(counts.items())]


class _Endings:
    """The candidates of a funnel by how they ended, in the groups their stages declare."""

    def __init__(self, items: list[Item], enabled: Collection[str] | None = None):
        order = pipeline.stages()
        # the headings of the stages that ran (all, when not known): the others' only when they
        # rejected something (an earlier build's settings)
        on = [stage for stage in order if enabled is None or stage.name in enabled]
        self.enabled_labels = {stage.funnel_label for stage in on}
        made = [position for position, stage in enumerate(order) if stage.funnel_group is FunnelGroup.MADE]
        last_made = made[-1] if made else -1
        self.made_label = order[last_made].funnel_label if made else "made"
        self.unmade = 0  # ended (failed, refused, rejected) before the last stage that makes them
        self.failed: Counter[str] = Counter()
        self.rejected: dict[str, Counter[str]] = {}  # funnel label -> "check: reason" -> items
        for stage in order:  # headings in pipeline order, the attack loop's after the others
            if stage.funnel_group is FunnelGroup.REJECTED:
                self.rejected.setdefault(stage.funnel_label, Counter())
        self.tester_labels = {stage.funnel_label for stage in order if stage.needs_testers}
        self.tester_labels -= {stage.funnel_label for stage in order if not stage.needs_testers}
        positions = {stage.name: position for position, stage in enumerate(order)}
        for status, verdict in rejections(items):
            stage = _stage_of(verdict.stage)
            if positions.get(verdict.stage, len(order)) <= last_made:
                self.unmade += 1
            label = f"{verdict.name}: {verdict.reason}"
            if status is ItemStatus.FAILED:
                self.failed[label] += 1
            elif status is ItemStatus.REJECTED and stage.funnel_group is FunnelGroup.REJECTED:
                self.rejected.setdefault(stage.funnel_label, Counter())[label] += 1

    def rejected_rows(self, attack_loop: bool, empty: bool = True) -> list[FunnelRow]:
        """Each heading with its rejections, of the attack loop's stages or of the others (headings
        that rejected nothing too, unless not `empty`)."""
        rows = []
        for label, counts in self.rejected.items():
            shown = counts or (empty and label in self.enabled_labels)
            if (label in self.tester_labels) is attack_loop and shown:
                rows += [FunnelRow(label=label, count=sum(counts.values())), *_rows(counts)]
        return rows


def funnel(
    items: list[Item],
    review_states: Mapping[str, str],
    seeds: int,
    pairs: int,
    attack: AttackSummary | None = None,
    exhausted: int = 0,
    enabled: Collection[str] | None = None,
) -> list[FunnelRow]:
    """The funnel of `items`: the candidates one run touched (its pairs' rounds), each counted
    once, under one status (an approved item is not also queued). Each ended candidate shows
    where its stage's `funnel_group` puts it: failures under `failed`, by check and reason;
    rejections under the stage's `funnel_label`; the made row counts those that got past every
    stage that makes candidates."""
    statuses = Counter(exclusive_status(item, review_states.get(item.id)) for item in items)
    endings = _Endings(items, enabled)
    rows = [
        FunnelRow(label="seeds", count=seeds),
        FunnelRow(label="(seed, relation) pairs", count=pairs),
        FunnelRow(label="candidates composed (all rounds)", count=len(items)),
        FunnelRow(label="refused by the composer model", count=statuses.get(ItemStatus.REFUSED.value, 0)),
        FunnelRow(label="failed", count=statuses.get(ItemStatus.FAILED.value, 0)),
        *_rows(endings.failed),
        FunnelRow(label=EXHAUSTED_LABEL, count=exhausted),
        FunnelRow(label=endings.made_label, count=len(items) - endings.unmade),
        *endings.rejected_rows(attack_loop=False),
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
        rows += endings.rejected_rows(attack_loop=True)
        rows.append(FunnelRow(label="accepted by the attack policy", count=attack.accepted))
    rows.append(FunnelRow(label="queued for review", count=statuses.get(ItemStatus.QUEUED.value, 0)))
    return rows


def selection_funnel(store: Store, released: list[Item]) -> list[FunnelRow]:
    """How the candidates behind `released` ended (the release card's funnel): every candidate
    the build runs that made the released items touched, by the group its ending stage declares."""
    touched = store.runs_of([item.id for item in released])
    runs = {run for item in released for run in touched.get(item.id, [item.provenance.run_id])}
    ids = {item.id for item in released}.union(*(store.touched_ids(run) for run in sorted(runs)))
    candidates = store.get_items(sorted(ids))
    endings = _Endings(candidates)
    statuses = Counter(item.status for item in candidates)
    waiting = len(candidates) - len(released) - sum(statuses[status] for status in _ENDED)
    return [
        FunnelRow(label="candidates made by the builds behind this release", count=len(candidates)),
        FunnelRow(label="refused by the composer model", count=statuses[ItemStatus.REFUSED]),
        FunnelRow(label="failed", count=statuses[ItemStatus.FAILED]),
        *_rows(endings.failed),
        FunnelRow(label=endings.made_label, count=len(candidates) - endings.unmade),
        *endings.rejected_rows(attack_loop=False),
        *endings.rejected_rows(attack_loop=True, empty=False),
        FunnelRow(label="not released (not approved yet, or still in the pipeline)", count=waiting),
        FunnelRow(label="released", count=len(released)),
    ]


def unchecked_rows(stages: Mapping[str, StageStats]) -> list[FunnelRow]:
    """Checks that were off: how many items each let through unchecked."""
    counts: Counter[str] = Counter()
    for stats in stages.values():
        for count in stats.of(Outcome.UNCHECKED):
            counts[f"check off: {count.check}: {count.reason} (items not checked)"] += count.n
    return _rows(counts, indent=0)


def legacy_note(stages: Mapping[str, StageStats]) -> list[str]:
    older = sorted(name for name, stats in stages.items() if stats.legacy)
    if not older:
        return []
    return [
        f"stats of stage(s) {', '.join(older)} were recorded by an older mirbench (counts as text): "
        "their items and seconds are shown, their counts are not"
    ]


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
    enabled: Collection[str] | None = None,
) -> BuildReport:
    """The report of run `run_id` from `items`, what it (and any dead run it resumed) touched
    (`Store.touched_ids`), nothing older. `categories` maps each seed id to its seed (anything
    with a `category`); `attack`: the attack loop was on; `enabled`: the stages that ran."""
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
        enabled,
    )
    rows += unchecked_rows(stages)
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
        notes=legacy_note(stages),
    )
