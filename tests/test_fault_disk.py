"""A disk that fills up while rendering or releasing: a real tmpfs of a few MB, mounted by the
test (as root; skipped where mounting is not allowed). The command ends with a clean error
naming the path; no half-written image is kept as done and no release is marked written; once
space is freed, the rerun completes with exactly the items of an uninterrupted build."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.core.items import Item, ItemStatus
from builder.store import Store
from tests.fault_support import BUILD_ENV, LIMIT, artifacts_env, differences, finished, mirbench
from tests.helpers import all_items

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_disk() -> Iterator[Path]:
    """A 4 MB tmpfs for this module."""
    folder = Path(tempfile.mkdtemp(prefix="mirbench-small-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def _fill(disk: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the disk's free space."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def _complete(item: Item, artifacts: Path) -> bool:
    """Every picture of `item` is on disk, whole (its bytes hash to the recorded sha256)."""
    return all(
        slot.file is not None
        and (artifacts / slot.file).is_file()
        and hashlib.sha256((artifacts / slot.file).read_bytes()).hexdigest() == slot.sha256
        for slot in item.slots
    )


def test_a_disk_full_while_rendering_and_releasing_fails_clean_and_the_rerun_completes(
    small_disk: Path, uninterrupted_build: list[Item], tmp_path: Path, prefect_api_url: str
) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (small_disk / "images").mkdir()
    (artifacts / "images").symlink_to(small_disk / "images")  # the pictures live on the small disk
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = artifacts_env(artifacts, url, **BUILD_ENV, PREFECT_API_URL=prefect_api_url)

    filler = _fill(small_disk, leave=64 * 1024)
    code, output = finished(mirbench("build", "--limit", LIMIT, env=env))
    assert code == 1, output[-3000:]
    assert f"{artifacts}/images/" in output and "no space left on the device while rendering" in output
    assert "Traceback" not in output and "unexpected" not in output
    assert not list((small_disk / "images").rglob("*.part"))
    items = all_items(url)
    done = [item for item in items if item.status not in (ItemStatus.PLANNED, ItemStatus.COMPOSED)]
    assert len(done) < len(items)  # the disk really filled before the end
    assert all(_complete(item, artifacts) for item in done if item.status is not ItemStatus.FAILED)

    filler.unlink()
    code, output = finished(mirbench("build", "--limit", LIMIT, env=env))
    assert code == 0, output[-3000:]
    result = differences(all_items(url), uninterrupted_build)
    assert result.none, f"{result} after the disk was freed"

    approved = finished(mirbench("review", "approve", "--all", "--reviewer", "disk", env=env))
    assert approved[0] == 0, approved[1][-2000:]
    out = small_disk / "rel"
    filler = _fill(small_disk, leave=64 * 1024)
    code, output = finished(mirbench("release", "--version", "1.0.0", "--out", out, env=env))
    assert code == 1, output[-3000:]
    assert str(small_disk) in output and "no space left on the device while writing the release" in output
    assert "Traceback" not in output
    assert not out.exists() and not list(small_disk.glob(".*.partial"))
    with Store(url) as store:
        assert store.release("1.0.0") is None and store.release_intent("1.0.0") is None

    filler.unlink()
    code, output = finished(mirbench("release", "--version", "1.0.0", "--out", out, env=env))
    assert code == 0, output[-3000:]
    with Store(url) as store:
        recorded, approved_items = store.release("1.0.0"), store.approved_items()
    assert recorded is not None and recorded.items == len(approved_items) > 0
