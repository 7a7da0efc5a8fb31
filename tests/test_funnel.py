"""The funnel and the stats behind it, without a build: candidates ended by each stage land in
the group that stage declares (`Stage.funnel_group` / `funnel_label`), counts are typed by
(stage, check, reason), and stats an older mirbench recorded as strings are read, not shown.
A stage fails items in its own name only (the judge, when an answer is gone)."""

from __future__ import annotations

from pathlib import Path

from builder.config.sections import PolicySettings
from builder.config.settings import Settings
from builder.core.items import ItemStatus, Verdict
from builder.core.stats import Outcome, StageStats
from builder.run.report import funnel, legacy_note, merged_stats, unchecked_rows
from builder.stages import pipeline
from builder.stages.attack import Answer, Failure, Tester
from builder.stages.judge import JudgeStage
from builder.stages.judge.rules import RulesJudge
from builder.store import Store
from tests.helpers import make_item


def _ended(seed_id: str, stage: str, status: ItemStatus, name: str = "", reason: str = "why"):
    item = make_item(seed_id=seed_id)
    if status is ItemStatus.FAILED:
        item.fail(stage, reason)
    elif status is ItemStatus.REFUSED:
        item.refuse(stage, "no")
    else:
        item.reject(Verdict(name=name or stage, stage=stage, version="1", passed=False, reason=reason))
    return item


def test_each_ended_candidate_lands_in_its_stages_group() -> None:
    items = [
        _ended("a", "compose", ItemStatus.REFUSED),
        _ended("b", "render", ItemStatus.FAILED, reason="renderer error"),
        _ended("c", "dedup", ItemStatus.REJECTED, reason="near-duplicate text"),
        _ended("d", "filters", ItemStatus.REJECTED, name="leakage", reason="prompt repeats the key phrase"),
        _ended("e", "filters", ItemStatus.FAILED, reason="judge unreachable"),
        _ended("f", "review", ItemStatus.REJECTED, reason="prompt unclear"),
        make_item(seed_id="g"),
    ]
    items[-1].status = ItemStatus.QUEUED
    rows = [(row.label, row.count, row.indent) for row in funnel(items, {}, seeds=7, pairs=7)]
    assert rows == [
        ("seeds", 7, 0),
        ("(seed, relation) pairs", 7, 0),
        ("candidates composed (all rounds)", 7, 0),
        ("refused by the composer model", 1, 0),
        ("failed", 2, 0),
        ("filters: judge unreachable", 1, 1),
        ("render: renderer error", 1, 1),
        ("failed, attempts used up (not retried; see `mirbench retry --help`)", 0, 0),
        ("rendered", 5, 0),
        ("duplicates", 1, 0),
        ("dedup: near-duplicate text", 1, 1),
        ("rejected by filter or review", 2, 0),
        ("leakage: prompt repeats the key phrase", 1, 1),
        ("review: prompt unclear", 1, 1),
        ("not tested against a model (attack: none)", 1, 0),
        ("queued for review", 1, 0),
    ]


def test_counts_are_typed_and_merge_by_check_and_reason() -> None:
    one, two = StageStats(stage="filters", items_in=2), StageStats(stage="filters", items_in=3)
    one.count("leakage", "prompt repeats the key phrase", outcome=Outcome.REJECTED)
    two.count("leakage", "prompt repeats the key phrase", 2, Outcome.REJECTED)
    two.count("alignment", "no CLIP model configured", 3, Outcome.UNCHECKED)
    records = [one.model_dump(mode="json"), {**two.model_dump(mode="json"), "interval": [0, 1]}]
    merged = merged_stats(records)["filters"]
    assert merged.items_in == 5
    assert merged.get("leakage", "prompt repeats the key phrase", Outcome.REJECTED) == 3
    assert merged.get("leakage", "prompt repeats the key phrase", Outcome.UNCHECKED) == 0
    assert [(row.label, row.count) for row in unchecked_rows({"filters": merged})] == [
        ("check off: alignment: no CLIP model configured (items not checked)", 3)
    ]
    assert legacy_note({"filters": merged}) == []


def test_stats_recorded_as_strings_are_read_and_said_to_be_hidden() -> None:
    old = {"stage": "filters", "items_in": 4, "seconds": 1.5, "outcomes": {"dropped: leakage: x": 2}}
    merged = merged_stats([old, StageStats(stage="filters", items_in=1).model_dump(mode="json")])
    assert merged["filters"].items_in == 5 and merged["filters"].seconds == 1.5
    assert merged["filters"].counts == [] and merged["filters"].legacy
    (note,) = legacy_note(merged)
    assert "filters" in note and "older mirbench" in note


class _Recorded(Tester):
    """A tester whose answers are whatever it was given (no model answers on cue offline): it
    saves them to the store under its answer keys, as the real tester does."""

    name, label, held_out = "recorded", "recorded", False

    def __init__(self, store: Store, answer: str | None):
        self.store, self.answer, self.asked = store, answer, 0

    def answer_key(self, item) -> str:  # type: ignore[no-untyped-def]
        return f"answer-{item.id}"

    def attack(self, items, on_done):  # type: ignore[no-untyped-def]
        self.asked += len(items)
        if self.answer is None:
            return [Failure(reason="connection", detail="down") for _ in items]
        for item in items:
            self.store.save_answer(self.answer_key(item), "m", self.answer)
        return [Answer(key=self.answer_key(item)) for item in items]


def test_the_judge_asks_again_for_an_answer_that_is_gone_and_fails_in_its_own_name(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        asked, gone = make_item(seed_id="asked"), make_item(seed_id="gone")
        asked.status = gone.status = ItemStatus.ATTACKED
        answering = _Recorded(store, "I'm sorry, but I can't help with that.")
        JudgeStage(RulesJudge(), [answering], store, PolicySettings()).run([asked])
        assert answering.asked == 1 and asked.judgements[0].reason == "refusal"
        JudgeStage(RulesJudge(), [answering], store, PolicySettings()).run([asked])
        assert answering.asked == 1  # stored now: not asked twice
        down = _Recorded(store, None)
        output = JudgeStage(RulesJudge(), [down], store, PolicySettings()).run([gone])
    assert gone.status is ItemStatus.FAILED and down.asked == 1
    assert (gone.rejection.stage, gone.rejection.reason) == ("judge", "answer missing")
    assert output.stats.get("judge", "answer missing", Outcome.FAILED) == 1
    on = Settings(
        attack={"testers": [{"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}]}
    )
    assert pipeline.place(on, "judge").takes is ItemStatus.ATTACKED  # a later build retries it there
