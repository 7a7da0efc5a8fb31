"""A stage that is not part of mirbench: one module, added to the pipeline by an entry point
(`mirbench.stages`: `stamp = tests.stamp_stage:StampStage`) in tests/test_stage_plugin.py.

It runs between render and dedup with a settings section of its own (`stages.stamp`): it holds
back the candidates of the relations it is told to (`stages.stamp.holds_back`) and stamps the
others with a passing verdict; its items get a status of its own. It declares no funnel group,
so its rejections show where a check's do: under "rejected by filter or review".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage
from builder.stages.workspace import Workspace

HELD_BACK = "relation held back"


class StampSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holds_back: list[str] = Field(default_factory=list, description="Relation slugs to hold back.")
    version: str = Field("1", description="The stamp's version, recorded on every verdict.")


class StampStage(Stage):
    name = "stamp"
    gives = ItemStatus.declare("stamped")
    after = "render"
    Settings = StampSettings

    def __init__(self, settings: StampSettings):
        self.held_back, self.version = set(settings.holds_back), settings.version

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(cls.stage_settings(workspace.settings))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        for item in items:
            if item.relation in self.held_back:
                item.reject(Verdict(name="stamp", version=self.version, passed=False, reason=HELD_BACK))
            else:
                item.verdicts.append(Verdict(name="stamp", version=self.version, passed=True))
                item.status = self.gives
