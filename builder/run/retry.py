"""Faults a second try can fix: a dropped database connection, a database restarting, a busy
file. The build retries them, boundedly and with a report, at two levels: Prefect retries a
task (`transient_state`), and the flow's own store calls between tasks go through `steady`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError

from builder.core.errors import SystemFault

_log = logging.getLogger("builder.build")
P = ParamSpec("P")
R = TypeVar("R")
ATTEMPTS = 3
DELAY_SECONDS = 2.0


# OSErrors that a second try cannot fix: a missing or forbidden path is bad input.
_NOT_TRANSIENT = (
    FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError | FileExistsError
)


def transient(error: BaseException) -> bool:
    """A fault of the connection or the database server, or a busy file; not a bug, bad input
    (a missing or forbidden path), or a fault that has already been waited out (a SystemFault)."""
    if isinstance(error, SystemFault | _NOT_TRANSIENT):
        return False
    return isinstance(error, OperationalError | ConnectionError | TimeoutError | OSError)


def transient_state(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry a task whose failure was transient."""
    try:
        state.result()
    except Exception as error:
        return transient(error)
    return False


def steady(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`call(...)`, tried up to ATTEMPTS times while it fails transiently (each retry logged).
    For idempotent steps only."""
    for attempt in range(1, ATTEMPTS):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not transient(error):
                raise
            first_line = next(iter(str(error).strip().splitlines()), type(error).__name__)
            name = getattr(call, "__name__", "a step")
            _log.warning(
                "%s failed (%s); retry %d of %d in %.0f s",
                name,
                first_line,
                attempt,
                ATTEMPTS - 1,
                DELAY_SECONDS,
            )
            time.sleep(DELAY_SECONDS)
    return call(*args, **kwargs)
