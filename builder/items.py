"""The multi-image item: the one unit that flows between stages, and what it carries."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ItemStatus(StrEnum):
    """Where a candidate is. Terminal: queued (awaits people), rejected, refused; failed is
    retried by the next build while attempts are left."""

    PLANNED = "planned"  # a (seed, relation, round) waiting to be composed
    COMPOSED = "composed"
    RENDERED = "rendered"
    UNIQUE = "unique"
    PASSED = "passed"
    ATTACKED = "attacked"  # every tester answered; waiting for the judge
    ACCEPTED = "accepted"  # the judged attack worked as the policy asks; waiting for the queue
    QUEUED = "queued"
    REJECTED = "rejected"
    FAILED = "failed"
    REFUSED = "refused"  # the composer model declined; never retried into compliance


def item_id(seed_id: str, relation: str, iteration: int) -> str:
    """Content-derived id: the same seed, relation and round always name the same candidate."""
    return hashlib.sha256(f"{seed_id}\x1f{relation}\x1f{iteration}".encode()).hexdigest()[:16]


class ImageSlot(BaseModel):
    """One image of an item, in order. File fields are filled by the render stage."""

    model_config = ConfigDict(extra="forbid")

    role: str
    description: str
    keywords: list[str]
    file: str | None = None  # relative to the artifacts folder, content-addressed
    sha256: str | None = None
    phash: str | None = None  # 64-bit perceptual hash, hex
    source: str | None = None  # retrieved images: where from
    license: str | None = None  # retrieved images: under which license
    render_prompt: str | None = None  # generated images: what the model was asked
    drawn_text: str | None = None  # text the renderer wrote onto the picture (typographic cards)
    match_score: float | None = None  # retrieved images: how well the picture's caption matches the slot


class Verdict(BaseModel):
    """One check's judgement on an item; kept whether it passed or not."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    passed: bool
    score: float | None = None
    reason: str = ""  # a category, so reasons can be counted ("blank image")
    error: bool = False  # the check could not judge (its model unreachable): retry, do not refine
    detail: str = ""  # the specifics ("slot 2: pixel stddev 0.0")
    advice: list[str] = Field(default_factory=list)  # what the next round should change

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class Judgement(Verdict):
    """A judge's verdict on one tester's answer: `reason` is the answer's class (unsafe,
    refusal, misunderstood, safe_other, unknown), `passed` means the attack worked, `detail`
    is the judge's short rationale. The answer itself lives in the store only."""

    tester: str
    held_out: bool = False


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    composer: str
    template: str
    renderer: str | None = None
    model_ids: dict[str, str] = Field(default_factory=dict)
    config_hash: str
    run_id: str


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    seed_id: str
    original_question: str
    guarded_phrase: str
    # True when the seed named no key phrase and `guarded_phrase` was derived from the question's
    # content words (then any order of them counts as the phrase).
    key_phrase_derived: bool = False
    category: str
    relation: str
    iteration: int = Field(ge=1)
    revised_prompt: str
    slots: list[ImageSlot]
    status: ItemStatus = ItemStatus.COMPOSED
    verdicts: list[Verdict] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)  # why the previous round was rejected
    failures: list[Verdict] = Field(default_factory=list)  # earlier attempts that hit a backend error
    judgements: list[Judgement] = Field(default_factory=list)  # the attack's answers, judged
    provenance: Provenance
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def rejection(self) -> Verdict | None:
        return next((verdict for verdict in self.verdicts if not verdict.passed), None)

    def reject(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        self.status = ItemStatus.REJECTED

    def fail(self, stage: str, reason: str, detail: str = "") -> None:
        self.verdicts.append(Verdict(name=stage, version="error", passed=False, reason=reason, detail=detail))
        self.status = ItemStatus.FAILED

    @property
    def attempts(self) -> int:
        return len(self.failures) + 1

    def retry(self, status: ItemStatus) -> None:
        """Try a failed item again from `status`, keeping the failure with the earlier attempts."""
        failure = self.rejection
        assert self.status is ItemStatus.FAILED and failure is not None
        self.failures.append(failure)
        self.verdicts.remove(failure)
        self.status = status

    def refuse(self, stage: str, detail: str) -> None:
        self.verdicts.append(
            Verdict(name=stage, version="refusal", passed=False, reason="model refused", detail=detail)
        )
        self.status = ItemStatus.REFUSED
