"""The store's seed tables: imported seeds with their provenance, triage opinions and curation
state, and the edits reviewers attach to their votes. Votes, leases and the audit trail are the
item review's own tables (`decisions`, `leases`), keyed by the seed's id."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from builder.store import _Base

SEED_ID_PREFIX = "sd-"  # seed ids share the review tables with item ids: never confused


class SeedState(StrEnum):
    IMPORTED = "imported"  # not triaged yet
    ALIAS = "alias"  # a near-duplicate of another seed (`alias_of`)
    ACCEPTED = "accepted"  # in one of the categories, by triage agreement or by people
    OUT_OF_SCOPE = "out_of_scope"  # both opinions say it fits no category
    PENDING = "pending"  # waiting for human curation
    DISPUTED = "disputed"  # reviewers disagree: an admin adjudicates
    REJECTED = "rejected"  # rejected by people


def _now() -> datetime:
    return datetime.now(UTC)


class SeedRow(_Base):
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
    llm_category: Mapped[str | None] = mapped_column(String(64), nullable=True)  # opinion (b)
    llm_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    llm_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    llm_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the curated category
    key_phrase: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=SeedState.IMPORTED)
    decided_by: Mapped[str | None] = mapped_column(Text, nullable=True)  # "triage" or reviewers


class SeedVoteEditRow(_Base):
    """What a reviewer's accepting vote changes: the category and/or the key phrase."""

    __tablename__ = "seed_vote_edits"

    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_phrase: Mapped[str | None] = mapped_column(Text, nullable=True)
