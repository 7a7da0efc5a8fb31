"""Where a release is written before it becomes visible: `.NAME.partial` beside its `--out`.

A writer holds an advisory lock on its staging folder for as long as it writes, and the lock
dies with the process. So the next release to start can tell a staging folder that a killed
release left behind (unlocked, and no recorded intent points at it) from one another release
is writing right now, and removes only the former, as a build removes the `*.part` images
of a killed run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.core.errors import SystemFault, disk_full

SUFFIX = ".partial"


def staging_for(out: Path) -> Path:
    return out.parent / f".{out.name}{SUFFIX}"


@contextmanager
def writing(staging: Path) -> Iterator[Path]:
    """A fresh, locked `staging` folder; on any failure it is removed, and a full disk becomes
    a SystemFault naming the path (nothing of the release is kept)."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    handle = os.open(staging, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield staging
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if not disk_full(error):
            raise
        raise SystemFault(
            f"{error.filename or staging}: no space left on the device while writing the release; "
            "nothing was released: free some space and rerun"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(handle)


def remove_abandoned(folder: Path, keep: Iterable[Path]) -> list[Path]:
    """Remove the staging folders in `folder` that no writer holds and that are not in `keep`
    (the staging folders of recorded intents, which a rerun completes from)."""
    kept = {Path(path).resolve() for path in keep}
    removed = []
    for staging in sorted(folder.glob(f".*{SUFFIX}")) if folder.is_dir() else []:
        if not staging.is_dir() or staging.resolve() in kept or _held(staging):
            continue
        shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    return removed


def _held(staging: Path) -> bool:
    try:
        handle = os.open(staging, os.O_RDONLY)
    except OSError:
        return True  # gone, or not ours to judge
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False
