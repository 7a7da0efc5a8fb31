"""The store on SQLite and on a real PostgreSQL server (see conftest.database_url)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from builder.config.sections import ReviewSettings
from builder.core.errors import InputError
from builder.core.items import ItemStatus, Verdict
from builder.review.policy import Decision
from builder.review.service import ReviewService
from builder.store import ReviewState, Store
from tests.helpers import make_item


@pytest.fixture
def store(database_url: str) -> Store:
    opened = Store(database_url)
    yield opened
    opened.close()


def test_items_round_trip_and_upsert(store: Store) -> None:
    item = make_item()
    store.save_items([item])
    item.reject(Verdict(name="leakage", version="1", passed=False, reason="prompt repeats the key phrase"))
    store.save_items([item])
    (loaded,) = store.get_items([item.id])
    assert loaded == item
    assert store.statuses_with_review() == [("rejected", None)]


def test_run_items_answer_for_the_runs_a_run_resumed(store: Store) -> None:
    """A run answers for its own items and those of the dead runs it superseded, never for a
    finished run's; recording an item twice keeps one row; settings are read back by run."""
    store.start_run("r1", {"max_attempts": 1})
    store.finish_run("r1", {})
    store.start_run("r2", {"max_attempts": 2})  # dies unfinished
    store.start_run("r3", {"max_attempts": 3})  # supersedes r2
    store.record_touched("r1", ["a"])
    store.record_touched("r2", ["b", "b"])
    store.record_touched("r3", ["c", "b"])
    assert sorted(store.answering_runs("r3")) == ["r2", "r3"]
    assert store.touched_ids("r3") == ["b", "c"]
    assert store.touched_ids("r1") == ["a"]
    assert store.runs_of(["b", "a", "z"]) == {"a": ["r1"], "b": ["r2", "r3"]}
    assert store.run_settings(["r1", "r3", "gone"]) == {"r1": {"max_attempts": 1}, "r3": {"max_attempts": 3}}


def test_learned_formats_are_kept_per_server_and_model(store: Store) -> None:
    assert store.learned_format("http://127.0.0.1:1/v1", "m") is None
    store.learn_format("http://127.0.0.1:1/v1", "m", "json_object", "500 on json_schema")
    store.learn_format("http://127.0.0.1:1/v1", "m", "prompt", "500 on json_object")
    assert store.learned_format("http://127.0.0.1:1/v1", "m") == "prompt"
    assert store.learned_format("http://127.0.0.1:1/v1", "other") is None


def test_unknown_ids_are_named(store: Store) -> None:
    with pytest.raises(InputError, match="unknown item id"):
        store.get_items(["nope"])


def test_ids_with_status_are_per_round_ordered_and_scoped(store: Store) -> None:
    items = [make_item(seed_id=f"s-{n}", iteration=1 + n % 2) for n in range(6)]
    store.save_items(items)
    first_round = store.ids_with_status(ItemStatus.COMPOSED, 1, [("s-0", "analogy"), ("s-2", "analogy")])
    assert first_round == sorted(item.id for item in items if item.seed_id in {"s-0", "s-2"})
    assert store.ids_with_status(ItemStatus.COMPOSED, 1, [("s-0", "causality")]) == []
    # a pair's seed with another pair's relation is not one of the pairs
    assert store.ids_with_status(ItemStatus.COMPOSED, 1, [("s-0", "causality"), ("s-2", "analogy")]) == [
        item.id for item in items if item.seed_id == "s-2"
    ]


def test_latest_candidate_per_pair(store: Store) -> None:
    first, second = make_item(iteration=1), make_item(iteration=2)
    first.reject(Verdict(name="dedup", version="1", passed=False, reason="near-duplicate text"))
    store.save_items([first, second])
    candidate = store.latest_candidates(["analogy"])[("s-1", "analogy")]
    assert (candidate.item_id, candidate.iteration, candidate.status) == (second.id, 2, ItemStatus.COMPOSED)


def test_review_queue_lifecycle(store: Store) -> None:
    items = [make_item(seed_id=f"s-{n}") for n in range(3)]
    store.save_items(items)
    store.enqueue(items)
    store.enqueue(items)  # idempotent
    assert store.review_counts() == {"pending": 3}
    reviews = ReviewService(store, ReviewSettings())
    assert reviews.vote_many([items[0].id], "ada", Decision.APPROVE).applied == [items[0].id]
    reviews.vote(items[1].id, "ada", Decision.REJECT, "prompt too literal")
    assert [item.id for item in store.approved_items()] == [items[0].id]
    (rejected,) = store.get_items([items[1].id])
    assert rejected.status is ItemStatus.REJECTED
    assert rejected.rejection is not None and rejected.rejection.reason == "prompt too literal"
    assert [entry.item.id for entry in store.reviews(ReviewState.PENDING)] == [items[2].id]
    assert store.review_counts() == {"pending": 1, "approved": 1, "rejected": 1}
    refused = reviews.vote_many(["missing"], "ada", Decision.APPROVE).refused
    assert refused == [("missing", "unknown item id: missing")]


def _refuse_writes(store: Store, table: str) -> None:
    """Make the database itself refuse every insert or update of `table` (a trigger)."""
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        else:
            for event in ("INSERT", "UPDATE"):
                connection.execute(
                    text(
                        f"CREATE TRIGGER refuse_{event} BEFORE {event} ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )


@pytest.mark.parametrize("refused", ["items", "reviews"])
def test_enqueue_is_one_transaction(database_url: str, refused: str) -> None:
    """Enqueueing writes the items and their reviews. When the database refuses either write,
    nothing of the other is kept: two transactions, in whichever order, would keep one half."""
    with Store(database_url) as store:
        items = [make_item(seed_id=f"s-{n}") for n in range(3)]
        store.save_items(items)
        _refuse_writes(store, refused)
        with pytest.raises(DBAPIError, match="refused by the test"):
            store.enqueue(items)
        assert store.statuses_with_review() == [("composed", None)] * 3
        assert store.review_counts() == {}


def test_releases_are_immutable(store: Store) -> None:
    store.record_release("1.0.0", "/tmp/r", 3, "ab" * 32)
    with pytest.raises(InputError, match="already exists"):
        store.record_release("1.0.0", "/tmp/r2", 4, "cd" * 32)


def test_render_cache_and_embeddings(store: Store) -> None:
    store.cache_renders([{"key": "k1", "file": "images/aa/x.png", "sha256": "x", "phash": "00ff"}])
    assert store.cached_renders(["k1", "k2"])["k1"].file == "images/aa/x.png"
    store.save_embeddings({"k1": b"\x00\x01"})
    store.save_embeddings({"k1": b"\x00\x02"})
    assert store.embeddings(["k1", "k2"]) == {"k1": b"\x00\x02"}
