"""Progress reporting for long stages, decoupled from any display.

Stages call `advance = track("render", total)` and then `advance(n)`. The CLI installs a rich
display with `use_reporter`; elsewhere (tests, library use) reporting is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def start(self, stage: str, total: int) -> Callable[[int], None]: ...


class _Silent:
    def start(self, stage: str, total: int) -> Callable[[int], None]:
        return lambda n=1: None


_reporter: Reporter = _Silent()


def track(stage: str, total: int) -> Callable[[int], None]:
    return _reporter.start(stage, total)


@contextmanager
def use_reporter(reporter: Reporter) -> Iterator[None]:
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous
