"""What an LLM client keeps of a reply beside its text, and how fast it may ask.

A text answer's *details*: the extra text fields of the message (a reasoning trace a server
returns apart: `reasoning_content`, `reasoning`), its token usage and its finish reason, cached
beside the answer under `details_key` (in the answers table, so they are purged with it).
`Pace` spaces the requests of one client evenly to honour a requests-per-minute limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from builder.store.caches import DETAILS_SUFFIX

__all__ = ["DETAILS_SUFFIX", "Pace", "details", "details_key"]


def details_key(key: str) -> str:
    """Where the details of the text answer cached under `key` are cached."""
    return hashlib.sha256(f"{key}\x1fdetails".encode()).hexdigest()


def details(completion: Any, choice: Any) -> dict[str, Any]:
    """A reply's extra text fields, token usage and finish reason."""
    usage = getattr(completion, "usage", None)
    counts = {
        name: getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    counts["reasoning_tokens"] = getattr(
        getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None
    )
    message = getattr(choice, "message", None)
    extra = (getattr(message, "model_extra", None) or {}) if message is not None else {}
    return {
        "usage": {name: value for name, value in counts.items() if isinstance(value, int)},
        "finish_reason": getattr(choice, "finish_reason", None),
        "fields": {name: value for name, value in extra.items() if isinstance(value, str) and value},
    }


class Pace:
    """At most `per_minute` requests started per minute, evenly spaced (None: no limit)."""

    def __init__(self, per_minute: float | None):
        self.gap = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.gap:
            return
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.gap
        await asyncio.sleep(start - now)
