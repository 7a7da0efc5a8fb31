"""A build killed half-way (a real process, SIGKILL) and run again ends with exactly the items
of an uninterrupted build: none lost, none twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.items import Item
from builder.settings import Settings
from builder.store import Store

pytestmark = pytest.mark.slow
ENV = {"MIRBENCH_RENDERER__SIZE": "96", "MIRBENCH_SHARD_SIZE": "25"}


def _cli(artifacts: Path, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, **extra_env, "MIRBENCH_ARTIFACTS": str(artifacts)}
    return subprocess.Popen(
        [sys.executable, "-c", "from builder.cli import run; run()", "build"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _statuses(database: Path) -> dict[str, int]:
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def _snapshot(items: list[Item]) -> set[tuple]:
    return {
        (
            i.id,
            i.status.value,
            i.iteration,
            i.revised_prompt,
            i.rejection.reason if i.rejection else "",
            tuple(s.sha256 for s in i.slots),
        )
        for i in items
    }


def _all_items(database_url: str) -> list[Item]:
    store = Store(database_url)
    try:
        from builder.items import ItemStatus

        return store.items_with_statuses(list(ItemStatus))
    finally:
        store.close()


def test_killed_build_resumes_to_the_same_items(tmp_path: Path, prefect_api_url: str) -> None:
    killed_dir = tmp_path / "killed"
    database = killed_dir / "mirbench.db"
    process = _cli(killed_dir, {"PREFECT_API_URL": prefect_api_url})
    seen_mid_build: dict[str, int] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        counts = _statuses(database)
        # Kill once some items are past compose while others still wait: mid-stage, mid-round.
        if counts.get("composed", 0) and sum(counts.values()) - counts.get("composed", 0) >= 25:
            seen_mid_build = counts
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert seen_mid_build, f"the build ended before it could be killed:\n{output[-2000:]}"
    assert process.returncode == -signal.SIGKILL

    # Resume in Prefect's ephemeral mode (no server): both ways of running are exercised.
    resumed = _cli(killed_dir, {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect-home")})
    resumed_output = resumed.communicate(timeout=600)[0].decode(errors="replace")
    assert resumed.returncode == 0, resumed_output[-3000:]
    assert "queued for review" in resumed_output

    from flows.build import build

    reference_dir = tmp_path / "reference"
    reference = Settings(artifacts=reference_dir, renderer={"size": 96}, shard_size=25)
    build(settings=reference)

    resumed_items = _all_items(f"sqlite:///{database}")
    reference_items = _all_items(reference.resolved_database_url)
    assert len(resumed_items) == len({item.id for item in resumed_items}) >= 540
    assert _snapshot(resumed_items) == _snapshot(reference_items)
    store = Store(f"sqlite:///{database}")
    runs = store.runs()
    store.close()
    assert len(runs) == 2 and [run.finished_at is None for run in runs] == [False, True]
