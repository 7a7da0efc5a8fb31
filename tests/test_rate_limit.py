"""A target's (or any model client's) `requests_per_minute`: requests start evenly spaced, and the
setting says where and how fast a judge runs, not what it decides (its config hash ignores it).
The clock is the test's own, so nothing here waits or times anything."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from builder.models import replies
from builder.stages.judge import Judge, judges
from builder.stages.judge import config_hash as judge_hash


def test_requests_start_evenly_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    monkeypatch.setattr(replies.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(replies.asyncio, "sleep", sleep)

    async def three() -> None:
        pace = replies.Pace(30)  # one request every 2 s
        for _ in range(3):
            await pace.wait()
        now[0] += 10  # a quiet spell: the next one starts at once
        await pace.wait()
        await replies.Pace(None).wait()  # no limit: no wait

    asyncio.run(three())
    assert slept == [0.0, 2.0, 4.0, 0.0]


def test_the_rate_limit_is_not_part_of_a_judges_config_hash() -> None:
    def hashed(**extra: object) -> str:
        settings = judges.parse({"backend": "llm", "model": "m", **extra})
        judge = SimpleNamespace(name="llm", version="v")  # identity() reads these two only
        return judge_hash(Judge.identity(judge, settings))  # type: ignore[arg-type]

    assert hashed() == hashed(requests_per_minute=60, concurrency=2)
    assert hashed() != hashed(temperature=0.5)
