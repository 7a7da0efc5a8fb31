"""Seed sources as data: one YAML profile per source in `taxonomy/sources/`, read through
`datasets.load_dataset`, so a Hub dataset and a local copy share one code path.

A profile names where the data is (a Hub dataset with a pinned revision, config and split, or a
local path relative to the profile), its format, which fields hold the text, the id and the
source's own labels, its licence, citation and homepage, and the mapping from those labels to
the taxonomy's categories (the first of the two triage opinions).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.config.user_files import SNIFF_BYTES, wide_encoding
from builder.config.yaml_lines import line_of, read_yaml, validation_errors
from builder.core.errors import InputError, InputErrors

OUT_OF_SCOPE = "out_of_scope"
Format = Literal["jsonl", "csv", "parquet", "datasets", "yaml", "text"]
_LOADERS = {"jsonl": "json", "csv": "csv", "parquet": "parquet", "text": "text"}
# A local copy given with --path is read in the format its suffix names (else the profile's).
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".yaml": "yaml",
    ".yml": "yaml",
}
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Origin(_Section):
    """Where the rows come from: a Hub dataset at a pinned revision, or a local path."""

    hub: str | None = Field(None, description="Hub dataset name, e.g. walledai/AdvBench.")
    revision: str | None = Field(None, description="Hub commit, tag or branch; required with `hub`.")
    config: str | None = None
    split: str = "train"
    path: str | None = Field(None, description="A local file or folder, relative to the profile.")
    records_key: str | None = Field(None, description="yaml/json: the key holding the list of rows.")

    @model_validator(mode="after")
    def _one_place(self) -> Origin:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of 'hub' (with 'revision') or 'path'")
        if self.hub is not None and not self.revision:
            raise ValueError("a Hub source needs a pinned 'revision' (a commit sha or tag)")
        return self


class Fields(_Section):
    text: str = Field(description="The field holding the question or behaviour.")
    id: str | None = Field(None, description="The source's own id; default: a hash of the text.")
    labels: list[str] = Field(default_factory=list, description="Fields holding the source's labels.")


class MappingRule(_Section):
    """Seeds with any of `labels` (or whose text matches `pattern`) go to `category`."""

    category: str
    labels: list[str] = Field(default_factory=list)
    pattern: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> MappingRule:
        if not self.labels and not self.pattern:
            raise ValueError("a mapping rule needs 'labels' or 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from None
        return self


class SourceProfile(_Section):
    name: str = Field(pattern=_NAME)
    display_name: str
    origin: Origin
    format: Format
    fields: Fields
    license: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    homepage: str = Field(min_length=1)
    revision: str = Field("unversioned", description="Recorded on local data: the release it copies.")
    mapping: list[MappingRule] = Field(default_factory=list, description="First matching rule wins.")
    notes: str = ""

    @property
    def pinned_revision(self) -> str:
        return self.origin.revision or self.revision

    def map_labels(self, text: str, labels: list[str]) -> str | None:
        """Opinion (a): the category (or `out_of_scope`) of the first matching rule; None: no rule."""
        present = set(labels)
        for rule in self.mapping:
            if present.intersection(rule.labels) or (rule.pattern and re.search(rule.pattern, text)):
                return rule.category
        return None


@dataclass(frozen=True)
class SourceRow:
    """One row as the source holds it: its position (for messages), id, text and labels."""

    row: int
    source_id: str | None
    text: Any
    labels: list[str]


@dataclass(frozen=True)
class LoadedSource:
    profile: SourceProfile
    profile_path: Path
    location: str  # the file, folder or hub@revision the rows came from (for messages)
    revision: str
    rows: list[SourceRow]


def sources_folder(taxonomy_root: Path) -> Path:
    return Path(taxonomy_root) / "sources"


def profile_path(taxonomy_root: Path, name: str) -> Path:
    """The profile file of source `name`; an unknown name lists the known ones."""
    folder = sources_folder(taxonomy_root)
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise InputError(f"unknown source '{name}'; known: {', '.join(known) or 'none'} (in {folder})")
    return path


def load_profile(path: Path, categories: set[str]) -> SourceProfile:
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError("a source profile must be a mapping", path=path, line=1)
    try:
        profile = SourceProfile.model_validate(data)
    except ValidationError as exc:
        raise InputErrors(validation_errors(exc, [(path, node)])) from None
    if profile.name != path.stem:
        raise InputError(f"field 'name': '{profile.name}' must match the file name '{path.stem}'", path=path)
    for number, rule in enumerate(profile.mapping):
        if rule.category not in categories | {OUT_OF_SCOPE}:
            raise InputError(
                f"field 'mapping.{number}.category': unknown category '{rule.category}'; known: "
                + ", ".join(sorted(categories | {OUT_OF_SCOPE})),
                path=path,
                line=line_of(node, ("mapping", number, "category")),
            )
    return profile


def read_source(profile: SourceProfile, path: Path, local: Path | None = None) -> LoadedSource:
    """Every row of the source (from `local` instead of the profile's origin, when given)."""
    dataset, location = _dataset(profile, path, local)
    columns = set(dataset.column_names)
    for role, name in [("text", profile.fields.text), ("id", profile.fields.id)] + [
        ("labels", label) for label in profile.fields.labels
    ]:
        if name is not None and name not in columns:
            raise InputError(
                f"field '{name}' (fields.{role} in {path.name}) is not in the data; its fields: "
                + ", ".join(sorted(columns)),
                path=location,
            )
    rows = [
        SourceRow(
            number,
            None
            if profile.fields.id is None or record[profile.fields.id] is None
            else str(record[profile.fields.id]),
            record[profile.fields.text],
            [label for name in profile.fields.labels for label in _labels(record[name])],
        )
        for number, record in enumerate(dataset, start=1)
    ]
    revision = profile.pinned_revision if local is None else f"{profile.pinned_revision}+local"
    return LoadedSource(profile, path, location, revision, rows)


def _labels(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for part in value:
            yield from _labels(part)
    elif str(value).strip():
        yield str(value).strip()


def _dataset(profile: SourceProfile, path: Path, local: Path | None) -> tuple[Any, str]:
    """The rows as a `datasets.Dataset`, and where they came from."""
    import datasets
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    origin = profile.origin
    if local is None and origin.hub is not None:
        location = f"{origin.hub}@{origin.revision}"
        try:
            return (
                datasets.load_dataset(
                    origin.hub, origin.config, split=origin.split, revision=origin.revision
                ),
                location,
            )
        except Exception as exc:  # the Hub client's errors differ by version: report the reason
            raise InputError(
                f"field 'origin.revision': cannot load {location}: {str(exc).splitlines()[0][:300]}",
                path=path,
            ) from None
    target = Path(local) if local is not None else (path.parent / str(origin.path)).resolve()
    if not target.exists():
        raise InputError("no such file or folder (the source's data)", path=target)
    kind = _SUFFIXES.get(target.suffix.lower(), profile.format) if local is not None else profile.format
    try:
        if kind == "datasets":
            loaded = datasets.load_from_disk(str(target))
            return (loaded[origin.split] if isinstance(loaded, datasets.DatasetDict) else loaded), str(target)
        if kind == "yaml":
            return _yaml_dataset(target, origin.records_key), str(target)
        files = sorted(str(p) for p in target.iterdir() if p.is_file()) if target.is_dir() else [str(target)]
        if kind in ("jsonl", "csv", "text"):
            _check_utf8(files)
        options: dict[str, Any] = {"field": origin.records_key} if origin.records_key else {}
        return (
            datasets.load_dataset(_LOADERS[kind], data_files=files, split="train", **options),
            str(target),
        )
    except InputError:
        raise
    except Exception as exc:  # a file `datasets` cannot parse: name it and say why
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause):
            reason += f" ({str(cause).splitlines()[0][:200]})"
        raise InputError(f"cannot read as {kind}: {reason}", path=target) from None


def _check_utf8(files: list[str]) -> None:
    """A text file saved as UTF-16 or UTF-32 is named as such, before `datasets` reads it as
    broken UTF-8."""
    for file in files:
        with open(file, "rb") as handle:
            wide = wide_encoding(handle.read(SNIFF_BYTES))
        if wide is not None:
            raise InputError(f"the file is {wide}, not UTF-8: save it as UTF-8", path=file)


def _yaml_dataset(path: Path, records_key: str | None) -> Any:
    """A YAML file of rows (or a mapping whose `records_key` holds them), through `load_dataset`."""
    import datasets

    data, _ = read_yaml(path)
    rows = data.get(records_key) if isinstance(data, dict) and records_key else data
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        where = f"key '{records_key}'" if records_key else "the file"
        raise InputError(f"{where} must hold a list of mappings (one per row)", path=path)
    with tempfile.TemporaryDirectory(prefix="mirbench-yaml-") as folder:
        converted = Path(folder) / f"{path.stem}.jsonl"
        converted.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8")
        return datasets.load_dataset("json", data_files=str(converted), split="train", keep_in_memory=True)
