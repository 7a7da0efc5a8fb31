"""Dedup through its indexes: within-round duplicates, every threshold at its edge and at its
shipped default, pictures reused across items and within one item, a persisted index that grows
and decides alike on a rerun, an earlier release in a fresh store, and the multi-index hash search
against brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder.config.sections import DedupSettings
from builder.core.items import Item, ItemStatus
from builder.stages.dedup import DedupStage, item_texts, mean_vectors, release_entries
from builder.stages.dedup.hashindex import HashIndex, pairs_within
from tests.helpers import make_item

DEFAULTS = DedupSettings()
BASE = "f0f0f0f0f0f0f0f0"


def _flip(phash: str, bits: int) -> str:
    """`phash` with its `bits` lowest bits flipped: exactly that Hamming distance away."""
    return f"{int(phash, 16) ^ ((1 << bits) - 1):016x}"


class Vectors:
    """Unit vectors chosen per text: `similar(t, c)` makes t's vector have cosine c with the base."""

    def __init__(self) -> None:
        self.chosen: dict[str, np.ndarray] = {}

    def similar(self, text: str, cosine: float) -> None:
        cosine = np.float32(cosine)
        self.chosen[text] = np.zeros(64, dtype=np.float32)
        self.chosen[text][:2] = cosine, np.sqrt(1 - cosine * cosine)

    def similar_item(self, item: Item, cosine: float) -> None:
        """Every part of `item`'s text at cosine `cosine` with the base, so their mean is too."""
        for part in item_texts(item):
            self.similar(part, cosine)

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            if text not in self.chosen:  # any other text: its own axis, orthogonal to every other
                self.chosen[text] = np.eye(64, dtype=np.float32)[2 + len(self.chosen)]
            rows.append(self.chosen[text])
        return np.stack(rows)


def _item(name: str, phashes: tuple[str, ...], prompt: str | None = None) -> Item:
    item = make_item(
        seed_id=name,
        prompt=prompt or f"prompt of {name}",
        descriptions=tuple(f"{name} {n}" for n in range(len(phashes))),
    )
    for number, (slot, phash) in enumerate(zip(item.slots, phashes, strict=True)):
        slot.phash, slot.sha256, slot.file = phash, f"{name}-{number}", f"{name}-{number}.png"
    return item


def _far(n: int) -> str:
    return f"{(0x123456789ABCDEF * (n + 7)) & 0xFFFFFFFFFFFFFFFF:016x}"


def _run(candidates: list[Item], kept: list[Item] = (), vectors: Vectors | None = None, **options):
    settings = {
        "phash_max_distance": DEFAULTS.phash_max_distance,
        "picture_max_distance": DEFAULTS.picture_max_distance,
        "text_similarity": DEFAULTS.text_similarity,
        "image_reuse_max": DEFAULTS.image_reuse_max,
        "image_reuse_share": 0.0,  # the fixed cap, whatever the (small) test round
        **options,
    }
    return DedupStage(list(kept), vectors or Vectors(), **settings).run(candidates)


def test_round_candidates_are_compared_with_each_other() -> None:
    first = _item("a", (BASE, _far(1)))
    second = _item("b", (BASE, _far(1)))  # the same pictures, nothing kept yet
    third = _item("c", (_far(2), _far(3)))
    ordered = sorted([first, second, third], key=lambda item: item.id)
    _run(ordered)
    statuses = [item.status for item in ordered]
    assert statuses.count(ItemStatus.UNIQUE) == 2 and statuses.count(ItemStatus.REJECTED) == 1
    loser = next(item for item in ordered if item.status is ItemStatus.REJECTED)
    winner = ({first.id, second.id} - {loser.id}).pop()
    assert loser.id in (first.id, second.id) and winner in loser.rejection.detail


def test_round_text_duplicates_are_compared_with_each_other() -> None:
    vectors = Vectors()
    one, two = _item("a", (_far(1), _far(2)), prompt="same"), _item("b", (_far(3), _far(4)), prompt="same")
    vectors.similar_item(one, 1.0)
    vectors.similar_item(two, 1.0)
    ordered = sorted([one, two], key=lambda item: item.id)
    _run(ordered, vectors=vectors)
    assert [i.status for i in ordered] == [ItemStatus.UNIQUE, ItemStatus.REJECTED]
    assert ordered[1].rejection.reason == "near-duplicate text"


