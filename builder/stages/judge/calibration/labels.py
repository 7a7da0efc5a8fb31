"""Human-labelled answers to calibrate a judge against, read through a label-set profile.

A profile is one YAML file under `taxonomy/labels/`, like a seed source: where the data is (a
Hub dataset with a pinned revision, or a local path), its format, which columns hold the
behaviour, the prompt, the answer, the people's label(s), the category and the id, which label
values mean positive (unsafe, or refusal) and negative, the licence and the citation. Hub sets
are read through `datasets.load_dataset`; a local copy of one is read with `--path` through the
same column map. A plain CSV, JSONL, JSON or Parquet file works without a profile when it
uses the default column names (behavior, response, label; prompt, category, id optional).

Every problem names the file and, where there is one, the line (CSV, JSONL) or row (Parquet,
Hub): a missing column, a label outside the declared values, a file without rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.config.user_files import read_records
from builder.config.yaml_lines import line_of, read_yaml
from builder.core.errors import InputError, InputErrors

Task = Literal["unsafe", "refusal"]
Format = Literal["hub", "csv", "jsonl", "json", "parquet"]
MAX_ERRORS = 20  # a broken file reports its first problems, not thousands of lines
_SUFFIX_FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_DEFAULT_VALUES: dict[str, tuple[list[Any], list[Any]]] = {
    "unsafe": (["unsafe", "1", "true", "yes"], ["safe", "0", "false", "no"]),
    "refusal": (["refusal", "1", "true", "yes"], ["not_refusal", "complied", "0", "false", "no"]),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Where(_Strict):
    hub: str | None = Field(None, description="Hub dataset name (owner/name).")
    config: str | None = Field(None, description="The dataset's configuration (subset), if any.")
    split: str = "train"
    revision: str | None = Field(None, description="A commit or tag, so the figures can be reproduced.")
    path: Path | None = Field(None, description="A local file, relative to the profile's folder.")

    @model_validator(mode="after")
    def _one_place(self) -> Where:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of `hub` (a Hub dataset) or `path` (a local file)")
        return self


class Columns(_Strict):
    behavior: str = Field(description="The harmful behaviour or question the answer is judged against.")
    response: str = Field(description="The model's answer that people labelled.")
    label: str | list[str] = Field(description="The people's label; a list: one column per annotator.")
    prompt: str | None = Field(
        None, description="What the model was sent, when it differs from the behaviour."
    )
    category: str | None = None
    id: str | None = None


class LabelValues(_Strict):
    positive: list[str | int | bool] = Field(min_length=1)
    negative: list[str | int | bool] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> LabelValues:
        both = set(map(normalized, self.positive)) & set(map(normalized, self.negative))
        if both:
            raise ValueError(f"values both positive and negative: {sorted(both)}")
        return self


class LabelProfile(_Strict):
    name: str
    description: str = ""
    task: Task = Field("unsafe", description="What a positive label means: unsafe, or refusal.")
    where: Where
    format: Format
    columns: Columns
    labels: LabelValues
    categories: dict[str, str] = Field(
        default_factory=dict, description="The set's categories -> taxonomy slugs (the llm judge's rubric)."
    )
    licence: str
    citation: str
    homepage: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class LabelledRow:
    line: int | None  # file line (CSV, JSONL) or row number (Parquet, JSON, Hub)
    id: str
    behavior: str
    prompt: str
    response: str
    positive: bool  # the people's label: unsafe (or refusal, for a refusal set)
    category: str | None


@dataclass(frozen=True)
class LabelSet:
    profile: LabelProfile
    source: str  # where the rows were read from, for messages
    rows: list[LabelledRow]

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def content_hash(self) -> str:
        """Hash of the rows used (after --limit): the same hash means the same labelled answers."""
        body = [[r.id, r.behavior, r.prompt, r.response, r.positive, r.category] for r in self.rows]
        payload = json.dumps([self.profile.task, body], ensure_ascii=False).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def normalized(value: Any) -> str:
    """Label values compare as text: 1, 1.0, "1" and " 1 " are the same; true/false in lower case."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def bundled_profiles(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def read_profile(path: Path) -> LabelProfile:
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(
            "a label-set profile is a mapping (name, where, format, columns, labels...)", path=path
        )
    try:
        return LabelProfile.model_validate(data)
    except ValidationError as exc:
        raise InputErrors(
            [
                InputError(
                    f"'{'.'.join(map(str, error['loc'])) or '(all)'}': {error['msg']}",
                    path=path,
                    line=line_of(node, tuple(error["loc"])),
                )
                for error in exc.errors()
            ]
        ) from None


