"""Which items a build run answers for, so that its report and exit code speak for that run only.

Every run records the items it planned, sent back for a retry or ran a stage on (the store's
`run_items`). A run that resumes dead runs (it superseded them when it started) answers for
their items too: their work was never reported. Counts are exclusive: an item the reviewers
approved is `approved`, never also `queued`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from builder.core.items import Item, ItemStatus
from builder.store import ReviewState, Store

# Review states an item in status `queued` may have, and how it is counted then.
_REVIEWED = {ReviewState.APPROVED.value: "approved"}


def exclusive_status(item: Item, review_state: str | None) -> str:
    """One status per item: a queued item the reviewers approved counts as `approved` only."""
    return _counted_as(item.status.value, review_state)


def _counted_as(status: str, review_state: str | None) -> str:
    if status == ItemStatus.QUEUED.value and review_state in _REVIEWED:
        return _REVIEWED[review_state]
    return status


def exclusive_status_counts(store: Store) -> dict[str, int]:
    """Items by status over the whole store, approved apart from queued."""
    return dict(Counter(_counted_as(status, state) for status, state in store.statuses_with_review()))


def build_configs(store: Store, items: Sequence[Item]) -> dict[str, dict[str, object] | None]:
    """The settings of every build run that touched `items`, keyed by run id (None: a run this
    store has no record of). Items from before runs recorded their items name their own run."""
    touched = store.runs_of([item.id for item in items])
    run_ids = sorted({run for item in items for run in touched.get(item.id, [item.provenance.run_id])})
    known = store.run_settings(run_ids)
    for settings in known.values():
        settings.pop("database_url", None)  # stored hidden anyway; a release names no store
    return {run: known.get(run) for run in run_ids}