@pytest.mark.parametrize("limit", [DEFAULTS.phash_max_distance, 0, 3, 12])
def test_phash_distance_at_its_edge(limit: int) -> None:
    kept = _item("k", (BASE, _far(1)))
    at_edge = _item("e", (_flip(BASE, limit), _far(1)))
    beyond = _item("b", (_flip(BASE, limit + 1), _far(1)))
    _run([at_edge], [kept], phash_max_distance=limit, image_reuse_max=99)
    _run([beyond], [kept], phash_max_distance=limit, image_reuse_max=99)
    assert at_edge.rejection is not None and at_edge.rejection.reason in (
        "near-duplicate images",
        "exact duplicate images",
    )
    assert beyond.status is ItemStatus.UNIQUE


def _cosine(vectors: Vectors, one: Item, other: Item) -> float:
    """The cosine of two items' text vectors as dedup computes them."""
    pair = mean_vectors([item_texts(one), item_texts(other)], vectors)
    return float(np.dot(pair[0], pair[1]))


@pytest.mark.parametrize("threshold", [DEFAULTS.text_similarity, 0.75, 0.5])
def test_text_similarity_at_its_edge(threshold: float) -> None:
    vectors = Vectors()
    kept = _item("k", (_far(1), _far(2)))
    at_edge, below = _item("e", (_far(3), _far(4))), _item("b", (_far(5), _far(6)))
    vectors.similar_item(kept, 1.0)
    vectors.similar_item(at_edge, threshold)
    vectors.similar_item(below, threshold - 1e-6)
    # averaging the parts moves a cosine by float32 rounding: the edge is the cosine dedup sees
    edge = _cosine(vectors, kept, at_edge)
    assert edge == pytest.approx(threshold, abs=1e-6) and _cosine(vectors, kept, below) < edge
    _run([at_edge], [kept], vectors, text_similarity=edge)
    _run([below], [kept], vectors, text_similarity=edge)
    assert at_edge.rejection.reason == "near-duplicate text" and kept.id in at_edge.rejection.detail
    assert below.status is ItemStatus.UNIQUE


def test_text_vector_is_the_mean_of_its_parts() -> None:
    """The prompt and each description count alike, whatever their length: an item sharing two
    of its three parts with a kept one is a near-duplicate at cosine 2/3, one sharing one
    part is not."""
    vectors = Vectors()
    kept = _item("k", (_far(1), _far(2)), prompt="shared prompt")
    two_shared = _item("t", (_far(3), _far(4)), prompt="shared prompt")
    one_shared = _item("o", (_far(5), _far(6)), prompt="shared prompt")
    for item in (kept, two_shared):
        item.slots[0].description = "a shared description, much longer than the prompt it goes with"
    assert _cosine(vectors, kept, two_shared) == pytest.approx(2 / 3)
    assert _cosine(vectors, kept, one_shared) == pytest.approx(1 / 3)
    _run([two_shared, one_shared], [kept], vectors, text_similarity=0.6)
    assert two_shared.rejection.reason == "near-duplicate text"
    assert one_shared.status is ItemStatus.UNIQUE


@pytest.mark.parametrize("cap", [DEFAULTS.image_reuse_max, 1, 5])
def test_picture_reuse_cap_at_its_edge(cap: int) -> None:
    shared = BASE
    kept = [_item(f"k{n}", (shared, _far(10 + n))) for n in range(cap - 1)]
    under = _item("u", (_flip(shared, DEFAULTS.picture_max_distance), _far(50)))  # the same picture
    over = _item("o", (shared, _far(60)))
    _run([under], kept, image_reuse_max=cap)
    assert under.status is ItemStatus.UNIQUE  # now cap items hold the picture
    _run([over], [*kept, under], image_reuse_max=cap)
    assert over.rejection.reason == "picture reused in too many items" and "slot 1" in over.rejection.detail


def test_the_reuse_cap_grows_with_the_benchmark() -> None:
    """A pool of N pictures fills at most N x cap slots: past `image_reuse_max`, the cap is
    `image_reuse_share` of the kept items and the round's candidates."""
    kept = [
        _item("k0", (BASE, _far(1))),
        *(_item(f"k{n}", (_far(10 * n), _far(10 * n + 1))) for n in range(1, 5)),
    ]
    fixed, grown = _item("f", (BASE, _far(90))), _item("g", (BASE, _far(91)))
    _run([fixed], kept, image_reuse_max=1, image_reuse_share=0.0)
    assert fixed.rejection.reason == "picture reused in too many items"
    assert "(cap 1)" in fixed.rejection.detail
    _run([grown], kept, image_reuse_max=1, image_reuse_share=0.3)  # ceil(0.3 x (5 + 1)) = 2
    assert grown.status is ItemStatus.UNIQUE


