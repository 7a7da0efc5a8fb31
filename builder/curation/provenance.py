"""What a release says about its seeds: each source with its seed and item counts, licence,
citation, and the seed sets and revisions the items came from (items record their seed's
origin when they are composed)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from builder.core.items import Item


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
        }
    )
    for item in items:
        origin = item.provenance.seed
        entry = by_source[origin.source if origin else "unrecorded"]
        entry["seeds"].add(item.seed_id)
        entry["items"] += 1
        if origin is not None:
            entry["licenses"].add(origin.license)
            entry["citation"] = entry["citation"] or origin.citation
            entry["seed_sets"].add(origin.seed_set or "unversioned")
            entry["revisions"].add(origin.revision or "unversioned")
    return [
        {
            "source": source,
            "seeds": len(entry["seeds"]),
            "items": entry["items"],
            "licenses": sorted(entry["licenses"]),
            "citation": entry["citation"],
            "seed_sets": sorted(entry["seed_sets"]),
            "revisions": sorted(entry["revisions"]),
        }
        for source, entry in sorted(by_source.items(), key=lambda pair: (-pair[1]["items"], pair[0]))
    ]


def seed_sources_markdown(sources: list[dict[str, Any]]) -> str:
    """The card's table of seed sources (empty when the manifest has none)."""
    if not sources:
        return ""
    rows = [
        f"| {s['source']} | {s['seeds']} | {s['items']} | {', '.join(s['licenses']) or 'unspecified'} | "
        f"{', '.join(s['seed_sets'])} | {s['citation'] or ''} |"
        for s in sources
    ]
    return "\n".join(
        [
            "## Seeds",
            "",
            "The harmful questions come from public safety benchmarks, curated into mirbench's six "
            "categories (`manifest.json` holds each item's seed provenance: source, source id, revision, "
            "licence, seed set).",
            "",
            "| source | seeds | items | licence | seed set | citation |",
            "|---|---:|---:|---|---|---|",
            *rows,
            "",
        ]
    )
