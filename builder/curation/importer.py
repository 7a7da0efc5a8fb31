"""`mirbench seeds import`: a source's rows, normalised, stored with their provenance.

Normalising: Unicode NFC, runs of whitespace to one space, no control characters, and the
seed question length limit. Importing is idempotent: a row is keyed by (source, the source's
id, or a hash of its text when the source has no ids), so the same data again adds nothing and
a new revision adds only its new rows. All-or-nothing: any bad row stops the import before
anything is written, with every problem named by file and row.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from builder.config.input_limits import InputLimits
from builder.config.user_files import control_character
from builder.core.errors import InputError, InputErrors
from builder.curation.reading import read_source
from builder.curation.sources import LoadedSource, SourceRow, load_profile, profile_path
from builder.store import SEED_ID_PREFIX, SeedState, Store


@dataclass(frozen=True)
class ImportReport:
    source: str
    revision: str
    location: str
    rows: int
    added: int
    known: int  # already imported (an earlier run, or an earlier revision)
    repeated: int  # the same id (or text) twice within this data: the first is kept
    files: int = 1
    blank_lines: int = 0  # plain-text files: skipped
    notes: tuple[str, ...] = ()


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def seed_id(source: str, source_id: str) -> str:
    return SEED_ID_PREFIX + hashlib.sha256(f"{source}\x1f{source_id}".encode()).hexdigest()[:16]


def load_source(
    sources_folder: Path, name: str, categories: set[str], local: Path | None = None
) -> LoadedSource:
    """Source `name`'s profile (in `sources_folder`) and rows (from `local` instead of its
    origin, when given)."""
    path = profile_path(sources_folder, name)
    return read_source(load_profile(path, categories), path, local)


def import_source(
    store: Store, loaded: LoadedSource, limits: InputLimits, now: datetime | None = None
) -> ImportReport:
    profile = loaded.profile
    known = store.known_seed_source_ids(profile.name)
    now = now or datetime.now(UTC)
    errors: list[InputError] = []
    fresh: dict[str, dict[str, object]] = {}
    seen: set[str] = set()
    repeated = already = 0
    for row in loaded.rows:
        text = _checked_text(row, loaded, limits, errors)
        if text is None:
            continue
        source_id = row.source_id or hashlib.sha256(text.encode()).hexdigest()[:16]
        if source_id in seen:
            repeated += 1
            continue
        seen.add(source_id)
        if source_id in known:
            already += 1
            continue
        fresh[source_id] = {
            "id": seed_id(profile.name, source_id),
            "source": profile.name,
            "source_id": source_id,
            "revision": loaded.revision,
            "license": profile.license,
            "text": text,
            "labels": json.dumps([normalise(label) for label in row.labels]),
            "imported_at": now,
            "state": SeedState.IMPORTED.value,
        }
    if errors:
        raise InputErrors(errors[:50])
    store.add_seeds(list(fresh.values()))
    return ImportReport(
        profile.name,
        loaded.revision,
        loaded.location,
        len(loaded.rows),
        len(fresh),
        already,
        repeated,
        loaded.files,
        loaded.blank_lines,
        loaded.notes,
    )


def _checked_text(
    row: SourceRow, loaded: LoadedSource, limits: InputLimits, errors: list[InputError]
) -> str | None:
    where = row.where
    field = loaded.profile.fields.text
    if not isinstance(row.text, str):
        errors.append(InputError(f"{where}: field '{field}' is not text ({type(row.text).__name__})"))
        return None
    text = normalise(row.text)
    problem = control_character(text)
    if not text:
        problem = "is empty"
    elif len(text) > limits.max_query_chars:
        problem = (
            f"is {len(text):,} characters, over the limit of {limits.max_query_chars:,}; raise "
            "limits.max_query_chars (or MIRBENCH_LIMITS__MAX_QUERY_CHARS) if this is intended"
        )
    if problem:
        errors.append(InputError(f"{where}: field '{field}' {problem}"))
        return None
    return text