@pytest.mark.parametrize("distance", [DEFAULTS.picture_max_distance, 0, 5])
def test_picture_distance_at_its_edge(distance: int) -> None:
    kept = [_item("k", (BASE, _far(1)))]
    same = _item("s", (_flip(BASE, distance), _far(2)))
    other = _item("o", (_flip(BASE, distance + 1), _far(3)))
    _run([same], kept, picture_max_distance=distance, image_reuse_max=1)
    _run([other], kept, picture_max_distance=distance, image_reuse_max=1)
    assert same.rejection.reason == "picture reused in too many items"
    assert other.status is ItemStatus.UNIQUE


@pytest.mark.parametrize("distance", [DEFAULTS.picture_max_distance, 0, 5])
def test_two_slots_of_one_item_showing_one_picture(distance: int) -> None:
    item = _item("t", (BASE, _flip(BASE, distance)))
    _run([item], picture_max_distance=distance)
    assert item.rejection.reason == "two images of one item show the same picture"
    distinct = _item("d", (BASE, _flip(BASE, distance + 1)))
    _run([distinct], picture_max_distance=distance)
    assert distinct.status is ItemStatus.UNIQUE


@pytest.fixture(scope="module")
def planted_codes() -> np.ndarray:
    """Random 64-bit hashes, 300 of them copies of others with 0 to 8 bits flipped, and its
    every pairwise distance by brute force."""
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**64 - 1, size=2000, dtype=np.uint64)
    for row in range(300):
        copy = int(codes[row])
        for bit in rng.choice(64, rng.integers(0, 9), replace=False):
            copy ^= 1 << int(bit)
        codes[-1 - row] = copy
    return codes


def _brute_pairs(codes: np.ndarray, radius: int) -> np.ndarray:
    distances = np.bitwise_count(codes[:, None] ^ codes[None, :])
    upper = np.triu_indices(len(codes), 1)
    return np.stack(upper, axis=1)[distances[upper] <= radius]


@pytest.mark.parametrize("radius", [0, 3, 4, 6])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_all_pairs_are_exactly_those_within_the_radius(
    planted_codes: np.ndarray, radius: int, k: int
) -> None:
    """Every pair within the radius is found once, and none beyond it, whatever the number of
    substrings per key (1 to 3) and the number of threads."""
    truth = _brute_pairs(planted_codes, radius)
    assert len(truth) >= 10  # planted copies within the radius
    assert np.array_equal(pairs_within(planted_codes, radius, k=k), truth)
    assert np.array_equal(pairs_within(planted_codes, radius, workers=1, k=k), truth)


@pytest.mark.parametrize("radius", [2, 4, 7])
def test_hash_index_grows_and_finds_exactly_the_rows_within_the_radius(
    planted_codes: np.ndarray, radius: int
) -> None:
    """Rows added one at a time (some only in the unsorted tail) are found like the sorted ones."""
    index = HashIndex(radius, planted_codes[:1500])
    index.add([int(code) for code in planted_codes[1500:]])
    assert len(index) == len(planted_codes) and np.array_equal(index.codes, planted_codes)
    distances = np.bitwise_count(planted_codes[:, None] ^ planted_codes[None, :])
    for row in [*range(0, 2000, 37), *range(1700, 2000)]:
        expected = [(int(r), int(distances[row, r])) for r in np.flatnonzero(distances[row] <= radius)]
        assert sorted(index.search(int(planted_codes[row]))) == expected


