"""What every fault test measures: the items of a build that met a fault, against those of an
uninterrupted build, as lost, doubled and different counts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from builder.config.settings import Settings
from builder.core.items import Item
from tests.helpers import snapshot


@dataclass(frozen=True)
class Differences:
    lost: int  # in the uninterrupted build, not here
    doubled: int  # here twice, or here and not in the uninterrupted build
    different: int  # here with another status, prompt, rejection or pictures

    @property
    def none(self) -> bool:
        return self.lost == self.doubled == self.different == 0


def differences(items: list[Item], reference: list[Item]) -> Differences:
    counts = Counter(item.id for item in items)
    expected = {row[0]: row for row in snapshot(reference)}
    found = {row[0]: row for row in snapshot(items)}
    return Differences(
        lost=len(expected.keys() - found.keys()),
        doubled=sum(n - 1 for n in counts.values()) + len(found.keys() - expected.keys()),
        different=sum(1 for key in expected.keys() & found.keys() if expected[key] != found[key]),
    )


def mirbench(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The real CLI in a child process (output and errors together), with Prefect's logging as
    a user has it (the test session turns it up)."""
    inherited = {key: value for key, value in os.environ.items() if key != "PREFECT_LOGGING_LEVEL"}
    return subprocess.Popen(
        [sys.executable, "-c", "from builder.cli import run; run()", *map(str, args)],
        env={**inherited, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    output = process.communicate(timeout=timeout)[0]
    return process.returncode, output


def artifacts_env(artifacts: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {"MIRBENCH_ARTIFACTS": str(artifacts), "MIRBENCH_DATABASE_URL": database_url, **extra}


# The build every fault test runs: every relation of the bundled taxonomy for LIMIT seeds, in
# shards of SHARD items, so that a fault lands among many tasks.
LIMIT = 4
SHARD = 4
BUILD_ENV = {"MIRBENCH_RENDERER__SIZE": "96", "MIRBENCH_SHARD_SIZE": str(SHARD)}


def build_settings(artifacts: Path, database_url: str | None = None, **extra: object) -> Settings:
    return Settings(
        artifacts=artifacts, database_url=database_url, renderer={"size": 96}, shard_size=SHARD, **extra
    )
