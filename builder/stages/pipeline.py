"""The pipeline: one ordered list of stage classes, and what follows from it.

    compose -> render -> dedup -> filters -> attack -> judge -> ablation -> queue

A stage is one module plus one entry in `STAGES`. A stage that lives outside mirbench (a
plug-in) registers through the entry-point group `mirbench.stages` (entry name: the stage's
`name`, value: its class) and names the stage it follows in its class attribute `after`.

Everything else derives from the list: the flow runs the stages in this order, a stage takes
what the enabled stage before it gives (so the queue takes what the judge accepted when the
attack loop is on and what passed the filters when it is off), a failed item is retried from
the status its failing stage takes (while that stage is on), and reports group rejections by
the stage that gave them.
"""

from __future__ import annotations

import inspect
import sys
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from builder.core.items import ItemStatus
from builder.stages.ablation import AblationStage
from builder.stages.attack import AttackStage
from builder.stages.base import Place, Stage
from builder.stages.compose import ComposeStage
from builder.stages.dedup import DedupStage
from builder.stages.filters import FilterStage
from builder.stages.judge import JudgeStage
from builder.stages.queue import QueueStage
from builder.stages.render import RenderStage

if TYPE_CHECKING:
    from builder.config.settings import Settings

STAGES: list[type[Stage]] = [
    ComposeStage,
    RenderStage,
    DedupStage,
    FilterStage,
    AttackStage,
    JudgeStage,
    AblationStage,
    QueueStage,
]
ENTRY_POINT_GROUP = "mirbench.stages"
START = ItemStatus.PLANNED  # what the planner stores and the first stage takes


def stages() -> list[type[Stage]]:
    """The stages in order: `STAGES` with every plug-in stage placed after the one it names."""
    return list(_ordered(tuple(sys.path)))


@cache
def _ordered(search_path: tuple[str, ...]) -> tuple[type[Stage], ...]:
    """The pipeline of the distributions on `search_path`: their entry points are read once per
    search path (reading them takes milliseconds, and a build asks for the pipeline several
    times per task)."""
    ordered = list(STAGES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        where = f"entry point {entry.name} = {entry.value}"
        if not (isinstance(loaded, type) and issubclass(loaded, Stage)):
            raise TypeError(f"{where}: not a mirbench stage class")
        if inspect.isabstract(loaded):
            missing = ", ".join(sorted(loaded.__abstractmethods__))
            raise TypeError(f"{where}: the stage does not define {missing}")
        if loaded.name != entry.name or loaded.name in names(ordered):
            raise TypeError(f"{where}: the stage is named {loaded.name!r}; names must match and be unique")
        if loaded.after not in names(ordered):
            raise TypeError(f"{where}: `after` must name a stage of {names(ordered)}, not {loaded.after!r}")
        ordered.insert(names(ordered).index(loaded.after) + 1, loaded)
    return tuple(ordered)


def names(pipeline: list[type[Stage]] | None = None) -> list[str]:
    return [stage.name for stage in (stages() if pipeline is None else pipeline)]


def stage(name: str) -> type[Stage]:
    for candidate in stages():
        if candidate.name == name:
            return candidate
    raise KeyError(f"no stage {name!r}; the pipeline is {', '.join(names())}")


def tester_stages() -> frozenset[str]:
    """The stages of the attack loop (they run only with testers)."""
    return frozenset(stage.name for stage in stages() if stage.needs_testers)


def place(settings: Settings, name: str) -> Place:
    """Where stage `name` sits in a build with `settings`: it takes what the enabled stage
    before it gives (also for a stage that is off, which takes nothing: its failures stay
    failed, see `tasks.retry_failed`); items from its output onward are in play."""
    pipeline = stages()
    position = names(pipeline).index(name)
    takes = START
    for earlier in pipeline[:position]:
        if earlier.enabled(settings):
            takes = earlier.gives
    return Place(takes=takes, onward=tuple(later.gives for later in pipeline[position:]))


def enabled(settings: Settings) -> list[type[Stage]]:
    """The stages a build with `settings` runs, in order."""
    return [stage for stage in stages() if stage.enabled(settings)]


def decisive_settings(settings: Settings) -> dict[str, Any]:
    """What decides each enabled stage's work (`Stage.decisive_settings`), by stage name: the
    config hash (`Settings.config_hash`) is made of it."""
    return {stage.name: stage.decisive_settings(settings) for stage in enabled(settings)}


def preflight(settings: Settings) -> list[str]:
    """Every enabled stage's checks before a build starts (`Stage.preflight`): the notes."""
    return [note for stage in enabled(settings) for note in stage.preflight(settings)]
