"""`mirbench seeds select`: a versioned seed set from the accepted seeds.

Up to N seeds per category, stratified by source (taken in turn from each source that has
seeds of the category, by the name its profile declares, so one source read from several files
is one source; each source's seeds in a fixed pseudo-random order, so the choice does not follow
file order and a rerun chooses alike). With `max_chars`, longer seeds are left out
(short questions stay at the level of the public sets' behaviour titles); with `fill_max_chars`
as well, a category that would fall short of N takes its shortest longer seeds, up to that
many characters, as many as it lacks (no other category changes). With `total`, the
shortfall of categories that have fewer than N accepted seeds is filled from the others, again
in turn. The set is a folder: `seeds.jsonl` (what `mirbench build --seeds` reads; each seed
says how its category was decided) and `manifest.json` (version, counts per category x source,
licences and citations, a content hash, and each seed's provenance with its aliases).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from builder.core.errors import InputError
from builder.core.outputs import check_new_folder, new_folder
from builder.curation.sources import SourceProfile
from builder.curation.triage import TRIAGE_DECIDER
from builder.store import SeedRow, SeedState, Store

SEEDS_FILE = "seeds.jsonl"
MANIFEST_FILE = "manifest.json"
SET_FOLDER = "the seed set's folder"
# A set's version is written into every seed record and names the set in build reports: a name,
# never a path or free text.
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class SeedSet:
    version: str
    folder: Path
    counts: dict[str, dict[str, int]]  # category -> source -> seeds
    content_sha256: str
    filled: dict[str, int]  # category -> seeds over max_chars admitted to reach per_category

    @property
    def total(self) -> int:
        return sum(sum(by_source.values()) for by_source in self.counts.values())


def _order(row: SeedRow) -> str:
    return hashlib.sha256(row.id.encode()).hexdigest()


def stratified(
    rows: list[SeedRow],
    categories: list[str],
    per_category: int,
    total: int | None,
    longer: list[SeedRow] | None = None,
) -> list[SeedRow]:
    """Up to `per_category` rows per category, in turn over sources; a category still short takes
    the shortest of its `longer` rows; then up to `total` (from `rows` only)."""
    queues: dict[str, dict[str, list[SeedRow]]] = {c: defaultdict(list) for c in categories}
    for row in sorted(rows, key=_order):
        if row.category in queues:
            queues[row.category][row.source].append(row)

    chosen: dict[str, list[SeedRow]] = {c: [] for c in categories}
    for category in categories:
        while len(chosen[category]) < per_category and (row := _fair(queues[category], chosen[category])):
            chosen[category].append(row)
    _fill_short_categories(chosen, longer or [], per_category)
    picked = sum(len(rows) for rows in chosen.values())
    while total is not None and picked < total:
        progressed = False
        for category in sorted(categories, key=lambda c: (len(chosen[c]), c)):
            if picked >= total:
                break
            row = _fair(queues[category], chosen[category])
            if row is not None:
                chosen[category].append(row)
                picked += 1
                progressed = True
        if not progressed:
            break
    return [row for category in categories for row in chosen[category]]


def _fill_short_categories(
    chosen: dict[str, list[SeedRow]], longer: list[SeedRow], per_category: int
) -> None:
    """Each category short of `per_category` takes as many of its longer rows as it lacks, shortest
    first (ties in the fixed pseudo-random order): the set stays as short as the data allows."""
    for row in sorted(longer, key=lambda r: (len(r.text), _order(r))):
        if row.category in chosen and len(chosen[row.category]) < per_category:
            chosen[row.category].append(row)


def _fair(sources: dict[str, list[SeedRow]], chosen: list[SeedRow]) -> SeedRow | None:
    """The next row from the source least represented in `chosen` so far (ties by name)."""
    taken = Counter(row.source for row in chosen)
    open_sources = [source for source, rows in sources.items() if rows]
    if not open_sources:
        return None
    source = min(open_sources, key=lambda s: (taken[s], s))
    return sources[source].pop(0)


def write_seed_set(
    store: Store,
    profiles: dict[str, SourceProfile],
    categories: list[str],
    out: Path,
    per_category: int,
    total: int | None = None,
    version: str | None = None,
    max_chars: int | None = None,
    sources: list[str] | None = None,
    checked: dict[tuple[str, str], str] | None = None,
    fill_max_chars: int | None = None,
) -> SeedSet:
    """Select and write the set. `checked`: the category a person decided by hand for seeds of a
    labelled sample, by (source, source id); a seed whose category it confirms says so.
    `fill_max_chars`: how long a seed may be that fills a category short of `per_category`."""
    out = check_new_folder(out, "--out", SET_FOLDER)
    check_selection(len(categories), per_category, total, version, max_chars, fill_max_chars)
    accepted = store.seed_candidates([SeedState.ACCEPTED], sources)
    if not accepted:
        raise InputError(
            "no accepted seeds to select from"
            + (f" of source(s) {', '.join(sources)}" if sources else "")
            + ": import and triage first (`mirbench seeds triage`)"
        )
    longer: list[SeedRow] = []
    if max_chars is not None:
        longer = [row for row in accepted if max_chars < len(row.text) <= (fill_max_chars or max_chars)]
        accepted = [row for row in accepted if len(row.text) <= max_chars]
    chosen = stratified(accepted, categories, per_category, total, longer)
    longer_ids = {row.id for row in longer}
    filled = dict(Counter(row.category for row in chosen if row.id in longer_ids))
    aliases: dict[str, list[SeedRow]] = defaultdict(list)
    for row in store.seed_candidates([SeedState.ALIAS]):
        aliases[row.alias_of or ""].append(row)
    checked = checked or {}
    records = [
        _seed_record(row, profiles[row.source], (row.source, row.source_id) in checked) for row in chosen
    ]
    if version is None:  # named by what it holds: the same selection, the same version
        version = "sha-" + hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:12]
    body = "".join(
        json.dumps({**r, "seed_set": version}, ensure_ascii=False) + "\n" for r in records
    ).encode()
    digest = hashlib.sha256(body).hexdigest()
    counts: dict[str, dict[str, int]] = {
        c: dict(Counter(r.source for r in chosen if r.category == c)) for c in categories
    }
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "per_category": per_category,
        "total": total,
        "max_chars": max_chars,
        "fill_max_chars": fill_max_chars,
        "filled": filled,
        "only_sources": sources,
        "seeds": len(chosen),
        "content_sha256": digest,
        "counts": counts,
        "shortfall": {
            c: per_category - sum(counts[c].values())
            for c in categories
            if sum(counts[c].values()) < per_category
        },
        "categories_decided": dict(Counter(r["category_by"] for r in records)),
        "checked_by_hand": sum(1 for r in records if r.get("checked_by_hand")),
        "sources": _sources(profiles, counts, categories),
        "provenance": [_provenance(row, aliases.get(row.id, [])) for row in chosen],
    }
    _write_folder(out, body, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return SeedSet(version, out, counts, digest, filled)


def check_selection(
    categories: int,
    per_category: int,
    total: int | None,
    version: str | None,
    max_chars: int | None = None,
    fill_max_chars: int | None = None,
) -> None:
    """The selection's numbers and version name make sense (else an InputError naming the option)."""
    if fill_max_chars is not None and (max_chars is None or fill_max_chars <= max_chars):
        raise InputError(
            f"--fill-max-chars {fill_max_chars} admits seeds longer than --max-chars to fill a short "
            "category: " + ("give --max-chars too" if max_chars is None else f"it must exceed {max_chars}")
        )
    if per_category < 1:
        raise InputError(f"--per-category must be at least 1 (got {per_category})")
    if total is not None and total < per_category * categories:
        raise InputError(
            f"--total {total} is below what --per-category {per_category} asks of the {categories} "
            f"categories ({per_category * categories}); --total only fills small categories' shortfall"
        )
    if version is not None and not VERSION_NAME.fullmatch(version):
        raise InputError(
            f"--version {version!r} is not a version name: letters, digits and . _ + - (at most 64, "
            "starting with a letter or digit), e.g. 1.0.0"
        )


def _sources(
    profiles: dict[str, SourceProfile], counts: dict[str, dict[str, int]], categories: list[str]
) -> dict[str, Any]:
    return {
        name: {
            "display_name": p.display_name,
            "license": p.license,
            "citation": p.citation,
            "homepage": p.homepage,
            "seeds": sum(counts[c].get(name, 0) for c in categories),
        }
        for name, p in sorted(profiles.items())
        if any(counts[c].get(name) for c in categories)
    }


def category_by(row: SeedRow) -> str:
    """How the seed's category was decided: by the mapping rule alone, by the rule and a triage
    model that agreed, or by people (the seed queue, or a maintainer's override)."""
    if row.decided_by != TRIAGE_DECIDER:
        return "people"
    return "rule+model" if row.llm_category is not None else "rule"


def _seed_record(row: SeedRow, profile: SourceProfile, checked: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": row.id,
        "category": row.category,
        "query": row.text,
        "source": row.source,
        "source_id": row.source_id,
        "revision": row.revision,
        "license": row.license,
        "citation": profile.citation,
        "category_by": category_by(row),
    }
    if row.mapped_rule is not None:
        record["category_rule"] = f"{row.source}#{row.mapped_rule}: {row.mapped_by} '{row.mapped_match}'"
    if checked:
        record["checked_by_hand"] = True
    if row.key_phrase:
        record["key_phrase"] = row.key_phrase
    return record


def _provenance(row: SeedRow, aliases: list[SeedRow]) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "source_id": row.source_id,
        "revision": row.revision,
        "license": row.license,
        "labels": json.loads(row.labels),
        "imported_at": row.imported_at.isoformat(),
        "triage": {
            "mapped": row.mapped_category,
            "rule": row.mapped_rule,
            "matched_by": row.mapped_by,
            "matched": row.mapped_match,
            "model": row.llm_category,
            "confidence": row.llm_confidence,
            "reason": row.triage_reason,
            "decided_by": row.decided_by,
        },
        "aliases": [
            {"source": a.source, "source_id": a.source_id, "similarity": a.alias_similarity} for a in aliases
        ],
    }


def _write_folder(out: Path, seeds: bytes, manifest: str) -> None:
    """Write the set beside `out` and move it into place, so a reader never sees half a set and
    nothing already at `out` is written over."""
    with new_folder(out, "--out", SET_FOLDER) as staging:
        (staging / SEEDS_FILE).write_bytes(seeds)
        (staging / MANIFEST_FILE).write_text(manifest, encoding="utf-8")
