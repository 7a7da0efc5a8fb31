"""A Dask worker process killed (SIGKILL) in the middle of a task: Dask runs the task again on
another worker, and the build ends with exactly the items of an uninterrupted build. Real
worker processes (`DaskTaskRunner` on a local cluster of 2), on a private PostgreSQL.

The task killed is one of a test stage (tests/hold_stage.py) that holds its task until the test
releases it: the kill lands inside a task every time, however fast or loaded the machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from builder.core.items import Item
from tests import hold_stage
from tests.fault_support import BUILD_ENV, LIMIT, artifacts_env, differences, finished, mirbench
from tests.helpers import all_items
from tests.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPOSITORY = Path(__file__).resolve().parent.parent


def _held_worker(build: psutil.Process, folder: Path) -> psutil.Process | None:
    """The first worker process of the build's local cluster that is holding a task."""
    workers = {child.pid: child for child in build.children(recursive=True)}
    for marker in sorted(folder.glob(f"{hold_stage.HELD_PREFIX}*")):
        pid = int(marker.name.removeprefix(hold_stage.HELD_PREFIX))
        if pid in workers:
            return workers[pid]
    return None


def test_a_worker_killed_mid_task_leaves_the_items_of_an_uninterrupted_build(
    private_postgres: PrivatePostgres, uninterrupted_build: list[Item], tmp_path: Path, prefect_api_url: str
) -> None:
    url = private_postgres.create_database("dask_worker_death")
    site = hold_stage.install(tmp_path / "site")
    holds = tmp_path / "holds"
    holds.mkdir()
    env = artifacts_env(
        tmp_path,
        url,
        **BUILD_ENV,
        PREFECT_API_URL=prefect_api_url,
        MIRBENCH_RUNNER__KIND="dask",
        MIRBENCH_RUNNER__WORKERS="2",
        MIRBENCH_STAGES__HOLD__FOLDER=str(holds),
        PYTHONPATH=os.pathsep.join([str(site), str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
    )
    build = mirbench("build", "--limit", LIMIT, env=env)
    parent = psutil.Process(build.pid)
    victim: psutil.Process | None = None
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and build.poll() is None and victim is None:
        victim = _held_worker(parent, holds)
        time.sleep(0.05)
    if victim is not None:
        os.kill(victim.pid, signal.SIGKILL)
    (holds / hold_stage.RELEASED).touch()
    code, output = finished(build)
    assert victim is not None, f"no worker was found holding a task:\n{output[-2000:]}"
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    assert code == 0, output[-3000:]
    result = differences(all_items(url), uninterrupted_build)
    assert result.none, f"{result} after a worker died:\n{output[-2000:]}"
