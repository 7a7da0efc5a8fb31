"""The Docker set-up: docker-compose.yml as Debian's `docker-compose` (v1) reads it, the
Dockerfile and the build context.

No Docker engine runs here, so no image is built: `docker-compose config` validates the file and
prints it with every variable filled in, and the tests read that. Where it runs for real, the
database URLs carry no password (drivers read it from the environment), which is checked
against this machine's PostgreSQL and Prefect's own settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import REPO

COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="Debian's docker-compose is not installed (`apt-get install docker-compose`; "
    "`make test` installs it where apt is usable)",
)
# What a user would pick: every character that breaks a URL.
PASSWORD = "p/a@ss:w#rd?%"
AUTH = "admin:s3cret/@"


def _config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "PREFECT_AUTH_STRING")}
    return subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    done = _config(POSTGRES_PASSWORD=PASSWORD, PREFECT_AUTH_STRING=AUTH)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@needs_compose
@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"PREFECT_AUTH_STRING": AUTH}, "POSTGRES_PASSWORD"),
        ({"POSTGRES_PASSWORD": PASSWORD}, "PREFECT_AUTH_STRING"),
    ],
)
def test_compose_refuses_to_start_without_its_secrets(given: dict[str, str], missing: str) -> None:
    done = _config(**given)
    assert done.returncode != 0 and f"set {missing}" in done.stderr


@needs_compose
def test_no_password_goes_into_a_url(compose: dict) -> None:
    services = compose["services"]
    for name in ("worker", "review"):
        environment = services[name]["environment"]
        url = make_url(environment["MIRBENCH_DATABASE_URL"])
        assert url.password is None and environment["PGPASSWORD"] == PASSWORD
    prefect = services["prefect-server"]["environment"]
    assert prefect["PREFECT_SERVER_DATABASE_PASSWORD"] == PASSWORD
    assert not any("://" in str(value) and PASSWORD in str(value) for value in prefect.values())
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD


@needs_compose
def test_prefect_is_on_loopback_behind_a_login_and_healthy_before_the_worker(compose: dict) -> None:
    services = compose["services"]
    prefect = services["prefect-server"]
    assert prefect["ports"] == ["127.0.0.1:4200:4200/tcp"] and services["review"]["ports"] == [
        "127.0.0.1:8765:8765/tcp"
    ]
    assert prefect["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == AUTH
    assert services["worker"]["environment"]["PREFECT_API_AUTH_STRING"] == AUTH
    assert "/api/health" in " ".join(prefect["healthcheck"]["test"])
    assert services["worker"]["depends_on"]["prefect-server"] == {"condition": "service_healthy"}


@needs_compose
def test_prefect_builds_its_database_url_from_the_compose_parts(compose: dict) -> None:
    """Prefect's own settings, given the server's environment, make a URL that holds the
    password intact (escaped), whatever its characters."""
    environment = {**os.environ, **compose["services"]["prefect-server"]["environment"]}
    script = (
        "from prefect.settings import get_current_settings;"
        "print(get_current_settings().server.database.connection_url.get_secret_value())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    url = make_url(done.stdout.strip().splitlines()[-1])
    assert (url.drivername, url.host, url.username, url.database) == (
        "postgresql+asyncpg",
        "postgres",
        "mirbench",
        "prefect",
    )
    assert url.password == PASSWORD


@pytest.mark.postgres
@needs_compose
def test_the_workers_url_connects_with_the_password_from_the_environment(
    compose: dict, tmp_path: Path
) -> None:
    """The worker's URL (host and database swapped for this machine's test database), its
    password only in PGPASSWORD, opens a real store: the driver reads it from there."""
    given = os.environ.get("MIRBENCH_TEST_POSTGRES_URL")
    if not given:
        pytest.skip("no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL")
    test_url = make_url(given)
    worker = make_url(compose["services"]["worker"]["environment"]["MIRBENCH_DATABASE_URL"])
    url = worker.set(
        host=test_url.host, port=test_url.port, database=test_url.database, username=test_url.username
    )
    script = (
        "import sys; from builder.store import Store\n"
        "with Store(sys.argv[1]) as store: print(len(store.releases()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url.render_as_string(hide_password=False)],
        env={**os.environ, "PGPASSWORD": test_url.password or ""},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert url.password is None and done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().isdigit()


def test_the_image_installs_the_picture_pool_and_cpu_torch() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'pip install ".[pictures]"' in dockerfile and "mirbench pool index" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile and "--index-url" in dockerfile


def test_the_build_context_leaves_out_the_venv_and_run_outputs() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", "artifacts", ".git", ".env"} <= ignored
    copied = [
        line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ]
    assert not any(path.rstrip("/") in ignored for path in copied)


def test_compose_has_no_built_in_password() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert ":-mirbench}" not in text and "${POSTGRES_PASSWORD:?" in text
