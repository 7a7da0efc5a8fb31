"""The structured-output format each server accepts, learned once and kept in the store.

`builder/llm.py` steps down from `json_schema` when a server rejects it (llama.cpp answers 500);
this table remembers the step-down per (base URL, model), so later builds start with the format
that works and every judgement costs one request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from builder.llm import StructuredOutput
from builder.store import Store, _Base


class LearnedFormatRow(_Base):
    __tablename__ = "llm_formats"

    base_url: Mapped[str] = mapped_column(String(512), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    structured_output: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)  # what the server answered to the better format
    learned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoredFormats:
    """A FormatMemory (see builder.llm) backed by the store."""

    def __init__(self, store: Store):
        self.store = store

    def learned_format(self, base_url: str, model: str) -> StructuredOutput | None:
        with Session(self.store.engine) as session:
            row = session.get(LearnedFormatRow, (base_url, model))
        if row is None or row.structured_output not in get_args(StructuredOutput):
            return None
        return row.structured_output  # type: ignore[return-value]

    def learn_format(self, base_url: str, model: str, output: StructuredOutput, reason: str) -> None:
        row = {
            "base_url": base_url,
            "model": model,
            "structured_output": output,
            "reason": reason,
            "learned_at": datetime.now(UTC),
        }
        with Session(self.store.engine) as session, session.begin():
            self.store._upsert(session, LearnedFormatRow.__table__, [row], ["base_url", "model"])
