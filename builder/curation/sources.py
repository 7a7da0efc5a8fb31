"""Seed sources as data: one YAML profile per source (in `taxonomy/sources/`, or the folder
`--sources` / `MIRBENCH_SOURCES` names), read through `datasets.load_dataset`, so a Hub dataset and
a local copy share one code path (`builder.curation.reading`).

A profile names where the data is (a Hub dataset with a pinned revision, config and split; or a
local file, a folder with a glob, or a list of files, relative to the profile's own folder), its
format, which fields hold the text, the id and the source's own labels (and whether the file name
is a label too), its licence, citation, homepage and merge priority, and the mapping from those
labels to the taxonomy's categories (the first of the two triage opinions).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.config.settings import bundled
from builder.config.yaml_lines import line_of, read_yaml, validation_errors
from builder.core.errors import InputError, InputErrors

OUT_OF_SCOPE = "out_of_scope"
Format = Literal["jsonl", "csv", "parquet", "datasets", "yaml", "text"]
# A folder's data files, by default, and the format a local copy given with --path is read in.
SUFFIXES: dict[Format, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".json"),
    "csv": (".csv",),
    "parquet": (".parquet",),
    "text": (".txt",),
    "yaml": (".yaml", ".yml"),
    "datasets": (),
}
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def expand(path: str | Path, base: Path) -> Path:
    """`~` and environment variables expanded; a relative path taken from `base`."""
    expanded = Path(os.path.expandvars(os.path.expanduser(str(path))))
    return (expanded if expanded.is_absolute() else base / expanded).resolve()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Origin(_Section):
    """Where the rows come from: a Hub dataset at a pinned revision, or local data."""

    hub: str | None = Field(None, description="Hub dataset name, e.g. walledai/AdvBench.")
    revision: str | None = Field(None, description="Hub commit, tag or branch; required with `hub`.")
    config: str | None = None
    split: str = "train"
    path: str | list[str] | None = Field(
        None,
        description="A file, a folder (its data files, see `glob`) or a list of files; relative to "
        "the profile's folder; `~` and $VARIABLES are expanded.",
    )
    glob: str | None = Field(
        None, description="With a folder: the data files, e.g. '*.jsonl'. [default: the format's suffixes]"
    )
    records_key: str | None = Field(None, description="yaml/json: the key holding the list of rows.")

    @model_validator(mode="after")
    def _one_place(self) -> Origin:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of 'hub' (with 'revision') or 'path'")
        if self.hub is not None and not self.revision:
            raise ValueError("a Hub source needs a pinned 'revision' (a commit sha or tag)")
        if isinstance(self.path, list) and not self.path:
            raise ValueError("'path' lists no file")
        if self.glob is not None and isinstance(self.path, list):
            raise ValueError("'glob' selects files in a folder: give 'path' as one folder")
        return self

    @property
    def paths(self) -> list[str]:
        return [] if self.path is None else [self.path] if isinstance(self.path, str) else list(self.path)


class Fields(_Section):
    text: str = Field(
        description="The field holding the question or behaviour (`text` for plain-text files)."
    )
    id: str | None = Field(None, description="The source's own id; default: a hash of the text.")
    labels: list[str] = Field(default_factory=list, description="Fields holding the source's labels.")
    label_from: Literal["file_stem"] | None = Field(
        None, description="file_stem: each row's file name (without suffix) is one more label."
    )


class MappingRule(_Section):
    """Seeds with any of `labels` (or whose text matches `pattern`) go to `category`; with
    `match: all`, only seeds with one of the labels whose text matches too."""

    category: str
    labels: list[str] = Field(default_factory=list)
    pattern: str | None = None
    match: Literal["any", "all"] = Field("any", description="any: a label or the pattern; all: both.")
    note: str = Field("", description="Why the rule is there (shown in `mirbench seeds show`).")

    @model_validator(mode="after")
    def _says_something(self) -> MappingRule:
        if not self.labels and not self.pattern:
            raise ValueError("a mapping rule needs 'labels' or 'pattern'")
        if self.match == "all" and not (self.labels and self.pattern):
            raise ValueError("'match: all' needs both 'labels' and 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from None
        return self


@dataclass(frozen=True)
class RuleMatch:
    """Why opinion (a) is what it is: the profile's rule (by index) and what in the seed matched."""

    source: str
    rule: int
    category: str
    label: str | None  # the source label that matched, and/or
    text: str | None  # the words of the seed the rule's pattern matched

    @property
    def by(self) -> str:
        return "label+text" if self.label and self.text else "label" if self.label else "text"

    @property
    def matched(self) -> str:
        return "; ".join(part for part in (self.label, self.text) if part)


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
    priority: int = Field(
        0,
        description="On a near-duplicate merge the seed of the higher-priority source is kept (ties: "
        "the one with more labels), whatever the import order.",
    )
    mapping: list[MappingRule] = Field(default_factory=list, description="First matching rule wins.")
    notes: str = ""

    @property
    def pinned_revision(self) -> str:
        return self.origin.revision or self.revision

    def map_labels(self, text: str, labels: list[str]) -> str | None:
        """Opinion (a): the category (or `out_of_scope`) of the first matching rule; None: no rule."""
        match = self.explain(text, labels)
        return match.category if match else None

    def explain(self, text: str, labels: list[str]) -> RuleMatch | None:
        """The first rule that matches the seed, with what matched; None: no rule matches."""
        present = set(labels)
        for number, rule in enumerate(self.mapping):
            label = next((label for label in rule.labels if label in present), None)
            found = re.search(rule.pattern, text) if rule.pattern else None
            words = found.group(0) if found is not None else None
            if rule.match == "all":
                if label is not None and words is not None:
                    return RuleMatch(self.name, number, rule.category, label, words)
            elif label is not None:
                return RuleMatch(self.name, number, rule.category, label, None)
            elif words is not None:
                return RuleMatch(self.name, number, rule.category, None, words)
        return None


@dataclass(frozen=True)
class SourceRow:
    """One row as the source holds it: where it is (file and row, for messages), id, text, labels."""

    row: int
    source_id: str | None
    text: object
    labels: list[str]
    file: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}: row {self.row}"


@dataclass(frozen=True)
class LoadedSource:
    profile: SourceProfile
    profile_path: Path
    location: str  # the file, folder or hub@revision the rows came from (for messages)
    revision: str
    rows: list[SourceRow]
    files: int = 1
    blank_lines: int = 0  # plain-text files: blank lines skipped
    notes: tuple[str, ...] = ()  # what the reader chose for the user (a format guessed, ...)


def sources_folder(sources: Path | None, taxonomy: Path) -> Path:
    """Where the source profiles are: the folder given (`--sources`, MIRBENCH_SOURCES), else the
    taxonomy's `sources/`, else the bundled profiles (so a copied taxonomy without them still
    finds the shipped sources, whose data paths are relative to their own folder)."""
    if sources is not None:
        return expand(sources, Path.cwd())
    own = Path(taxonomy) / "sources"
    return own if own.is_dir() else bundled("taxonomy") / "sources"


def profile_path(folder: Path, name: str) -> Path:
    """The profile file of source `name` in `folder`; an unknown name lists the known ones."""
    folder = Path(folder)
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


def source_profiles(folder: Path, names: set[str], categories: set[str]) -> dict[str, SourceProfile]:
    return {name: load_profile(profile_path(folder, name), categories) for name in sorted(names)}
