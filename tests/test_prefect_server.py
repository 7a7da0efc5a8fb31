"""The private Prefect server of `mirbench build`: real servers on 127.0.0.1, in new homes."""

from __future__ import annotations

import importlib.metadata
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from builder.run.prefect_server import PrivatePrefectServer


def _tables(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_home_starts_from_the_database_the_first_one_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    template = tmp_path / "cache" / f"prefect-{importlib.metadata.version('prefect')}.db"
    first = PrivatePrefectServer(tmp_path / "first")
    first.start()
    first.stop()
    assert {"alembic_version", "flow_run"} <= _tables(template)  # migrated
    with closing(sqlite3.connect(template)) as db:
        assert db.execute("SELECT count(*) FROM flow_run").fetchone() == (0,)  # nothing ran on it
        db.execute("CREATE TABLE marked_in_the_template (x)")
        db.commit()

    second = PrivatePrefectServer(tmp_path / "second")
    try:
        second.start()  # it answers: Prefect took the copy as its own
        assert "marked_in_the_template" in _tables(tmp_path / "second" / "prefect.db")
    finally:
        second.stop()
    assert "marked_in_the_template" in _tables(template)  # a copy start leaves the template be
