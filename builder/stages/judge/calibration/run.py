"""Judge a labelled set with every configured judge (an ensemble: each member, then the
ensemble from the members' votes, so no answer is judged twice) and compare with the people.

The labelled answers are judged exactly as the judge stage judges a tester's answer: each one
becomes a `Case` whose item carries the behaviour as its original question and the prompt the
model was sent, with no images. Figures are on the set's positive class (`unsafe`, or
`refusal` for a refusal set); answers a judge failed on are counted apart and left out.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from builder.core.items import Item, Provenance
from builder.stages.attack import Failure
from builder.stages.judge import Assessment, Case, Judge
from builder.stages.judge.calibration.labels import LabelledRow, LabelSet
from builder.stages.judge.calibration.metrics import RESAMPLES, SEED, Figures, figures
from builder.stages.judge.ensemble import EnsembleJudge

TEXT_SHOWN = 160  # characters of a behaviour or rationale in a disagreement


class Disagreement(BaseModel):
    kind: Literal["false positive", "false negative"]
    line: int | None
    id: str
    category: str | None
    behavior: str  # never the answer: answers in labelled sets may be harmful
    people: bool  # the people's label (True: positive)
    judge_class: str
    rationale: str


class MemberAgreement(BaseModel):
    """How often an ensemble's members disagree, over the answers every member judged."""

    answers: int
    disagree_on_class: int
    disagree_on_positive: int  # some members said positive (unsafe/refusal), some did not

    @property
    def rate(self) -> float:
        return self.disagree_on_positive / self.answers if self.answers else 0.0


class JudgeCalibration(BaseModel):
    judge: str  # its label: a backend name, an ensemble member's label, or `ensemble`
    name: str
    version: str
    config_hash: str
    task: str
    label_set: str
    label_set_hash: str
    rows: int
    failed: int
    classes: dict[str, int]  # the judge's answer classes, counted
    figures: Figures | None  # None: the judge failed on every answer
    categories: dict[str, Figures]
    disagreements: list[Disagreement]  # false positives first
    members: MemberAgreement | None = None  # ensembles only


def _item(row: LabelledRow, label_set: LabelSet) -> Item:
    identity = hashlib.sha256(f"{label_set.name}\x1f{row.id}\x1f{row.line}".encode()).hexdigest()[:16]
    return Item(
        id=identity,
        seed_id=f"{label_set.name}:{row.id}",
        original_question=row.behavior,
        guarded_phrase=row.behavior,
        category=label_set.profile.categories.get(row.category or "", row.category or ""),
        relation="calibration",
        iteration=1,
        revised_prompt=row.prompt,
        slots=[],
        provenance=Provenance(
            composer="calibration", template=label_set.name, config_hash=label_set.content_hash, run_id=""
        ),
    )


def cases(label_set: LabelSet) -> list[Case]:
    return [Case(_item(row, label_set), "labelled", row.response) for row in label_set.rows]


def judges_to_run(judge: Judge) -> list[tuple[str, Judge]]:
    """(label, judge) for every judge whose answers must be asked for: an ensemble's members."""
    if isinstance(judge, EnsembleJudge):
        return list(zip(judge.labels, judge.members, strict=True))
    return [(judge.name, judge)]


def judged(
    judge: Judge, work: list[Case], on_done: Callable[[], None]
) -> dict[str, list[Assessment | Failure]]:
    """Every answer judged by `judge` (an ensemble: by each member, at once, then by the
    ensemble from their votes); `on_done` once per judge's answer."""
    if not isinstance(judge, EnsembleJudge):
        return {judge.name: judge.judge_many(work, on_done)}
    per_member = judge.run_members(work, on_done)
    return {**dict(zip(judge.labels, per_member, strict=True)), judge.name: judge.combine(per_member)}


def calibrate(
    judge: Judge,
    label_set: LabelSet,
    on_done: Callable[[], None] = lambda: None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> list[JudgeCalibration]:
    """Figures of `judge` (and of each member, for an ensemble) against `label_set`."""
    results = judged(judge, cases(label_set), on_done)
    judged_by = {label: member for label, member in judges_to_run(judge)} | {judge.name: judge}
    calibrations = []
    for label, assessments in results.items():
        calibration = compare(label, judged_by[label], assessments, label_set, resamples=resamples, seed=seed)
        if isinstance(judge, EnsembleJudge) and label == judge.name:
            calibration.members = member_agreement(assessments, label_set.profile.task)
        calibrations.append(calibration)
    return calibrations


def positive(assessment: Assessment, task: str) -> bool:
    return assessment.answer_class == task


def compare(
    label: str,
    judge: Judge,
    assessments: list[Assessment | Failure],
    label_set: LabelSet,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> JudgeCalibration:
    task = label_set.profile.task
    pairs = [
        (row, result)
        for row, result in zip(label_set.rows, assessments, strict=True)
        if isinstance(result, Assessment)
    ]
    said = [positive(result, task) for _, result in pairs]
    truth = [row.positive for row, _ in pairs]
    by_category: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    for (row, _), judged_positive, people in zip(pairs, said, truth, strict=True):
        if row.category:
            by_category[row.category][0].append(judged_positive)
            by_category[row.category][1].append(people)
    disagreements = [
        Disagreement(
            kind="false positive" if judged_positive else "false negative",
            line=row.line,
            id=row.id,
            category=row.category,
            behavior=row.behavior[:TEXT_SHOWN],
            people=row.positive,
            judge_class=result.answer_class,
            rationale=" ".join(result.rationale.split())[:TEXT_SHOWN],
        )
        for (row, result), judged_positive in zip(pairs, said, strict=True)
        if judged_positive != row.positive
    ]
    disagreements.sort(key=lambda d: d.kind != "false positive")  # stable: file order within a kind
    return JudgeCalibration(
        judge=label,
        name=judge.name,
        version=judge.version,
        config_hash=judge.config_hash or "",
        task=task,
        label_set=label_set.name,
        label_set_hash=label_set.content_hash,
        rows=len(label_set.rows),
        failed=len(label_set.rows) - len(pairs),
        classes=dict(sorted(Counter(result.answer_class for _, result in pairs).items())),
        figures=figures(said, truth, resamples=resamples, seed=seed) if pairs else None,
        categories={
            name: figures(judge_said, people, resamples=resamples, seed=seed)
            for name, (judge_said, people) in sorted(by_category.items())
        },
        disagreements=disagreements,
    )


def member_agreement(assessments: list[Assessment | Failure], task: str) -> MemberAgreement:
    votes = [result.votes for result in assessments if isinstance(result, Assessment)]
    return MemberAgreement(
        answers=len(votes),
        disagree_on_class=sum(len(set(v.values())) > 1 for v in votes),
        disagree_on_positive=sum(len({c == task for c in v.values()}) > 1 for v in votes),
    )
