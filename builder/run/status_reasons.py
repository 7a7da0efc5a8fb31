"""Why items sit in a status, for `mirbench status`: which stage takes it with this
configuration, or, when none does, why not and what moves it on.

Everything follows from the pipeline (builder/stages/pipeline.py): a status is taken by the enabled
stage whose place says so; a status given only by stages that are off (the attack loop's
`attacked` and `accepted`, while there are no testers) waits for them to be on again; the
statuses no stage takes by design say what they wait for (people, nothing, the next build).
A failed item whose stage is off stays failed: a build never sends it back to a status no
stage would take (`tasks.retry_failed`).
"""

from __future__ import annotations

from collections import Counter

from builder.config.settings import Settings
from builder.core.items import Item, ItemStatus
from builder.stages import pipeline
from builder.stages.base import Stage

AT_REST: dict[str, str] = {
    ItemStatus.QUEUED: "waits for people: `mirbench review`",
    "approved": "approved by people: `mirbench release` exports it",
    ItemStatus.REJECTED: "final; its pair gets a new round while rounds are left",
    ItemStatus.REFUSED: "final: the composer model declined (never retried into compliance)",
    ItemStatus.FAILED: "the next build retries it from the stage that failed, while attempts are left",
}
LOOP_OFF = "the attack loop is off (attack.testers is empty)"


def why_off(stage: type[Stage]) -> str:
    return f"the {stage.name} stage is off" + (f": {LOOP_OFF}" if stage.needs_testers else "")


def status_reasons(settings: Settings, statuses: list[str]) -> dict[str, str]:
    """For each of `statuses`, what moves its items on with `settings`, or why nothing does."""
    stages = pipeline.stages()
    taken: dict[str, str] = {
        pipeline.place(settings, stage.name).takes: stage.name for stage in stages if stage.enabled(settings)
    }
    given_by_off: dict[str, type[Stage]] = {
        stage.gives: stage for stage in stages if not stage.enabled(settings)
    }
    reasons = {}
    for name in statuses:  # plain strings: a status of a plug-in that is gone is no ItemStatus
        if name in taken:
            reasons[name] = f"waits for the {taken[name]} stage: rerun `mirbench build`"
        elif name in AT_REST:
            reasons[name] = AT_REST[name]
        elif name in given_by_off:
            reasons[name] = (
                f"no stage takes it now: {why_off(given_by_off[name])}; "
                "its items move on once that stage is on again"
            )
        else:  # a plug-in stage's status, and the plug-in is gone
            reasons[name] = "no stage of this pipeline gives or takes it (is a plug-in stage missing?)"
    return reasons


def failed_where_off(settings: Settings, failed: list[Item]) -> dict[str, int]:
    """Failed items whose failing stage is off with `settings`, counted by why: a build keeps
    them failed until the stage is on again."""
    off = {stage.name: stage for stage in pipeline.stages() if not stage.enabled(settings)}
    counts: Counter[str] = Counter()
    for item in failed:
        failure = item.rejection
        if failure is not None and failure.stage in off:
            counts[why_off(off[failure.stage])] += 1
    return dict(counts)
