"""Errors that describe bad input (they name the file, line or item at fault) and faults of
the parts the system runs on."""

from __future__ import annotations

import errno
from pathlib import Path


class InputError(Exception):
    """A user-supplied file or value is invalid. The message is meant to be shown as is."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{location}{message}")


class InputErrors(InputError):
    """Several problems found in one pass, reported together so users fix them in one go."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(f"{len(errors)} problem(s) found:\n{lines}")


class SystemFault(Exception):
    """A part the system runs on failed, not the input: a full disk, a database that stays
    down, a Hub that keeps refusing. The message names the path or the service and is shown as
    is (exit 1); nothing half-done is kept as done, so a rerun resumes."""


def disk_full(error: OSError) -> bool:
    """Whether `error` is a full disk (or quota), also when a library such as pyarrow reports
    ENOSPC only in its message."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error)
