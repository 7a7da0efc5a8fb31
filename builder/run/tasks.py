"""The work behind each orchestrated task: open a build, plan a round, run a stage on a shard.

Which stages run, in which order and on which status comes from builder/stages/pipeline.py; a stage
opens itself and its backends from the build's workspace (`Stage.open`).

Prefect tasks call these with small serializable inputs (a `BuildSpec` and item ids); each
call finds its store, backends and models in this process's `Workspace`, commits its own
results and records its stats, so a build that dies loses only the shards in flight and a
rerun picks up from the stored statuses (item-level resume lives here, not in Prefect).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from builder.config.pairing import Pair, build_pairs
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus
from builder.core.stats import StageStats
from builder.models.embeddings import shared_embedder
from builder.run.picture_figures import picture_figures
from builder.run.prepare import Prepared
from builder.run.report import BuildReport, FunnelRow, build_report
from builder.stages import pipeline
from builder.stages.compose import planned_item
from builder.stages.render import fallback_reason
from builder.stages.workspace import Workspace
from builder.store import Candidate, Store


class BuildSpec(BaseModel):
    """What every task of one build needs to find its work: small, serializable, no secrets
    in its JSON form (the database URL is a SecretStr)."""

    settings: Settings
    run_id: str
    seed_ids: list[str]
    relations: list[str]

    @property
    def workspace(self) -> Workspace:
        return Workspace.of(self.settings, self.run_id)

    @property
    def pairs(self) -> list[Pair]:
        """The (seed, relation) pairs this build makes (builder/config/pairing.py)."""
        workspace = self.workspace
        return workspace.once(
            "pairs",
            lambda: build_pairs(
                self.seed_ids,
                lambda seed_id: workspace.seeds[seed_id].category,
                self.relations,
                self.settings.relations_per_seed,
            ),
        )


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def open_build(prepared: Prepared) -> BuildSpec:
    """Open the run of a prepared build (`run.prepare`): create the artifacts folder and the
    store, record the run (earlier unfinished runs are marked superseded by it), and hand the
    inputs it read to this process's workspace, which then reads no file again."""
    # Workers on other machines get the settings from the spec: a relative folder would be
    # resolved against each worker's own working directory.
    settings = prepared.settings
    settings = settings.model_copy(update={"artifacts": settings.artifacts.resolve()})
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    remove_partial_files(settings.artifacts)
    spec = BuildSpec(
        settings=settings,
        run_id=new_run_id(),
        seed_ids=[seed.id for seed in prepared.seeds],
        relations=prepared.slugs,
    )
    spec.workspace.once("taxonomy", lambda: prepared.taxonomy)
    spec.workspace.once("seeds", lambda: {seed.id: seed for seed in prepared.every_seed})
    spec.workspace.store.start_run(spec.run_id, settings.model_dump(mode="json"))
    return spec


# The planner's rules, each said once: `plan_round`, `retry_failed` and `pending` act on them,
# `has_work` asks them whether a build would act at all.


def next_round(candidate: Candidate | None, max_iterations: int) -> int | None:
    """The round in which the planner makes a pair's next candidate, given its latest one: round
    1 for a pair without any, the next round for one rejected with rounds left; None when the
    pair needs no new candidate."""
    if candidate is None:
        return 1
    if candidate.status is ItemStatus.REJECTED and candidate.iteration < max_iterations:
        return candidate.iteration + 1
    return None


def waiting_statuses(settings: Settings) -> set[ItemStatus]:
    """The statuses an enabled stage takes: an item in one of them is `pending` work."""
    return {pipeline.place(settings, stage.name).takes for stage in pipeline.enabled(settings)}


def retryable(item: Item, settings: Settings) -> bool:
    """A failed item that `retry_failed` sends back: attempts left, and its failing stage on.
    A stage that is off now (the judge, with the attack loop off) keeps its failures failed:
    `mirbench status` says why (builder/run/status_reasons.py)."""
    failure = item.rejection
    running = {stage.name for stage in pipeline.enabled(settings)}
    return failure is not None and failure.stage in running and item.attempts < settings.max_attempts


def retryable_failures(store: Store, settings: Settings, pairs: list[Pair]) -> list[Item]:
    failed = store.get_items(store.ids_with_status(ItemStatus.FAILED, None, pairs))
    return [item for item in failed if retryable(item, settings)]


def has_work(prepared: Prepared) -> bool:
    """Whether a build would change anything, by the planner's own rules: a pair that gets a
    new candidate, a candidate some stage is waiting to take, a failed one `retry_failed` would
    send back. Answered from the store alone, so that a build with nothing to do needs no
    orchestration."""
    settings = prepared.settings
    try:
        store = Store(settings.resolved_database_url, must_exist=True)
    except InputError:  # no store yet (or none reachable: the build itself says so)
        return True
    with store:
        pairs = prepared.pairs
        latest = store.latest_candidates(prepared.slugs)
        if any(next_round(latest.get(pair), settings.max_iterations) for pair in pairs):
            return True
        waiting = waiting_statuses(settings)
        candidates = [latest[pair] for pair in pairs]
        if any(c.status in waiting and c.iteration <= settings.max_iterations for c in candidates):
            return True
        return bool(retryable_failures(store, settings, pairs))


