"""A Dask worker process killed (SIGKILL) in the middle of a task: Dask runs the task again on
another worker, and the build ends with exactly the items of an uninterrupted build. Real
worker processes (`DaskTaskRunner` on a local cluster of 2), on a private PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from builder.core.items import Item
from tests.fault_support import BUILD_ENV, LIMIT, artifacts_env, differences, finished, mirbench
from tests.helpers import all_items
from tests.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _statuses(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT status, count(*) FROM items GROUP BY status"))
            return {status: count for status, count in rows}
    except DBAPIError:
        return {}
    finally:
        engine.dispose()


def _workers(build: psutil.Process) -> list[psutil.Process]:
    """The Dask worker processes the build's local cluster spawned."""
    return [
        child
        for child in build.children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


def test_a_worker_killed_mid_task_leaves_the_items_of_an_uninterrupted_build(
    private_postgres: PrivatePostgres, uninterrupted_build: list[Item], tmp_path: Path, prefect_api_url: str
) -> None:
    url = private_postgres.create_database("dask_worker_death")
    env = artifacts_env(
        tmp_path,
        url,
        **BUILD_ENV,
        PREFECT_API_URL=prefect_api_url,
        MIRBENCH_RUNNER__KIND="dask",
        MIRBENCH_RUNNER__WORKERS="2",
    )
    build = mirbench("build", "--limit", LIMIT, env=env)
    parent = psutil.Process(build.pid)
    expected = sum(1 for item in uninterrupted_build if item.iteration == 1)
    victim: psutil.Process | None = None
    deadline = time.monotonic() + 400
    # Dedup is one task over the whole round and the longest (it loads the text model): once
    # every item is rendered and none deduplicated, it runs on one worker. Kill that one.
    while time.monotonic() < deadline and build.poll() is None and victim is None:
        counts = _statuses(url)
        if counts.get("rendered", 0) == expected and len(counts) == 1:
            workers = _workers(parent)
            for worker in workers:
                worker.cpu_percent(None)
            time.sleep(1.0)
            usage = {worker: worker.cpu_percent(None) for worker in workers}
            if usage and _statuses(url).get("rendered") == expected:  # still inside dedup
                victim = max(usage, key=usage.__getitem__)
                os.kill(victim.pid, signal.SIGKILL)
        time.sleep(0.05)
    code, output = finished(build)
    assert victim is not None, f"no worker was found busy in dedup:\n{output[-2000:]}"
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    assert code == 0, output[-3000:]
    result = differences(all_items(url), uninterrupted_build)
    assert result.none, f"{result} after a worker died:\n{output[-2000:]}"
