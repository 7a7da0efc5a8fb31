"""Stage `filters`: automatic checks every candidate must pass before people see it.

A filter is a registered backend, one module each in this package, with its settings beside
it. Like datatrove's filters, a subclass writes only `check(item)` (or `check_batch` when it
can judge many items at once); the stage runs the enabled filters in order, keeps every
verdict with the filter's name and version (its `stage` is `filters`), and rejects an item at
its first failed check (later filters do not run on it); the stage base counts rejections
by filter and reason, and the stage counts the items each check that is off let through.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Self

from builder.core.items import Item, ItemStatus, Verdict
from builder.core.registry import Backend, BackendSettings, Registry
from builder.core.stats import Outcome, StageOutput, StageStats
from builder.stages.base import Place, Stage

if TYPE_CHECKING:
    from builder.config.settings import Settings
    from builder.stages.base import BackendChoices
    from builder.stages.workspace import Workspace


class FilterSettings(BackendSettings):
    name: str


class Filter(Backend):
    version: ClassVar[str]
    Settings: ClassVar[type[FilterSettings]]

    @property
    def off_reason(self) -> str | None:
        """Why this check cannot run as configured (nothing to ask); None when it runs."""
        return None

    @abstractmethod
    def check(self, item: Item) -> Verdict:
        """This filter's verdict on one item."""

    def check_batch(self, items: list[Item]) -> list[Verdict]:
        """One verdict per item, in order; a filter that judges many items at once overrides it."""
        return [self.check(item) for item in items]

    def verdict(
        self, passed: bool, reason: str = "", detail: str = "", score: float | None = None
    ) -> Verdict:
        return Verdict(
            name=self.name, version=self.version, passed=passed, reason=reason, detail=detail, score=score
        )

    def skipped(self, why: str) -> Verdict:
        """The check is off (nothing configured to ask): neither passed nor failed."""
        return Verdict(
            name=self.name, version=self.version, passed=False, skipped=True, reason="off", detail=why
        )

    def unavailable(self, reason: str, detail: str = "") -> Verdict:
        """The check could not judge (its model did not answer): the item fails and is retried."""
        return Verdict(
            name=self.name, version=self.version, passed=False, reason=reason, detail=detail, error=True
        )


filters: Registry[Filter] = Registry("filter", __name__, group="mirbench.filters", key="name")


class FilterStage(Stage):
    name = "filters"
    gives = ItemStatus.PASSED

    def __init__(self, checks: list[Filter]):
        self.checks, self.backends = checks, tuple(checks)

    @classmethod
    def backend_choices(cls, settings: Settings) -> BackendChoices:
        return [(filters, settings.filters)]

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(workspace.backends(filters, workspace.settings.filters))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        alive = list(items)
        for check in self.checks:
            if not alive:
                break
            if check.off_reason is not None:  # recorded on every item, so the funnel can say so
                for item in alive:
                    item.verdicts.append(check.skipped(check.off_reason))
                stats.count(check.name, check.off_reason, len(alive), Outcome.UNCHECKED)
                continue
            survivors = []
            for item, verdict in zip(alive, check.check_batch(alive), strict=True):
                if verdict.passed:
                    item.verdicts.append(verdict)
                    survivors.append(item)
                elif verdict.error:  # the next build tries it again (up to max_attempts)
                    item.fail(self.name, verdict.reason, f"{verdict.name}: {verdict.detail}")
                else:
                    item.reject(verdict)
            alive = survivors
        for item in alive:
            item.status = self.gives


def filter_items(items: list[Item], checks: list[Filter]) -> StageOutput[Item]:
    """Run `checks` over items outside a build (tests, notebooks)."""
    return FilterStage(checks).run(items)