def warm_up(settings: Settings) -> None:
    """Load what every build's first stages need (torch and the text model: seconds) in this
    process, so it can happen while something else waits, such as Prefect's server starting."""
    shared_embedder(settings.stages.dedup.text_model, settings.stages.dedup.text_bfloat16).encode(["warm-up"])


def remove_partial_files(artifacts: Path) -> int:
    """Images half-written by a run that was killed (`*.part`, never renamed into place)."""
    leftovers = list((artifacts / "images").glob("*/*.part"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def retry_failed(spec: BuildSpec) -> int:
    """Send this build's failed items with attempts left back to the stage that failed them."""
    store = spec.workspace.store
    retried = retryable_failures(store, spec.settings, spec.pairs)
    for item in retried:
        assert item.rejection is not None
        item.retry(pipeline.place(spec.settings, item.rejection.stage).takes)
    store.save_items(retried)
    store.record_touched(spec.run_id, [item.id for item in retried])
    return len(retried)


def plan_round(spec: BuildSpec, iteration: int) -> int:
    """Store a planned item for every pair that needs a candidate in this round: new pairs in
    round 1; later, pairs whose candidate from the round before was rejected (its reasons
    become feedback). Idempotent: a planned pair's latest candidate is this round's."""
    workspace = spec.workspace
    latest = workspace.store.latest_candidates(spec.relations)
    due = [
        pair for pair in spec.pairs if next_round(latest.get(pair), spec.settings.max_iterations) == iteration
    ]
    refined = [latest[pair].item_id for pair in due if pair in latest]
    # A rejection may come with advice (the attack policy's); the next round gets it too.
    rejections = {item.id: item.rejection for item in workspace.store.get_items(refined)}
    planned = []
    for seed_id, relation in due:
        candidate = latest.get((seed_id, relation))
        feedback: list[str] = []
        if candidate is not None:
            rejection = rejections[candidate.item_id]
            feedback = [*candidate.feedback, *(rejection.advice if rejection is not None else [])]
        planned.append(planned_item(workspace.seeds[seed_id], relation, iteration, feedback, spec.run_id))
    workspace.store.save_items(planned)
    workspace.store.record_touched(spec.run_id, [item.id for item in planned])
    return len(planned)


def pending(spec: BuildSpec, stage: str, iteration: int) -> list[str]:
    """This build's items of round `iteration` waiting for `stage`, in id order.

    Stages work round by round so that a round's dedup always sees the round's complete
    candidate set: a resumed build then decides exactly as an uninterrupted one.
    """
    if not pipeline.stage(stage).enabled(spec.settings):
        return []
    status = pipeline.place(spec.settings, stage).takes
    return spec.workspace.store.ids_with_status(status, iteration, spec.pairs)


def run_stage(spec: BuildSpec, name: str, iteration: int, shard: int, ids: list[str]) -> StageStats:
    """Run stage `name` over the items `ids` (one shard), save them, record the task's stats."""
    started = time.time()
    store = spec.workspace.store
    place = pipeline.place(spec.settings, name)
    stage = pipeline.stage(name).open(spec.workspace, place)
    # A shard run again (a retried task, a task Dask moved off a dead worker) takes only what
    # is still waiting: what its first run saved has moved on.
    items: list[Item] = [item for item in store.get_items(ids) if item.status is place.takes]
    with spec.workspace.turn(*stage.backends):
        output = stage.run(items)
    stage.save(store, output.items)
    store.record_touched(spec.run_id, ids)
    # The task's wall interval, so a report can tell concurrent work from waiting.
    record = {**json.loads(output.stats.model_dump_json()), "interval": [started, time.time()]}
    store.record_task(spec.run_id, f"{name}-r{iteration}-s{shard}", record)
    return output.stats


def finish_build(spec: BuildSpec) -> BuildReport:
    workspace = spec.workspace
    store = workspace.store
    touched = {item.id: item for item in store.get_items(store.touched_ids(spec.run_id))}
    report = build_report(
        store,
        spec.run_id,
        list(touched.values()),
        spec.pairs,
        workspace.seeds,
        attack=spec.settings.attack.enabled,
        max_attempts=spec.settings.max_attempts,
        calibration=spec.settings.calibration,
        enabled=[stage.name for stage in pipeline.enabled(spec.settings)],
    )
    queued = store.ids_with_status(ItemStatus.QUEUED, None, spec.pairs)
    earlier = [item_id for item_id in queued if item_id not in touched]  # queued by an earlier run
    known = touched | {item.id: item for item in store.get_items(earlier)}
    fallback = fallback_reason(spec.settings.renderer)
    report.pictures = picture_figures([known[item_id] for item_id in queued], fallback)
    if fallback:  # the funnel says what the images are
        label = f"queued with typographic cards instead of pictures: {fallback}"
        report.funnel.append(FunnelRow(label=label, count=len(queued)))
    run_dir = workspace.artifacts / "runs" / spec.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    report.stats_file = run_dir / "stats.json"
    report.stats_file.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    workspace.store.finish_run(spec.run_id, json.loads(report.model_dump_json()))
    return report
