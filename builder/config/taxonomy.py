"""The taxonomy as data: risk categories and relation types, loaded and validated from YAML.

A relation is one file in `relations/`; it may `extends:` a base file (names starting with `_`)
whose keys it inherits. Nothing else in mirbench names a relation: add a file, get a relation.
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from builder.config.yaml_lines import line_of, read_yaml, validation_errors
from builder.core.errors import InputError, InputErrors

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
MIN_IMAGES, MAX_IMAGES = 2, 4

PROMPT_PLACEHOLDERS = frozenset({"n", "category"})
SLOT_PLACEHOLDERS = frozenset({"index", "keyword", "role", "n", "category"})


def _check_placeholders(template: str, allowed: frozenset[str]) -> str:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from exc
    unknown = fields - allowed
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {sorted(unknown)} in {template!r}; allowed: {sorted(allowed)}"
        )
    return template


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: Slug
    display_name: str = Field(min_length=1)
    published_name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class ImageRole(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    hint: str = Field(min_length=1)


class OfflineTemplates(BaseModel):
    """What the offline composer needs: prompt variants and one slot description pattern. A
    prompt is a lead-in, a template and a closing, each picked per seed and round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slot_description: str = Field(min_length=1)
    templates: list[str] = Field(min_length=1)
    lead_ins: list[str] = Field(default_factory=lambda: [""], min_length=1)
    closings: list[str] = Field(default_factory=lambda: [""], min_length=1)

    @field_validator("slot_description")
    @classmethod
    def _slot_placeholders(cls, value: str) -> str:
        return _check_placeholders(value, SLOT_PLACEHOLDERS)

    @field_validator("templates", "lead_ins", "closings")
    @classmethod
    def _prompt_placeholders(cls, value: list[str]) -> list[str]:
        return [_check_placeholders(template, PROMPT_PLACEHOLDERS) for template in value]


class Relation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: Slug
    display_name: str = Field(min_length=1)
    published_name: str = Field(min_length=1)
    group: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    min_images: int = Field(ge=MIN_IMAGES, le=MAX_IMAGES)
    max_images: int = Field(ge=MIN_IMAGES, le=MAX_IMAGES)
    image_roles: list[ImageRole]
    llm_guidance: str = Field(min_length=1)
    offline: OfflineTemplates
    # What a reviewer checks before approving an item of this relation (the review pages list it).
    acceptance: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Relation:
        if self.min_images > self.max_images:
            raise ValueError(f"min_images ({self.min_images}) > max_images ({self.max_images})")
        if len(self.image_roles) < self.max_images:
            raise ValueError(
                f"image_roles lists {len(self.image_roles)} role(s) but max_images is "
                f"{self.max_images}: every slot needs a role"
            )
        names = [role.name for role in self.image_roles]
        if len(set(names)) != len(names):
            raise ValueError(f"image_roles has duplicate names: {names}")
        return self


