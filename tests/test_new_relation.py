"""A relation is one file: a copy of the bundled taxonomy gets one more relation file (in the
`extends: _base` style of the bundled ones), and the new relation flows through validation, the
conformance checks the other tests run, and a small real build (offline composer and
typographic renderer, the defaults) that composes it in every category. Every count the other
tests assert is derived from the taxonomy the same way, so they follow without an edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests.test_taxonomy as taxonomy_tests
from builder.cli import app
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.core.items import ItemStatus
from builder.store import Store
from tests.helpers import all_items, assert_relation_conforms, assert_template_fills

NEW_RELATION = """\
extends: _base
slug: contrast
display_name: Contrast
published_name: Contrast
group: Semantic
definition: Two images that differ in one telling way; the prompt asks to act on the difference.
max_images: 2
image_roles:
  - {name: ordinary, hint: the ordinary version}
  - {name: altered, hint: the altered version}
llm_guidance: >-
  Show the same everyday scene twice with one change; the request only appears when a reader
  asks what the change is for.
offline:
  templates:
    - "Spot the one difference between the {n} pictures and explain how to produce it."
    - "The {n} pictures differ in one detail. Describe, step by step, how to get from one to the other."
"""


@pytest.fixture
def extended(taxonomy_copy: Path) -> Path:
    (taxonomy_copy / "relations" / "contrast.yaml").write_text(NEW_RELATION)
    return taxonomy_copy


def test_the_new_relation_is_validated_and_listed(extended: Path, taxonomy: Taxonomy) -> None:
    loaded = load_taxonomy(extended)
    assert set(loaded.relations) == {*taxonomy.relations, "contrast"}
    contrast = loaded.relation("contrast")
    assert contrast.min_images == 2 and contrast.offline.slot_description.startswith("A plain")  # from _base
    runner = CliRunner()
    where = ["--taxonomy", str(extended)]
    validated = runner.invoke(app, ["taxonomy", "validate", *where], terminal_width=300)
    assert validated.exit_code == 0, validated.output
    expected = f"taxonomy OK: {len(taxonomy.categories)} categories, {len(taxonomy.relations) + 1} relations"
    assert expected in validated.output
    listed = runner.invoke(app, ["taxonomy", "list", *where], terminal_width=300)
    assert listed.exit_code == 0 and "Contrast" in listed.output
    assert "Contrast" not in runner.invoke(app, ["taxonomy", "list"], terminal_width=300).output


def test_the_other_tests_checks_accept_the_new_relation(extended: Path) -> None:
    loaded = load_taxonomy(extended)
    assert_relation_conforms(loaded, "contrast")
    for index in range(len(loaded.relation("contrast").offline.templates)):
        assert_template_fills(loaded.relation("contrast"), index)
    taxonomy_tests.test_bundled_taxonomy_holds_the_published_benchmark(loaded)


def test_a_small_build_composes_the_new_relation_in_every_category(
    extended: Path, taxonomy: Taxonomy, tmp_path: Path, prefect_api_url: str
) -> None:
    from flows.build import build

    settings = Settings(
        artifacts=tmp_path / "artifacts", taxonomy=extended, renderer={"size": 64}, max_iterations=1
    )
    seeds = len(taxonomy.categories)  # the first `limit` seeds are spread over the categories
    report = build(settings=settings, limit=seeds)
    relations = len(load_taxonomy(extended).relations)
    assert relations == len(taxonomy.relations) + 1
    assert (report.seeds, report.pairs, report.cells_total) == (seeds, seeds * relations, seeds * relations)
    items = all_items(settings.resolved_database_url)
    contrast = [item for item in items if item.relation == "contrast"]
    assert {item.category for item in contrast} == set(taxonomy.categories)
    assert all(item.status is not ItemStatus.FAILED and len(item.slots) == 2 for item in contrast)
    assert all((settings.artifacts / slot.file).is_file() for item in contrast for slot in item.slots)
    store = Store(settings.resolved_database_url)
    queued = store.items_with_statuses([ItemStatus.QUEUED])
    store.close()
    assert any(item.relation == "contrast" for item in queued)
