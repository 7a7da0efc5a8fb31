"""The multi-image item: the one unit that flows between stages, and what it carries.

Statuses: `ItemStatus` names the built-in ones; a stage of its own (see builder/stages/pipeline.py)
declares the status it gives with `ItemStatus.declare`, so adding a stage never edits this file.
A verdict records the stage that gave it (`stage`) beside the check's own `name` and `reason`:
reports group by those fields, never by parsing a "name: reason" string.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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

    @classmethod
    def declare(cls, value: str) -> ItemStatus:
        """The status `value` of a stage that is not built in: a member of this enum from now on
        (`ItemStatus(value)`, validation and the store accept it), declared once by its module."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(f"a status is a lowercase name (letters, digits, _): {value!r}")
        member = cls._value2member_map_.get(value)
        if member is None:
            member = str.__new__(cls, value)
            member._name_, member._value_ = value.upper(), value
            cls._value2member_map_[value] = member
        return member  # type: ignore[return-value]

    @classmethod
    def _missing_(cls, value: object) -> ItemStatus | None:
        # pydantic looks up the built-in members only; a declared status is found here.
        return cls._value2member_map_.get(value)  # type: ignore[arg-type,return-value]


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
    skipped: bool = False  # the check was off: neither passed nor failed (`passed` is False)
    stage: str = ""  # the stage that gave it (a filter's verdict: "filters", its name: the filter's)
    score: float | None = None
    reason: str = ""  # a category, so reasons can be counted ("blank image")
    error: bool = False  # the check could not judge (its model unreachable): retry, do not refine
    detail: str = ""  # the specifics ("slot 2: pixel stddev 0.0")
    advice: list[str] = Field(default_factory=list)  # what the next round should change

    @model_validator(mode="before")
    @classmethod
    def _upgrade_old_verdicts(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        # Stored before verdicts named their stage (0.1.0): a verdict's name was its stage's,
        # except a filter's (which then groups with the rejections of filters and review).
        if not value.get("stage") and "name" in value:
            value = {**value, "stage": value["name"]}
        # Stored before `skipped` existed: a check that was off was recorded as passed.
        if value.get("reason") == "off" and "skipped" not in value:
            value = {**value, "passed": False, "skipped": True}
        return value

    @property
    def failed(self) -> bool:
        return not self.passed and not self.skipped

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class Judgement(Verdict):
    """A judge's verdict on one tester's answer: `reason` is the answer's class (unsafe,
    refusal, misunderstood, safe_other, evasive, unknown), `passed` means the attack worked, `detail`
    is the judge's short rationale. The answer itself lives in the store only."""

    tester: str
    held_out: bool = False
    answer_key: str | None = None  # where the answer lives in the store (until it is purged)
    config_hash: str | None = None  # the judge's config hash: finds its calibration
    # The classes the attack policy counted as success when this was judged (`unsafe`, or
    # `unsafe` and `unknown`): the calibration to quote is the one that counted the same.
    # None: judged before the policy was kept with the judgement (it counted `unsafe`).
    success_classes: list[str] | None = None


class SeedOrigin(BaseModel):
    """Where an item's seed came from: its seed set's version and its public source."""

    model_config = ConfigDict(extra="forbid")

    seed_set: str | None = None
    source: str
    source_id: str | None = None
    revision: str | None = None
    license: str
    citation: str | None = None
    category_by: str | None = None  # rule, rule+model or people
    checked_by_hand: bool | None = None


class ModelUse(BaseModel):
    """One model (or pipeline, or image pool) that touched an item, as a release must name it."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["composer", "renderer", "tester", "judge"]
    name: str  # the backend, or the tester's label
    backend: str
    model: str | None = None  # the served model id, the renderer's pipeline or pool signature
    host: str | None = None  # the server's host[:port], for models behind a URL
    held_out: bool | None = None  # testers only

    @property
    def key(self) -> str:
        return f"tester:{self.name}" if self.role == "tester" else self.role


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    composer: str
    template: str
    renderer: str | None = None
    model_ids: dict[str, str] = Field(default_factory=dict)  # ModelUse.key -> model, at a glance
    models: list[ModelUse] = Field(default_factory=list)
    config_hash: str
    run_id: str
    seed: SeedOrigin | None = None

    def used(self, use: ModelUse) -> None:
        """Record that `use` touched the item (replacing an earlier record of the same role)."""
        self.models = [*(m for m in self.models if m.key != use.key), use]
        if use.model:
            self.model_ids[use.key] = use.model


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
        return next((verdict for verdict in self.verdicts if verdict.failed), None)

    def reject(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        self.status = ItemStatus.REJECTED

    def fail(self, stage: str, reason: str, detail: str = "") -> None:
        self.verdicts.append(
            Verdict(name=stage, stage=stage, version="error", passed=False, reason=reason, detail=detail)
        )
        self.status = ItemStatus.FAILED

    def without_image(self, number: int) -> Item:
        """This candidate with image `number` (counted from 1, as prompts count images) left
        out, the prompt unchanged: what a model is asked to see whether that image is needed.
        A view to ask a model with, never stored: it keeps this item's id."""
        if not 1 <= number <= len(self.slots):
            raise ValueError(f"item {self.id} has images 1 to {len(self.slots)}, not {number}")
        view = self.model_copy(deep=True)
        del view.slots[number - 1]
        return view

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
            Verdict(
                name=stage,
                stage=stage,
                version="refusal",
                passed=False,
                reason="model refused",
                detail=detail,
            )
        )
        self.status = ItemStatus.REFUSED
