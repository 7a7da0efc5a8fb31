"""Why items sit in a status, for `mirbench status`: which stage takes it with this
configuration, or, when none does, why not and what moves it on.

Terminal statuses say what they wait for (people, nothing). The attack loop's own statuses
(`attacked`, `accepted`) are taken by no stage while the loop is off; a failed item whose
stage is off stays failed (a build does not send it back to a status no stage would take).
"""

from __future__ import annotations

from builder.items import Item, ItemStatus
from builder.settings import Settings
from builder.tasks import ATTACK_STAGES, STAGES, takes

TERMINAL = {
    ItemStatus.QUEUED: "waits for people: `mirbench review`",
    ItemStatus.REJECTED: "final; its pair gets a new round while rounds are left",
    ItemStatus.REFUSED: "final: the composer model declined (never retried into compliance)",
    ItemStatus.FAILED: "the next build retries it from the stage that failed, while attempts are left",
}
LOOP_OFF = "the attack loop is off (attack.testers is empty)"


def stage_off(settings: Settings, stage: str) -> str | None:
    """Why `stage` takes nothing with `settings`, or None when it runs."""
    if takes(settings, stage) is not None:
        return None
    return f"the {stage} stage is off: {LOOP_OFF}" if stage in ATTACK_STAGES else f"the {stage} stage is off"


def status_reasons(settings: Settings, statuses: list[str]) -> dict[str, str]:
    """For each of `statuses`, what moves its items on with `settings`, or why nothing does."""
    taken = {takes(settings, name): name for name in STAGES}
    reasons = {}
    for name in statuses:
        status = ItemStatus(name)
        if status in taken:
            reasons[name] = f"waits for the {taken[status]} stage: rerun `mirbench build`"
        elif status in TERMINAL:
            reasons[name] = TERMINAL[status]
        else:  # only the attack loop's statuses: every other one has a stage in every configuration
            reasons[name] = f"no stage takes it now: {LOOP_OFF}; configure testers again to move it on"
    return reasons


def failed_where_off(settings: Settings, failed: list[Item]) -> dict[str, int]:
    """Failed items whose failing stage is off with `settings`, counted by stage: a build keeps
    them failed until the stage is on again."""
    counts: dict[str, int] = {}
    for item in failed:
        stage = item.rejection.name if item.rejection is not None else ""
        why = stage_off(settings, stage) if stage in STAGES else None
        if why:
            counts[why] = counts.get(why, 0) + 1
    return counts
