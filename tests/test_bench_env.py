"""`bench/build.py` measures the defaults in an environment of its own: the shell's MIRBENCH_*
variables (a database URL the builds would write to while the bench reads another store) are
set aside, and it says which."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.conftest import REPO


def test_the_build_bench_sets_the_shells_mirbench_variables_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_build", REPO / "bench" / "build.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("MIRBENCH_DATABASE_URL", "sqlite:////nowhere/else.db")
    monkeypatch.setenv("MIRBENCH_RENDERER__SIZE", "32")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    assert bench.own_environment() == ["MIRBENCH_DATABASE_URL", "MIRBENCH_RENDERER__SIZE"]
    assert "MIRBENCH_DATABASE_URL" not in os.environ and "MIRBENCH_RENDERER__SIZE" not in os.environ
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "WARNING"  # only mirbench's settings go
    assert "MIRBENCH_CACHE_DIR" in os.environ  # where the machine's caches live is no setting
