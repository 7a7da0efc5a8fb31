"""Every status an item can be in is taken by a stage in every configuration, or `mirbench
status` says why not and what moves it on. The concrete case: the judge failed on an item,
and the next build runs with the attack loop off."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import Settings
from builder.core.items import ItemStatus
from builder.run import tasks
from builder.run.status_reasons import status_reasons
from builder.stages import pipeline
from builder.store import Store
from tests.helpers import make_item

LOOP_ON = {"testers": [{"model": "m", "base_url": "http://127.0.0.1:9/v1"}]}


def _spec(settings: Settings, seed_id: str, relation: str) -> tasks.BuildSpec:
    return tasks.BuildSpec(settings=settings, run_id="r1", seed_ids=[seed_id], relations=[relation])


def test_a_judge_failure_with_the_attack_loop_now_off_stays_failed_and_status_says_why(
    tmp_path: Path,
) -> None:
    off = Settings(artifacts=tmp_path / "artifacts")
    (tmp_path / "artifacts").mkdir()
    item = make_item()
    item.status = ItemStatus.ATTACKED
    item.fail("judge", "judge unreachable", "connection refused")
    with Store(off.resolved_database_url) as store:
        store.save_items([item])

    assert tasks.retry_failed(_spec(off, item.seed_id, item.relation)) == 0
    with Store(off.resolved_database_url) as store:
        (kept,) = store.get_items([item.id])
    assert kept.status is ItemStatus.FAILED  # not sent to `attacked`, which no stage takes now

    shown = CliRunner().invoke(
        app, ["status", "--artifacts", str(tmp_path / "artifacts")], terminal_width=250
    )
    assert shown.exit_code == 0, shown.output
    assert "1 failed item(s) kept failed: the judge stage is off: the attack loop is off" in shown.output

    on = off.model_copy(update={"attack": off.attack.model_validate(LOOP_ON)})
    assert tasks.retry_failed(_spec(on, item.seed_id, item.relation)) == 1  # on again: the judge retries it
    with Store(on.resolved_database_url) as store:
        assert store.get_items([item.id])[0].status is ItemStatus.ATTACKED


def test_every_status_has_a_stage_or_a_reason_in_every_configuration(tmp_path: Path) -> None:
    off = Settings(artifacts=tmp_path)
    on = off.model_copy(update={"attack": off.attack.model_validate(LOOP_ON)})
    for settings in (off, on):
        taken = {
            pipeline.place(settings, stage.name).takes
            for stage in pipeline.stages()
            if stage.enabled(settings)
        }
        reasons = status_reasons(settings, [status.value for status in ItemStatus])
        for status in ItemStatus:
            said = reasons[status.value]
            assert said.startswith("waits for the") == (status in taken), (status, said)
    untaken_off = {status for status in ItemStatus if reasons_of(off)[status.value].startswith("no stage")}
    assert untaken_off == {ItemStatus.ATTACKED, ItemStatus.ACCEPTED}  # the attack loop's own, only
    assert "the attack loop is off" in reasons_of(off)[ItemStatus.ATTACKED.value]
    assert not any(said.startswith("no stage") for said in reasons_of(on).values())
    # a status left by a plug-in stage that is no longer installed is named, not a crash
    assert status_reasons(on, ["gone_plugin"])["gone_plugin"].startswith("no stage of this pipeline")


def reasons_of(settings: Settings) -> dict[str, str]:
    return status_reasons(settings, [status.value for status in ItemStatus])
