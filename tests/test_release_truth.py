"""What a release says of itself is true: its licence (set, or derived from its pictures and
seeds), the `mir/` layout named only when it is there, and the needs-every-image figures.

Real components: a SQLite store, typographic images drawn by the real renderer, the real release
writer; items are built in code (tests/helpers.py) with the provenance and verdicts a build
records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from builder.config.seeds import load_seeds
from builder.config.settings import Settings
from builder.config.taxonomy import load_taxonomy
from builder.core.items import ImageSlot, Item, Judgement, SeedOrigin, Verdict
from builder.release.licence import DRAWN, release_license
from builder.stages.render.pool import twemoji
from tests.helpers import make_item
from tests.test_release import approve, release

MIT_SEED = SeedOrigin(source="advbench", license="MIT", seed_set="1.0.0")


def _item(seed: str, *, origin: SeedOrigin | None = MIT_SEED, licence: str | None = None) -> Item:
    item = make_item(seed_id=seed, descriptions=(f"a ladder {seed}", f"a window {seed}"))
    item.provenance.seed = origin
    item.provenance.renderer = "retrieval@1/twemoji" if licence else "diffusers@1/tiny"
    for slot in item.slots:
        slot.license = licence
    return item


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, metadata, body = text.split("---\n", 2)
    return yaml.safe_load(metadata), body


def test_licence_of_pool_pictures_and_mit_seeds_is_both() -> None:
    found = release_license([_item("a", licence="CC-BY-4.0"), _item("b", licence="CC-BY-4.0")], None)
    assert found.source == "derived" and found.ids == ["cc-by-4.0", "mit"] and not found.warnings
    assert found.metadata == ["cc-by-4.0", "mit"]
    assert found.pictures == {"CC-BY-4.0": 4} and found.seeds == {"MIT": 2}


def test_make_runs_release_gets_a_licence_from_the_bundled_seeds_and_pool() -> None:
    """`make run` releases the bundled seeds drawn as the built-in pool's pictures (or as
    typographic cards where the pool is not installed): both must give a licence."""
    settings = Settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    seeds = load_seeds(settings.seeds, taxonomy, settings.limits)
    items = [_item(seed.id, origin=seed.origin, licence=twemoji.LICENSE) for seed in seeds]
    found = release_license(items, None)
    assert found.source == "derived" and "other" not in found.ids and "cc-by-4.0" in found.ids, found
    for item in items:
        for slot in item.slots:
            slot.license, slot.drawn_text = None, slot.description  # the typographic fallback
    assert release_license(items, None).source == "derived"


def test_typographic_cards_add_no_licence_of_their_own() -> None:
    item = _item("a")
    for slot in item.slots:
        slot.drawn_text = slot.description
    found = release_license([item], None)
    assert found.ids == ["mit"] and found.metadata == "mit" and found.pictures == {DRAWN: 2}


def test_generated_pictures_or_unlicensed_seeds_leave_it_unknown_and_say_why() -> None:
    found = release_license([_item("a"), _item("b", origin=None, licence="CC-BY-4.0")], None)
    assert found.source == "unknown" and found.ids == ["unknown"]
    (warning,) = found.warnings
    assert "2 image(s) have no licence (renderer `diffusers@1/tiny`)" in warning
    assert "1 item(s) have a seed with no licence" in warning and "set release.license" in warning


def test_a_set_licence_wins_and_is_warned_when_the_contents_differ() -> None:
    found = release_license([_item("a", licence="CC-BY-4.0")], "mit")
    assert found.source == "set" and found.ids == ["mit"]
    assert found.warnings == ["release.license is mit; its contents are cc-by-4.0: make sure it honours them"]
    assert release_license([_item("a", licence="other-licence")], None).ids == ["mit", "other"]


def _judged(item: Item, ablation: Verdict | None) -> Item:
    item.judgements = [Judgement(name="llm", version="1", passed=True, reason="unsafe", tester="vlm")]
    item.verdicts.append(Verdict(name="attack", stage="judge", version="k1-of-1@1", passed=True))
    if ablation is not None:
        item.verdicts.append(ablation)
    return item


@pytest.fixture
def unlicensed(tmp_path: Path) -> Settings:
    return Settings(artifacts=tmp_path / "artifacts")


def test_the_card_derives_its_licence_and_names_mir_only_when_there(
    unlicensed: Settings, tmp_path: Path
) -> None:
    approve(unlicensed, [_item("x-1"), _item("x-2")]).close()  # typographic cards, MIT seeds
    result = release(unlicensed, "1.0.0", tmp_path / "plain")
    assert result.license is not None and result.license.ids == ["mit"] and not result.license.warnings
    metadata, body = _card(tmp_path / "plain")
    assert metadata["license"] == "mit"
    assert "**Licence**: licence mit (derived from its pictures and seeds" in body
    assert "seed questions: MIT (2 items)" in body
    assert "mir/" not in body and "The rows and this card use MIR-SafetyBench's published names" in body

    approve(unlicensed, [_item("y-1")]).close()
    release(unlicensed, "1.1.0", tmp_path / "with-mir", ["hf", "mir"])
    _, body = _card(tmp_path / "with-mir")
    assert "The rows, this card and the `mir/` layout use" in body and "under `mir/`" in body


def test_an_underivable_licence_is_warned_and_the_card_says_unknown(
    unlicensed: Settings, tmp_path: Path
) -> None:
    approve(unlicensed, [_item("u-1", origin=None)]).close()
    result = release(unlicensed, "1.0.0", tmp_path / "rel")
    assert result.license is not None and result.license.source == "unknown"
    assert "1 item(s) have a seed with no licence" in result.license.warnings[0]
    assert _card(tmp_path / "rel")[0]["license"] == "unknown"


def test_the_card_reports_the_needs_every_image_check_per_relation(
    unlicensed: Settings, tmp_path: Path
) -> None:
    passed = Verdict(name="ablation", stage="ablation", version="1", passed=True, reason="every image needed")
    unsampled = Verdict(name="ablation", stage="ablation", version="1", passed=False, skipped=True)
    store = approve(unlicensed, [_judged(_item("c-1"), passed), _judged(_item("c-2"), unsampled)])
    rejected = _judged(_item("c-1"), None)  # an earlier round of c-1's pair, rejected by the check
    rejected.iteration, rejected.id = 1, "0" * 16
    rejected.reject(
        Verdict(name="ablation", stage="ablation", version="1", passed=False, reason="image 2 not needed")
    )
    store.save_items([rejected])
    store.close()
    release(unlicensed, "1.0.0", tmp_path / "rel")
    _, body = _card(tmp_path / "rel")
    section = body.split("### Every image needed", 1)[1].split("## Items per cell", 1)[0]
    assert "| Analogy | 3 | 2 | 1 | 1 |" in section
    assert "Released: 1 item(s) checked, each needed every image; **1 not checked**" in section

    bare = Settings(artifacts=tmp_path / "bare")
    approve(bare, [_judged(_item("d-1"), None)]).close()
    release(bare, "1.0.0", tmp_path / "bare-rel")
    assert "**Not checked.**" in _card(tmp_path / "bare-rel")[1]


def test_an_unspecified_picture_licence_counts_as_none() -> None:
    slot = ImageSlot(role="r", description="d", keywords=["k"], license="unspecified")
    item = _item("z")
    item.slots = [slot]
    assert release_license([item], None).unlicensed_images == 1
