"""What a release says about its seeds: each source with its seed and item counts, licence,
citation, the seed sets and revisions the items came from, and how the seeds' categories were
decided (items record their seed's origin when they are composed)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from builder.core.items import Item

_UNRECORDED = "unrecorded"


def seed_sources(items: list[Item]) -> list[dict[str, Any]]:
    """One entry per seed source, most items first (items made before seeds recorded an origin
    count under `unrecorded`)."""
    by_source: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "seeds": set(),
            "items": 0,
            "licenses": set(),
            "citation": None,
            "seed_sets": set(),
            "revisions": set(),
            "decided": {},
            "checked": set(),
        }
    )
    for item in items:
        origin = item.provenance.seed
        entry = by_source[origin.source if origin else _UNRECORDED]
        entry["seeds"].add(item.seed_id)
        entry["items"] += 1
        if origin is not None:
            entry["licenses"].add(origin.license)
            entry["citation"] = entry["citation"] or origin.citation
            entry["seed_sets"].add(origin.seed_set or "unversioned")
            entry["revisions"].add(origin.revision or "unversioned")
            entry["decided"][item.seed_id] = origin.category_by or _UNRECORDED
            if origin.checked_by_hand:
                entry["checked"].add(item.seed_id)
    return [
        {
            "source": source,
            "seeds": len(entry["seeds"]),
            "items": entry["items"],
            "licenses": sorted(entry["licenses"]),
            "citation": entry["citation"],
            "seed_sets": sorted(entry["seed_sets"]),
            "revisions": sorted(entry["revisions"]),
            "categories_decided": dict(sorted(Counter(entry["decided"].values()).items())),
            "checked_by_hand": len(entry["checked"]),
        }
        for source, entry in sorted(by_source.items(), key=lambda pair: (-pair[1]["items"], pair[0]))
    ]


def _decided(source: dict[str, Any]) -> str:
    decided = source.get("categories_decided") or {}
    shown = ", ".join(f"{how} {count}" for how, count in decided.items())
    checked = source.get("checked_by_hand") or 0
    return shown + (f"; {checked} checked by hand" if checked else "")


def seed_sources_markdown(sources: list[dict[str, Any]]) -> str:
    """The card's table of seed sources (empty when the manifest has none)."""
    if not sources:
        return ""
    rows = [
        f"| {s['source']} | {s['seeds']} | {s['items']} | {', '.join(s['licenses']) or 'unspecified'} | "
        f"{', '.join(s['seed_sets'])} | {_decided(s)} | {s['citation'] or ''} |"
        for s in sources
    ]
    return "\n".join(
        [
            "## Seeds",
            "",
            "The harmful questions come from public safety benchmarks, curated into mirbench's six "
            "categories (`manifest.json` holds each item's seed provenance: source, source id, revision, "
            "licence, seed set, and how its category was decided).",
            "",
            "How categories were decided, per seed: `rule`, by the source profile's mapping rules alone "
            "(from the source's own labels or its words); `rule+model`, by those rules and a triage "
            "model that agreed with enough confidence; `people`, by reviewers in the seed queue or a "
            "maintainer's final decision. `checked by hand`: the seed is in the maintainers' labelled "
            "sample, where a person decided its category and wrote down why.",
            "",
            "| source | seeds | items | licence | seed set | categories decided by | citation |",
            "|---|---:|---:|---|---|---|---|",
            *rows,
            "",
        ]
    )
