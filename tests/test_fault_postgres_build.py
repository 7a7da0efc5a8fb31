"""A build meets a PostgreSQL restart (`pg_ctl restart -m fast`, every session cut) in the
middle of its work: it waits, with reported retries, and ends with exactly the items of an
uninterrupted build. A database that stays down fails the build clearly within a bounded time,
and the rerun resumes. The server is a private cluster (tests/private_postgres.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from builder.core.items import Item
from tests.fault_support import BUILD_ENV, LIMIT, artifacts_env, differences, finished, mirbench
from tests.helpers import all_items
from tests.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _rendered(url: str) -> tuple[int, bool]:
    """(items rendered or further, whether the run has finished); (0, False) while unreadable."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rendered = connection.execute(
                text("SELECT count(*) FROM items WHERE status NOT IN ('planned', 'composed')")
            ).scalar_one()
            finished_runs = text("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL")
            done = connection.execute(finished_runs).scalar_one()
            return rendered, done > 0
    except DBAPIError:
        return 0, False
    finally:
        engine.dispose()


def _when_rendering(url: str, process: object, deadline: float = 300) -> None:
    """Return once the build has rendered some items and not finished."""
    stop = time.monotonic() + deadline
    while time.monotonic() < stop and process.poll() is None:  # type: ignore[attr-defined]
        rendered, done = _rendered(url)
        assert not done, "the build finished before the fault could land"
        if rendered > 0:
            return
        time.sleep(0.05)
    raise AssertionError("the build never started rendering")


def test_a_restart_mid_build_ends_with_the_items_of_an_uninterrupted_build(
    private_postgres: PrivatePostgres, uninterrupted_build: list[Item], tmp_path: Path, prefect_api_url: str
) -> None:
    url = private_postgres.create_database("restart_build")
    env = artifacts_env(tmp_path, url, **BUILD_ENV, PREFECT_API_URL=prefect_api_url)
    build = mirbench("build", "--limit", LIMIT, env=env)
    _when_rendering(url, build)
    private_postgres.restart()
    code, output = finished(build)
    assert code == 0, output[-3000:]
    assert _rendered(url)[1]
    result = differences(all_items(url), uninterrupted_build)
    assert result.none, f"{result} after a restart:\n{output[-2000:]}"


def test_a_database_that_stays_down_fails_clearly_and_the_rerun_resumes(
    private_postgres: PrivatePostgres, uninterrupted_build: list[Item], tmp_path: Path, prefect_api_url: str
) -> None:
    url = private_postgres.create_database("down_build")
    env = artifacts_env(
        tmp_path, url, **BUILD_ENV, PREFECT_API_URL=prefect_api_url, MIRBENCH_DATABASE_WAIT_SECONDS="3"
    )
    build = mirbench("build", "--limit", LIMIT, env=env)
    _when_rendering(url, build)
    private_postgres.stop()
    try:
        stopped = time.monotonic()
        code, output = finished(build, timeout=120)
        took = time.monotonic() - stopped
    finally:
        private_postgres.start()
    assert code == 1, output[-3000:]
    assert "did not answer for" in output and "rerun once it is back to resume" in output, output[-3000:]
    assert "Traceback" not in output
    assert "not answering" in output and "reconnect 1 in" in output  # the waiting was reported
    assert took < 90  # 3 s of waiting per attempt, a bounded number of attempts

    code, output = finished(mirbench("build", "--limit", LIMIT, env=env))
    assert code == 0, output[-3000:]
    result = differences(all_items(url), uninterrupted_build)
    assert result.none, f"{result} after the rerun:\n{output[-2000:]}"
