"""Whole builds through the real Prefect flows (a real Prefect server; SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from builder.cli import app
from builder.config.seeds import Seed
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.core.items import ItemStatus
from builder.release.rows import PUBLISHED_FIELDS
from builder.review.policy import Decision
from builder.review.service import ReviewService
from builder.stages.compose import CompositionRequest
from builder.stages.compose.offline import OfflineComposer
from builder.store import Store


@pytest.fixture(autouse=True)
def _prefect(prefect_api_url: str) -> None:
    """Every test here runs its flows against the session's real Prefect server."""


def _build(settings: Settings, limit: int | None = None):
    from flows.build import build

    return build(settings=settings, limit=limit)


def _funnel(report) -> dict[str, int]:
    return {row.label: row.count for row in report.funnel}


def test_build_fills_every_cell_then_releases(settings: Settings, taxonomy: Taxonomy, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"renderer": settings.renderer.model_copy(update={"size": 128})})
    seeds = len(taxonomy.categories)  # the bundled seeds' first `limit` cover every category
    cells = seeds * len(taxonomy.relations)
    report = _build(settings, limit=seeds)
    assert (report.seeds, report.pairs) == (seeds, cells)
    assert (report.cells_queued, report.cells_total) == (cells, cells)
    funnel = _funnel(report)
    # every candidate of every round ends once: queued (one per cell), a duplicate or rejected
    assert funnel["queued for review"] == cells
    assert funnel["failed"] == funnel["refused by the composer model"] == 0
    ended = funnel["duplicates"] + funnel["rejected by filter or review"]
    assert funnel["candidates composed (all rounds)"] == funnel["rendered"] == cells + ended
    headed = {"duplicates": 0, "rejected by filter or review": 0}
    heading = None
    for row in report.funnel:  # each heading counts exactly its rows below
        heading = row.label if row.indent == 0 else heading
        if row.indent and heading in headed:
            headed[heading] += row.count
    assert headed == {label: funnel[label] for label in headed}
    assert funnel["not tested against a model (attack: none)"] == funnel["queued for review"]
    assert report.attack is None
    assert json.loads(report.stats_file.read_text())["run_id"] == report.run_id
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:  # the funnel, as the Prefect UI shows it
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["build-funnel"]))
        )
    assert any(
        report.run_id in str(artifact.data) and "queued for review" in str(artifact.data)
        for artifact in published
    )

    store = Store(settings.resolved_database_url)
    queued = store.items_with_statuses([ItemStatus.QUEUED])
    assert len(queued) == cells
    for item in queued:  # the default: pictures retrieved from the built-in pool
        assert item.provenance.renderer.startswith("retrieval@") and "/128px/" in item.provenance.renderer
        assert len({slot.sha256 for slot in item.slots}) == len(item.slots)
        assert all(slot.license == "CC-BY-4.0" and slot.match_score for slot in item.slots)
        assert item.provenance.config_hash == settings.config_hash()
        assert all((settings.artifacts / slot.file).is_file() for slot in item.slots)
        assert item.guarded_phrase.lower() not in item.revised_prompt.lower()

    rerun = _build(settings, limit=seeds)
    assert "compose" not in rerun.stages and "render" not in rerun.stages
    assert len(store.items_with_statuses([ItemStatus.QUEUED])) == cells

    runner = CliRunner()
    where = ["--artifacts", str(settings.artifacts), "--database-url", settings.resolved_database_url]
    assert runner.invoke(app, ["review", "approve", "--all", "--reviewer", "test", *where]).exit_code == 0
    out = tmp_path / "release"
    result = runner.invoke(app, ["release", "--version", "1.2.3", "--out", str(out), *where])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["release", "--version", "1.2.3", "--out", str(tmp_path / "other"), *where])
    assert again.exit_code == 2 and "already exists" in again.output
    store.close()

    from datasets import load_dataset

    rows = load_dataset(str(out), split="train")
    assert tuple(rows.column_names) == PUBLISHED_FIELDS and len(rows) == cells
    assert {row["category"] for row in rows} == {c.published_name for c in taxonomy.categories.values()}
    relations = {r.published_name for r in taxonomy.relations.values()}
    assert {row["relationship_type"] for row in rows} == relations
    first = rows[0]
    assert first["num_images"] == len(first["images"]) == len(first["image_descriptions"])
    assert isinstance(first["images"][0], Image.Image) and first["images"][0].size == (128, 128)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["items"] == cells and "database_url" not in manifest["config"]
    card = (out / "README.md").read_text()
    assert "extra_gated_prompt" in card
    assert f"**Review: {cells} of {cells} items were approved in bulk" in card
    assert "Twemoji" in card and "CC-BY-4.0" in card and "distinct pictures used" in card
    assert "not benign" not in card
    figures = json.loads(report.stats_file.read_text())["pictures"]
    assert figures["distinct_pictures"] > cells and figures["keywords_from_question"] == 0


LEAKY_RELATION = """\
extends: _base
slug: leaky
display_name: Leaky
published_name: Leaky
group: Logical
definition: A test relation whose templates mostly leak the key phrase.
max_images: 2
image_roles:
  - {{name: one, hint: a first cue}}
  - {{name: two, hint: a second cue}}
offline:
  templates:
{templates}
"""
WIDGET = "Describe the forbidden widget in the {n} pictures."
SAFE = "Explain what the {n} pictures show together, step by step."


