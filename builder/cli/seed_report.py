"""What `seeds list`, `seeds show` and `seeds triage --evaluate` print: each seed's category and
scope with the rule (or model answer) that decided it, and the mapping's measured accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.cli.core import existing_store
from builder.cli.display import console, make_table
from builder.cli.seed_curate import profiles_folder, taxonomy_of
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.curation.sources import OUT_OF_SCOPE
from builder.store import SeedRow, SeedState

_TEXT_SHOWN = 90


def decided_how(row: SeedRow) -> str:
    """The rule (profile#index: what matched) or model answer behind the seed's state."""
    parts = []
    if row.mapped_rule is not None:
        parts.append(f"{row.source}#{row.mapped_rule} {row.mapped_by} {row.mapped_match!r}")
    if row.llm_category is not None:
        parts.append(f"model {row.llm_category} ({row.llm_confidence:.2f})")
    return "; ".join(parts) or "no rule matched"


def list_seeds(
    settings: Settings, state: str | None, category: str | None, source: str | None, reason: str | None
) -> None:
    from builder.curation.triage import TriageReason

    if state is not None and state not in {s.value for s in SeedState}:
        raise InputError(f"unknown state '{state}'; known: {', '.join(s.value for s in SeedState)}")
    if reason is not None and reason not in {r.value for r in TriageReason}:
        raise InputError(f"unknown reason '{reason}'; known: {', '.join(r.value for r in TriageReason)}")
    known = [*sorted(taxonomy_of(settings).categories), OUT_OF_SCOPE]
    if category is not None and category not in known:
        raise InputError(f"unknown category '{category}'; known: {', '.join(known)}")
    with existing_store(settings) as store:
        rows = store.seed_candidates(
            [SeedState(state)] if state else None, [source] if source is not None else None
        )
    rows = [
        row
        for row in rows
        if (category is None or category in (row.category, row.mapped_category))
        and (reason is None or row.triage_reason == reason)
    ]
    table = make_table(
        f"{len(rows)} seed(s)", "id", "state", "category", "source", "reason", "decided by", "text"
    )
    for row in rows:
        text = row.text if len(row.text) <= _TEXT_SHOWN else row.text[: _TEXT_SHOWN - 1] + "…"
        reason_shown = f"{row.triage_reason or '-'}: {decided_how(row)}"
        table.add_row(
            row.id, row.state, row.category or "-", row.source, reason_shown, row.decided_by or "-", text
        )
    console.print(table)


def show_seed(settings: Settings, seed_id: str) -> None:
    from builder.curation.sources import load_profile, profile_path

    with existing_store(settings) as store:
        row = store.seed_candidate(seed_id)
        if row is None:
            raise InputError(f"unknown seed id: {seed_id}")
        aliases = [a for a in store.seed_candidates([SeedState.ALIAS]) if a.alias_of == seed_id]
        log = store.decision_log([seed_id])
    rule: dict[str, Any] | None = None
    if row.mapped_rule is not None:
        profile = load_profile(
            profile_path(profiles_folder(settings), row.source), set(taxonomy_of(settings).categories)
        )
        if row.mapped_rule < len(profile.mapping):
            rule = profile.mapping[row.mapped_rule].model_dump(exclude_defaults=True)
    shown = {
        "id": row.id,
        "text": row.text,
        "state": row.state,
        "category": row.category,
        "source": row.source,
        "source_id": row.source_id,
        "revision": row.revision,
        "license": row.license,
        "labels": json.loads(row.labels),
        "triage": {
            "reason": row.triage_reason,
            "mapped": row.mapped_category,
            "rule": None
            if row.mapped_rule is None
            else {
                "index": row.mapped_rule,
                "matched_by": row.mapped_by,
                "matched": row.mapped_match,
                **(rule or {}),
            },
            "model": row.llm_category,
            "confidence": row.llm_confidence,
            "model_reason": row.llm_reason,
            "decided_by": row.decided_by,
        },
        "alias_of": row.alias_of,
        "aliases": [{"id": a.id, "source": a.source, "similarity": a.alias_similarity} for a in aliases],
        "decisions": [
            {"reviewer": d.reviewer, "decision": d.decision, "kind": d.kind, "reason": d.reason}
            for d in log
            if not d.superseded
        ],
    }
    console.print_json(json.dumps(shown))


def print_mapping_accuracy(settings: Settings, sample_path: Path) -> None:
    from builder.curation.mapping_check import check_mapping, read_sample
    from builder.curation.sources import source_profiles

    categories = sorted(taxonomy_of(settings).categories)
    sample = read_sample(sample_path, set(categories))
    profiles = source_profiles(profiles_folder(settings), {s.source for s in sample}, set(categories))
    result = check_mapping(sample, profiles, categories)
    splits = sorted({s.split for s in sample})
    by_split = []
    for split in splits:
        part = check_mapping([s for s in sample if s.split == split], profiles, categories)
        by_split.append(f"{split} {part.accuracy:.3f} of {part.seeds}")
    console.print(
        f"mapping accuracy: {result.accuracy:.3f} ({result.correct} of {result.seeds} seeds; "
        + ", ".join(by_split)
        + ")",
        markup=False,
    )
    scores = make_table(
        "per category", "category", "precision", "recall", "seeds", right=("precision", "recall", "seeds")
    )
    for category in result.classes[:-1]:
        score = result.scores(category)
        scores.add_row(category, _figure(score.precision), _figure(score.recall), str(score.support))
    console.print(scores)
    matrix = make_table("confusion (rows: decided by hand, columns: mapped)", "", *result.classes)
    for truth in result.classes[:-1]:
        matrix.add_row(
            truth, *(str(result.confusion.get((truth, mapped), 0) or ".") for mapped in result.classes)
        )
    console.print(matrix)
    for seed, mapped in result.wrong:
        console.print(
            f"  wrong: {seed.source} {seed.source_id}: {seed.category} mapped {mapped}: {seed.text}",
            markup=False,
        )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
