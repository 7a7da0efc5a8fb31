"""`--taxonomy` on every command that reads the taxonomy (issue 30): each one reads the folder
the option names, not the bundled one.

Real components: the CLI, the bundled taxonomy copied to a folder of its own, a SQLite store
with approved items, the `rules` judge, the release flow. `review serve` and `serve` stop at the
taxonomy they are given before any server starts, and a scheduled build's run reads the one
`mirbench serve --taxonomy` hands it (nothing is mocked)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import Settings, bundled
from builder.core.errors import InputError
from builder.store import Store
from tests.test_calibration import REFUSALS
from tests.test_release import _items, approve


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A taxonomy folder whose categories cannot be read: a command that reads it says so."""
    folder = tmp_path / "broken-taxonomy"
    folder.mkdir()
    (folder / "categories.yaml").write_text("categories:\n  - slug: [unclosed\n", encoding="utf-8")
    return folder


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The bundled taxonomy copied elsewhere, with one label set of its own."""
    folder = tmp_path / "team-taxonomy"
    shutil.copytree(bundled("taxonomy"), folder)
    (folder / "labels" / "team-refusals.yaml").write_text(
        "name: team-refusals\ndescription: Our refusal labels.\ntask: refusal\n"
        "where: {path: refusals.csv}\nformat: csv\n"
        "columns: {behavior: behavior, response: response, label: label, id: id, category: category}\n"
        "labels: {positive: [refusal], negative: [not_refusal]}\n"
        "licence: CC-BY-4.0\nhomepage: https://example.org\ncitation: Our team, 2026.\n",
        encoding="utf-8",
    )
    return folder


def _run(tmp_path: Path, *arguments: str) -> tuple[int, str]:
    """Exit code and output (white space collapsed) of a command on a store in `tmp_path`."""
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    Store(f"sqlite:///{tmp_path / 'artifacts' / 'mirbench.db'}").close()
    result = CliRunner().invoke(app, [*arguments, "--artifacts", str(tmp_path / "artifacts")])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    "command",
    [
        ["review", "serve", "--port", "1"],
        ["seeds", "list", "--category", "violence"],
        ["judge", "calibrate", "--labels", "team-refusals"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_commands_read_the_taxonomy_the_option_names(
    tmp_path: Path, broken: Path, command: list[str]
) -> None:
    code, output = _run(tmp_path, *command, "--taxonomy", str(broken))
    assert code == 2, output
    assert str(broken) in output or "bundled: none" in output, output  # the folder given, not the bundled one


def test_the_scheduled_build_reads_the_taxonomy_it_is_given(
    tmp_path: Path, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mirbench serve --taxonomy` hands the folder to every scheduled run as a parameter; the
    run (the flow's function, without a Prefect server) reads it before anything is built."""
    from flows.build import scheduled_build

    monkeypatch.setenv("MIRBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(InputError) as caught:
        scheduled_build.fn(limit=1, taxonomy=str(broken))
    assert str(broken) in str(caught.value)
    assert not (tmp_path / "artifacts").exists()


def test_judge_calibrate_finds_label_sets_in_the_taxonomy_given(tmp_path: Path, copied: Path) -> None:
    (tmp_path / "refusals.csv").write_text(REFUSALS, encoding="utf-8")
    path = ["--path", str(tmp_path / "refusals.csv")]
    code, output = _run(tmp_path, "judge", "calibrate", "--labels", "team-refusals", *path)
    assert code == 2 and "unknown label set 'team-refusals'" in output  # not in the bundled taxonomy
    code, output = _run(
        tmp_path, "judge", "calibrate", "--labels", "team-refusals", *path, "--taxonomy", str(copied)
    )
    assert code == 0 and "team-refusals" in output, output


@pytest.mark.slow  # a release: the Prefect flow
def test_release_reads_the_taxonomy_the_option_names(tmp_path: Path, broken: Path, copied: Path) -> None:
    settings = Settings(artifacts=tmp_path / "artifacts", release={"license": "cc-by-nc-4.0"})
    approve(settings, _items("taxonomy")).close()
    code, output = _run(
        tmp_path, "release", "--version", "1.0.0", "--out", str(tmp_path / "r1"), "--taxonomy", str(broken)
    )
    assert code == 2 and str(broken) in output and not (tmp_path / "r1").exists(), output
    code, output = _run(
        tmp_path, "release", "--version", "1.0.0", "--out", str(tmp_path / "r2"), "--taxonomy", str(copied)
    )
    assert code == 0 and (tmp_path / "r2" / "README.md").is_file(), output
