"""Seed questions: loaded from JSONL or CSV files and checked against the taxonomy.

Loading is all-or-nothing: every file is checked, every problem is reported with `file:line`,
and callers get seeds only when there is no problem at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from builder.config.input_limits import InputLimits
from builder.config.taxonomy import Taxonomy
from builder.config.user_files import RECORD_SUFFIXES, control_character, read_records
from builder.core.errors import InputError, InputErrors
from builder.core.items import SeedOrigin
from builder.core.words import contains_phrase, derive_key_phrase

SEED_SUFFIXES = RECORD_SUFFIXES


class Seed(BaseModel):
    """One harmful question. `key_phrase` is the span that must never appear in a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    category: str
    query: str = Field(min_length=1)
    key_phrase: str | None = None
    source: str = "unspecified"
    license: str = "unspecified"
    # Provenance of a curated seed (`mirbench seeds select` writes them; items record them).
    source_id: str | None = None
    revision: str | None = None
    citation: str | None = None
    seed_set: str | None = None
    # How a curated seed's category was decided (`mirbench seeds select` writes them).
    category_by: Literal["rule", "rule+model", "people"] | None = None
    category_rule: str | None = None  # the source profile's rule and what matched
    checked_by_hand: bool | None = None  # in the maintainers' labelled sample

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        problem = control_character(value) if isinstance(value, str) and value else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("key_phrase")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _key_phrase_in_query(self) -> Seed:
        if self.key_phrase and not contains_phrase(self.query, self.key_phrase):
            raise ValueError(f"key_phrase {self.key_phrase!r} does not occur in the query")
        return self

    @property
    def guarded_phrase(self) -> str:
        """The phrase no prompt and no single image may carry: the key phrase, else one derived
        from the question's content words (`key_phrase_derived`)."""
        return self.key_phrase or derive_key_phrase(self.query)

    @property
    def key_phrase_derived(self) -> bool:
        return self.key_phrase is None

    @property
    def origin(self) -> SeedOrigin:
        return SeedOrigin(
            seed_set=self.seed_set,
            source=self.source,
            source_id=self.source_id,
            revision=self.revision,
            license=self.license,
            citation=self.citation,
            category_by=self.category_by,
            checked_by_hand=self.checked_by_hand,
        )


def seed_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their seed files (sorted); keep files as given."""
    paths = [Path(path) for path in paths]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix.lower() in SEED_SUFFIXES and p.is_file())
            )
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("no such seed file or folder", path=path)
    if not files:
        raise InputError(
            f"no seeds: no seed files ({', '.join(SEED_SUFFIXES)}) in " + ", ".join(str(p) for p in paths)
        )
    return files


def load_seeds(paths: Iterable[Path], taxonomy: Taxonomy, limits: InputLimits | None = None) -> list[Seed]:
    """Every seed from `paths`, in file order; raises InputErrors listing all problems.

    An empty file, a CSV with a header only, or no seed at all is a problem too.
    """
    limits = limits or InputLimits()
    seeds: list[Seed] = []
    errors: list[InputError] = []
    first_seen: dict[str, str] = {}
    files = seed_files(paths)
    for path in files:
        records = read_records(path, limits.max_record_chars, _REQUIRED_COLUMNS, _COLUMNS)
        errors.extend(records.errors)
        for line, record in records.rows:
            try:
                seed = Seed.model_validate(record)
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(part) for part in error["loc"]) or "record"
                    errors.append(InputError(f"field '{field}': {error['msg']}", path=path, line=line))
                continue
            problem = _problem(seed, taxonomy, limits, first_seen)
            if problem is not None:
                errors.append(InputError(problem, path=path, line=line))
                continue
            first_seen[seed.id] = f"{path}:{line}"
            seeds.append(seed)
    if errors:
        raise InputErrors(errors)
    if not seeds:
        raise InputError("no seeds in " + ", ".join(str(p) for p in files))
    return seeds


def _problem(seed: Seed, taxonomy: Taxonomy, limits: InputLimits, first_seen: dict[str, str]) -> str | None:
    if len(seed.query) > limits.max_query_chars:
        return (
            f"field 'query' is {len(seed.query):,} characters, over the limit of {limits.max_query_chars:,}; "
            "raise limits.max_query_chars (or MIRBENCH_LIMITS__MAX_QUERY_CHARS) if this is intended"
        )
    if seed.category not in taxonomy.categories:
        return f"unknown category '{seed.category}'; known: {', '.join(sorted(taxonomy.categories))}"
    if seed.id in first_seen:
        return f"duplicate seed id '{seed.id}' (first seen at {first_seen[seed.id]})"
    return None


_COLUMNS = frozenset(Seed.model_fields)
_REQUIRED_COLUMNS = frozenset(name for name, info in Seed.model_fields.items() if info.is_required())
