"""Two kinds of retry. Across builds: a failed item comes back while it has attempts left
(`max_attempts`), then stays failed. Within a build: Prefect retries a stage's task only for a
transient error (`transient_state`), never for a bug or bad input. Real Prefect flows and tasks on the
session's Prefect server; the failing backend is the benign-alone check pointed at a closed port
on 127.0.0.1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect import flow, task
from sqlalchemy.exc import IntegrityError, OperationalError

from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus
from tests.helpers import all_items
from tests.servers import free_port


@pytest.fixture(autouse=True)
def _prefect(prefect_api_url: str) -> None:
    """Every flow here runs against the session's real Prefect server."""


def _only_item(settings: Settings) -> Item:
    (item,) = all_items(settings.resolved_database_url)
    return item


def test_a_failed_item_is_retried_while_attempts_are_left(tmp_path: Path) -> None:
    from flows.build import build

    unreachable = {
        "name": "benign_alone",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "model": "classifier",
        "max_retries": 0,
        "timeout": 2.0,
    }
    settings = Settings(
        artifacts=tmp_path / "artifacts",
        relations=["analogy"],
        renderer={"size": 64},
        filters=["structural", "leakage", unreachable],
        max_iterations=1,
        max_attempts=2,
    )
    build(settings=settings, limit=1)
    first = _only_item(settings)
    assert first.status is ItemStatus.FAILED and first.failures == [] and first.attempts == 1
    assert (first.rejection.name, first.rejection.reason) == ("filters", "classifier gave no answer")

    build(settings=settings, limit=1)  # an attempt is left: the filters stage tries it again
    second = _only_item(settings)
    assert second.id == first.id and second.status is ItemStatus.FAILED and second.attempts == 2
    assert [(f.name, f.reason) for f in second.failures] == [("filters", "classifier gave no answer")]

    build(settings=settings, limit=1)  # none left: it stays as it was
    third = _only_item(settings)
    assert third.status is ItemStatus.FAILED and third.failures == second.failures
    assert third.verdicts == second.verdicts

    more = settings.model_copy(update={"max_attempts": 3})
    build(settings=more, limit=1)  # the limit is the setting: one more allowed, one more taken
    fourth = _only_item(more)
    assert fourth.status is ItemStatus.FAILED and fourth.attempts == 3 and len(fourth.failures) == 2


def test_the_stage_task_retries_on_transient_errors() -> None:
    from builder.run.retry import transient_state
    from flows.build import run_stage

    assert run_stage.retry_condition_fn is transient_state and run_stage.retries >= 1


def _sqlalchemy(kind: type[Exception]) -> Callable[[], Exception]:
    return lambda: kind("UPDATE items SET status = 'rendered'", {}, Exception("server closed the connection"))


RAISES: dict[str, Callable[[], Exception]] = {
    "connection refused": lambda: ConnectionRefusedError("connection refused"),
    "connection reset": lambda: ConnectionResetError("reset by peer"),
    "timeout": lambda: TimeoutError("timed out"),
    "busy file": lambda: BlockingIOError("resource temporarily unavailable"),
    "database gone": _sqlalchemy(OperationalError),
    "bug": lambda: ValueError("a bug"),
    "missing key": lambda: KeyError("slot"),
    "bad input": lambda: InputError("unknown category", path="seeds.jsonl", line=3),
    "constraint": _sqlalchemy(IntegrityError),
    "gpu fell over": lambda: RuntimeError("the GPU fell over"),
    "missing file": lambda: FileNotFoundError(2, "No such file or directory", "seeds.jsonl"),
    "forbidden file": lambda: PermissionError(13, "Permission denied", "artifacts/images"),
}
TRANSIENT = {"connection refused", "connection reset", "timeout", "busy file", "database gone"}
calls: Counter[str] = Counter()


@pytest.mark.parametrize("kind", list(RAISES))
def test_transient_errors_are_retried_and_others_are_not(kind: str) -> None:
    from builder.run.retry import transient_state

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=transient_state)
    def fails(kind: str) -> None:
        calls[kind] += 1
        raise RAISES[kind]()

    @flow
    def one_task(kind: str) -> None:
        fails(kind)

    assert one_task(kind, return_state=True).is_failed()
    assert calls[kind] == (3 if kind in TRANSIENT else 1)


def test_a_transient_error_that_clears_lets_the_task_finish() -> None:
    from builder.run.retry import transient_state

    tries: list[int] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=transient_state)
    def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionResetError("reset by peer")
        return "done"

    @flow
    def one_task() -> str:
        return flaky()

    assert one_task() == "done" and len(tries) == 2