class Taxonomy(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path
    categories: dict[str, Category]
    relations: dict[str, Relation]
    content_hash: str

    def category(self, slug: str) -> Category:
        try:
            return self.categories[slug]
        except KeyError:
            raise InputError(
                f"unknown category '{slug}'; known: {', '.join(sorted(self.categories))}"
            ) from None

    def relation(self, slug: str) -> Relation:
        try:
            return self.relations[slug]
        except KeyError:
            raise InputError(
                f"unknown relation '{slug}'; known: {', '.join(sorted(self.relations))}"
            ) from None

    def select_relations(self, slugs: list[str] | None) -> list[Relation]:
        """The named relations in the given order, or all of them sorted by slug."""
        if not slugs:
            return [self.relations[slug] for slug in sorted(self.relations)]
        return [self.relation(slug) for slug in slugs]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _load_mapping(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    data, node = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            f"expected a mapping (key: value lines) at the top level, got {type(data).__name__}",
            path=path,
            line=line_of(node, ()),
        )
    return data, node


def _load_relation(path: Path) -> tuple[Relation, yaml.Node | None]:
    """The relation in `path` with its inherited keys, and the file's node tree (for lines)."""
    data, node = _load_mapping(path)
    sources = [(path, node)]
    chain: list[Path] = [path]
    named_in = (path, node)  # the file whose `extends:` is being followed
    while "extends" in data:
        parent_name = str(data.pop("extends"))
        parent = path.parent / (parent_name if parent_name.endswith(".yaml") else f"{parent_name}.yaml")
        named_at = line_of(named_in[1], ("extends",))
        if parent in chain:
            raise InputError(f"circular 'extends' via {parent.name}", path=named_in[0], line=named_at)
        if not parent.is_file():
            raise InputError(
                f"'extends: {parent_name}' names no file {parent.name}", path=named_in[0], line=named_at
            )
        chain.append(parent)
        parent_data, parent_node = _load_mapping(parent)
        sources.append((parent, parent_node))
        named_in = (parent, parent_node)
        extends = parent_data.pop("extends", None)
        data = _merge(parent_data, data)
        if extends is not None:
            data["extends"] = extends
    try:
        relation = Relation.model_validate(data)
    except ValidationError as exc:
        raise InputErrors(validation_errors(exc, sources)) from None
    if relation.slug != path.stem:
        raise InputError(
            f"slug '{relation.slug}' must match the file name '{path.stem}'",
            path=path,
            line=line_of(node, ("slug",)),
        )
    return relation, node


class _CategoriesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(min_length=1)


def _load_categories(path: Path) -> dict[str, Category]:
    data, node = _load_mapping(path)
    try:
        entries = _CategoriesFile.model_validate(data).categories
    except ValidationError as exc:
        raise InputErrors(validation_errors(exc, [(path, node)])) from None
    categories: dict[str, Category] = {}
    for index, entry in enumerate(entries):
        if entry.slug in categories:
            line = line_of(node, ("categories", index, "slug"))
            raise InputError(f"duplicate category slug '{entry.slug}'", path=path, line=line)
        categories[entry.slug] = entry
    return categories


def _content_hash(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def load_taxonomy(root: Path) -> Taxonomy:
    """Load `root/categories.yaml` and every `root/relations/*.yaml` (bases excluded).

    All relation files are checked before failing, so one run reports every broken file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("no such taxonomy folder", path=root)
    categories_file = root / "categories.yaml"
    relations_dir = root / "relations"
    if not categories_file.is_file():
        raise InputError("taxonomy has no categories.yaml", path=root)
    if not relations_dir.is_dir():
        raise InputError("taxonomy has no relations/ folder", path=root)
    categories = _load_categories(categories_file)
    relation_files = sorted(
        p for p in relations_dir.glob("*.yaml") if not p.name.startswith("_") and p.is_file()
    )
    if not relation_files:
        raise InputError("no relation files (*.yaml) found", path=relations_dir)
    relations: dict[str, Relation] = {}
    errors: list[InputError] = []
    for file in relation_files:
        try:
            relation, node = _load_relation(file)
        except InputErrors as exc:
            errors.extend(exc.errors)
            continue
        except InputError as exc:
            errors.append(exc)
            continue
        clash = next((r for r in relations.values() if r.published_name == relation.published_name), None)
        if clash is not None:
            errors.append(
                InputError(
                    f"published_name '{relation.published_name}' is already used by '{clash.slug}'",
                    path=file,
                    line=line_of(node, ("published_name",)),
                )
            )
        relations[relation.slug] = relation
    if errors:
        raise InputErrors(errors)
    all_files = [categories_file, *sorted(p for p in relations_dir.glob("*.yaml") if p.is_file())]
    return Taxonomy(
        root=root,
        categories=categories,
        relations=relations,
        content_hash=_content_hash(all_files, root),
    )
