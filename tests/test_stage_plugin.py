"""A new stage is one module plus one list entry: tests/stamp_stage.py, added through the
`mirbench.stages` entry point of a distribution written to disk (as pip would install it),
runs in a real build through the real Prefect flow; nothing in builder/ is edited for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.settings import Settings
from builder.config.taxonomy import load_taxonomy
from builder.core.items import ItemStatus
from builder.stages import pipeline
from builder.store import Store
from tests.stamp_stage import HELD_BACK, HELD_BACK_ENV


@pytest.fixture
def stamp_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "stamp_stage-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stamp-stage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mirbench.stages]\nstamp = tests.stamp_stage:StampStage\n")
    monkeypatch.syspath_prepend(str(site))


def test_a_plugin_stage_takes_its_place_and_the_next_stage_takes_its_status(stamp_installed: None) -> None:
    settings = Settings()
    order = pipeline.names()
    assert order[order.index("filters") + 1] == "stamp"
    assert pipeline.place(settings, "stamp").takes is ItemStatus.PASSED
    assert pipeline.place(settings, "queue").takes == "stamped"
    assert pipeline.place(settings, "attack").takes == "stamped"
    assert ItemStatus("stamped") is pipeline.stage("stamp").gives


@pytest.mark.slow
def test_a_plugin_stage_runs_in_a_real_build(
    stamp_installed: None, prefect_api_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.build import build

    held_back, kept = list(load_taxonomy(settings.taxonomy).relations)[:2]
    monkeypatch.setenv(HELD_BACK_ENV, held_back)
    settings = settings.model_copy(update={"relations": [held_back, kept], "max_iterations": 1})
    report = build(settings=settings, limit=2)

    store = Store(settings.resolved_database_url)
    queued = store.items_with_statuses([ItemStatus.QUEUED])
    stopped = [
        item
        for item in store.items_with_statuses([ItemStatus.REJECTED])
        if item.rejection is not None and item.rejection.stage == "stamp"
    ]
    store.close()
    assert "stamp" in report.stages and report.stages["stamp"].items_in == len(queued) + len(stopped)
    assert queued and all(item.relation == kept for item in queued)
    assert all(any(v.stage == "stamp" and v.passed for v in item.verdicts) for item in queued)
    assert stopped and all(item.relation == held_back for item in stopped)
    assert {v.reason for item in stopped for v in item.verdicts if v.failed} == {HELD_BACK}
    funnel = {row.label: row.count for row in report.funnel}
    assert funnel[f"stamp: {HELD_BACK}"] == len(stopped)
