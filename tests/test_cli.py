"""The CLI's help, validation commands and error paths (exit code 2, file:line in the message)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from builder.cli import app
from builder.config.seeds import load_seeds
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy
from tests.conftest import POSTGRES_URL

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["build"],
        ["review", "reject"],
        ["release"],
        ["serve"],
        ["taxonomy", "validate"],
        ["seeds", "validate"],
    ],
)
def test_help_explains_every_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_build_help_names_its_settings() -> None:
    output = runner.invoke(app, ["build", "--help"], terminal_width=200).output
    for option in ("--limit", "--config", "--database-url", "--artifacts", "--relation", "--max-iterations"):
        assert option in output


def test_taxonomy_and_seeds_validate(taxonomy: Taxonomy) -> None:
    assert f"{len(taxonomy.relations)} relations" in runner.invoke(app, ["taxonomy", "validate"]).output
    seeds = len(load_seeds(Settings().seeds, taxonomy))
    assert f"seeds OK: {seeds} seeds" in runner.invoke(app, ["seeds", "validate"]).output
    listed = runner.invoke(app, ["taxonomy", "list"], terminal_width=200).output
    for entry in [*taxonomy.relations.values(), *taxonomy.categories.values()]:
        assert entry.published_name in listed


def test_broken_taxonomy_exits_2_with_file_and_line(taxonomy_copy: Path) -> None:
    (taxonomy_copy / "relations" / "causality.yaml").write_text(
        "extends: _base\nslug: causality\nmax_images: x\n"
    )
    result = runner.invoke(
        app, ["taxonomy", "validate", "--taxonomy", str(taxonomy_copy)], terminal_width=300
    )
    assert result.exit_code == 2
    assert "causality.yaml:3: field 'max_images'" in result.output


def test_review_needs_ids_or_all(tmp_path: Path) -> None:
    result = runner.invoke(app, ["review", "approve", "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "give item ids or --all" in result.output


def test_serve_needs_a_prefect_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "needs a Prefect server" in result.output


def test_scheduled_build_reads_settings_itself(tmp_path: Path, prefect_api_url: str) -> None:
    from flows.build import scheduled_build

    config = tmp_path / "c.yaml"
    config.write_text(f"artifacts: {tmp_path / 'art'}\nrelations: [causality]\nrenderer:\n  size: 96\n")
    report = scheduled_build(config=str(config), limit=2)
    assert report.pairs == 2 and report.cells_queued == 2
    assert (tmp_path / "art" / "mirbench.db").is_file()


@pytest.fixture
def crash_command() -> Iterator[str]:
    """A test-only command that fails the way a bug would (the only fake here: nothing real
    crashes on demand). It is removed again after the test."""

    def crash() -> None:
        raise RuntimeError("boom at the heart of things\nsecond line of detail")

    app.command("crash-for-test")(crash)
    yield "crash-for-test"
    app.registered_commands.pop()


def test_unexpected_errors_print_one_line_and_no_traceback(crash_command: str) -> None:
    result = runner.invoke(app, [crash_command])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "error: unexpected RuntimeError: boom at the heart of things (run with -v" in result.output
    assert "second line" not in result.output and "Traceback" not in result.output


def test_verbose_lets_the_traceback_through(crash_command: str) -> None:
    result = runner.invoke(app, ["-v", crash_command])
    assert isinstance(result.exception, RuntimeError)  # the console script prints its traceback
    assert "unexpected" not in result.output


def test_verbose_is_per_command_line(crash_command: str) -> None:
    runner.invoke(app, ["-v", crash_command])
    assert isinstance(runner.invoke(app, [crash_command]).exception, SystemExit)


def test_status_on_an_empty_database_creates_nothing(database_url: str) -> None:
    result = runner.invoke(app, ["status", "--database-url", database_url], terminal_width=300)
    assert result.exit_code == 2 and "no store yet" in result.output
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_wrong_database_password_is_one_line_without_it() -> None:
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL")
    url = make_url(POSTGRES_URL).set(password="wr0ng-s3cret")
    result = runner.invoke(
        app, ["status", "--database-url", url.render_as_string(hide_password=False)], terminal_width=300
    )
    assert result.exit_code == 2
    assert f"cannot connect to the database at {url.render_as_string(hide_password=True)}" in result.output
    assert "password authentication failed" in result.output and "wr0ng-s3cret" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_build_with_nothing_to_do_reports_without_a_flow_run(tmp_path: Path, prefect_api_url: str) -> None:
    """The store answers whether a build has work; a rerun that has none prints its report
    without starting Prefect (no flow run is created), and new work is still seen as work."""
    from prefect.client.orchestration import get_client

    from builder.config.settings import Settings
    from builder.run.prepare import prepare
    from builder.run.tasks import has_work

    where = ["--artifacts", str(tmp_path / "art"), "-r", "causality", "--limit", "2"]
    settings = Settings(artifacts=tmp_path / "art", relations=["causality"], renderer={"size": 64})
    assert has_work(prepare(settings, 2))  # no store yet
    first = runner.invoke(app, ["build", *where])
    assert first.exit_code == 0, first.output
    assert not has_work(prepare(settings, 2))
    assert has_work(prepare(settings, 3))  # a pair without a candidate
    assert has_work(prepare(settings.model_copy(update={"relations": ["analogy"]}), 2))
    with get_client(sync_client=True) as client:
        runs = client.count_flow_runs()
        again = runner.invoke(app, ["build", *where])
        assert client.count_flow_runs() == runs
    assert again.exit_code == 0, again.output
    assert "queued for review" in again.output and "Build " in again.output
