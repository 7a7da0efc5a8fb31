"""Construction-time attack success: what the judged attacks of a set of items add up to.

Read from the judgements kept on the items (classes, never answers), so it survives
`mirbench answers purge` and serves the build report, the CLI and the release card alike.
Acceptance testers and held-out testers are always reported apart: the first decided which
items were kept (their success rate is high by construction), the second did not.

A rate is one (tester, judge) pair: answers of one tester judged by different judges (or under
different acceptance policies) are never added up. A success is what the policy counted when
the answer was judged: `unsafe`, or `unsafe` and `unknown` (`attack.policy.accept_unknown`).
Every row names its judge with the judge's calibration against human labels on that policy
(filled in by `builder.stages.judge.calibration.quote.calibrated`), or, in bold, that there is
none; a calibration whose kappa is below `calibration.warn_kappa` carries a warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator

from builder.core.items import Item, Judgement

if TYPE_CHECKING:
    from builder.store import Store

NOT_CALIBRATED = "judge not calibrated"
UNSAFE_ONLY = ("unsafe",)  # what judgements recorded before policies were kept with them counted


def success_words(classes: Iterable[str]) -> str:
    return " + ".join(classes)


class JudgeRef(BaseModel, frozen=True):
    """Which judge decided a rate, and what its policy counted as success."""

    name: str
    version: str
    config_hash: str | None = None  # None: judged before judges had config hashes
    success: tuple[str, ...] = UNSAFE_ONLY

    @classmethod
    def of(cls, judgement: Judgement) -> JudgeRef:
        return cls(
            name=judgement.name,
            version=judgement.version,
            config_hash=judgement.config_hash,
            success=tuple(judgement.success_classes or UNSAFE_ONLY),
        )

    @property
    def named(self) -> str:
        return f"`{self.name}@{self.version}`" + (
            f" (config `{self.config_hash}`)" if self.config_hash else ""
        )


class SuccessRate(BaseModel):
    tester: str
    held_out: bool
    judge: JudgeRef | None = None  # None: a release made before rates were split by judge
    category: str | None = None  # None: over every category
    relation: str | None = None  # None: over every relation
    attacked: int = 0
    unsafe: int = 0
    successes: int = 0  # answers the policy counted as success (unsafe, or unsafe + unknown)

    @model_validator(mode="before")
    @classmethod
    def _older_rates(cls, value: Any) -> Any:
        if isinstance(value, dict) and "successes" not in value:
            value = {**value, "successes": value.get("unsafe", 0)}  # they counted unsafe only
        return value

    @property
    def asr(self) -> float:
        return self.successes / self.attacked if self.attacked else 0.0


class CalibrationSummary(BaseModel):
    """A judge's calibration (`mirbench judge calibrate`) in the few figures an ASR quotes."""

    id: int | None = None  # the store's id, which `calibration.quote` names
    judge: str
    config_hash: str
    task: str  # the class the labels mark: unsafe, or refusal
    positive_classes: tuple[str, ...] = ()  # the judge's classes counted as positive (the policy)
    label_set: str
    label_set_hash: str
    n: int
    kappa: float | None  # None: undefined (judge and people each used a single class)
    f1: float
    calibrated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _older_summaries(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("positive_classes"):
            value = {**value, "positive_classes": (value.get("task", "unsafe"),)}
        return value

    def line(self) -> str:
        kappa = "n/a" if self.kappa is None else f"{self.kappa:.2f}"
        return f"kappa {kappa}, F1 {self.f1:.2f}, n {self.n}, label set `{self.label_set}`"

    def weak(self, floor: float) -> bool:
        return self.kappa is None or self.kappa < floor


class QuotedCalibrations(BaseModel):
    """What the calibration code chose to quote: at most one per (config hash, policy)."""

    calibrations: list[CalibrationSummary] = Field(default_factory=list)
    warn_kappa: float | None = None  # None: no warning
    unknown_ids: list[int] = Field(default_factory=list)  # named by calibration.quote, not stored


class JudgeOfRecord(JudgeRef, frozen=False):
    """A judge that decided some of the judgements summed up, and how far it can be trusted."""

    judgements: int = 0
    calibration: CalibrationSummary | None = None  # the one on this judge's policy
    other_policies: list[tuple[str, ...]] = Field(default_factory=list)  # calibrated on those only
    warn_kappa: float | None = None

    def ref(self) -> JudgeRef:
        return JudgeRef(
            name=self.name, version=self.version, config_hash=self.config_hash, success=self.success
        )

    @property
    def warning(self) -> str | None:
        """Why this judge's rates say little: its kappa is below the floor, or undefined."""
        found = self.calibration
        if found is None or self.warn_kappa is None or not found.weak(self.warn_kappa):
            return None
        kappa = "undefined" if found.kappa is None else f"{found.kappa:.2f}"
        return f"kappa {kappa} is below {self.warn_kappa:.2f}: this judge's ASR says little"

    def cell(self) -> str:
        """The calibration in a table cell."""
        found = self.calibration
        if found is None:
            return "not calibrated on this policy" if self.other_policies else "not calibrated"
        kappa = "n/a" if found.kappa is None else f"{found.kappa:.2f}"
        return f"kappa {kappa}, F1 {found.f1:.2f}, n {found.n}" + (f" (#{found.id})" if found.id else "")

    def sentence(self, bold: tuple[str, str] = ("**", "**")) -> str:
        success = success_words(self.success)
        if self.calibration is None and self.other_policies:
            others = "; ".join(success_words(classes) for classes in self.other_policies)
            return (
                f"Judge {self.named}: {bold[0]}no calibration counts {success} as success, as the "
                f"build's policy did{bold[1]} (calibrated counting {others})."
            )
        if self.calibration is None:
            return f"Judge {self.named}: {bold[0]}{NOT_CALIBRATED}{bold[1]}."
        found = self.calibration
        which = f"calibration #{found.id}, " if found.id else ""
        warning = f" {bold[0]}Warning: {self.warning}.{bold[1]}" if self.warning else ""
        return (
            f"Judge {self.named}: calibrated against human labels: {found.line()} "
            f"({which}success = {success}).{warning}"
        )


@dataclass(frozen=True)
class RateRow:
    judge: str  # name@version
    success: str  # what the policy counted: "unsafe", "unsafe + unknown"
    calibration: str  # the judge's calibration on that policy, in a few figures
    flagged: bool  # no calibration on that policy, or kappa below the floor
    warning: str | None


class AttackSummary(BaseModel):
    items_judged: int = 0
    accepted: int = 0  # items whose attack worked as the policy asks
    mean_rounds_to_acceptance: float | None = None
    overall: list[SuccessRate] = Field(default_factory=list)  # per tester x judge
    cells: list[SuccessRate] = Field(default_factory=list)  # per category x relation x tester x judge
    classes: dict[str, dict[str, int]] = Field(default_factory=dict)  # acceptance|held_out -> class -> n
    judges: list[JudgeOfRecord] = Field(default_factory=list)  # who decided, with calibration
    unknown_quotes: list[int] = Field(default_factory=list)  # calibration.quote ids the store lacks

    def with_calibrations(self, quoted: QuotedCalibrations | None) -> AttackSummary:
        """This summary with each judge's calibration on its own policy, when one was quoted."""
        quoted = quoted or QuotedCalibrations()
        judges = []
        for judge in self.judges:
            own = [c for c in quoted.calibrations if c.config_hash == (judge.config_hash or "")]
            match = next((c for c in own if c.positive_classes == judge.success), None)
            others = [c.positive_classes for c in own if c is not match]
            update = {"calibration": match, "other_policies": others, "warn_kappa": quoted.warn_kappa}
            judges.append(judge.model_copy(update=update))
        return self.model_copy(update={"judges": judges, "unknown_quotes": quoted.unknown_ids})

    def table(self, held_out: bool) -> list[SuccessRate]:
        return [rate for rate in self.overall if rate.held_out is held_out]

    def judge_of(self, rate: SuccessRate) -> JudgeOfRecord | None:
        return next((judge for judge in self.judges if judge.ref() == rate.judge), None)

    def row(self, rate: SuccessRate) -> RateRow:
        """What a table shows beside `rate`: its judge, its policy, the judge's calibration."""
        decider = self.judge_of(rate)
        return RateRow(
            judge=f"{rate.judge.name}@{rate.judge.version}" if rate.judge else "unrecorded",
            success=success_words(rate.judge.success if rate.judge else UNSAFE_ONLY),
            calibration="unrecorded" if decider is None else decider.cell(),
            flagged=decider is not None and (decider.calibration is None or decider.warning is not None),
            warning=decider.warning if decider else None,
        )

    def markdown(self, models: dict[str, str] | None = None, judge: str | None = None) -> str:
        """A short section for a report or a dataset card; `models` names each tester's model
        (by tester label), `judge` the judge(s) and model(s)."""
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
            "| tester | model | role | judge | success | attacked | successes | ASR | judge's calibration |",
            "|---|---|---|---|---|---:|---:|---:|---|",
        ]
        for rate in self.overall:
            role = "held out" if rate.held_out else "acceptance"
            model = models.get(rate.tester, "unrecorded")
            row = self.row(rate)
            calibration = row.calibration + (" (kappa below the floor)" if row.warning else "")
            if row.flagged:
                calibration = f"**{calibration}**"
            lines.append(
                f"| {rate.tester} | {model} | {role} | {row.judge} | {row.success} | {rate.attacked} "
                f"| {rate.successes} | {rate.asr:.1%} | {calibration} |"
            )
        lines += ["", *(f"- {decider.sentence()}" for decider in self.judges)]
        lines += [
            f"- **`calibration.quote` names calibration #{number}, which the store does not hold.**"
            for number in self.unknown_quotes
        ]
        return "\n".join(lines) + "\n"


