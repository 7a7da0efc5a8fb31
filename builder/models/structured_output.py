"""Structured output, negotiated per server: which way a client asks for one JSON object.

`json_schema` (OpenAI, vLLM) makes the server enforce the schema; `json_object` (+schema:
llama.cpp) asks for JSON; `prompt` only says the schema in the message (anything else). With
`auto` a client starts with `json_schema` and steps down when the server rejects it; the step
is remembered for the (base URL, model) in this process and, given a `FormatMemory`, in the
store (builder/models/formats.py), so later clients start with the format that works.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Literal, Protocol

StructuredOutput = Literal["auto", "json_schema", "json_object", "prompt"]
_DOWNGRADE: dict[str, StructuredOutput] = {"json_schema": "json_object", "json_object": "prompt"}

# (base URL, model) -> the format to start with: a server rejects a format once per process.
_learned: dict[tuple[str, str], StructuredOutput] = {}
_learned_lock = threading.Lock()


class FormatMemory(Protocol):
    """Where the format a server accepts outlives the process (the store)."""

    def learned_format(self, base_url: str, model: str) -> StructuredOutput | None: ...

    def learn_format(self, base_url: str, model: str, output: StructuredOutput, reason: str) -> None: ...


class Negotiation:
    """The format one client asks its server for, and whether a request in it got through
    (until then, the client lets one request probe it while the others wait)."""

    def __init__(self, setting: StructuredOutput, base_url: str, model: str, memory: FormatMemory | None):
        self.setting, self.key, self.memory = setting, (base_url, model), memory
        self.mode: StructuredOutput = "json_schema" if setting == "auto" else setting
        self.negotiated = setting != "auto"
        self._lock = threading.Lock()

    def recall(self) -> None:
        """Start from the format this process or the store learned for the server."""
        if self.negotiated:
            return
        with _learned_lock:
            known = _learned.get(self.key)
        if known is None and self.memory is not None:
            known = self.memory.learned_format(*self.key)
        if known is not None:
            self.mode, self.negotiated = known, True

    @staticmethod
    def options(
        messages: list[dict[str, Any]], schema: dict[str, Any], mode: StructuredOutput
    ) -> dict[str, Any]:
        """The chat request's messages and response format for `mode`."""
        messages = list(messages)
        options: dict[str, Any] = {}
        if mode == "json_schema":
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": False},
            }
        elif mode == "json_object":
            options["response_format"] = {"type": "json_object", "schema": schema}
        if mode != "json_schema":  # tell the model the shape when the server cannot enforce it all
            messages[-1] = {
                **messages[-1],
                "content": messages[-1]["content"]
                + "\n\nAnswer with one JSON object only, matching this JSON schema:\n"
                + json.dumps(schema),
            }
        return {"messages": messages, **options}

    @staticmethod
    def rejected(exc: Any) -> bool:
        """Whether a failed call is the server refusing the response format."""
        if not hasattr(exc, "status_code"):
            return False
        text = str(getattr(exc, "message", "")) + str(getattr(exc, "body", ""))
        return exc.status_code in (400, 422, 500) and ("response_format" in text or "json_schema" in text)

    def step_down(self, mode: StructuredOutput, exc: Any) -> bool:
        """Take the next format after the server rejected `mode`, and remember it (in this
        process and, given a FormatMemory, in the store); False when there is none to take."""
        if self.setting != "auto" or mode not in _DOWNGRADE:
            return False
        with self._lock:
            if self.mode != mode:
                return True  # another request already stepped down
            learned = self.mode = _DOWNGRADE[mode]
        with _learned_lock:
            _learned[self.key] = learned
        if self.memory is not None:
            reason = f"HTTP {getattr(exc, 'status_code', '?')} on {mode}"
            self.memory.learn_format(*self.key, learned, reason)
        return True
