"""Protected groups (`taxonomy/protected.yaml`): pictures that show a group, its symbols or its
places belong only in items whose seed is about that group.

A picture (by its caption) belongs to a group when it holds one of the group's `pictures`
phrases as whole words. A seed is about a group when its category is one of `categories` (hate
speech, harassment) and its question holds one of the group's `about` words (word forms
folded). `allows(caption, category, question)`: the picture belongs to no group, or only to
groups the seed is about. A taxonomy folder without the file protects no group.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from builder.config.yaml_lines import read_yaml, validation_errors
from builder.core.errors import InputError, InputErrors
from builder.core.words import content_stems, stem

FILE = "protected.yaml"


class ProtectedGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    about: list[str] = Field(min_length=1)  # words a question about the group holds
    pictures: list[str] = Field(min_length=1)  # caption phrases of its pictures

    @cached_property
    def _about(self) -> frozenset[str]:
        return frozenset(stem(word.lower()) for word in self.about)

    @cached_property
    def _pictures(self) -> re.Pattern[str]:
        phrases = sorted((re.escape(phrase.lower()) for phrase in self.pictures), key=len, reverse=True)
        return re.compile(r"(?<!\w)(?:" + "|".join(phrases) + r")(?!\w)")

    def shows(self, caption: str) -> bool:
        return bool(self._pictures.search(caption.lower()))

    def is_about(self, question: str) -> bool:
        return bool(self._about & set(content_stems(question)))


class ProtectedGroups(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[str] = Field(default_factory=list)  # the seeds' categories that may show them
    groups: list[ProtectedGroup] = Field(default_factory=list)

    def groups_shown(self, caption: str) -> list[str]:
        return [group.name for group in self.groups if group.shows(caption)]

    def groups_about(self, category: str, question: str) -> list[str]:
        if category not in self.categories:
            return []
        return [group.name for group in self.groups if group.is_about(question)]

    def allows(self, caption: str, category: str, question: str) -> bool:
        shown = self.groups_shown(caption)
        return not shown or set(shown) <= set(self.groups_about(category, question))


def load_protected(taxonomy: Path, categories: list[str] | None = None) -> ProtectedGroups:
    """`taxonomy/protected.yaml`, checked (and its categories against `categories`, the
    taxonomy's, when given); no file: no group is protected."""
    path = Path(taxonomy) / FILE
    if not path.is_file():
        return ProtectedGroups()
    data, node = read_yaml(path)
    try:
        protected = ProtectedGroups.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise InputErrors(validation_errors(exc, [(path, node)])) from None
    unknown = sorted(set(protected.categories) - set(categories)) if categories is not None else []
    if unknown:
        known = ", ".join(sorted(categories or []))
        raise InputError(f"categories: unknown {', '.join(unknown)}; known: {known}", path=path)
    return protected
