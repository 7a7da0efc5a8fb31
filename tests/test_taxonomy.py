"""The taxonomy is data: facts of the published benchmark, conformance of every relation file,
and errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.settings import bundled
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.core.errors import InputError
from tests.helpers import assert_relation_conforms, assert_template_fills

# Every registered relation (and each of its offline templates) gets the conformance tests:
# a new relation file is tested without touching this file.
_BUNDLED = load_taxonomy(bundled("taxonomy"))
RELATIONS = sorted(_BUNDLED.relations)
TEMPLATES = [
    (slug, index) for slug in RELATIONS for index in range(len(_BUNDLED.relations[slug].offline.templates))
]

PUBLISHED_RELATIONS = {
    "Temporal": {"Temporal_Continuity", "Temporal_Jump"},
    "Spatial": {"Spatial_Juxtaposition", "Spatial_Embedding"},
    "Semantic": {"Relevance", "Complementarity"},
    "Logical": {"Analogy", "Causality", "Decomposition"},
}
PUBLISHED_CATEGORIES = {"Hate_Speech", "Violence", "Self-Harm", "Illegal_Activities", "Harassment", "Privacy"}


def test_bundled_taxonomy_holds_the_published_benchmark(taxonomy: Taxonomy) -> None:
    """Every category and relation of the published benchmark, in its group; a relation file
    added to the taxonomy extends it and breaks nothing here."""
    assert {c.published_name for c in taxonomy.categories.values()} >= PUBLISHED_CATEGORIES
    bundled_relations = {(r.group, r.published_name) for r in taxonomy.relations.values()}
    published = {(group, name) for group, names in PUBLISHED_RELATIONS.items() for name in names}
    assert bundled_relations >= published


@pytest.mark.parametrize("slug", RELATIONS)
def test_relation_conformance(taxonomy: Taxonomy, slug: str) -> None:
    assert_relation_conforms(taxonomy, slug)


@pytest.mark.parametrize(("slug", "index"), TEMPLATES)
def test_every_offline_template_fills(taxonomy: Taxonomy, slug: str, index: int) -> None:
    """FigStep's generator shipped a template that crashed at run time: each one is tried here."""
    assert_template_fills(taxonomy.relation(slug), index)


def test_relation_inherits_from_base_and_overrides(taxonomy: Taxonomy) -> None:
    relation = taxonomy.relation("temporal_continuity")
    assert relation.min_images == 3  # overridden
    assert relation.offline.slot_description.startswith("A plain, neutral picture of")  # inherited


def _error(root: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_taxonomy(root)
    return str(caught.value)


def test_bad_field_names_file_line_and_field(taxonomy_copy: Path) -> None:
    target = taxonomy_copy / "relations" / "causality.yaml"
    lines = target.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("max_images"))
    lines[number - 1] = "max_images: 9"
    target.write_text("\n".join(lines) + "\n")
    message = _error(taxonomy_copy)
    assert f"causality.yaml:{number}: field 'max_images'" in message
    assert "less than or equal to 4" in message


def test_yaml_syntax_error_names_the_line(taxonomy_copy: Path) -> None:
    (taxonomy_copy / "relations" / "broken.yaml").write_text("extends: _base\nslug: [unclosed\n")
    assert "broken.yaml:3: invalid YAML" in _error(taxonomy_copy)


def test_unknown_template_placeholder_is_rejected_at_load(taxonomy_copy: Path) -> None:
    target = taxonomy_copy / "relations" / "analogy.yaml"
    target.write_text(
        target.read_text()
        .replace("{n}", "{count}", 1)
        .replace("The first picture shows how", "{count} pictures; the first shows how", 1)
    )
    message = _error(taxonomy_copy)
    assert "analogy.yaml" in message and "unknown placeholder(s) ['count']" in message


def test_every_broken_file_is_reported_at_once(taxonomy_copy: Path) -> None:
    (taxonomy_copy / "relations" / "one.yaml").write_text("extends: _base\nslug: one\n")
    (taxonomy_copy / "relations" / "two.yaml").write_text("extends: _missing\nslug: two\n")
    message = _error(taxonomy_copy)
    assert "one.yaml" in message and "field 'display_name': Field required" in message
    assert "two.yaml:1: 'extends: _missing' names no file _missing.yaml" in message


def test_min_above_max_and_slug_mismatch(taxonomy_copy: Path) -> None:
    source = (taxonomy_copy / "relations" / "relevance.yaml").read_text()
    (taxonomy_copy / "relations" / "relevance.yaml").write_text(
        source.replace("slug: relevance", "slug: other")
    )
    assert "slug 'other' must match the file name 'relevance'" in _error(taxonomy_copy)
    (taxonomy_copy / "relations" / "relevance.yaml").write_text(source + "min_images: 4\nmax_images: 3\n")
    assert "min_images (4) > max_images (3)" in _error(taxonomy_copy)


def test_duplicate_category_slug(taxonomy_copy: Path) -> None:
    path = taxonomy_copy / "categories.yaml"
    path.write_text(path.read_text().replace("slug: privacy", "slug: violence"))
    assert "duplicate category slug 'violence'" in _error(taxonomy_copy)


def test_unknown_relation_lists_the_known_ones(taxonomy: Taxonomy) -> None:
    with pytest.raises(InputError) as caught:
        taxonomy.relation("telepathy")
    known = ", ".join(sorted(taxonomy.relations))
    assert str(caught.value) == f"unknown relation 'telepathy'; known: {known}"
