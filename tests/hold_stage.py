"""A stage that is not part of mirbench, for fault tests: it holds its task until released, so
a test can kill the process running it at a moment it knows rather than one it guesses.

Added through the `mirbench.stages` entry point (`hold = tests.hold_stage:HoldStage`) of a
distribution the test writes to disk (`install`). It runs between render and dedup and passes
every item on unchanged. With `stages.hold.folder` set, each task writes `held-<pid>` there and
waits until the folder holds `released`; without it the stage only passes items on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict

from builder.core.items import Item, ItemStatus
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage
from builder.stages.workspace import Workspace

RELEASED = "released"
HELD_PREFIX = "held-"
# A held task gives up waiting after this long, so a test that never releases it still ends.
HOLD_LIMIT_S = 300.0


class HoldSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: Path | None = None


class HoldStage(Stage):
    name = "hold"
    gives = ItemStatus.declare("held")
    after = "render"
    Settings = HoldSettings

    def __init__(self, settings: HoldSettings):
        self.folder = settings.folder

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(cls.stage_settings(workspace.settings))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        if self.folder is not None and not (self.folder / RELEASED).exists():
            (self.folder / f"{HELD_PREFIX}{os.getpid()}").touch()
            deadline = time.monotonic() + HOLD_LIMIT_S
            while not (self.folder / RELEASED).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        for item in items:
            item.status = self.gives


def install(site: Path) -> Path:
    """Write the distribution whose entry point adds this stage, as pip would; put `site` on
    PYTHONPATH for the processes that should have the stage."""
    info = site / "hold_stage-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hold-stage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mirbench.stages]\nhold = tests.hold_stage:HoldStage\n")
    return site
