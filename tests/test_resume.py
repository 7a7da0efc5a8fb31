"""A build killed at any stage (a real process, SIGKILL) and run again ends with exactly the
items of an uninterrupted build: none lost, none twice, every decision the same. The build
uses a low text-similarity threshold so that rounds 2 and 3 happen and can be killed too."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.config.settings import Settings, bundled
from builder.config.taxonomy import load_taxonomy
from builder.store import Store
from tests.helpers import all_items, snapshot

pytestmark = pytest.mark.slow
LIMIT = 12
CELLS = LIMIT * len(load_taxonomy(bundled("taxonomy")).relations)  # pairs of a whole build
ENV = {
    "MIRBENCH_RENDERER__SIZE": "96",
    "MIRBENCH_SHARD_SIZE": "5",
    "MIRBENCH_STAGES__DEDUP__TEXT_SIMILARITY": "0.8",
}
Counts = dict[tuple[int, str], int]


def _cli(artifacts: Path, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, **extra_env, "MIRBENCH_ARTIFACTS": str(artifacts)}
    return subprocess.Popen(
        [sys.executable, "-c", "from builder.cli import run; run()", "build", "--limit", str(LIMIT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _counts(database: Path) -> Counts:
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            query = "SELECT iteration, status, count(*) FROM items GROUP BY iteration, status"
            return {(i, s): n for i, s, n in connection.execute(query).fetchall()}
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def _in(counts: Counts, status: str, iteration: int = 1) -> int:
    return counts.get((iteration, status), 0)


# When to kill: the moment the store shows the stage in the middle of its work.
KILL_POINTS: dict[str, Callable[[Counts], bool]] = {
    "compose": lambda c: _in(c, "planned") > 0 and _in(c, "composed") > 0,
    "render": lambda c: _in(c, "composed") > 0 and _in(c, "rendered") > 0,
    # Dedup runs as one task over the round and writes at its end: once every candidate is
    # rendered, the kill lands inside it.
    "dedup": lambda c: _in(c, "rendered") == CELLS,
    "filters": lambda c: _in(c, "unique") > 0 and _in(c, "passed") + _in(c, "queued") > 0,
    "round 2": lambda c: sum(n for (i, _), n in c.items() if i == 2) > 0,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> set[tuple]:
    from flows.build import build

    settings = Settings(
        artifacts=tmp_path_factory.mktemp("reference"),
        renderer={"size": 96},
        shard_size=5,
        dedup={"text_similarity": 0.8},
    )
    build(settings=settings, limit=LIMIT)
    items = all_items(settings.resolved_database_url)
    assert any(item.iteration == 3 for item in items)  # the later rounds really happen
    return snapshot(items)


@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_killed_build_resumes_to_the_same_items(
    stage: str, reference: set[tuple], tmp_path: Path, prefect_api_url: str
) -> None:
    database = tmp_path / "mirbench.db"
    process = _cli(tmp_path, {"PREFECT_API_URL": prefect_api_url})
    seen: Counts = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        counts = _counts(database)
        if KILL_POINTS[stage](counts):
            seen = counts
            if stage == "dedup":
                time.sleep(1.0)  # past the round's last render write, inside dedup
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert seen, f"the build ended before it could be killed in {stage}:\n{output[-2000:]}"
    assert process.returncode == -signal.SIGKILL

    # The first case resumes in Prefect's ephemeral mode (no server): both ways are exercised.
    server = {"PREFECT_API_URL": ""} if stage == "compose" else {"PREFECT_API_URL": prefect_api_url}
    resumed = _cli(tmp_path, {**server, "PREFECT_HOME": str(tmp_path / "prefect-home")})
    resumed_output = resumed.communicate(timeout=600)[0].decode(errors="replace")
    assert resumed.returncode == 0, resumed_output[-3000:]
    assert "queued for review" in resumed_output

    items = all_items(f"sqlite:///{database}")
    assert len(items) == len({item.id for item in items}) >= CELLS
    assert snapshot(items) == reference
    store = Store(f"sqlite:///{database}")
    runs = store.runs()
    store.close()
    killed, finished = sorted(runs, key=lambda run: run.started_at)
    assert killed.finished_at is None and killed.superseded_by == finished.id and finished.finished_at
