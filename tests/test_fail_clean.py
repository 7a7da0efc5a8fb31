"""What surrounds a build fails clean: a killed command leaves no process behind, leftovers of
a killed run are cleared at the next start, and no password reaches the store, Prefect's
state, the artifacts or the output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, inspect, text

from builder.config.settings import Settings
from builder.run.prepare import prepare
from builder.run.tasks import open_build

CANARY_URL = os.environ.get("MIRBENCH_TEST_POSTGRES_CANARY_URL")
CANARY_PASSWORD = "canary-7d1f9b2e"


def _mirbench(artifacts: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from builder.cli import run; run()", *args, "--artifacts", str(artifacts)],
        env={**os.environ, "PREFECT_API_URL": "", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_killing_only_the_main_process_leaves_no_orphan(tmp_path: Path) -> None:
    build = _mirbench(tmp_path, "build", "--limit", "12")
    parent = psutil.Process(build.pid)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not children and build.poll() is None:
        time.sleep(0.2)
        children = parent.children(recursive=True)
    assert children, "the build started no child process (Prefect's server) to check"
    time.sleep(2)  # let it get into the build
    children = parent.children(recursive=True)
    build.send_signal(signal.SIGKILL)  # as the OOM killer does: the parent only
    build.communicate(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [process.cmdline() for process in alive]


def test_partial_images_of_a_killed_run_are_removed_at_the_next_start(tmp_path: Path) -> None:
    leftover = tmp_path / "images" / "ab" / "tmpx1y2.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a PNG")
    kept = leftover.with_name("ab" + "0" * 62 + ".png")
    kept.write_bytes(b"a finished image")
    open_build(prepare(Settings(artifacts=tmp_path, relations=["analogy"]), limit=1))
    assert not leftover.exists() and kept.exists()


def _everything_in(database_url: str) -> str:
    engine = create_engine(database_url)
    chunks = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).fetchall()
            chunks += [repr(tuple(row)) for row in rows]
    engine.dispose()
    return "\n".join(chunks)


@pytest.mark.slow
@pytest.mark.postgres
def test_no_password_is_written_anywhere(tmp_path: Path) -> None:
    if not CANARY_URL:
        pytest.skip("no PostgreSQL canary role: `make test` creates it (scripts/test-postgres.sh)")
    engine = create_engine(CANARY_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    artifacts, prefect_home = tmp_path / "artifacts", tmp_path / "prefect"
    build = _mirbench(
        artifacts,
        "build", "--limit", "2", "-r", "analogy", "--verbose",
        MIRBENCH_DATABASE_URL=CANARY_URL,
        PREFECT_HOME=str(prefect_home),
    )  # fmt: skip
    output = build.communicate(timeout=600)[0].decode(errors="replace")
    assert build.returncode == 0, output[-3000:]
    status = subprocess.run(
        [sys.executable, "-c", "from builder.cli import run; run()", "status", "--artifacts", str(artifacts)],
        env={**os.environ, "MIRBENCH_DATABASE_URL": CANARY_URL},
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "queued" in status.stdout

    store = _everything_in(CANARY_URL)
    assert '"database_url": "**********"' in store  # the run's settings, masked
    assert any(prefect_home.rglob("*.db")), "Prefect kept no state to check"
    files = [path for folder in (artifacts, prefect_home) for path in folder.rglob("*") if path.is_file()]
    for path in files:
        assert CANARY_PASSWORD.encode() not in path.read_bytes(), path
    for where, content in (("the store", store), ("the output", output + status.stdout + status.stderr)):
        assert CANARY_PASSWORD not in content, where
