"""docker-compose.yml's wiring, checked by parsing (tests/test_docker.py runs Debian's
docker-compose `config` on it, with and without its secrets)."""

from __future__ import annotations

import yaml

from tests.conftest import REPO


def test_compose_file_wires_postgres_prefect_and_worker() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "worker", "review"}
    review = services["review"]
    assert review["command"][:2] == ["review", "serve"] and review["image"] == services["worker"]["image"]
    assert (
        review["environment"]["MIRBENCH_DATABASE_URL"]
        == services["worker"]["environment"]["MIRBENCH_DATABASE_URL"]
    )
    assert services["prefect-server"]["image"] == "prefecthq/prefect:3.8.8-python3.11"
    worker = services["worker"]
    assert worker["build"] == "." and worker["command"][0] == "serve"
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert "@postgres:5432/" in worker["environment"]["MIRBENCH_DATABASE_URL"]
    assert (REPO / "Dockerfile").is_file()
    for volume in services["postgres"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (REPO / source).is_file(), source
