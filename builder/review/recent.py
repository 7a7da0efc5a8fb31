"""Answers a server process looked up lately, kept for a few seconds: most requests then need
no store round trip for what rarely changes (who is asking, how far the queue has got). The
store stays the truth: an answer lives `seconds` at most, and a change made through this
process drops it at once (`forget`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Recent:
    """Answers by key, each trusted for `seconds` after it was looked up (0: never kept).
    A lookup that finds nothing (None) is not kept: it is asked again next time."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._seen: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, look_up: Callable[[str], Any]) -> Any:
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.seconds:
            return seen[1]
        found = look_up(key)
        with self._lock:
            if len(self._seen) > 10_000:  # expired entries of keys no longer asked for
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.seconds}
            if found is not None and self.seconds > 0:
                self._seen[key] = (now, found)
        return found

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)