def file_profile(path: Path, task: Task) -> LabelProfile:
    """The profile of a plain labelled file that uses the default column names."""
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"unsupported label file type '{path.suffix}' (use .csv, .jsonl, .json, .parquet, "
            "or a profile .yaml)",
            path=path,
        )
    positive, negative = _DEFAULT_VALUES[task]
    return LabelProfile(
        name=path.stem,
        task=task,
        where=Where(path=path.resolve()),
        format=fmt,
        columns=Columns(
            behavior="behavior",
            response="response",
            label="label",
            prompt="prompt",
            category="category",
            id="id",
        ),
        labels=LabelValues(positive=positive, negative=negative),
        licence="unknown (a local file)",
        citation="",
    )


def resolve(source: str, profiles: Path, task: Task = "unsafe") -> tuple[LabelProfile, Path | None]:
    """`source`: a bundled profile's name, a profile file, or a labelled data file. Returns the
    profile and the folder its relative paths are read from."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise InputError("label-set profile not found", path=path)
        return read_profile(path), path.resolve().parent
    if path.suffix.lower() in _SUFFIX_FORMATS or path.exists():
        if not path.is_file():
            raise InputError("label file not found", path=path)
        return file_profile(path, task), None
    known = bundled_profiles(profiles)
    if source not in known:
        raise InputError(
            f"unknown label set '{source}': not a file, and no profile of that name; "
            f"bundled: {', '.join(known) or 'none'}"
        )
    return read_profile(known[source]), known[source].parent


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
        fmt = profile.format if profile.format != "hub" else _SUFFIX_FORMATS.get(local.suffix.lower())
        if not local.is_file():
            raise InputError("--path: no such file", path=local)
        if fmt is None:
            raise InputError("--path must be a .csv, .jsonl, .json or .parquet file", path=local)
        source, records = str(local), _file_rows(local, fmt, max_record_chars)
    elif profile.where.hub is not None:
        source, records = _hub_name(profile), _hub_rows(profile)
    else:
        assert profile.where.path is not None
        path = profile.where.path if base is None else base / profile.where.path
        fmt = profile.format if profile.format != "hub" else _SUFFIX_FORMATS.get(path.suffix.lower(), "jsonl")
        source, records = str(path), _file_rows(path, fmt, max_record_chars)
    rows, errors = [], []
    for line, record in records[:limit] if limit else records:
        try:
            rows.append(_row(profile, line, record, source))
        except InputError as error:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    if not rows:
        raise InputError("no labelled rows", path=source)
    return LabelSet(profile=profile, source=source, rows=rows)


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


def _file_rows(path: Path, fmt: Format, max_record_chars: int) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError("label file not found (a local copy of a profile's data: --path FILE)", path=path)
    if fmt in ("csv", "jsonl"):
        records = read_records(path, max_record_chars)
        if records.errors:
            raise records.errors[0] if len(records.errors) == 1 else InputErrors(records.errors[:MAX_ERRORS])
        return records.rows
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputError(f"cannot read Parquet: {exc}", path=path) from None
        return list(enumerate(table.to_pylist(), start=1))
    return _json_rows(path)


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


def _row(profile: LabelProfile, line: int, record: dict[str, Any], source: str) -> LabelledRow:
    columns = profile.columns
    label_columns = [columns.label] if isinstance(columns.label, str) else list(columns.label)
    missing = [
        name
        for name in (columns.behavior, columns.response, *label_columns)
        if record.get(name) in (None, "")
    ]
    if missing:
        raise InputError(
            f"missing column(s) {missing} (or empty); the row has {sorted(record)}", path=source, line=line
        )
    positive, negative = (
        set(map(normalized, profile.labels.positive)),
        set(map(normalized, profile.labels.negative)),
    )
    votes = []
    for name in label_columns:
        value = normalized(record[name])
        if value not in positive | negative:
            raise InputError(
                f"label {record[name]!r} in column '{name}' is not a declared value "
                f"(positive: {sorted(positive)}; negative: {sorted(negative)})",
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
