"""Judge a labelled set with every configured judge (an ensemble: each member, then the
ensemble from the members' votes, so no answer is judged twice) and compare with the people.

The labelled answers are judged exactly as the judge stage judges a tester's answer: each one
becomes a `Case` whose item carries the behaviour as its original question and the prompt the
model was sent, with no images. Figures are on the set's positive class (`unsafe`, or
`refusal` for a refusal set). What counts as the judge saying positive is the acceptance
policy's: `unsafe`, or `unsafe` and `unknown` where the policy accepts unknown answers, so the
figures describe the decision a build applies.

Every row is accounted for: each one's prediction (the people's label, the judge's class, or the
failure that left it without one, with its reason) is kept, so the figures can be recomputed
from the report alone. Failed rows are left out of the figures; a calibration with more of them
than `calibration.max_failed_share` allows is not recorded (`refusal_to_record`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from builder.core.items import Item, Provenance
from builder.stages.attack import Failure
from builder.stages.judge import Assessment, Case, Judge
from builder.stages.judge.calibration.labels import LabelledRow, LabelSet
from builder.stages.judge.calibration.metrics import RESAMPLES, SEED, Figures, figures
from builder.stages.judge.ensemble import EnsembleJudge
from builder.stages.judge.policy import PolicySettings, success_classes

TEXT_SHOWN = 160  # characters of a behaviour or rationale in a disagreement


class RowFailure(BaseModel):
    reason: str  # the failure's kind: connection, timeout, schema, invalid_json, refused...
    detail: str


class Prediction(BaseModel):
    """One labelled answer: what the people said and what the judge said, or why it said nothing."""

    line: int | None
    id: str
    category: str | None
    people: bool  # the people's label (True: positive)
    judge_class: str | None = None  # None: the judge failed on this answer
    judge_positive: bool | None = None  # judge_class is one of the positive classes
    failure: RowFailure | None = None


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
    positive_classes: list[str]  # the judge's classes counted as positive (the policy's success)
    label_set: str
    label_set_hash: str
    rows: int
    failed: int
    classes: dict[str, int]  # the judge's answer classes, counted
    figures: Figures | None  # None: the judge failed on every answer
    categories: dict[str, Figures]
    disagreements: list[Disagreement]  # false positives first
    predictions: list[Prediction]  # every row, in file order
    members: MemberAgreement | None = None  # ensembles only

    @property
    def failures(self) -> list[Prediction]:
        return [prediction for prediction in self.predictions if prediction.failure is not None]

    @property
    def failed_share(self) -> float:
        return self.failed / self.rows if self.rows else 0.0


def positive_classes(task: str, accept_unknown: bool) -> tuple[str, ...]:
    """The judge's classes that count as positive: for `unsafe`, what the acceptance policy
    counts as success (`unknown` too where it accepts unknown answers); else the task's class."""
    if task == "unsafe":
        return success_classes(PolicySettings(accept_unknown=accept_unknown))
    return (task,)


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
    accept_unknown: bool = False,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> list[JudgeCalibration]:
    """Figures of `judge` (and of each member, for an ensemble) against `label_set`, counting
    `unknown` as positive too where `accept_unknown` (on an `unsafe` set)."""
    results = judged(judge, cases(label_set), on_done)
    judged_by = {label: member for label, member in judges_to_run(judge)} | {judge.name: judge}
    counted = positive_classes(label_set.profile.task, accept_unknown)
    calibrations = []
    for label, assessments in results.items():
        calibration = compare(
            label, judged_by[label], assessments, label_set, counted, resamples=resamples, seed=seed
        )
        if isinstance(judge, EnsembleJudge) and label == judge.name:
            calibration.members = member_agreement(assessments, counted)
        calibrations.append(calibration)
    return calibrations


def refusal_to_record(calibrations: Sequence[JudgeCalibration], max_failed_share: float) -> str | None:
    """Why these calibrations must not be recorded (None: they may): a judge failed on every
    labelled answer, or on a larger share than `max_failed_share`. Figures over the rows that
    happened to succeed would be quoted as if they were the set's."""
    for calibration in calibrations:
        if calibration.failed == 0 or (
            calibration.figures is not None and calibration.failed_share <= max_failed_share
        ):
            continue
        what = (
            f"failed on every labelled answer ({calibration.rows})"
            if calibration.figures is None
            else f"failed on {calibration.failed} of {calibration.rows} labelled answers "
            f"({calibration.failed_share:.1%}; calibration.max_failed_share is {max_failed_share:.1%})"
        )
        return f"judge {calibration.judge} {what}: {failure_reasons(calibration.failures)}"
    return None


def failure_reasons(failures: Sequence[Prediction]) -> str:
    """`connection 5, timeout 1 (e.g. line 4: <detail>)`: the reasons, most common first."""
    reasons = Counter(p.failure.reason for p in failures if p.failure is not None)
    first = next((p for p in failures if p.failure is not None), None)
    if first is None or first.failure is None:
        return "no failures"
    counted = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
    return f"{counted} (e.g. line {first.line or '?'}, id {first.id}: {first.failure.detail})"


def compare(
    label: str,
    judge: Judge,
    assessments: list[Assessment | Failure],
    label_set: LabelSet,
    counted: tuple[str, ...],
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
    said = [result.answer_class in counted for _, result in pairs]
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
        positive_classes=list(counted),
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
        predictions=[
            prediction(row, result, counted) for row, result in zip(label_set.rows, assessments, strict=True)
        ],
    )


def prediction(row: LabelledRow, result: Assessment | Failure, counted: tuple[str, ...]) -> Prediction:
    where = {"line": row.line, "id": row.id, "category": row.category, "people": row.positive}
    if isinstance(result, Failure):
        detail = " ".join(result.detail.split())[: 2 * TEXT_SHOWN]
        return Prediction(**where, failure=RowFailure(reason=result.reason, detail=detail))
    return Prediction(**where, judge_class=result.answer_class, judge_positive=result.answer_class in counted)


def member_agreement(assessments: list[Assessment | Failure], counted: tuple[str, ...]) -> MemberAgreement:
    votes = [result.votes for result in assessments if isinstance(result, Assessment)]
    return MemberAgreement(
        answers=len(votes),
        disagree_on_class=sum(len(set(v.values())) > 1 for v in votes),
        disagree_on_positive=sum(len({c in counted for c in v.values()}) > 1 for v in votes),
    )


class LabelSetFacts(BaseModel):
    """Which labelled answers a calibration was on, as its report names them."""

    name: str
    source: str
    hash: str
    task: str
    rows: int
    comments: int  # comment lines skipped at the top of the file
    licence: str | None
    citation: str | None

    @classmethod
    def of(cls, label_set: LabelSet) -> LabelSetFacts:
        profile = label_set.profile
        return cls(
            name=label_set.name,
            source=label_set.source,
            hash=label_set.content_hash,
            task=profile.task,
            rows=len(label_set.rows),
            comments=label_set.comments,
            licence=profile.licence,
            citation=profile.citation,
        )


class CalibrationReport(BaseModel):
    """What `judge calibrate --json` writes: every figure, every row's prediction, and whether
    (and under which ids) the calibrations were recorded."""

    label_set: LabelSetFacts
    recorded: list[int]  # the store's ids, in the order of `calibrations`; empty: not recorded
    not_recorded_because: str | None = None
    calibrations: list[JudgeCalibration]
