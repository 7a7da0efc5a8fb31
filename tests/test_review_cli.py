"""The review CLI as real processes, on the two bugs measured on main: concurrent
approve/reject commands on overlapping ids, and a reject killed half-way."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from builder.config.settings import Settings
from builder.core.items import ItemStatus
from builder.store import ReviewState, Store
from tests.conftest import REPO
from tests.review_support import queue_items

IMPLIED = {ReviewState.APPROVED: ItemStatus.QUEUED, ReviewState.REJECTED: ItemStatus.REJECTED}
VOTE_FOR = {ReviewState.APPROVED: "approve", ReviewState.REJECTED: "reject"}


def _command(settings: Settings, verb: str, ids: list[str], reviewer: str) -> list[str]:
    where = ["--artifacts", str(settings.artifacts), "--database-url", settings.resolved_database_url]
    reason = ["--reason", "too literal"] if verb == "reject" else []
    program = "from builder.cli import run; run()"
    return [sys.executable, "-c", program, "review", verb, *ids, "--reviewer", reviewer, *reason, *where]


def _assert_consistent(store: Store, ids: list[str]) -> dict[ReviewState, int]:
    """Review state, item state and the decision log agree for every item."""
    log = store.decision_log(ids)
    states: dict[ReviewState, int] = {}
    for item_id in ids:
        entry = store.review_entry(item_id)
        votes = [row for row in log if row.item_id == item_id and not row.superseded]
        states[entry.state] = states.get(entry.state, 0) + 1
        if entry.state is ReviewState.PENDING:
            assert entry.item.status is ItemStatus.QUEUED and votes == [], item_id
        else:
            assert entry.item.status is IMPLIED[entry.state], item_id
            assert [vote.decision for vote in votes] == [VOTE_FOR[entry.state]], item_id
    return states


@pytest.mark.slow
def test_concurrent_approve_and_reject_processes_end_consistent(settings: Settings) -> None:
    """8 processes vote on overlapping ids. Main let the last writer win the review row while
    the item kept the other state; now the first vote decides and the rest are refused."""
    store = Store(settings.resolved_database_url)
    ids = [item.id for item in queue_items(store, settings.artifacts, 54, size=32)]
    rng = random.Random(9)
    runs = []
    for n in range(8):
        verb = "approve" if n % 2 == 0 else "reject"
        command = _command(settings, verb, rng.sample(ids, 36), f"r{n}")
        runs.append(
            subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    recorded = 0
    for run in runs:
        out, err = run.communicate(timeout=180)
        assert run.returncode in (0, 1), err
        recorded += int(re.search(r"(\d+) vote\(s\) recorded", out).group(1))
    touched = [item_id for item_id in ids if store.decision_log([item_id])]
    assert recorded == len(store.decision_log()) == len(touched)  # each decided once, none lost
    states = _assert_consistent(store, ids)
    assert states.get(ReviewState.APPROVED, 0) + states.get(ReviewState.REJECTED, 0) == len(touched)
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_reject_killed_half_way_leaves_every_item_all_or_nothing(settings: Settings) -> None:
    """A real `review reject` process is killed after its first commit. To kill it exactly
    there, the test holds a row lock on the second item's review, so the process commits the
    first item and then waits; main left 54 reviews rejected and 0 items rejected here."""
    url = settings.resolved_database_url
    if not url.startswith("postgresql"):
        pytest.skip("holding another process at a row lock needs PostgreSQL")
    store = Store(url)
    ids = [item.id for item in queue_items(store, settings.artifacts, 12, size=32)]
    blocker = create_engine(url)
    with blocker.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("SELECT item_id FROM reviews WHERE item_id = :id FOR UPDATE"), {"id": ids[1]})
        process = subprocess.Popen(
            _command(settings, "reject", ids, "ada"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not store.decision_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # it is now waiting for the second item's lock
        process.kill()
        process.wait(timeout=30)
        transaction.rollback()
    blocker.dispose()
    states = _assert_consistent(store, ids)
    assert states == {ReviewState.REJECTED: 1, ReviewState.PENDING: len(ids) - 1}
    assert store.review_entry(ids[0]).item.status is ItemStatus.REJECTED  # the next build refines it

    rerun = subprocess.run(_command(settings, "reject", ids, "ada"), cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _assert_consistent(store, ids) == {ReviewState.REJECTED: len(ids)}
    assert len(store.decision_log()) == len(ids)
    store.close()


def test_cli_approve_all_and_admin_override(settings: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from builder.cli import app

    store = Store(settings.resolved_database_url)
    ids = [item.id for item in queue_items(store, settings.artifacts, 3, size=32)]
    where = ["--artifacts", str(settings.artifacts), "--database-url", settings.resolved_database_url]
    runner = CliRunner()
    result = runner.invoke(
        app, ["review", "reject", ids[0], "--reason", "vague", "--reviewer", "ada", *where]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["review", "approve", "--all", "--reviewer", "demo", *where])
    assert result.exit_code == 0 and "2 vote(s) recorded" in result.output
    again = runner.invoke(app, ["review", "approve", ids[0], "--reviewer", "bob", *where])
    assert again.exit_code == 1 and "only an admin" in again.output
    override = runner.invoke(app, ["review", "approve", ids[0], "--override", "--reason", "fine", *where])
    assert override.exit_code == 0, override.output
    assert len(store.approved_items()) == 3
    token = runner.invoke(app, ["review", "add-reviewer", "cyd", "--admin", *where])
    assert token.exit_code == 0 and "shown once" in token.output
    stats = runner.invoke(app, ["review", "stats", *where])
    assert stats.exit_code == 0 and "demo" in stats.output and "structural" in stats.output
    exported = runner.invoke(
        app, ["review", "export", "--format", "label-studio", "--out", str(tmp_path / "ls"), *where]
    )
    assert exported.exit_code == 0 and "wrote 0 task(s)" in exported.output  # nothing pending
    wrong = runner.invoke(app, ["review", "export", "--format", "csv", "--out", str(tmp_path / "x"), *where])
    assert wrong.exit_code == 2 and "label-studio" in wrong.output
    empty = tmp_path / "export.json"
    empty.write_text("[]")
    assert runner.invoke(app, ["review", "import", str(empty), *where]).exit_code == 0
    store.close()
