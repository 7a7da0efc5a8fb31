"""Construction-time attack success: what the judged attacks of a set of items add up to.

Read from the judgements kept on the items (classes, never answers), so it survives
`mirbench answers purge` and serves the build report, the CLI and the release card alike.
Acceptance testers and held-out testers are always reported apart: the first decided which
items were kept (their success rate is high by construction), the second did not. Every table
names the judge(s) that decided it, with the judge's latest calibration against human labels
(filled in from the store by `builder.stages.judge.calibration.records.calibrated`) or, in bold, that the
judge is not calibrated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from builder.core.items import Item

if TYPE_CHECKING:
    from builder.store import Store


class SuccessRate(BaseModel):
    tester: str
    held_out: bool
    category: str | None = None  # None: over every category
    relation: str | None = None  # None: over every relation
    attacked: int = 0
    unsafe: int = 0

    @property
    def asr(self) -> float:
        return self.unsafe / self.attacked if self.attacked else 0.0


NOT_CALIBRATED = "judge not calibrated"


class CalibrationSummary(BaseModel):
    """A judge's latest calibration on one config hash (`mirbench judge calibrate`): against
    which labelled set and how well, in the few figures an ASR table quotes."""

    judge: str
    config_hash: str
    task: str  # the class the labels mark: unsafe, or refusal
    label_set: str
    label_set_hash: str
    n: int
    kappa: float | None  # None: undefined (judge and people each used a single class)
    f1: float
    calibrated_at: datetime

    def line(self) -> str:
        kappa = "n/a" if self.kappa is None else f"{self.kappa:.2f}"
        return f"kappa {kappa}, F1 {self.f1:.2f}, n {self.n}, label set `{self.label_set}`"


class JudgeOfRecord(BaseModel):
    """A judge that decided some of the judgements summed up, and how far it can be trusted."""

    name: str
    version: str
    config_hash: str | None = None  # None: judged before judges had config hashes
    judgements: int = 0
    calibration: CalibrationSummary | None = None

    def sentence(self, bold: tuple[str, str] = ("**", "**")) -> str:
        named = f"`{self.name}@{self.version}`" + (
            f" (config `{self.config_hash}`)" if self.config_hash else ""
        )
        if self.calibration is None:
            return f"Judge {named}: {bold[0]}{NOT_CALIBRATED}{bold[1]}."
        return f"Judge {named}: calibrated against human labels: {self.calibration.line()}."


class AttackSummary(BaseModel):
    items_judged: int = 0
    accepted: int = 0  # items whose attack worked as the policy asks
    mean_rounds_to_acceptance: float | None = None
    overall: list[SuccessRate] = Field(default_factory=list)  # per tester
    cells: list[SuccessRate] = Field(default_factory=list)  # per category x relation x tester
    classes: dict[str, dict[str, int]] = Field(default_factory=dict)  # acceptance|held_out -> class -> n
    judges: list[JudgeOfRecord] = Field(default_factory=list)  # who decided, with calibration

    def with_calibrations(self, found: Mapping[str, CalibrationSummary]) -> AttackSummary:
        """This summary with each judge's calibration from `found` (config hash -> calibration)."""
        judges = [j.model_copy(update={"calibration": found.get(j.config_hash or "")}) for j in self.judges]
        return self.model_copy(update={"judges": judges})

    def table(self, held_out: bool) -> list[SuccessRate]:
        return [rate for rate in self.overall if rate.held_out is held_out]

    def markdown(self, models: dict[str, str] | None = None, judge: str | None = None) -> str:
        """A short section for a report or a dataset card; `models` names each tester's model
        (by tester label), `judge` the judge and its model."""
        if not self.items_judged:
            return "Not tested against a model (attack: none).\n"
        models = models or {}
        lines = [
            f"{self.items_judged} items judged; {self.accepted} accepted by the attack policy"
            + (
                f" after {self.mean_rounds_to_acceptance:.2f} rounds on average."
                if self.mean_rounds_to_acceptance is not None
                else "."
            ),
            *([f"Answers judged by {judge}.", ""] if judge else [""]),
            "| tester | model | role | attacked | unsafe | ASR |",
            "|---|---|---|---:|---:|---:|",
        ]
        for rate in self.overall:
            role = "held out" if rate.held_out else "acceptance"
            model = models.get(rate.tester, "unrecorded")
            lines.append(
                f"| {rate.tester} | {model} | {role} | {rate.attacked} | {rate.unsafe} | {rate.asr:.1%} |"
            )
        lines += ["", *(f"- {decider.sentence()}" for decider in self.judges)]
        return "\n".join(lines) + "\n"


def summarize(items: Iterable[Item]) -> AttackSummary:
    judged = [item for item in items if item.judgements]
    overall: dict[tuple[str, bool], SuccessRate] = {}
    cells: dict[tuple[str, str, str, bool], SuccessRate] = {}
    classes: dict[str, Counter[str]] = {"acceptance": Counter(), "held_out": Counter()}
    accepted_rounds = []
    deciders: dict[tuple[str, str, str | None], JudgeOfRecord] = {}
    for item in judged:
        for judgement in item.judgements:
            key = (judgement.name, judgement.version, judgement.config_hash)
            deciders.setdefault(key, JudgeOfRecord(name=key[0], version=key[1], config_hash=key[2]))
            deciders[key].judgements += 1
            tester, held_out = judgement.tester, judgement.held_out
            for rate in (
                overall.setdefault((tester, held_out), SuccessRate(tester=tester, held_out=held_out)),
                cells.setdefault(
                    (item.category, item.relation, tester, held_out),
                    SuccessRate(
                        tester=tester, held_out=held_out, category=item.category, relation=item.relation
                    ),
                ),
            ):
                rate.attacked += 1
                rate.unsafe += judgement.passed
            classes["held_out" if held_out else "acceptance"][judgement.reason] += 1
        if any(verdict.name == "attack" and verdict.passed for verdict in item.verdicts):
            accepted_rounds.append(item.iteration)
    return AttackSummary(
        items_judged=len(judged),
        accepted=len(accepted_rounds),
        mean_rounds_to_acceptance=sum(accepted_rounds) / len(accepted_rounds) if accepted_rounds else None,
        overall=sorted(overall.values(), key=lambda r: (r.held_out, r.tester)),
        cells=sorted(
            cells.values(), key=lambda r: (r.held_out, r.category or "", r.relation or "", r.tester)
        ),
        classes={role: dict(sorted(counts.items())) for role, counts in classes.items() if counts},
        judges=sorted(deciders.values(), key=lambda j: (-j.judgements, j.name, j.version)),
    )


def attack_summary(store: Store, ids: list[str]) -> AttackSummary:
    """Construction-time attack success of the items `ids` (e.g. a release's selection)."""
    return summarize(store.get_items(ids))
