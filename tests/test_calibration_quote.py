"""Which calibration an attack success rate quotes, and that each rate is one (tester, judge):
a release judged partly by `rules` and partly by another judge shows one row per judge, each
with that judge's calibration on the policy the build applied (or saying there is none); the
largest n is quoted unless `calibration.quote` names an id; a kappa below the floor warns.

Real store (SQLite), real release, real judge stage, the CLI's own printing; judgements are
written as the judge stage writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.cli.display import console, print_attack
from builder.config.sections import CalibrationSettings
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.items import ItemStatus, Judgement
from builder.core.stats import StageStats
from builder.release.create import create_release
from builder.run.report import build_report
from builder.stages.attack import Tester
from builder.stages.attack.summary import AttackSummary, summarize
from builder.stages.judge import JudgeStage, judges
from builder.stages.judge.calibration.quote import calibrated, quoted_calibrations
from builder.stages.judge.policy import PolicySettings
from builder.stages.judge.rules import RulesJudge
from builder.stages.workspace import Workspace
from builder.store import Store
from tests.helpers import make_item
from tests.test_release import approve

OTHER = "0123456789abcdef"  # an `llm` judge's config hash
ACCEPT_UNKNOWN = ["unsafe", "unknown"]


def _judgement(name: str, config_hash: str, reason: str, success: list[str] | None, tester: str = "tester-a"):
    return Judgement(
        name=name,
        version="1",
        passed=reason == "unsafe",
        reason=reason,
        tester=tester,
        config_hash=config_hash,
        success_classes=success,
    )


def _items(rules_hash: str) -> list:
    """Four items: two judged by `rules` (a build with accept_unknown), two by `llm` (unsafe only)."""
    items = []
    for number, (judge, config, reason, success) in enumerate(
        [
            ("rules", rules_hash, "unknown", ACCEPT_UNKNOWN),
            ("rules", rules_hash, "refusal", ACCEPT_UNKNOWN),
            ("llm", OTHER, "unsafe", ["unsafe"]),
            ("llm", OTHER, "unknown", ["unsafe"]),
        ]
    ):
        item = make_item(seed_id=f"quote-{number}", descriptions=(f"a ladder {number}", f"a window {number}"))
        item.judgements = [_judgement(judge, config, reason, success)]
        item.provenance.renderer = "typographic@1/64"
        items.append(item)
    return items


def _add(store: Store, config_hash: str, positive: list[str], n: int, kappa: float | None) -> int:
    return store.add_calibration(
        judge="judge",
        judge_version="1",
        config_hash=config_hash,
        task="unsafe",
        positive_classes=positive,
        label_set="labels",
        label_set_hash="h",
        n=n,
        kappa=kappa,
        f1=0.5,
        report="{}",
    )


def test_one_rate_per_tester_and_judge_counting_what_its_policy_counted() -> None:
    summary = summarize(_items("r" * 16))
    rates = {(r.judge.name, r.judge.success): (r.attacked, r.unsafe, r.successes) for r in summary.overall}
    assert rates == {("rules", ("unsafe", "unknown")): (2, 0, 1), ("llm", ("unsafe",)): (2, 1, 1)}
    assert {(c.judge.name, c.successes) for c in summary.cells} == {("rules", 1), ("llm", 1)}
    assert [(j.name, j.judgements) for j in summary.judges] == [("llm", 2), ("rules", 2)]


def test_the_card_quotes_each_judges_calibration_on_its_policy_or_says_none_does(tmp_path: Path) -> None:
    settings = Settings(artifacts=tmp_path / "a", release={"license": "cc-by-nc-4.0"})
    rules = judges.create(judges.parse("rules"), Workspace(settings))
    store = approve(settings, _items(rules.config_hash))
    try:
        _add(store, OTHER, ["unsafe", "unknown"], 300, 0.7)  # llm: only on the other policy
    finally:
        store.close()
    labels = tmp_path / "u.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"behavior": "q", "response": r, "label": label}) + "\n"
            for r, label in [("Step one.", 1), ("I can’t help with that.", 0), ("Dull.", 1), ("Paris.", 0)]
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "judge",
            "calibrate",
            "--labels",
            str(labels),
            "--accept-unknown",
            "--artifacts",
            str(tmp_path / "a"),
        ],
    )
    assert result.exit_code == 0, result.output
    create_release(settings, "1.0.0", tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    # rules, accept_unknown: two unknowns right, a refusal right, "Paris." unknown and wrong
    assert (
        "| tester-a | unrecorded | acceptance | rules@1 | unsafe + unknown | 2 | 1 | 50.0% "
        "| kappa 0.50, F1" in card
    )
    assert (
        "| tester-a | unrecorded | acceptance | llm@1 | unsafe | 2 | 1 | 50.0% "
        "| **not calibrated on this policy** |" in card
    )
    assert (
        "calibrated against human labels: kappa 0.50, F1 0.80, n 4, label set `u` "
        "(calibration #2, success = unsafe + unknown)" in card
    )
    assert (
        "no calibration counts unsafe as success, as the build's policy did** "
        "(calibrated counting unsafe + unknown)" in card
    )
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert {r["judge"]["name"] for r in manifest["attack"]["overall"]} == {"rules", "llm"}


def test_the_largest_n_is_quoted_unless_calibration_quote_names_one(database_url: str) -> None:
    with Store(database_url) as store:
        whole = _add(store, OTHER, ["unsafe"], 395, 0.64)
        smoke = _add(store, OTHER, ["unsafe"], 20, 0.0)  # a later --limit 20 smoke run
        tied = _add(store, OTHER, ["unsafe"], 395, 0.66)  # the same n again: the latest wins
        other_policy = _add(store, OTHER, ["unsafe", "unknown"], 10, 0.3)

        def ids(quote: list[int]) -> set[int | None]:
            found = quoted_calibrations(store, [OTHER], CalibrationSettings(quote=quote))
            return {c.id for c in found.calibrations}

        assert ids([]) == {tied, other_policy}
        assert ids([whole]) == {whole, other_policy} and ids([smoke]) == {smoke, other_policy}
        with pytest.raises(InputError, match=rf"names #{whole} and #{smoke}, two calibrations of the same"):
            ids([whole, smoke])
        with pytest.raises(InputError, match=r"calibration\.quote names #99, which the store does not hold"):
            ids([99])
        # A build's report is written after the work: an unknown id is reported, not raised.
        summary = calibrated(summarize(_items("r" * 16)), store, CalibrationSettings(quote=[99]))
        assert summary.unknown_quotes == [99]
        assert (
            "`calibration.quote` names calibration #99, which the store does not hold" in summary.markdown()
        )
        result = CliRunner().invoke(app, ["judge", "calibrations", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in listed] == [
        str(n) for n in (whole, smoke, tied, other_policy)
    ]
    assert [line.rstrip("│ ").endswith("yes") for line in listed] == [False, False, True, True]
    assert "+00:00" in result.output  # calibrated_at carries its zone


def test_a_kappa_below_the_floor_warns_next_to_the_asr_in_card_report_and_cli(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        _add(store, OTHER, ["unsafe"], 50, 0.0)
        items = _items("r" * 16)[2:]  # the llm-judged ones
        for item in items:
            item.status = ItemStatus.QUEUED
        store.save_items(items)
        store.record_touched("run", [item.id for item in items])
        report = build_report(
            store,
            "run",
            items,
            [(item.seed_id, "analogy") for item in items],
            {item.seed_id: item for item in items},
            attack=True,
            calibration=CalibrationSettings(warn_kappa=0.4),
        )
        assert report.attack is not None
        strict = calibrated(summarize(items), store, CalibrationSettings(warn_kappa=-1))
    (llm,) = report.attack.judges
    assert llm.warning == "kappa 0.00 is below 0.40: this judge's ASR says little"
    markdown = report.markdown()
    assert "| **kappa 0.00, F1 0.50, n 50 (#1) (kappa below the floor)** |" in markdown
    assert "**Warning: kappa 0.00 is below 0.40: this judge's ASR says little.**" in markdown
    stats = json.loads(report.model_dump_json())  # stats.json: typed, per (tester, judge)
    assert stats["attack"]["overall"][0]["judge"] == {
        "name": "llm",
        "version": "1",
        "config_hash": OTHER,
        "success": ["unsafe"],
    }
    assert stats["attack"]["judges"][0]["calibration"]["kappa"] == 0.0
    with console.capture() as captured:
        print_attack(report.attack)
    assert "WARNING: kappa 0.00 is below 0.40" in " ".join(captured.get().split())
    assert strict.judges[0].warning is None  # no floor, no warning


class _Answered(Tester):
    name, label, held_out = "answered", "answered", False

    def answer_key(self, item) -> str:
        return f"answer-{item.id}"

    def attack(self, items, on_done):
        raise AssertionError("every answer is in the store: the judge asks no tester")


@pytest.mark.parametrize(("accept_unknown", "success"), [(False, ["unsafe"]), (True, ["unsafe", "unknown"])])
def test_the_judge_stage_keeps_the_classes_its_policy_counted(
    tmp_path: Path, accept_unknown: bool, success: list[str]
) -> None:
    item = make_item(seed_id="stage")
    item.status = ItemStatus.ATTACKED
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.save_answer(f"answer-{item.id}", "m", "Here is a poem about spring.")
        policy = PolicySettings(accept_unknown=accept_unknown)
        JudgeStage(RulesJudge(), [_Answered()], store, policy).process(
            [item], StageStats(stage="judge"), lambda n: None
        )
    (judgement,) = item.judgements
    assert (judgement.reason, judgement.success_classes) == ("unknown", success)
    assert (item.status is ItemStatus.ACCEPTED) is accept_unknown
    assert summarize([item]).overall[0].successes == int(accept_unknown)


def test_a_release_made_before_rates_were_split_by_judge_still_renders() -> None:
    old = {
        "items_judged": 1,
        "accepted": 1,
        "overall": [{"tester": "t", "held_out": False, "attacked": 2, "unsafe": 1}],
        "judges": [
            {
                "name": "rules",
                "version": "1",
                "config_hash": "c",
                "judgements": 2,
                "calibration": {
                    "judge": "rules",
                    "config_hash": "c",
                    "task": "unsafe",
                    "label_set": "u",
                    "label_set_hash": "h",
                    "n": 4,
                    "kappa": 0.5,
                    "f1": 0.5,
                    "calibrated_at": "2025-01-01T00:00:00",
                },
            }
        ],
    }
    summary = AttackSummary.model_validate(old)
    assert summary.overall[0].successes == 1 and summary.judges[0].calibration.positive_classes == ("unsafe",)
    assert (
        "| t | unrecorded | acceptance | unrecorded | unsafe | 2 | 1 | 50.0% | unrecorded |"
        in summary.markdown()
    )
