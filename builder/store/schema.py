"""The store's tables as ORM rows on one declarative base, `_Base`, whose metadata the Alembic
migrations are checked against; and the review and seed states and constants the rows hold."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISPUTED = "disputed"  # reviewers disagree: an admin adjudicates


# The reason recorded on approvals given with `review approve --all`: a release card says so.
BULK_APPROVAL_REASON = "bulk approval (--all): no item was looked at"


def _now() -> datetime:
    return datetime.now(UTC)


class _Base(DeclarativeBase):
    pass


class ItemRow(_Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seed_id: Mapped[str] = mapped_column(String(128), index=True)
    category: Mapped[str] = mapped_column(String(64))
    relation: Mapped[str] = mapped_column(String(64), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ReviewRow(_Base):
    __tablename__ = "reviews"
    # reviewers are handed the oldest pending items: walk this index instead of sorting the queue
    __table_args__ = (Index("reviews_queue_order", "state", "queued_at", "item_id"),)

    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default=ReviewState.PENDING)
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RenderRow(_Base):
    """Render cache: a render key (backend, settings, text) -> the content-addressed file."""

    __tablename__ = "renders"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    renderer: Mapped[str] = mapped_column(Text, default="")
    file: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    phash: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    license: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)


class EmbeddingRow(_Base):
    """Text embeddings keyed by sha256(model, text): a text is encoded once, whatever item has it."""

    __tablename__ = "text_embeddings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ModelTextColumns:
    """A model's text under a cache key: the columns of the two tables that keep them."""

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ResponseRow(ModelTextColumns, _Base):
    """Model answers keyed by (model, template version, rendered request): reruns replay them."""

    __tablename__ = "llm_responses"


class AnswerRow(ModelTextColumns, _Base):
    """Testers' answers, keyed like a response cache by (tester model, prompt, images' sha256,
    settings): kept for reviewers and reruns, never written to a release, deleted by
    `mirbench answers purge`. `measurements`: what an in-process tester measured while it
    answered (attention entropy), as JSON; None for testers that measure nothing."""

    __tablename__ = "attack_answers"

    measurements: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class RunRow(_Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    settings: Mapped[str] = mapped_column(Text)
    stats: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A run that died unfinished, and the run that resumed its work.
    superseded_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RunItemRow(_Base):
    """One item that one build run planned, retried or ran a stage on (run-scoped reports)."""

    __tablename__ = "run_items"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class TaskRecordRow(_Base):
    """What one orchestrated task reported when it finished (its stage stats)."""

    __tablename__ = "task_records"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64))
    stats: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ReleaseColumns:
    """A release's version, folder, size and manifest hash: the columns of a written release
    and of one being written."""

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    location: Mapped[str] = mapped_column(Text)
    items: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))


class ReleaseRow(ReleaseColumns, _Base):
    """A written release; versions are immutable."""

    __tablename__ = "releases"


class ReleaseIntentRow(ReleaseColumns, _Base):
    """A release being written: its manifest hash, recorded before its folder is moved into place."""

    __tablename__ = "release_intents"


