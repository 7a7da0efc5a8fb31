"""`run.prepare` is the one way to begin a build: `mirbench build`, the flows' `build` and
`scheduled_build` check the same things before anything is written (the runner, the inputs,
every enabled stage's preflight, the database), the inputs are read once per build, and
whether a build has work is the planner's own answer."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.config.seeds import load_seeds
from builder.config.settings import Settings, bundled
from builder.config.taxonomy import load_taxonomy
from builder.core.errors import InputError
from builder.run.prepare import prepare

NO_CAPTIONS = re.escape("needs a captions.jsonl or captions.csv sidecar")
_opened: list[Counter[str]] = []  # the counters of the `opened` blocks running now


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened and isinstance(args[0], str | Path):
        _opened[-1][str(Path(args[0]).resolve())] += 1


sys.addaudithook(_audit)  # audit hooks stay for the process: this one counts inside `opened` only


@contextmanager
def opened(*folders: Path) -> Iterator[Counter[str]]:
    """Every file under `folders` that this process opens inside the block, with how often."""
    counts: Counter[str] = Counter()
    _opened.append(counts)
    try:
        yield counts
    finally:
        _opened.remove(counts)
        roots = [str(folder.resolve()) for folder in folders]
        for path in [path for path in counts if not path.startswith(tuple(roots))]:
            del counts[path]


def _pool_without_captions(tmp_path: Path) -> Path:
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "a.png").write_bytes(b"not looked at: the captions file is missing")
    return pool


def test_the_preflight_of_every_enabled_stage_runs_and_its_notes_come_back(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=NO_CAPTIONS):
        prepare(
            Settings(
                artifacts=tmp_path / "art",
                renderer={"backend": "retrieval", "pool": _pool_without_captions(tmp_path)},
            )
        )
    assert not (tmp_path / "art").exists()  # refused before anything is written
    tester = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    prepared = prepare(Settings(artifacts=tmp_path / "art", attack={"testers": [tester]}), limit=2)
    assert prepared.notes == [
        "the `rules` judge only recognises refusals, so the attack loop will accept nothing: "
        "choose --judge llm or harmbench, or set attack.policy.accept_unknown: true"
    ]
    assert prepared.scope == [
        f"building 2 of {len(prepared.every_seed)} seeds (--limit), spread over the categories"
    ]
    assert prepare(Settings(artifacts=tmp_path / "art")).notes == []  # the attack loop is off: no judge


@pytest.mark.slow
def test_a_scheduled_build_runs_the_same_preflight_as_mirbench_build(
    tmp_path: Path, prefect_api_url: str
) -> None:
    from flows.build import scheduled_build

    config = tmp_path / "mirbench.yaml"
    artifacts = tmp_path / "art"
    pool = _pool_without_captions(tmp_path)
    config.write_text(f"artifacts: {artifacts}\nrenderer:\n  backend: retrieval\n  pool: {pool}\n")
    refused = CliRunner().invoke(app, ["build", "--config", str(config), "--limit", "1"])
    assert refused.exit_code == 2 and "needs a captions.jsonl or captions.csv sidecar" in refused.output
    with pytest.raises(InputError, match=NO_CAPTIONS):
        scheduled_build(config=str(config), limit=1)
    assert not artifacts.exists()  # neither wrote anything


@pytest.mark.slow
def test_mirbench_build_reads_the_seeds_and_the_taxonomy_once(tmp_path: Path, prefect_api_url: str) -> None:
    taxonomy, seeds = bundled("taxonomy"), bundled("seeds") / "default"
    with opened(taxonomy, seeds) as one_read:
        load_seeds([seeds], load_taxonomy(taxonomy), Settings().limits)
    assert any(path.endswith("seeds.jsonl") for path in one_read)
    assert any(path.endswith("categories.yaml") for path in one_read)
    where = ["--artifacts", str(tmp_path / "art"), "-r", "causality", "--renderer", "typographic"]
    with opened(taxonomy, seeds) as build_reads:
        result = CliRunner().invoke(app, ["build", *where, "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "building 2 of" in result.output and "queued for review" in result.output
    # the inputs' files exactly as one load reads them; a stage's own data file under those
    # folders (the offline composer's taxonomy/protected.yaml) once
    assert {path: build_reads[path] for path in one_read} == one_read
    assert all(count == 1 for path, count in build_reads.items() if path not in one_read)
    with opened(taxonomy, seeds) as rerun_reads:  # nothing left to do: reported without Prefect
        assert CliRunner().invoke(app, ["build", *where, "--limit", "2"]).exit_code == 0
    assert rerun_reads == one_read
