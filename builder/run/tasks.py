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

from builder.config.pairing import Pair, build_pairs, pairs_of
from builder.config.seeds import Seed, load_seeds
from builder.config.settings import Settings
from builder.config.taxonomy import Relation, Taxonomy, load_taxonomy
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus
from builder.core.stats import StageStats
from builder.models.embeddings import shared_embedder
from builder.run.picture_figures import picture_figures
from builder.run.report import BuildReport, FunnelRow, build_report
from builder.stages import pipeline
from builder.stages.compose import planned_item
from builder.stages.render import fallback_reason
from builder.stages.workspace import Workspace
from builder.store import Store


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


def load_inputs(settings: Settings, limit: int | None = None) -> tuple[Taxonomy, list[Seed], list[Relation]]:
    """Taxonomy, seeds (at most `limit`, spread over categories) and the relations to build."""
    if settings.runner.kind == "dask" and settings.resolved_database_url.startswith("sqlite"):
        raise InputError(
            "the dask runner runs tasks in several processes, which SQLite cannot serve: "
            "use PostgreSQL (--database-url postgresql+psycopg://...) and an artifacts folder "
            "every worker sees"
        )
    taxonomy = load_taxonomy(settings.taxonomy)
    seeds = load_seeds(settings.seeds, taxonomy, settings.limits)
    relations = taxonomy.select_relations(settings.relations)
    return taxonomy, _spread(seeds, limit), relations


def _spread(seeds: list[Seed], limit: int | None) -> list[Seed]:
    """The first `limit` seeds taken round-robin over categories, so a smoke run covers all
    (all of them without a limit)."""
    if limit is None:
        return seeds
    if limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")
    by_category: dict[str, list[Seed]] = {}
    for seed in seeds:
        by_category.setdefault(seed.category, []).append(seed)
    picked: list[Seed] = []
    queues = [list(group) for group in by_category.values()]
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def open_build(settings: Settings, limit: int | None = None) -> BuildSpec:
    """Validate every input first; only then create the artifacts folder and the store, and
    record the run (earlier unfinished runs are marked superseded by it)."""
    taxonomy, every_seed, relations = load_inputs(settings)
    seeds = _spread(every_seed, limit)
    # Workers on other machines get the settings from the spec: a relative folder would be
    # resolved against each worker's own working directory.
    settings = settings.model_copy(update={"artifacts": settings.artifacts.resolve()})
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    remove_partial_files(settings.artifacts)
    spec = BuildSpec(
        settings=settings,
        run_id=new_run_id(),
        seed_ids=[seed.id for seed in seeds],
        relations=[relation.slug for relation in relations],
    )
    # what this process's workspace would read again (the same files, the same settings)
    spec.workspace.once("taxonomy", lambda: taxonomy)
    spec.workspace.once("seeds", lambda: {seed.id: seed for seed in every_seed})
    spec.workspace.store.start_run(spec.run_id, settings.model_dump(mode="json"))
    return spec


def has_work(settings: Settings, limit: int | None = None) -> bool:
    """Whether a build would change anything: a pair with no candidate yet, a candidate still
    on its way, a rejected one with rounds left, a failed one with attempts left. Answered
    from the store alone, so that a build with nothing to do needs no orchestration."""
    _, seeds, relations = load_inputs(settings, limit)
    slugs = [relation.slug for relation in relations]
    try:
        store = Store(settings.resolved_database_url, must_exist=True)
    except InputError:  # no store yet (or none reachable: the build itself says so)
        return True
    with store:
        latest = store.latest_candidates(slugs)
        failed = []
        for pair in pairs_of(seeds, slugs, settings.relations_per_seed):
            candidate = latest.get(pair)
            if candidate is None or candidate.status not in _SETTLED:
                return True
            if candidate.status is ItemStatus.REJECTED and candidate.iteration < settings.max_iterations:
                return True
            if candidate.status is ItemStatus.FAILED:
                failed.append(candidate.item_id)
        return any(_retryable(item, settings) for item in store.get_items(failed))


_SETTLED = (ItemStatus.QUEUED, ItemStatus.REJECTED, ItemStatus.FAILED, ItemStatus.REFUSED)


def _retryable(item: Item, settings: Settings) -> bool:
    failure = item.rejection
    # A stage that is off now (the judge, with the attack loop off) keeps its failures failed:
    # `mirbench status` says why (builder/run/status_reasons.py).
    running = {stage.name for stage in pipeline.stages() if stage.enabled(settings)}
    return failure is not None and failure.stage in running and item.attempts < settings.max_attempts


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
    failed = store.get_items(store.ids_with_status(ItemStatus.FAILED, None, spec.pairs))
    retried = []
    for item in failed:
        if _retryable(item, spec.settings):
            assert item.rejection is not None
            item.retry(pipeline.place(spec.settings, item.rejection.stage).takes)
            retried.append(item)
    store.save_items(retried)
    store.record_touched(spec.run_id, [item.id for item in retried])
    return len(retried)


def plan_round(spec: BuildSpec, iteration: int) -> int:
    """Store a planned item for every pair that needs a candidate in this round: new pairs in
    round 1; later, pairs whose candidate from the round before was rejected (its reasons
    become feedback). Idempotent: a planned pair's latest candidate is this round's."""
    workspace = spec.workspace
    latest = workspace.store.latest_candidates(spec.relations)
    wanted = spec.pairs
    refined = {
        pair: latest[pair]
        for pair in wanted
        if pair in latest
        and latest[pair].status is ItemStatus.REJECTED
        and latest[pair].iteration == iteration - 1
    }
    # A rejection may come with advice (the attack policy's); the next round gets it too.
    rejected = {item.id: item for item in workspace.store.get_items([c.item_id for c in refined.values()])}
    planned = []
    for seed_id, relation in wanted:
        seed = workspace.seeds[seed_id]
        candidate = latest.get((seed_id, relation))
        if candidate is None and iteration == 1:
            planned.append(planned_item(seed, relation, 1, [], spec.run_id))
        elif (seed_id, relation) in refined:
            assert candidate is not None
            rejection = rejected[candidate.item_id].rejection
            advice = rejection.advice if rejection is not None else []
            planned.append(
                planned_item(seed, relation, iteration, [*candidate.feedback, *advice], spec.run_id)
            )
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
