"""The CLI's help, validation commands and error paths (exit code 2, file:line in the message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app

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


def test_taxonomy_and_seeds_validate() -> None:
    assert "9 relations" in runner.invoke(app, ["taxonomy", "validate"]).output
    assert "seeds OK: 60 seeds" in runner.invoke(app, ["seeds", "validate"]).output
    listed = runner.invoke(app, ["taxonomy", "list"], terminal_width=200).output
    assert "Temporal_Continuity" in listed and "Hate_Speech" in listed


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