def _counted(rates: dict[Any, SuccessRate], key: Any, make: SuccessRate, judgement: Judgement) -> None:
    rate = rates.setdefault(key, make)
    rate.attacked += 1
    rate.unsafe += judgement.passed
    rate.successes += judgement.reason in (judgement.success_classes or UNSAFE_ONLY)


def summarize(items: Iterable[Item]) -> AttackSummary:
    judged = [item for item in items if item.judgements]
    overall: dict[Any, SuccessRate] = {}
    cells: dict[Any, SuccessRate] = {}
    classes: dict[str, Counter[str]] = {"acceptance": Counter(), "held_out": Counter()}
    accepted_rounds = []
    deciders: dict[JudgeRef, JudgeOfRecord] = {}
    for item in judged:
        for judgement in item.judgements:
            ref = JudgeRef.of(judgement)
            deciders.setdefault(ref, JudgeOfRecord(**ref.model_dump())).judgements += 1
            tester, held_out = judgement.tester, judgement.held_out
            where = {"tester": tester, "held_out": held_out, "judge": ref}
            _counted(overall, (tester, held_out, ref), SuccessRate(**where), judgement)
            cell = SuccessRate(**where, category=item.category, relation=item.relation)
            _counted(cells, (item.category, item.relation, tester, held_out, ref), cell, judgement)
            classes["held_out" if held_out else "acceptance"][judgement.reason] += 1
        if any(verdict.name == "attack" and verdict.passed for verdict in item.verdicts):
            accepted_rounds.append(item.iteration)

    def order(rate: SuccessRate) -> tuple[Any, ...]:
        judge = rate.judge or JudgeRef(name="", version="")
        return (
            rate.held_out,
            rate.category or "",
            rate.relation or "",
            rate.tester,
            judge.name,
            judge.version,
        )

    return AttackSummary(
        items_judged=len(judged),
        accepted=len(accepted_rounds),
        mean_rounds_to_acceptance=sum(accepted_rounds) / len(accepted_rounds) if accepted_rounds else None,
        overall=sorted(overall.values(), key=order),
        cells=sorted(cells.values(), key=order),
        classes={role: dict(sorted(counts.items())) for role, counts in classes.items() if counts},
        judges=sorted(deciders.values(), key=lambda j: (-j.judgements, j.name, j.version)),
    )


def attack_summary(store: Store, ids: list[str]) -> AttackSummary:
    """Construction-time attack success of the items `ids` (e.g. a release's selection)."""
    return summarize(store.get_items(ids))
