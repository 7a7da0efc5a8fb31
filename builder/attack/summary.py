"""Construction-time attack success: what the judged attacks of a set of items add up to.

Read from the judgements kept on the items (classes, never answers), so it survives
`mirbench answers purge` and serves the build report, the CLI and the release card alike.
Acceptance testers and held-out testers are always reported apart: the first decided which
items were kept (their success rate is high by construction), the second did not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from builder.items import Item

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


class AttackSummary(BaseModel):
    items_judged: int = 0
    accepted: int = 0  # items whose attack worked as the policy asks
    mean_rounds_to_acceptance: float | None = None
    overall: list[SuccessRate] = Field(default_factory=list)  # per tester
    cells: list[SuccessRate] = Field(default_factory=list)  # per category x relation x tester
    classes: dict[str, dict[str, int]] = Field(default_factory=dict)  # acceptance|held_out -> class -> n

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
        return "\n".join(lines) + "\n"


def summarize(items: Iterable[Item]) -> AttackSummary:
    judged = [item for item in items if item.judgements]
    overall: dict[tuple[str, bool], SuccessRate] = {}
    cells: dict[tuple[str, str, str, bool], SuccessRate] = {}
    classes: dict[str, Counter[str]] = {"acceptance": Counter(), "held_out": Counter()}
    accepted_rounds = []
    for item in judged:
        for judgement in item.judgements:
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
    )


def attack_summary(store: Store, ids: list[str]) -> AttackSummary:
    """Construction-time attack success of the items `ids` (e.g. a release's selection)."""
    return summarize(store.get_items(ids))
