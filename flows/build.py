"""The build flow: seeds -> compose -> render -> dedup -> filters -> attack -> judge -> ablation -> queue,
round by round: the stages of builder/stages/pipeline.py, in its order (attack and judge run only
when testers are configured; a plug-in stage runs where it placed itself).

Candidates rejected in one round come back, with their reasons as feedback, in the next, up
to `max_iterations`; failed ones come back in the next build while attempts are left. Item
state lives in the store, so tasks carry a small spec and item ids, not items: the shards of a
stage run concurrently on threads or Dask workers, and a rerun resumes where the last run
stopped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.futures import wait
from prefect.logging import get_run_logger

from builder.config.sections import RunnerSettings
from builder.config.settings import Settings, load_settings
from builder.core.errors import InputError
from builder.core.stats import StageStats
from builder.run import tasks
from builder.run.prepare import Prepared, prepare
from builder.run.report import BuildReport
from builder.run.retry import steady, transient_state
from builder.run.tasks import BuildSpec
from builder.stages import pipeline
from builder.stages.workspace import close_all


# The store holds every stage's work and decides what a rerun redoes: Prefect neither caches a
# stage task (a cache key hashes the whole spec and id list on every run) nor persists its stats.
@task(
    task_run_name="{stage}-r{iteration}-s{shard}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_state,
)
def run_stage(spec: BuildSpec, stage: str, iteration: int, shard: int, ids: list[str]) -> StageStats:
    return tasks.run_stage(spec, stage, iteration, shard, ids)


def _shards(spec: BuildSpec, stage: str, iteration: int, whole: bool = False) -> None:
    """Run `stage` over its waiting items, one task per shard, all shards at once (one task
    for the whole round when `whole`). Shards are of equal size, at most `shard_size`, and as
    many as a multiple of the workers, so that no worker idles while another finishes a
    larger share."""
    ids = steady(tasks.pending, spec, stage, iteration)
    settings = spec.settings
    size = len(ids) if whole else _shard_size(len(ids), settings.shard_size, settings.runner.workers)
    futures = [
        run_stage.submit(spec, stage, iteration, number, ids[start : start + size])
        for number, start in enumerate(range(0, len(ids), max(size, 1)))
    ]
    wait(futures)
    for future in futures:
        future.result()  # raise the first shard's error, after every shard has finished


def _shard_size(items: int, most: int, workers: int) -> int:
    shards = max(1, math.ceil(math.ceil(items / most) / workers) * workers)
    return max(1, math.ceil(items / shards))


@flow(name="mirbench-build")
def build_flow(spec: BuildSpec) -> BuildReport:
    """One opened run (`tasks.open_build`): retry, then round by round every stage."""
    settings = spec.settings
    steady(tasks.retry_failed, spec)
    for iteration in range(1, settings.max_iterations + 1):
        steady(tasks.plan_round, spec, iteration)
        for stage in pipeline.stages():  # compose, render, dedup, filters, attack, judge, ablation, queue
            _shards(spec, stage.name, iteration, whole=stage.whole_round)
    report = steady(tasks.finish_build, spec)
    create_markdown_artifact(markdown=report.markdown(), key="build-funnel", description="Build funnel")
    return report


def task_runner(runner: RunnerSettings) -> Any:
    if runner.kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=runner.workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise InputError("the dask runner needs prefect-dask: pip install 'mirbench[dask]'") from None
    if runner.dask_address:
        return DaskTaskRunner(address=runner.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": runner.workers, "processes": True, "threads_per_worker": 1}
    )


def build(settings: Settings, limit: int | None = None) -> BuildReport:
    """A build as every caller but the CLI starts one: prepared (`run.prepare`: inputs read once,
    every stage's preflight, the database checked), its notes logged, then run."""
    prepared = prepare(settings, limit)
    log = _logger()
    for line in prepared.scope:
        log.info(line)
    for note in prepared.notes:
        log.warning(note)
    return build_prepared(prepared)


def build_prepared(prepared: Prepared) -> BuildReport:
    """Open the run of a prepared build and run the build flow on the task runner the settings
    choose."""
    try:
        runner = task_runner(prepared.settings.runner)
        spec = steady(tasks.open_build, prepared)
        return build_flow.with_options(task_runner=runner)(spec=spec)
    finally:
        close_all()  # this process's stores and models; a Dask worker keeps its recent ones


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger inside a flow (a scheduled build: its notes show in Prefect's UI),
    else mirbench's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mirbench")


@flow(name="mirbench-scheduled-build")
def scheduled_build(
    config: str | None = None, limit: int | None = None, taxonomy: str | None = None
) -> BuildReport:
    """Entry point for deployments and schedules: JSON parameters only; settings come from the
    worker's environment, the optional config file and taxonomy folder. Prepared like `mirbench
    build`: the same preflight refuses a build whose inputs or backends would fail."""
    settings = load_settings(Path(config) if config else None, taxonomy=Path(taxonomy) if taxonomy else None)
    return build(settings=settings, limit=limit)
