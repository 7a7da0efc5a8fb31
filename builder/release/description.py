"""What a release says about itself, before its files are listed: the description that the
manifest, the card and the changelog are written from.

It is built from the released items and what the store knows of them (reviews, judge
calibrations, the needs-every-image check on their pairs' candidates); nothing in it is an
absolute path of this machine, and nothing is an answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from builder import __version__
from builder.config.taxonomy import Taxonomy
from builder.core.items import Item, ItemStatus
from builder.curation.provenance import seed_sources
from builder.release.licence import release_license
from builder.release.rows import ID_PREFIX, PUBLISHED_FIELDS, published_id
from builder.run.picture_figures import picture_figures
from builder.run.report import FunnelRow, selection_funnel
from builder.stages.ablation import AblationRate, ablation_rates
from builder.stages.attack.summary import QuotedCalibrations, summarize
from builder.stages.judge.calibration.quote import quoted_for_items
from builder.store import BULK_APPROVAL_REASON, ReviewState, Store

# An absolute path inside a string: POSIX (/x/y, ~/x) or Windows (C:\x). Not a URL's path, not "a/b".
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:~|[A-Za-z]:\\|/)[^\s'\"<>|]*")


class ReviewSummary(BaseModel):
    """How the released items were approved, as the card must tell it."""

    reviewers: list[str]
    bulk_approved: int


def local_paths(value: Any) -> list[str]:
    """Every string in `value` that is an absolute path, longest first."""
    if isinstance(value, str):
        return [value] if _ABSOLUTE_PATH.fullmatch(value) else []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return sorted({path for item in items for path in local_paths(item)}, key=len, reverse=True)


def portable(value: Any, known: list[str] | None = None) -> Any:
    """`value` with every absolute path reduced to its last part (`/home/ada/seeds` -> `seeds`).

    `known` paths (from the config) are also replaced where they sit inside longer strings, such as
    a renderer signature that embeds its model folder."""
    if isinstance(value, str):
        for path in known or []:
            value = value.replace(path, Path(path.rstrip("/\\")).name)
        return _ABSOLUTE_PATH.sub(lambda match: Path(match.group(0).rstrip("/\\")).name or ".", value)
    if isinstance(value, dict):
        return {key: portable(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item, known) for item in value]
    return value


def content_sha256(item: Item) -> str:
    """What a reader sees of an item, hashed: the changelog calls an item changed when this differs."""
    seen = {
        "question": item.original_question,
        "prompt": item.revised_prompt,
        "category": item.category,
        "relation": item.relation,
        "iteration": item.iteration,
        "slots": [[slot.description, slot.keywords, slot.sha256] for slot in item.slots],
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()


def _fallback(config: dict[str, Any]) -> str | None:
    """Why the build runs that made the items drew typographic cards instead of pictures."""
    runs = (config.get("build_runs") or {}).values()
    reasons = {(run.get("renderer") or {}).get("fallback") for run in runs if run}
    return "; ".join(sorted(reason for reason in reasons if reason)) or None


def review_summary(store: Store, ids: set[str]) -> ReviewSummary:
    approved = [entry for entry in store.reviews(ReviewState.APPROVED) if entry.item.id in ids]
    return ReviewSummary(
        reviewers=sorted({entry.reviewer or "unknown" for entry in approved}),
        bulk_approved=sum(entry.reason == BULK_APPROVAL_REASON for entry in approved),
    )


@dataclass(frozen=True)
class StoreFacts:
    """What the store knows of the released items beside the items themselves."""

    review: ReviewSummary
    calibrations: QuotedCalibrations
    ablation: list[AblationRate]  # per relation, over every candidate of the released pairs
    funnel: list[FunnelRow]  # how the candidates of the builds behind the release ended


def store_facts(store: Store, items: list[Item], calibration: Mapping[str, Any] | None) -> StoreFacts:
    """`calibration`: the settings' `calibration` section (which calibrations to quote)."""
    pairs = {(item.seed_id, item.relation) for item in items}
    rejected = store.get_items(store.ids_with_status(ItemStatus.REJECTED, None, pairs))
    return StoreFacts(
        review=review_summary(store, {item.id for item in items}),
        calibrations=quoted_for_items(store, items, calibration),
        ablation=ablation_rates([*items, *rejected]),
        funnel=selection_funnel(store, items),
    )


def describe(
    items: list[Item],
    taxonomy: Taxonomy,
    version: str,
    config: dict[str, Any],
    facts: StoreFacts,
    layouts: list[str],
    data_files: str,
    previous: str | None,
) -> dict[str, Any]:
    """Everything the manifest says except the file list (the card is built from this)."""
    cells = Counter((item.category, item.relation) for item in items)
    known = local_paths(config)
    return {
        "name": "mirbench",
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "mirbench_version": __version__,
        "items": len(items),
        "id_scheme": f"{ID_PREFIX}<store item id>",
        "fields": list(PUBLISHED_FIELDS),
        "data_files": data_files,
        "layouts": layouts,
        "previous_version": previous,
        "names": {
            "categories": {slug: c.published_name for slug, c in sorted(taxonomy.categories.items())},
            "relations": {slug: r.published_name for slug, r in sorted(taxonomy.relations.items())},
        },
        "cells": [{"category": c, "relation": r, "items": n} for (c, r), n in sorted(cells.items())],
        "seed_sources": seed_sources(items),
        "taxonomy_hash": taxonomy.content_hash,
        "config": portable(config, known),
        "pictures": picture_figures(items, _fallback(config)).model_dump(),
        "review": facts.review.model_dump(),
        "license": release_license(items, config.get("release", {}).get("license")).model_dump(),
        # construction-time attack success: rates and classes only, never an answer
        "attack": summarize(items).with_calibrations(facts.calibrations).model_dump(mode="json"),
        "ablation": [rate.model_dump() for rate in facts.ablation],
        "funnel": [row.model_dump() for row in facts.funnel],
        "selection": portable(
            [
                {
                    "id": published_id(item.id),
                    "item_id": item.id,
                    "seed_id": item.seed_id,
                    "category": item.category,
                    "relation": item.relation,
                    "iteration": item.iteration,
                    "content_sha256": content_sha256(item),
                    "provenance": item.provenance.model_dump(mode="json"),
                    "verdicts": [v.model_dump(mode="json") for v in item.verdicts],
                    # What dedup compares a later build with (`mirbench build` reads it back).
                    "images": [{"sha256": s.sha256, "phash": s.phash} for s in item.slots],
                }
                for item in items
            ],
            known,
        ),
    }
