"""How often the sources' mapping rules are right: a labelled sample (JSONL, one seed a line:
`source`, `source_id`, `text`, the source's `labels`, the `category` a person decided, or
`out_of_scope`, and the `reason`) run through each source's profile, with accuracy, per-category
precision and recall, and the confusion matrix. A seed no rule maps counts as wrong (its
prediction is `unmapped`): triage would leave it to people."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from builder.core.errors import InputError, InputErrors
from builder.curation.sources import OUT_OF_SCOPE, SourceProfile

UNMAPPED = "unmapped"


class LabelledSeed(BaseModel):
    """One seed of the sample, decided and checked by hand."""

    model_config = ConfigDict(extra="forbid")

    source: str
    source_id: str
    text: str = Field(min_length=1)
    labels: list[str] = Field(default_factory=list)
    category: str
    reason: str = Field(min_length=3, description="Why this category: what the request asks for.")
    split: str = Field("dev", pattern="^(dev|held_out)$")


@dataclass(frozen=True)
class Scores:
    precision: float | None
    recall: float | None
    support: int  # seeds of the category in the sample


@dataclass(frozen=True)
class MappingAccuracy:
    seeds: int
    correct: int
    classes: list[str]  # the taxonomy's categories, out_of_scope, unmapped
    confusion: dict[tuple[str, str], int]  # (decided by hand, mapped) -> seeds
    wrong: list[tuple[LabelledSeed, str]]

    @property
    def accuracy(self) -> float:
        return self.correct / self.seeds if self.seeds else 0.0

    def scores(self, category: str) -> Scores:
        predicted = sum(n for (_, mapped), n in self.confusion.items() if mapped == category)
        actual = sum(n for (truth, _), n in self.confusion.items() if truth == category)
        hits = self.confusion.get((category, category), 0)
        return Scores(hits / predicted if predicted else None, hits / actual if actual else None, actual)


def read_sample(path: Path, categories: set[str]) -> list[LabelledSeed]:
    """The sample's seeds; every bad line is named (file:line)."""
    seeds: list[LabelledSeed] = []
    problems: list[InputError] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the labelled sample: {exc}", path=path) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            seed = LabelledSeed.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(InputError(f"malformed JSON: {exc.msg}", path=path, line=number))
            continue
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            problems.append(InputError(f"field '{where}': {error['msg']}", path=path, line=number))
            continue
        if seed.category not in categories | {OUT_OF_SCOPE}:
            problems.append(InputError(f"unknown category '{seed.category}'", path=path, line=number))
            continue
        seeds.append(seed)
    if problems:
        raise InputErrors(problems[:50])
    if not seeds:
        raise InputError("the labelled sample holds no seed", path=path)
    return seeds


def check_mapping(
    sample: list[LabelledSeed], profiles: dict[str, SourceProfile], categories: list[str]
) -> MappingAccuracy:
    confusion: Counter[tuple[str, str]] = Counter()
    wrong: list[tuple[LabelledSeed, str]] = []
    for seed in sample:
        mapped = profiles[seed.source].map_labels(seed.text, seed.labels) or UNMAPPED
        confusion[(seed.category, mapped)] += 1
        if mapped != seed.category:
            wrong.append((seed, mapped))
    classes = [*sorted(categories), OUT_OF_SCOPE, UNMAPPED]
    return MappingAccuracy(len(sample), len(sample) - len(wrong), classes, dict(confusion), wrong)
