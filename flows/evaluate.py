"""The evaluation flow: ask every target, then judge every protocol, then report.

A run is opened (checked, recorded, planned) before the flow starts; its tasks carry the run's
small spec and response ids. Targets are asked at once, each shard of one target after the
other (a target's concurrency and rate limit hold for the whole target); then each protocol's
judge, likewise. The tasks run on the build's task runners (threads, or Dask workers). Answers
are cached as they arrive, so a killed run resumes without asking anything twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from builder.evaluation import tasks
from builder.evaluation.plan import EvaluationSpec
from builder.evaluation.report import Results
from builder.run.retry import steady, transient_state
from builder.stages.workspace import close_all
from flows.build import task_runner


@task(
    task_run_name="ask-{target}-s{shard}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_state,
)
def ask(spec: EvaluationSpec, target: str, shard: int, ids: list[int]) -> dict[str, int]:
    return tasks.ask(spec, target, ids)


@task(
    task_run_name="judge-{protocol}-s{shard}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_state,
)
def judge(spec: EvaluationSpec, protocol: str, shard: int, ids: list[int]) -> dict[str, int]:
    return tasks.judge(spec, protocol, ids)


def _waves(
    spec: EvaluationSpec, names: list[str], pending: Callable[[EvaluationSpec, str], list[int]], work: Any
) -> None:
    """Shard i of every name at once, then shard i + 1: names run side by side, each one's
    shards in turn."""
    size = spec.settings.shard_size
    shards = {name: steady(pending, spec, name) for name in names}
    waves = max((len(ids) + size - 1) // size for ids in shards.values()) if shards else 0
    for wave in range(waves):
        futures = [
            work.submit(spec, name, wave, ids[wave * size : (wave + 1) * size])
            for name, ids in shards.items()
            if ids[wave * size : (wave + 1) * size]
        ]
        wait(futures)
        for future in futures:
            future.result()  # the first shard's error, once every shard of the wave has finished


@flow(name="mirbench-evaluate")
def evaluate_flow(spec: EvaluationSpec) -> Results:
    _waves(spec, spec.targets, tasks.pending_responses, ask)
    _waves(spec, spec.protocols, tasks.pending_judgements, judge)
    return steady(tasks.finish, spec)


def evaluate(spec: EvaluationSpec) -> Results:
    """Run the evaluation flow on the task runner the settings choose."""
    try:
        return evaluate_flow.with_options(task_runner=task_runner(spec.settings.runner))(spec=spec)
    finally:
        close_all()
