"""A new stage is one module plus one list entry: tests/stamp_stage.py, added through the
`mirbench.stages` entry point of a distribution written to disk (as pip would install it),
sits between render and dedup with a settings section of its own (`stages.stamp`), and runs in
a real build through the real Prefect flow; nothing in builder/ is edited for it. Its rejections
show under "rejected by filter or review" in the build's funnel and in the release card."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import Settings, load_settings
from builder.config.taxonomy import load_taxonomy
from builder.core.errors import InputError
from builder.core.items import ItemStatus
from builder.stages import pipeline
from builder.store import Store
from tests.stamp_stage import HELD_BACK, StampSettings


def _install(site: Path, monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    info = site / "stamp_stage-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stamp-stage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mirbench.stages]\n{entry}\n")
    monkeypatch.syspath_prepend(str(site))


@pytest.fixture
def stamp_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path / "site", monkeypatch, "stamp = tests.stamp_stage:StampStage")


def test_a_plugin_stage_takes_its_place_and_the_next_stage_takes_its_status(stamp_installed: None) -> None:
    settings = Settings()
    order = pipeline.names()
    assert order[order.index("render") + 1 : order.index("render") + 3] == ["stamp", "dedup"]
    assert pipeline.place(settings, "stamp").takes is ItemStatus.RENDERED
    assert pipeline.place(settings, "dedup").takes == "stamped"
    assert ItemStatus("stamped") is pipeline.stage("stamp").gives


def test_a_plugin_stage_reads_its_own_settings_section(
    stamp_installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = pipeline.stage("stamp")
    assert stamp.stage_settings(Settings()) == StampSettings()  # no section: its defaults
    config = tmp_path / "mirbench.yaml"
    config.write_text("stages:\n  stamp:\n    holds_back: [analogy]\n")
    settings = load_settings(config)
    assert stamp.stage_settings(settings) == StampSettings(holds_back=["analogy"])
    assert settings.config_hash() != Settings().config_hash()  # an enabled stage's settings count
    monkeypatch.setenv("MIRBENCH_STAGES__STAMP__VERSION", "2")
    assert stamp.stage_settings(load_settings(config)).version == "2"
    monkeypatch.delenv("MIRBENCH_STAGES__STAMP__VERSION")

    config.write_text("max_iterations: 2\nstages:\n  stamp:\n    holds_back: analogy\n")
    with pytest.raises(InputError) as wrong:
        load_settings(config)
    assert "mirbench.yaml:4" in str(wrong.value) and "stages.stamp.holds_back" in str(wrong.value)
    config.write_text("stages:\n  stmap:\n    holds_back: [analogy]\n")
    with pytest.raises(InputError) as unknown:
        load_settings(config)
    assert "mirbench.yaml:2" in str(unknown.value)
    assert "no stage 'stmap' with settings of its own; stages with settings: dedup, stamp" in str(
        unknown.value
    )


def test_a_plugin_stage_that_leaves_out_a_method_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_stage.py").write_text(
        "from builder.stage import Stage\nfrom builder.items import ItemStatus\n\n"
        "class HalfStage(Stage):\n    name = 'half'\n    gives = ItemStatus.PASSED\n    after = 'render'\n\n"
        "    @classmethod\n    def open(cls, workspace, place):\n        return cls()\n"
    )
    _install(tmp_path / "site", monkeypatch, "half = half_stage:HalfStage")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        TypeError, match="entry point half = half_stage:HalfStage: the stage does not define process"
    ):
        pipeline.stages()


@pytest.mark.slow
def test_a_plugin_stage_runs_in_a_real_build_and_its_rejections_reach_the_card(
    stamp_installed: None, prefect_api_url: str, settings: Settings, tmp_path: Path
) -> None:
    from flows.build import build

    held_back, kept = list(load_taxonomy(settings.taxonomy).relations)[:2]
    settings = load_settings(
        artifacts=settings.artifacts,
        database_url=settings.resolved_database_url,
        relations=[held_back, kept],
        max_iterations=1,
        stages={"stamp": {"holds_back": [held_back]}},
    )
    report = build(settings=settings, limit=2)

    store = Store(settings.resolved_database_url)
    queued = store.items_with_statuses([ItemStatus.QUEUED])
    stopped = store.items_with_statuses([ItemStatus.REJECTED])
    store.close()
    assert report.stages["stamp"].items_in == 4
    assert [item.relation for item in queued] == [kept, kept]
    assert all(any(v.stage == "stamp" and v.passed for v in item.verdicts) for item in queued)
    assert sorted((item.relation, item.rejection.stage, item.rejection.reason) for item in stopped) == [
        (held_back, "stamp", HELD_BACK),
        (held_back, "stamp", HELD_BACK),
    ]
    rows = [(row.label, row.count) for row in report.funnel]
    start = rows.index(("rendered", 4))
    assert rows[start : start + 4] == [  # headings in pipeline order: the stamp comes before dedup
        ("rendered", 4),
        ("rejected by filter or review", 2),
        (f"stamp: {HELD_BACK}", 2),
        ("duplicates", 0),
    ]
    assert ("failed", 0) in rows and ("queued for review", 2) in rows

    where = ["--artifacts", str(settings.artifacts), "--database-url", settings.resolved_database_url]
    runner = CliRunner()
    assert runner.invoke(app, ["review", "approve", "--all", "--reviewer", "test", *where]).exit_code == 0
    out = tmp_path / "release"
    released = runner.invoke(app, ["release", "--version", "0.1.0", "--out", str(out), *where])
    assert released.exit_code == 0, released.output
    card = (out / "README.md").read_text()
    assert (
        "| candidates made by the builds behind this release | 4 |\n"
        "| refused by the composer model | 0 |\n"
        "| failed | 0 |\n"
        "| rendered | 4 |\n"
        "| rejected by filter or review | 2 |\n"
        f"| &nbsp;&nbsp;&nbsp;&nbsp;stamp: {HELD_BACK} | 2 |\n"
        "| duplicates | 0 |\n"
        "| not released (not approved yet, or still in the pipeline) | 0 |\n"
        "| released | 2 |"
    ) in card
