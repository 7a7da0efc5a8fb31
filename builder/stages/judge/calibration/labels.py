"""Human-labelled answers to calibrate a judge against, read through a label-set profile.

A profile is one YAML file under `taxonomy/labels/`, like a seed source: where the data is (a
Hub dataset with a pinned revision, or a local path), its format, which columns hold the
behaviour, the prompt, the answer, the people's label(s), the category and the id, which label
values mean positive (unsafe, or refusal) and negative, which prefix marks the comment lines at
the top of a file (`#`), and the licence and citation (required for a Hub set; a private file's
profile may leave them out). Hub sets are read through `datasets.load_dataset`; a local copy of
one is read with `--path` through the same column map. A plain CSV, JSONL, JSON or Parquet file
works without a profile when it uses the default column names (behavior, response, label;
prompt, category, id optional). `rows.py` reads the rows; a profile's mistakes
(a key it does not know, a value both positive and negative) name the profile's line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.config.yaml_lines import line_of, read_yaml
from builder.core.errors import InputError, InputErrors

Task = Literal["unsafe", "refusal"]
Format = Literal["hub", "csv", "jsonl", "json", "parquet"]
MAX_ERRORS = 20  # a broken file reports its first problems, not thousands of lines
SUFFIX_FORMATS: dict[str, Format] = {
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
    comment_prefix: str | None = Field(
        "#", min_length=1, description="CSV, JSONL: lines starting with it at the top are skipped."
    )
    columns: Columns
    labels: LabelValues
    categories: dict[str, str] = Field(
        default_factory=dict, description="The set's categories -> taxonomy slugs (the llm judge's rubric)."
    )
    licence: str | None = Field(None, description="Required for a Hub set; a private file may omit it.")
    citation: str | None = Field(None, description="Required for a Hub set; a private file may omit it.")
    homepage: str | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _public_sets_are_cited(self) -> LabelProfile:
        if self.where.hub is not None and not (self.licence and self.citation):
            raise ValueError("a Hub label set names its `licence` and `citation` (calibrations quote them)")
        return self


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
    comments: int = 0  # comment lines skipped at the top of the file

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
    """Label values compare as text: 1, 1.0, "1", "1.0" and " 1 " are the same; true/false in
    lower case."""
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


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
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
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
    )


def resolve(source: str, profiles: Path, task: Task = "unsafe") -> tuple[LabelProfile, Path | None]:
    """`source`: a bundled profile's name, a profile file, or a labelled data file. Returns the
    profile and the folder its relative paths are read from."""
    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise InputError("label-set profile not found", path=path)
        return read_profile(path), path.resolve().parent
    if path.suffix.lower() in SUFFIX_FORMATS or path.exists():
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