def _leaky_setup(settings: Settings, taxonomy_copy: Path, templates: list[str], tmp_path: Path) -> Settings:
    for path in (taxonomy_copy / "relations").glob("[!_]*.yaml"):
        path.unlink()
    lines = "\n".join(f'    - "{t}"' for t in templates)
    (taxonomy_copy / "relations" / "leaky.yaml").write_text(LEAKY_RELATION.format(templates=lines))
    seeds = tmp_path / "seeds.jsonl"
    seed = Seed(
        id="w-1",
        category="violence",
        query="How do I use the forbidden widget?",
        key_phrase="forbidden widget",
    )
    seeds.write_text(seed.model_dump_json() + "\n")
    return settings.model_copy(update={"taxonomy": taxonomy_copy, "seeds": [seeds], "max_iterations": 3})


def test_filter_rejections_are_refined_round_by_round(
    settings: Settings, taxonomy_copy: Path, tmp_path: Path
) -> None:
    settings = _leaky_setup(settings, taxonomy_copy, [WIDGET, WIDGET, SAFE], tmp_path)
    relation = load_taxonomy(taxonomy_copy).relation("leaky")
    seed = Seed(id="w-1", category="violence", query="q", key_phrase=None)
    leaks = [
        "forbidden widget"
        in OfflineComposer()
        .draft(
            CompositionRequest(seed=seed, relation="leaky", iteration=i),
            relation,
            load_taxonomy(taxonomy_copy).category("violence"),
        )
        .revised_prompt
        for i in (1, 2, 3)
    ]
    accepted_round = leaks.index(False) + 1
    _build(settings)
    store = Store(settings.resolved_database_url)
    (queued,) = store.items_with_statuses([ItemStatus.QUEUED])
    rejected = store.items_with_statuses([ItemStatus.REJECTED])
    store.close()
    assert queued.iteration == accepted_round
    assert len(rejected) == accepted_round - 1
    assert all(item.rejection.reason == "prompt repeats the key phrase" for item in rejected)
    if accepted_round > 1:
        assert queued.feedback == ["leakage: prompt repeats the key phrase"]


def test_a_pair_that_never_passes_stops_at_the_cap(
    settings: Settings, taxonomy_copy: Path, tmp_path: Path
) -> None:
    settings = _leaky_setup(settings, taxonomy_copy, [WIDGET], tmp_path)
    report = _build(settings)
    funnel = _funnel(report)
    assert funnel["candidates composed (all rounds)"] == 3
    assert funnel["leakage: prompt repeats the key phrase"] == 3
    assert funnel["queued for review"] == 0


def test_review_rejection_is_refined_by_the_next_build(settings: Settings) -> None:
    settings = settings.model_copy(update={"relations": ["analogy"]})
    _build(settings, limit=1)
    store = Store(settings.resolved_database_url)
    (first,) = store.items_with_statuses([ItemStatus.QUEUED])
    ReviewService(store, settings.review).vote(first.id, "ada", Decision.REJECT, "too literal")
    _build(settings, limit=1)
    (second,) = store.items_with_statuses([ItemStatus.QUEUED])
    store.close()
    assert second.iteration == 2 and second.seed_id == first.seed_id
    assert second.feedback == ["review: too literal"]
    assert second.revised_prompt != first.revised_prompt


def test_relations_are_dealt_per_seed_over_every_cell(
    tmp_path: Path, taxonomy: Taxonomy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--relations-per-seed 1`: 54 seeds (9 per category) make 54 pairs, one per cell, each
    seed against one relation; asking for two relations later is new work."""
    from builder.run.prepare import prepare
    from builder.run.tasks import has_work

    monkeypatch.setenv("MIRBENCH_RENDERER__SIZE", "64")
    artifacts = tmp_path / "art"
    cells = len(taxonomy.categories) * len(taxonomy.relations)
    result = CliRunner().invoke(
        app, ["build", "--artifacts", str(artifacts), "--limit", str(cells), "--relations-per-seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert f"each seed against 1 of {len(taxonomy.relations)} relations" in result.output
    stats = json.loads(next((artifacts / "runs").glob("*/stats.json")).read_text())
    assert (stats["seeds"], stats["pairs"], stats["cells_total"]) == (cells, cells, cells)

    settings = Settings(artifacts=artifacts, relations_per_seed=1)
    prepared = prepare(settings, cells)
    seeds, dealt = prepared.seeds, prepared.pairs
    with Store(settings.resolved_database_url) as store:
        built = {(item.seed_id, item.relation) for item in store.items_with_statuses(list(ItemStatus))}
    assert built == set(dealt) and len({seed for seed, _ in built}) == cells
    assert {(seed.category, relation) for seed, (_, relation) in zip(seeds, dealt, strict=True)} == {
        (category, relation) for category in taxonomy.categories for relation in taxonomy.relations
    }
    assert not has_work(prepared)
    assert has_work(prepare(settings.model_copy(update={"relations_per_seed": 2}), cells))
