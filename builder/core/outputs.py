"""Where a command writes what it makes: a new folder (`--out`) or a new file (`--json`), never
over something that holds data, and never half of it.

Every writing command checks its targets before it does any work (`check_new_folder`,
`check_new_file`), so a refusal is exit 2 with nothing written: a target that is a non-empty
folder (the store's own folder, say), a file where a folder goes (or the other way round), or a
place that cannot be created. Then it writes into a staging folder `.NAME.partial` beside the
target and renames the result into place in one step (`new_folder`, `new_file`, or, for the
release, which also records its intent in the store, `writing` and `move_into_place`); a
failure removes the staging folder, and a full disk is a SystemFault naming the path.

A writer holds an advisory lock on its staging folder for as long as it writes, and the lock
dies with the process. So the next writer can tell a staging folder that a killed command left
behind (unlocked) from one another command is writing right now (refused, or, beside a
release, left alone), and removes only the former, as a build removes the `*.part` images of a
killed run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.core.errors import InputError, SystemFault, disk_full

SUFFIX = ".partial"
SHOWN_ENTRIES = 3  # a non-empty folder's refusal names this many of its entries


def staging_for(out: Path) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}{SUFFIX}"


def check_new_folder(out: Path, option: str = "--out", what: str = "the folder") -> Path:
    """`out` as an absolute path, if a command may write a new folder there: nothing there, or
    an empty folder. Anything else is an InputError naming it (nothing is ever written over)."""
    out = Path(out).absolute()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"{option} is a file; give a folder that does not exist or is empty", path=out)
    if out.is_dir():
        entries = sorted(entry.name for entry in out.iterdir())
        if entries:
            shown = ", ".join(entries[:SHOWN_ENTRIES]) + (", ..." if len(entries) > SHOWN_ENTRIES else "")
            raise InputError(
                f"{what} is not empty (it holds {shown}); choose a new {option} (nothing is written over)",
                path=out,
            )
    _check_creatable(out, option)
    return out


def check_new_file(path: Path, option: str) -> Path:
    """`path` as an absolute path, if a command may write a new file there: nothing there, or
    an empty file. Anything else is an InputError naming it."""
    path = Path(path).absolute()
    if path.is_dir():
        raise InputError(f"{option} is a folder; give the path of a new file", path=path)
    if path.is_symlink() or (path.exists() and (not path.is_file() or path.stat().st_size)):
        raise InputError(
            f"{option} exists and is not empty; choose a new file (nothing is written over)", path=path
        )
    _check_creatable(path, option)
    return path


def check_work_folder(folder: Path, option: str = "--artifacts") -> Path:
    """`folder` as an absolute path, if a command may work in it: a folder it may write in, or
    one it can create (the artifacts folder of a build, say, which it fills over many runs)."""
    folder = Path(folder).absolute()
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise InputError(f"{option} is a file, not a folder", path=folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"{option}: no permission to write in this folder", path=folder)
        return folder
    _check_creatable(folder, option)
    return folder


def _check_creatable(path: Path, option: str) -> None:
    """The nearest existing folder above `path` is a folder this process may write in."""
    for ancestor in path.parents:
        if not (ancestor.exists() or ancestor.is_symlink()):
            continue
        if not ancestor.is_dir():
            raise InputError(f"cannot create {option}: {ancestor} is a file, not a folder", path=path)
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise InputError(f"cannot create {option}: no permission to write in {ancestor}", path=path)
        return


@contextmanager
def writing(staging: Path, what: str = "the output") -> Iterator[Path]:
    """A fresh staging folder, locked for as long as the block runs; on any failure it is
    removed, and a full disk becomes a SystemFault naming the path (nothing is kept)."""
    staging.parent.mkdir(parents=True, exist_ok=True)
    handle = _lock_fresh(staging)
    try:
        yield staging
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if not disk_full(error):
            raise
        raise SystemFault(
            f"{error.filename or staging}: no space left on the device while writing {what}; "
            "nothing was written: free some space and rerun"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(handle)


def _lock_fresh(staging: Path) -> int:
    """Lock `staging` (made if missing) and empty it; an InputError if another process holds it.
    Nobody removes a staging folder without holding its lock, so once the lock is ours and the
    path still names the folder we locked, its content is ours to clear."""
    for _ in range(3):
        staging.mkdir(exist_ok=True)
        handle = os.open(staging, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            target = staging.parent / staging.name.removeprefix(".").removesuffix(SUFFIX)
            raise InputError(
                "another command is writing here right now; wait for it, or choose another path", path=target
            ) from None
        if _same_folder(staging, handle):
            for entry in staging.iterdir():
                _remove(entry)
            return handle
        os.close(handle)  # removed (and perhaps made anew) while we waited: lock the new one
    raise SystemFault(f"{staging}: the staging folder keeps being replaced by another process")


def _same_folder(path: Path, handle: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        return False


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def move_into_place(staging: Path, out: Path) -> None:
    """The one step that makes a folder visible at `out`: a rename, which also replaces an
    empty folder there and fails if something else appeared meanwhile."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(out)
    except OSError as error:
        if out.exists() and not disk_full(error):
            raise InputError(
                "something appeared here while the command ran; nothing was written over: rerun with "
                "a new path",
                path=out,
            ) from None
        raise


@contextmanager
def new_folder(out: Path, option: str = "--out", what: str = "the folder") -> Iterator[Path]:
    """Write a new folder at `out`: the block fills the staging folder it is given, which
    becomes `out` when the block ends without error (and is removed when it does not)."""
    out = check_new_folder(out, option, what)
    staging = staging_for(out)
    with writing(staging, f"{option} {out}"):
        yield staging
        move_into_place(staging, out)


@contextmanager
def new_file(path: Path, option: str) -> Iterator[Path]:
    """Write a new file at `path`: the block writes the file it is given (inside a staging
    folder), which becomes `path` when the block ends without error."""
    path = check_new_file(path, option)
    staging = staging_for(path)
    with writing(staging, f"{option} {path}"):
        written = staging / path.name
        yield written
        try:
            written.rename(path)
        except IsADirectoryError:
            raise InputError(f"{option} became a folder while the command ran", path=path) from None
    staging.rmdir()


def write_new_file(path: Path, text: str, option: str) -> Path:
    with new_file(path, option) as written:
        written.write_text(text, encoding="utf-8")
    return Path(path).absolute()


def remove_abandoned(folder: Path, keep: Iterable[Path] = ()) -> list[Path]:
    """Remove the staging folders in `folder` that no writer holds and that are not in `keep`
    (a release's recorded intents, which a rerun completes from)."""
    kept = {Path(path).resolve() for path in keep}
    removed = []
    for staging in sorted(folder.glob(f".*{SUFFIX}")) if folder.is_dir() else []:
        if not staging.is_dir() or staging.is_symlink() or staging.resolve() in kept:
            continue
        try:
            handle = os.open(staging, os.O_RDONLY)
        except OSError:
            continue  # gone, or not ours to judge
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a writer holds it
        else:
            if _same_folder(staging, handle):
                shutil.rmtree(staging, ignore_errors=True)  # under our lock: no writer has it
                removed.append(staging)
        finally:
            os.close(handle)
    return removed
