"""The build flow: seeds -> compose -> render -> dedup -> filters -> queue, round by round.

Candidates rejected in one round come back, with their reasons as feedback, in the next,
up to `max_iterations`. Item state lives in the store, so tasks carry ids, not items, and a
rerun resumes where the last run stopped.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from builder import pipeline
from builder.compose import CompositionRequest
from builder.items import ItemStatus
from builder.pipeline import BuildContext, BuildReport, pending, plan_round, shards
from builder.settings import Settings, load_settings
from builder.stats import StageStats


@task(name="compose", cache_policy=NO_CACHE)
def compose(ctx: BuildContext, requests: list[CompositionRequest]) -> StageStats:
    return pipeline.run_compose(ctx, requests)


@task(name="render", cache_policy=NO_CACHE)
def render(ctx: BuildContext, ids: list[str]) -> StageStats:
    return pipeline.run_render(ctx, ids)


@task(name="dedup", cache_policy=NO_CACHE)
def dedup(ctx: BuildContext, iteration: int) -> StageStats:
    return pipeline.run_dedup(ctx, iteration)


@task(name="filters", cache_policy=NO_CACHE)
def filters(ctx: BuildContext, ids: list[str]) -> StageStats:
    return pipeline.run_filters(ctx, ids)


@task(name="queue", cache_policy=NO_CACHE)
def queue(ctx: BuildContext, ids: list[str]) -> StageStats:
    return pipeline.run_queue(ctx, ids)


@flow(name="mirbench-build", validate_parameters=False)
def build(settings: Settings, limit: int | None = None) -> BuildReport:
    ctx = pipeline.open_build(settings, limit)
    size = settings.shard_size
    try:
        for iteration in range(1, settings.max_iterations + 1):
            for requests in shards(plan_round(ctx, iteration), size):
                compose(ctx, requests)
            for ids in shards(pending(ctx, ItemStatus.COMPOSED, iteration), size):
                render(ctx, ids)
            dedup(ctx, iteration)
            for ids in shards(pending(ctx, ItemStatus.UNIQUE, iteration), size):
                filters(ctx, ids)
            for ids in shards(pending(ctx, ItemStatus.PASSED, iteration), size):
                queue(ctx, ids)
        return pipeline.finish_build(ctx)
    finally:
        ctx.store.close()


@flow(name="mirbench-scheduled-build")
def scheduled_build(config: str | None = None, limit: int | None = None) -> BuildReport:
    """Entry point for deployments and schedules: JSON parameters only; settings come from the
    worker's environment and the optional config file."""
    return build(settings=load_settings(Path(config) if config else None), limit=limit)
