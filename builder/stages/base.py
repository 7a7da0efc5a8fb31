"""The shared base of every stage: what a stage declares about itself, and the work every
stage shares (stats, timing, progress, batching).

A stage declares, as class attributes, its `name`, the status it `gives` the items that pass
it, whether it needs the whole round at once (`whole_round`, dedup), whether it runs only
with testers (`needs_testers`, the attack loop) and where the candidates it ends show in a
build's funnel (`funnel_group`, `funnel_label`); `open` builds it, with its backends, from a
build's workspace. Which status it takes follows from its place in the pipeline
(builder/stages/pipeline.py): what the enabled stage before it gives.

A subclass writes only `process(batch, stats, advance)`; the base cuts the input into batches,
times the work, advances the stage's progress bar, stamps its name on the verdicts it added,
counts the final status of every item and the check and reason that ended each one it
rejected, failed or refused (a subclass adds its own counts, such as images rendered).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeAlias

from pydantic import BaseModel

from builder.core import progress
from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import Outcome, StageOutput, StageStats

if TYPE_CHECKING:
    # `Settings` in a stage's class body is the stage's own settings model (below)
    from builder.config.settings import Settings as BuildSettings
    from builder.core.registry import Backend, BackendSettings, Registry

    # The backends a stage drives: each registry with the settings entries that name them.
    BackendChoices: TypeAlias = list[tuple[Registry[Any], Sequence[BackendSettings]]]
    from builder.stages.workspace import Workspace
    from builder.store import Store


@dataclass(frozen=True)
class Place:
    """Where a stage sits in a build's pipeline."""

    takes: ItemStatus
    # The statuses of items that got past this stage and are still in play: what it gives and
    # what every later stage gives (dedup compares a round's candidates with those).
    onward: tuple[ItemStatus, ...]


class FunnelGroup(StrEnum):
    """Where the candidates a stage ends show in a build's funnel (builder/run/report.py). Every
    stage's failures show under `failed`, each by check and reason, and what passes every stage
    under `queued for review`; the group says what a stage's other endings mean."""

    # The stage makes candidates (compose, render): one it ends was never made, and the funnel's
    # made row (`funnel_label`) counts the candidates that got past every such stage.
    MADE = "made"
    # The stage checks candidates (dedup, the filters, the judge's policy, a plug-in): its
    # rejections are listed under its `funnel_label`, by check and reason.
    REJECTED = "rejected"


# What a stage that names no funnel row of its own rejects under (review's rejections too).
REJECTED_LABEL = "rejected by filter or review"
_ENDINGS = {
    ItemStatus.REJECTED: Outcome.REJECTED,
    ItemStatus.FAILED: Outcome.FAILED,
    ItemStatus.REFUSED: Outcome.REFUSED,
}


class Stage(ABC):
    name: ClassVar[str]
    gives: ClassVar[ItemStatus]
    funnel_group: ClassVar[FunnelGroup] = FunnelGroup.REJECTED
    funnel_label: ClassVar[str] = REJECTED_LABEL
    # The stage's own options: a pydantic model, read from `stages.<name>` of the settings (a
    # plug-in stage's too: `stage_settings(workspace.settings)` gives them, validated).
    Settings: ClassVar[type[BaseModel] | None] = None
    whole_round: ClassVar[bool] = False  # one task over the round's candidates, not shards
    needs_testers: ClassVar[bool] = False  # part of the attack loop: off without testers
    after: ClassVar[str | None] = None  # a plug-in stage: the stage it follows in the pipeline
    # Items per `process` call; None: the whole input at once (duplicates are a property of a set).
    batch_size: ClassVar[int | None] = 256
    # The backends this stage drives (the workspace gives each one that is not thread-safe to
    # one shard at a time).
    backends: tuple[Backend, ...] = ()

    @classmethod
    def enabled(cls, settings: BuildSettings) -> bool:
        return settings.attack.enabled or not cls.needs_testers

    @classmethod
    def stage_settings(cls, settings: BuildSettings) -> Any:
        """This stage's section of `settings` (`stages.<name>`); None when it declares none."""
        return settings.stages.section(cls.name) if cls.Settings is not None else None

    @classmethod
    def backend_choices(cls, settings: BuildSettings) -> BackendChoices:
        """The backends this stage drives with `settings`: each registry with the entries that
        name them. Their settings count in the config hash; their preflights run before a build."""
        return []

    @classmethod
    def decisive_settings(cls, settings: BuildSettings) -> Any:
        """What of `settings` decides this stage's work, as JSON (the config hash is made of the
        enabled stages' answers): its own section and its backends' settings."""
        own = cls.stage_settings(settings)
        backends = [entry for _, entries in cls.backend_choices(settings) for entry in entries]
        return {
            "settings": own.model_dump(mode="json") if own is not None else None,
            "backends": [entry.model_dump(mode="json") for entry in backends],
        }

    @classmethod
    def preflight(cls, settings: BuildSettings) -> list[str]:
        """Check, before a build starts work, what this stage and its backends need (a pool on
        disk, a compatible policy): raise `InputError` for what would fail; return notes worth
        showing. `run.prepare` calls it for every enabled stage; by default it runs each chosen
        backend class's `preflight` once."""
        notes = []
        for registry, entries in cls.backend_choices(settings):
            classes = dict.fromkeys(registry.get(getattr(entry, registry.key)) for entry in entries)
            notes += [note for backend in classes for note in backend.preflight(settings)]
        return notes

    @classmethod
    @abstractmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        """This stage for one build, its backends opened through `workspace`."""

    def run(self, items: list[Item]) -> StageOutput[Item]:
        stats = StageStats(stage=self.name, items_in=len(items))
        advance = progress.track(self.name, len(items))
        size = self.batch_size or max(1, len(items))
        with stats.timed():
            for start in range(0, len(items), size):
                batch = items[start : start + size]
                earlier = [len(item.verdicts) for item in batch]
                reported = _Counter(advance)
                self.process(batch, stats, reported)
                advance(len(batch) - reported.done)
                for item, known in zip(batch, earlier, strict=True):
                    for verdict in item.verdicts[known:]:
                        verdict.stage = self.name
                    self._count(item, item.verdicts[known:], stats)
        return StageOutput[Item](items=items, stats=stats)

    def _count(self, item: Item, added: list[Verdict], stats: StageStats) -> None:
        stats.count(self.name, item.status.value, outcome=Outcome.STATUS)
        ending = _ENDINGS.get(item.status)
        verdict = next((verdict for verdict in added if verdict.failed), None)
        if ending is not None and verdict is not None:
            stats.count(verdict.name, verdict.reason, outcome=ending)

    def save(self, store: Store, items: list[Item]) -> None:
        store.save_items(items)

    @abstractmethod
    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        """Update `items` in place. Call `advance(n)` for finer progress; the base advances the
        rest of the batch when this returns."""


class _Counter:
    """Forwards progress and remembers how much of the batch was reported."""

    def __init__(self, advance: Callable[[int], None]):
        self._advance = advance
        self.done = 0

    def __call__(self, n: int = 1) -> None:
        self.done += n
        self._advance(n)
