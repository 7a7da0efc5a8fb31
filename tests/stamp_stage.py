"""A stage that is not part of mirbench: one module, added to the pipeline by an entry point
(`mirbench.stages`: `stamp = tests.stamp_stage:StampStage`) in tests/test_stage_plugin.py.

It runs after the filters, holds back the candidates of the relations it is given through the
environment and stamps the others with a passing verdict; its items get a status of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Self

from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage
from builder.stages.workspace import Workspace

HELD_BACK_ENV = "MIRBENCH_TEST_STAMP_HOLDS_BACK"  # comma-separated relation slugs
HELD_BACK = "relation held back"


class StampStage(Stage):
    name = "stamp"
    gives = ItemStatus.declare("stamped")
    after = "filters"

    def __init__(self, held_back: set[str]):
        self.held_back = held_back

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(set(filter(None, os.environ.get(HELD_BACK_ENV, "").split(","))))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        for item in items:
            if item.relation in self.held_back:
                item.reject(Verdict(name="stamp", version="1", passed=False, reason=HELD_BACK))
            else:
                item.verdicts.append(Verdict(name="stamp", version="1", passed=True))
                item.status = self.gives
