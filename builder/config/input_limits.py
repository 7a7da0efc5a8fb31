"""Size limits on user data files: generous for real data, a clear error for runaway input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InputLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_query_chars: int = Field(2_000, ge=1, description="Longest seed question, in characters.")
    max_record_chars: int = Field(
        100_000,
        ge=1,
        description="Longest record of a seed or caption file (a JSONL line, a CSV row or field).",
    )
