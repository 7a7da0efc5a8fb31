"""Shared fixtures. Real components throughout: SQLite and PostgreSQL stores, a real Prefect
server (one per session, via prefect_test_harness), real images, the shipped MiniLM model."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Prefect and the HF libraries read these at import time: set them before anything imports them.
_PREFECT_HOME = tempfile.mkdtemp(prefix="mirbench-prefect-")
os.environ.update(
    {
        "HF_HOME": tempfile.mkdtemp(prefix="mirbench-hf-"),  # datasets' cache stays out of ~/.cache
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
)
for _name in [
    name for name in os.environ if name.startswith("MIRBENCH_") and not name.startswith("MIRBENCH_TEST_")
]:
    del os.environ[_name]
# The built-in picture pool's index is built once per test session, in this session's cache.
os.environ["MIRBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="mirbench-cache-")

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from builder.config.settings import Settings, bundled  # noqa: E402
from builder.config.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from builder.core.items import Item  # noqa: E402
from tests.private_postgres import PrivatePostgres  # noqa: E402
from tests.private_postgres import missing_reason as private_postgres_missing  # noqa: E402
from tests.servers import LlamaServer  # noqa: E402

POSTGRES_URL = os.environ.get("MIRBENCH_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """A real llama.cpp server with SmolLM2-135M on 127.0.0.1, for the whole session."""
    with LlamaServer() as server:
        yield server


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A real Prefect server for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if not POSTGRES_URL:
        pytest.skip(
            "no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL (`make test` starts the "
            "machine's PostgreSQL 15 and sets it)"
        )
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(bundled("taxonomy"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(artifacts=tmp_path / "artifacts", database_url=database_url)


@pytest.fixture
def taxonomy_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled taxonomy, for tests that add or break files."""
    target = tmp_path / "taxonomy"
    shutil.copytree(bundled("taxonomy"), target)
    return target


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test session's own (its own folder and port), which the
    fault tests restart and stop; the shared server is never touched."""
    reason = private_postgres_missing()
    if reason:
        pytest.skip(f"no private PostgreSQL cluster: {reason}")
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def uninterrupted_build(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> list[Item]:
    """The items of the fault tests' build when nothing goes wrong (SQLite, threads)."""
    from flows.build import build
    from tests.fault_support import LIMIT, build_settings
    from tests.helpers import all_items

    settings = build_settings(tmp_path_factory.mktemp("uninterrupted"))
    build(settings=settings, limit=LIMIT)
    return all_items(settings.resolved_database_url)