def test_persisted_index_grows_and_reruns_decide_alike(tmp_path: Path) -> None:
    kept = _item("k", (BASE, _far(1)))
    candidates = sorted(
        [_item("a", (_flip(BASE, 1), _far(1))), _item("b", (_far(2), _far(3)))], key=lambda i: i.id
    )
    first = _run([c.model_copy(deep=True) for c in candidates], [kept], index_dir=tmp_path / "dedup")
    assert (tmp_path / "dedup" / "hashes.npy").is_file() and (tmp_path / "dedup" / "texts.faiss").is_file()
    # A rerun after a crash finds its own candidates in the index: they must not block themselves.
    again = _run([c.model_copy(deep=True) for c in candidates], [kept], index_dir=tmp_path / "dedup")
    assert [i.status for i in again.items] == [i.status for i in first.items]
    # Items that dropped out (not kept any more) are in the index but decide nothing.
    late = _item("late", (_flip(BASE, 1), _far(1)))
    _run([late], [], index_dir=tmp_path / "dedup")
    assert late.status is ItemStatus.UNIQUE


def test_an_index_of_another_text_model_is_indexed_again(tmp_path: Path) -> None:
    """Vectors of two models are not comparable: a persisted index is used only by the model
    (and the kind of text vector) that wrote it."""
    kept, candidate = _item("k", (_far(1), _far(2))), _item("c", (_far(3), _far(4)))
    old_model = Vectors()
    old_model.similar_item(kept, 1.0)
    _run([_item("x", (_far(8), _far(9)))], [kept], old_model, index_dir=tmp_path / "dedup", text_model="old")
    new_model = Vectors()  # kept's parts on axes of their own: unlike the candidate
    new_model.similar_item(candidate, 1.0)
    stale = candidate.model_copy(deep=True)  # the same model name: the index's vector of kept decides
    _run([stale], [kept], new_model, index_dir=tmp_path / "dedup", text_model="old")
    assert stale.rejection is not None and stale.rejection.reason == "near-duplicate text"
    _run([candidate], [kept], new_model, index_dir=tmp_path / "dedup", text_model="new")
    assert candidate.status is ItemStatus.UNIQUE


def test_a_redrawn_item_is_judged_by_its_new_content(tmp_path: Path) -> None:
    """Item ids stay when a new composer version redraws an item: the index must not judge a
    candidate by the pictures the kept item had before."""
    before = _item("k", (BASE, _far(1)))
    _run([_item("x", (_far(8), _far(9)))], [before], index_dir=tmp_path / "dedup")  # indexes `before`
    redrawn = _item("k", (_far(20), _far(21)))
    assert redrawn.id == before.id
    like_before = _item("c", (BASE, _far(1)))
    _run([like_before], [redrawn], index_dir=tmp_path / "dedup")
    assert like_before.status is ItemStatus.UNIQUE
    like_now = _item("d", (_far(20), _far(21)))
    _run([like_now], [redrawn], index_dir=tmp_path / "dedup")
    assert (
        like_now.rejection.reason == "exact duplicate images"
        or like_now.rejection.reason == "near-duplicate images"
    )


def test_dedup_against_an_earlier_release_in_a_fresh_store(
    tmp_path: Path, taxonomy, prefect_api_url: str
) -> None:
    """Build, approve, release; then a build in a fresh store with the release as history
    rejects every candidate that repeats a released item (the same seeds draw the same cards)."""
    from typer.testing import CliRunner

    from builder.cli import app
    from builder.config.settings import Settings
    from flows.build import build

    first = Settings(
        artifacts=tmp_path / "one", renderer={"size": 64}, relations=["analogy"], max_iterations=1
    )
    build(settings=first, limit=2)
    where = ["--artifacts", str(first.artifacts)]
    runner = CliRunner()
    assert runner.invoke(app, ["review", "approve", "--all", "--reviewer", "t", *where]).exit_code == 0
    release = tmp_path / "release"
    assert runner.invoke(app, ["release", "--version", "1.0.0", "--out", str(release), *where]).exit_code == 0
    name, entries = release_entries(release)
    assert name.startswith("release 1.0.0") and len(entries) == 2 and all(len(e.phash) >= 2 for e in entries)

    fresh = Settings(
        artifacts=tmp_path / "two",
        renderer={"size": 64},
        relations=["analogy"],
        max_iterations=1,
        stages={"dedup": {"history": [release]}},
    )
    report = build(settings=fresh, limit=2)
    funnel = {row.label: row.count for row in report.funnel}
    assert funnel["queued for review"] == 0 and funnel["dedup: exact duplicate images"] == 2
    control = Settings(
        artifacts=tmp_path / "three", renderer={"size": 64}, relations=["analogy"], max_iterations=1
    )
    assert {row.label: row.count for row in build(settings=control, limit=2).funnel}["queued for review"] == 2
