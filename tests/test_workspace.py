"""`Workspace.turn`: shards running in real threads take turns on a backend that is not
thread-safe, share one that is, and never deadlock when they name the same backends in another
order. The backends record how many threads use them at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from builder.config.settings import Settings
from builder.core.registry import Backend
from builder.stages.workspace import Workspace

SHARDS = 6


class Recorder(Backend):
    """A backend that counts its concurrent users (not registered: only `turn` sees it)."""

    name = "recorder"

    def __init__(self, thread_safe: bool):
        self.thread_safe = thread_safe  # type: ignore[misc]
        self._lock = threading.Lock()
        self.active = self.most = self.calls = 0

    def use(self, hold: float = 0.05) -> None:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.most = max(self.most, self.active)
        time.sleep(hold)  # long enough for the other shards to arrive if they are let in
        with self._lock:
            self.active -= 1


def _shards(workspace: Workspace, work) -> None:
    start = threading.Barrier(SHARDS)
    errors: list[BaseException] = []

    def shard(number: int) -> None:
        try:
            start.wait(timeout=10)
            work(number)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(n,)) for n in range(SHARDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a shard is stuck: deadlock"
    if errors:
        raise errors[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(Settings(artifacts=tmp_path))


def test_a_backend_that_is_not_thread_safe_serves_one_shard_at_a_time(workspace: Workspace) -> None:
    backend = Recorder(thread_safe=False)

    def work(_: int) -> None:
        with workspace.turn(backend):
            backend.use()

    _shards(workspace, work)
    assert (backend.calls, backend.most) == (SHARDS, 1)


def test_a_thread_safe_backend_is_shared(workspace: Workspace) -> None:
    """The recorder does see overlap when nothing stops it: every shard waits inside its turn
    until all are in (a barrier that only opens if `turn` lets them in together)."""
    backend = Recorder(thread_safe=True)
    inside = threading.Barrier(SHARDS)

    def work(_: int) -> None:
        with workspace.turn(backend):
            inside.wait(timeout=10)
            backend.use()

    _shards(workspace, work)
    assert backend.calls == SHARDS and backend.most > 1  # all were inside at once (the barrier)


def test_shards_naming_backends_in_any_order_take_turns_without_deadlock(workspace: Workspace) -> None:
    first, second, shared = Recorder(False), Recorder(False), Recorder(True)

    def work(number: int) -> None:
        backends = (first, shared, second) if number % 2 else (second, first, shared)
        with workspace.turn(*backends):
            for backend in backends:
                backend.use(0.01)

    _shards(workspace, work)
    assert (first.calls, first.most) == (second.calls, second.most) == (SHARDS, 1)
    assert shared.calls == SHARDS


def test_different_backends_do_not_wait_for_each_other(workspace: Workspace) -> None:
    """Each shard has its own non-thread-safe backend: all of them are in their turn at once."""
    backends = [Recorder(False) for _ in range(SHARDS)]
    inside = threading.Barrier(SHARDS)

    def work(number: int) -> None:
        with workspace.turn(backends[number]):
            inside.wait(timeout=10)

    _shards(workspace, work)  # a broken barrier (one global lock) raises here
