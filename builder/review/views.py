"""What the review pages show of the taxonomy: the choices of the category and relation
filters, each relation's definition and acceptance criteria, and slot roles a person can read
(`object_a` -> "Object A", with the relation's hint for it).

Read once per app from the taxonomy folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.config.taxonomy import load_taxonomy


@dataclass(frozen=True)
class RelationView:
    slug: str
    name: str
    definition: str
    min_images: int
    max_images: int
    roles: dict[str, str]  # role name -> its hint
    acceptance: list[str]


@dataclass(frozen=True)
class TaxonomyView:
    categories: dict[str, str] = field(default_factory=dict)  # slug -> display name
    relations: dict[str, RelationView] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> TaxonomyView:
        taxonomy = load_taxonomy(folder)
        relations = {
            slug: RelationView(
                slug=slug,
                name=relation.display_name,
                definition=relation.definition,
                min_images=relation.min_images,
                max_images=relation.max_images,
                roles={role.name: role.hint for role in relation.image_roles},
                acceptance=list(relation.acceptance),
            )
            for slug, relation in sorted(taxonomy.relations.items())
        }
        categories = {slug: category.display_name for slug, category in sorted(taxonomy.categories.items())}
        return cls(categories=categories, relations=relations)

    def relation(self, slug: str) -> RelationView | None:
        return self.relations.get(slug)

    def category_name(self, slug: str) -> str:
        return self.categories.get(slug, slug)

    def relation_name(self, slug: str) -> str:
        found = self.relations.get(slug)
        return found.name if found else slug

    def role_hint(self, relation: str, role: str) -> str:
        found = self.relations.get(relation)
        return found.roles.get(role, "") if found else ""


def readable_role(role: str) -> str:
    """`object_a` -> "Object A", `part_1` -> "Part 1", `source` -> "Source"."""
    words = [word.upper() if len(word) == 1 else word for word in role.replace("-", "_").split("_") if word]
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else role
