"""Reading a label set's rows through its profile: a local file, a local copy of a Hub set
(`--path`), or the Hub through `datasets.load_dataset`.

Every problem names the file and, where there is one, the line (CSV, JSONL: the row's first
line) or row (Parquet, JSON, Hub). A column that no row has is one problem, named once with how
many rows lack it; a column empty on some rows is one problem listing their lines. Comment lines
at the top of a CSV or JSONL file (`# dataset_version=1`) are skipped and counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.config.user_files import Records, read_records
from builder.core.errors import InputError, InputErrors
from builder.stages.judge.calibration.labels import (
    MAX_ERRORS,
    SUFFIX_FORMATS,
    Format,
    LabelledRow,
    LabelProfile,
    LabelSet,
    normalized,
)

LINES_NAMED = 5  # lines named in a problem that many rows share


def load_label_set(
    profile: LabelProfile,
    *,
    base: Path | None = None,
    local: Path | None = None,
    limit: int | None = None,
    max_record_chars: int = 100_000,
) -> LabelSet:
    """The profile's rows (the first `limit` of them), checked. `local` reads a local copy of a
    Hub set through the profile's column map."""
    if local is not None:
        fmt = profile.format if profile.format != "hub" else SUFFIX_FORMATS.get(local.suffix.lower())
        if not local.is_file():
            raise InputError("--path: no such file", path=local)
        if fmt is None:
            raise InputError("--path must be a .csv, .jsonl, .json or .parquet file", path=local)
        source, records = str(local), _file_rows(local, fmt, profile, max_record_chars)
    elif profile.where.hub is not None:
        source, records = _hub_name(profile), Records(rows=_hub_rows(profile))
    else:
        assert profile.where.path is not None
        path = profile.where.path if base is None else base / profile.where.path
        fmt = profile.format if profile.format != "hub" else SUFFIX_FORMATS.get(path.suffix.lower(), "jsonl")
        source, records = str(path), _file_rows(path, fmt, profile, max_record_chars)
    chosen = records.rows[:limit] if limit else records.rows
    problems = _missing_columns(profile, chosen, records, source)
    rows, errors = [], list(problems.errors)
    for line, record in chosen:
        if line in problems.lines:
            continue
        try:
            rows.append(_row(profile, line, record, source, records))
        except InputError as error:
            errors.append(error)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    if not rows:
        raise InputError("no labelled rows", path=source)
    return LabelSet(profile=profile, source=source, rows=rows, comments=records.comments)


class _Missing:
    def __init__(self) -> None:
        self.errors: list[InputError] = []
        self.lines: set[int] = set()


def _missing_columns(
    profile: LabelProfile, rows: list[tuple[int, dict[str, Any]]], records: Records, source: str
) -> _Missing:
    """The required columns that rows lack or leave empty, one problem per column; a row that
    starts like a comment below the top is a problem of its own, saying so."""
    found = _Missing()
    if not rows:
        return found
    columns = profile.columns
    labels = [columns.label] if isinstance(columns.label, str) else list(columns.label)
    required = (columns.behavior, columns.response, *labels)
    seen = sorted({name for _, record in rows for name in record})
    for line, record in rows:
        lacks = [name for name in required if record.get(name) in (None, "")]
        if lacks and line in records.comment_like:
            found.lines.add(line)
            message = records.note_comment(line, f"missing column(s) {lacks}")
            found.errors.append(InputError(message, path=source, line=line))
    for name in required:
        lacking = [
            line for line, record in rows if record.get(name) in (None, "") and line not in found.lines
        ]
        if not lacking:
            continue
        found.lines.update(lacking)
        if not any(name in record for _, record in rows):
            message = f"no row has the column '{name}' ({len(rows)} rows); the rows have {seen}"
        else:
            named = ", ".join(map(str, lacking[:LINES_NAMED]))
            more = f" and {len(lacking) - LINES_NAMED} more" if len(lacking) > LINES_NAMED else ""
            message = (
                f"column '{name}' is missing or empty on {len(lacking)} of {len(rows)} rows: {named}{more}"
            )
        found.errors.append(InputError(message, path=source, line=lacking[0]))
    return found


def _hub_name(profile: LabelProfile) -> str:
    where = profile.where
    return f"{where.hub}" + (f" ({where.config})" if where.config else "") + f"@{where.revision or 'main'}"


def _hub_rows(profile: LabelProfile) -> list[tuple[int, dict[str, Any]]]:
    from datasets import load_dataset

    where = profile.where
    try:
        dataset = load_dataset(where.hub, where.config, split=where.split, revision=where.revision)
    except Exception as exc:  # the Hub's and datasets' errors have no common base class
        raise InputError(
            f"cannot load the dataset: {type(exc).__name__}: {exc}", path=_hub_name(profile)
        ) from None
    return [(number, dict(row)) for number, row in enumerate(dataset, start=1)]


def _file_rows(path: Path, fmt: Format, profile: LabelProfile, max_record_chars: int) -> Records:
    if not path.is_file():
        raise InputError("label file not found (a local copy of a profile's data: --path FILE)", path=path)
    if fmt in ("csv", "jsonl"):
        records = read_records(path, max_record_chars, comment_prefix=profile.comment_prefix)
        if records.errors:
            raise records.errors[0] if len(records.errors) == 1 else InputErrors(records.errors[:MAX_ERRORS])
        return records
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputError(f"cannot read Parquet: {exc}", path=path) from None
        return Records(rows=list(enumerate(table.to_pylist(), start=1)))
    return Records(rows=_json_rows(path))


def _json_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A JSON array of objects, or an object of arrays keyed by group (HarmBench's validation set
    groups its rows by behaviour id: the key becomes the column `group`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read JSON: {exc}", path=path) from None
    if isinstance(data, dict) and all(isinstance(value, list) for value in data.values()):
        data = [{"group": key, **row} for key, rows in data.items() for row in rows if isinstance(row, dict)]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise InputError(
            "a JSON label file is an array of objects, or an object of arrays of objects", path=path
        )
    return list(enumerate(data, start=1))


def _text(record: dict[str, Any], column: str | None) -> str | None:
    value = record.get(column) if column else None
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _row(
    profile: LabelProfile, line: int, record: dict[str, Any], source: str, records: Records
) -> LabelledRow:
    """One row, its required columns present (`_missing_columns` took the others out)."""
    columns = profile.columns
    label_columns = [columns.label] if isinstance(columns.label, str) else list(columns.label)
    positive, negative = (
        set(map(normalized, profile.labels.positive)),
        set(map(normalized, profile.labels.negative)),
    )
    votes = []
    for name in label_columns:
        value = normalized(record[name])
        if value not in positive | negative:
            raise InputError(
                records.note_comment(
                    line,
                    f"label {record[name]!r} in column '{name}' is not a declared value "
                    f"(positive: {sorted(positive)}; negative: {sorted(negative)})",
                ),
                path=source,
                line=line,
            )
        votes.append(value in positive)
    behavior = _text(record, columns.behavior) or ""
    return LabelledRow(
        line=line,
        id=_text(record, columns.id) or str(line),
        behavior=behavior,
        prompt=_text(record, columns.prompt) or behavior,
        response=_text(record, columns.response) or "",
        positive=sum(votes) * 2 > len(votes),  # the annotators' majority; a tie is negative
        category=_text(record, columns.category),
    )
