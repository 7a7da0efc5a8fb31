"""The structured-output format each server accepts, learned once and kept in the store.

`builder/models/structured_output.py` steps down from `json_schema` when a server rejects it
(llama.cpp answers 500); the store's `llm_formats` table remembers the step-down per (base URL,
model), so later builds start with the format that works and every judgement costs one request.
"""

from __future__ import annotations

from typing import get_args

from builder.models.llm import StructuredOutput
from builder.store import Store


class StoredFormats:
    """A FormatMemory (see builder.models.llm) backed by the store."""

    def __init__(self, store: Store):
        self.store = store

    def learned_format(self, base_url: str, model: str) -> StructuredOutput | None:
        known = self.store.learned_format(base_url, model)
        if known not in get_args(StructuredOutput):
            return None  # none learned, or one this version does not know
        return known  # type: ignore[return-value]

    def learn_format(self, base_url: str, model: str, output: StructuredOutput, reason: str) -> None:
        self.store.learn_format(base_url, model, output, reason)
