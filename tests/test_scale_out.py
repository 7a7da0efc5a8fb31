"""Shards on Dask worker processes: a build on `DaskTaskRunner` with a local cluster of two
worker processes, on PostgreSQL, ends with exactly the items of the default thread runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.settings import Settings
from builder.core.errors import InputError
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.helpers import all_items, snapshot


def test_the_dask_runner_refuses_sqlite(tmp_path: Path) -> None:
    from builder.run.prepare import prepare

    settings = Settings(artifacts=tmp_path, runner={"kind": "dask"})
    with pytest.raises(InputError, match="SQLite cannot serve"):
        prepare(settings)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.postgres
def test_dask_workers_build_exactly_what_threads_build(tmp_path: Path, prefect_api_url: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL (`make test` does)")
    from flows.build import build

    common = {
        "renderer": {"size": 96},
        "shard_size": 4,
        "relations": ["analogy", "decomposition", "relevance"],
    }
    reference = Settings(artifacts=tmp_path / "threads", **common)
    build(settings=reference, limit=4)

    reset_postgres(POSTGRES_URL)
    distributed = Settings(
        artifacts=tmp_path / "dask",
        database_url=POSTGRES_URL,
        runner={"kind": "dask", "workers": 2},
        **common,
    )
    report = build(settings=distributed, limit=4)
    assert report.stages["render"].items_in == 12
    items = all_items(POSTGRES_URL)
    assert len(items) >= 12
    assert snapshot(items) == snapshot(all_items(reference.resolved_database_url))