class ReviewerRow(_Base):
    """A person who reviews; logs in with a token that is stored only as its sha256."""

    __tablename__ = "reviewers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DecisionRow(_Base):
    """Append-only log of review decisions; a changed vote supersedes (never deletes) the old one."""

    __tablename__ = "decisions"
    __table_args__ = (
        # at most one active vote per reviewer and item, whatever the race
        Index(
            "one_active_vote",
            "item_id",
            "reviewer",
            unique=True,
            postgresql_where=text("NOT superseded AND kind = 'vote'"),
            sqlite_where=text("NOT superseded AND kind = 'vote'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(32), index=True)
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)


class LeaseRow(_Base):
    """An item shown to a reviewer is theirs until `expires_at`; `skipped` keeps it from them."""

    __tablename__ = "leases"

    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)


class ReviewSessionRow(_Base):
    """A logged-in browser: the cookie holds a random token, the store only its sha256."""

    __tablename__ = "review_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    csrf: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CalibrationRow(_Base):
    """One judge's agreement with people on one label set (`mirbench judge calibrate`)."""

    __tablename__ = "judge_calibrations"
    __table_args__ = (Index("ix_judge_calibrations_config_hash", "config_hash", "task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    judge: Mapped[str] = mapped_column(String(256))
    judge_version: Mapped[str] = mapped_column(String(256))
    config_hash: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    # The judge's classes counted as positive, comma-separated: `unsafe`, `unsafe,unknown` (the
    # acceptance policy's success) or `refusal`.
    positive_classes: Mapped[str] = mapped_column(String(64))
    label_set: Mapped[str] = mapped_column(String(256))
    label_set_hash: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer)
    kappa: Mapped[float | None] = mapped_column(Float, nullable=True)
    f1: Mapped[float] = mapped_column(Float)
    report: Mapped[str] = mapped_column(Text)  # the whole JudgeCalibration, as JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


SEED_ID_PREFIX = "sd-"  # seed ids share the review tables with item ids: never confused


class SeedState(StrEnum):
    IMPORTED = "imported"  # not triaged yet
    ALIAS = "alias"  # a near-duplicate of another seed (`alias_of`)
    ACCEPTED = "accepted"  # in one of the categories, by triage agreement or by people
    OUT_OF_SCOPE = "out_of_scope"  # both opinions say it fits no category
    PENDING = "pending"  # waiting for human curation
    DISPUTED = "disputed"  # reviewers disagree: an admin adjudicates
    REJECTED = "rejected"  # rejected by people


class SeedRow(_Base):
    """A seed imported from a public source (seed curation): its provenance, both triage
    opinions and its curation state. Votes, leases and the audit trail are the item review's own
    tables (`decisions`, `leases`), keyed by the seed's id."""

    __tablename__ = "seed_candidates"
    __table_args__ = (
        Index("seed_source_key", "source", "source_id", unique=True),
        Index("seed_queue_order", "state", "imported_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(256))
    revision: Mapped[str] = mapped_column(String(128))
    license: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    labels: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: the source's own labels
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    alias_of: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    alias_similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    mapped_category: Mapped[str | None] = mapped_column(String(64), nullable=True)  # opinion (a)
    # Why opinion (a) is what it is: the index of the source profile's rule that matched, whether
    # a label or the text matched it, and what matched (the label, or the words of the seed).
    mapped_rule: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mapped_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # label, text, label+text
    mapped_match: Mapped[str | None] = mapped_column(Text, nullable=True)
    llm_category: Mapped[str | None] = mapped_column(String(64), nullable=True)  # opinion (b)
    llm_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    llm_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    llm_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the curated category
    key_phrase: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=SeedState.IMPORTED)
    decided_by: Mapped[str | None] = mapped_column(Text, nullable=True)  # "triage" or reviewers
    # Why triage left the seed in its state (builder.curation.triage.TriageReason's values).
    triage_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class SeedVoteEditRow(_Base):
    """What a reviewer's accepting vote on a seed changes: the category and/or the key phrase."""

    __tablename__ = "seed_vote_edits"

    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_phrase: Mapped[str | None] = mapped_column(Text, nullable=True)


class LearnedFormatRow(_Base):
    """The structured-output format a server accepts, learned once per (base URL, model)."""

    __tablename__ = "llm_formats"

    base_url: Mapped[str] = mapped_column(String(512), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    structured_output: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)  # what the server answered to the better format
    learned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvaluationRunRow(_Base):
    """One `mirbench evaluate` run: the dataset it read (source, revision, content hash), its plan
    (targets, conditions, protocols, filters: no secrets) and, once finished, its summary. A
    rerun of the same plan resumes the latest unfinished run of that `plan_hash`."""

    __tablename__ = "evaluation_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_hash: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(Text)  # JSON: source, revision, rows hash, items
    plan: Mapped[str] = mapped_column(Text)  # JSON: what the run asks and judges
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: counts, never answers


class EvaluationItemRow(_Base):
    """An item one evaluation run asks about, as loaded from its dataset (an `Item` as JSON)."""

    __tablename__ = "evaluation_items"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    relation: Mapped[str] = mapped_column(String(64))
    num_images: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class EvaluationResponseRow(_Base):
    """One target's response to one item under one condition. The response's text lives in the
    answers table under `answer_key` (the target's own cache key, known before asking); this row
    holds what may be reported: its state, how its trace split, and measurements (token counts;
    other figures a target reports, such as attention entropy)."""

    __tablename__ = "evaluation_responses"
    __table_args__ = (
        Index("evaluation_response_key", "run_id", "target", "item_id", "condition", unique=True),
        Index("evaluation_response_state", "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    item_id: Mapped[str] = mapped_column(String(128))
    condition: Mapped[str] = mapped_column(String(32))
    answer_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # pending | answered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # the error, never an answer
    trace: Mapped[str | None] = mapped_column(String(16), nullable=True)  # none | closed | unclosed
    trace_markers: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the marker set found
    measurements: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: usage, attention entropy
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvaluationVerdictRow(_Base):
    """One protocol's verdict on one part (answer, trace, full) of one response, with the judge's
    name, version and config hash (which finds its calibration). `rationale` may quote the
    response: `mirbench answers purge` clears it."""

    __tablename__ = "evaluation_verdicts"

    response_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    protocol: Mapped[str] = mapped_column(String(32), primary_key=True)
    part: Mapped[str] = mapped_column(String(16), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))  # judged | failed | unclosed
    label: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the judge's class
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    unsafe: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    judge: Mapped[str] = mapped_column(String(256))
    judge_version: Mapped[str] = mapped_column(String(256))
    judge_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rationale: Mapped[str] = mapped_column(Text, default="")
    failure_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    judged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
