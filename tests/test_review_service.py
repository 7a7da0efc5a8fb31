"""The review service on SQLite and on a real PostgreSQL server: decisions, derived states,
the item states they imply, the pair rule, leases and skips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from builder.config.sections import ReviewSettings
from builder.core.items import ItemStatus
from builder.review.policy import Decision
from builder.review.service import ReviewRefused, ReviewService
from builder.store import ReviewState, Store
from tests.review_support import queue_items

APPROVE, REJECT = Decision.APPROVE, Decision.REJECT


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(database_url: str) -> Store:
    opened = Store(database_url)
    yield opened
    opened.close()


def service(store: Store, clock: Clock | None = None, **settings: object) -> ReviewService:
    return ReviewService(store, ReviewSettings(**settings), **({"clock": clock} if clock else {}))


def state(store: Store, item_id: str) -> tuple[ReviewState, ItemStatus]:
    entry = store.review_entry(item_id)
    return entry.state, entry.item.status


def test_a_vote_decides_review_and_item_state_together(store: Store, tmp_path: Path) -> None:
    first, second, third = queue_items(store, tmp_path, 3)
    reviews = service(store)
    assert reviews.vote(first.id, "ada", APPROVE) is ReviewState.APPROVED
    assert reviews.vote(second.id, "ada", REJECT, "prompt names the act") is ReviewState.REJECTED
    assert state(store, first.id) == (ReviewState.APPROVED, ItemStatus.QUEUED)
    assert state(store, second.id) == (ReviewState.REJECTED, ItemStatus.REJECTED)
    (rejected,) = store.get_items([second.id])
    assert rejected.rejection.name == "review" and rejected.rejection.reason == "prompt names the act"
    assert [item.id for item in store.approved_items()] == [first.id]
    assert store.pending_ids() == [third.id]
    assert reviews.progress() == (2, 3)
    with pytest.raises(ReviewRefused, match="needs a reason"):
        reviews.vote(third.id, "ada", REJECT, "  ")
    with pytest.raises(ReviewRefused, match="unknown item"):
        reviews.vote("nope", "ada", APPROVE)


def test_progress_is_counted_again_after_a_decision_here_or_after_progress_seconds(
    store: Store, tmp_path: Path
) -> None:
    first, second, third = queue_items(store, tmp_path, 3)
    page, elsewhere = service(store, progress_seconds=60), service(store)  # two server processes
    assert page.progress() == (0, 3)
    elsewhere.vote(first.id, "bob", APPROVE)
    assert page.progress() == (0, 3)  # another process's decision: shown within progress_seconds
    page.vote(second.id, "ada", APPROVE)
    assert page.progress() == (2, 3)  # its own: at once, with every decision committed by then
    fresh = service(store, progress_seconds=0)
    assert fresh.progress() == (2, 3)
    elsewhere.vote(third.id, "bob", APPROVE)
    assert fresh.progress() == (3, 3) and page.progress() == (2, 3)


def test_two_votes_required_and_disagreement_goes_to_an_admin(store: Store, tmp_path: Path) -> None:
    agreed, disputed = queue_items(store, tmp_path, 2)
    reviews = service(store, votes_required=2)
    assert reviews.vote(agreed.id, "ada", APPROVE) is ReviewState.PENDING
    assert store.approved_items() == []
    assert reviews.vote(agreed.id, "bob", APPROVE) is ReviewState.APPROVED
    assert reviews.vote(disputed.id, "ada", APPROVE) is ReviewState.PENDING
    assert reviews.vote(disputed.id, "bob", REJECT, "too literal") is ReviewState.DISPUTED
    assert state(store, disputed.id) == (ReviewState.DISPUTED, ItemStatus.QUEUED)
    with pytest.raises(ReviewRefused, match="needs a reason"):
        reviews.finalize(disputed.id, "boss", REJECT, "")
    assert reviews.finalize(disputed.id, "boss", REJECT, "the prompt leaks") is ReviewState.REJECTED
    assert state(store, disputed.id) == (ReviewState.REJECTED, ItemStatus.REJECTED)
    kinds = [(row.reviewer, row.kind) for row in store.decision_log([disputed.id])]
    assert kinds == [("ada", "vote"), ("bob", "vote"), ("boss", "adjudication")]


def test_own_vote_changes_until_decided_then_only_an_admin_changes_it(store: Store, tmp_path: Path) -> None:
    (item,) = queue_items(store, tmp_path, 1)
    reviews = service(store, votes_required=2)
    reviews.vote(item.id, "ada", REJECT, "unclear")
    reviews.vote(item.id, "ada", APPROVE)  # changed her mind: still one vote
    assert reviews.vote(item.id, "bob", APPROVE) is ReviewState.APPROVED
    with pytest.raises(ReviewRefused, match="only an admin"):
        reviews.vote(item.id, "ada", REJECT, "on second thought")
    assert reviews.finalize(item.id, "boss", REJECT, "images show the target") is ReviewState.REJECTED
    assert state(store, item.id) == (ReviewState.REJECTED, ItemStatus.REJECTED)
    log = store.decision_log([item.id])
    assert [(r.reviewer, r.decision, r.superseded) for r in log] == [
        ("ada", "reject", True),
        ("ada", "approve", False),
        ("bob", "approve", False),
        ("boss", "reject", False),
    ]
    assert reviews.finalize(item.id, "boss", APPROVE, "mistake") is ReviewState.APPROVED
    assert state(store, item.id) == (ReviewState.APPROVED, ItemStatus.QUEUED)
    assert store.get_items([item.id])[0].rejection is None


def test_approving_a_rejected_round_whose_pair_moved_on_is_refused(store: Store, tmp_path: Path) -> None:
    """The measured bug: reject X, build (round 2 of X's pair), approve X -> two items of one
    pair in the release. Now the approval is refused and the release keeps one per pair."""
    (first,) = queue_items(store, tmp_path, 1)
    reviews = service(store)
    reviews.vote(first.id, "ada", REJECT, "too literal")
    (second,) = queue_items(store, tmp_path, 1, iteration=2)
    assert second.seed_id == first.seed_id
    with pytest.raises(ReviewRefused, match="later round"):
        reviews.finalize(first.id, "boss", APPROVE, "was fine after all")
    assert reviews.vote(second.id, "ada", APPROVE) is ReviewState.APPROVED
    with pytest.raises(ReviewRefused, match=r"already approved|later round"):
        reviews.finalize(first.id, "boss", APPROVE, "was fine after all")
    assert [item.id for item in store.approved_items()] == [second.id]
    assert state(store, first.id) == (ReviewState.REJECTED, ItemStatus.REJECTED)


def test_leases_keep_reviewers_apart_until_they_expire(store: Store, tmp_path: Path) -> None:
    items = queue_items(store, tmp_path, 3)
    clock = Clock()
    reviews = service(store, clock, lease_minutes=10)
    ada = reviews.next_item("ada")
    bob = reviews.next_item("bob")
    assert ada.id == items[0].id and bob.id == items[1].id
    assert reviews.next_item("ada").id == ada.id  # a reload shows the same item
    clock.now += timedelta(minutes=11)  # ada walked away: her lease expired
    assert reviews.next_item("cyd").id == ada.id
    reviews.skip(bob.id, "bob")
    assert reviews.next_item("bob").id == items[2].id  # never the skipped one again
    reviews.vote(items[2].id, "bob", APPROVE)
    assert reviews.next_item("bob") is None  # ada's item is cyd's now, the rest is decided or skipped


def test_items_needing_more_votes_go_to_several_reviewers_but_never_twice_to_one(
    store: Store, tmp_path: Path
) -> None:
    first, second = queue_items(store, tmp_path, 2)
    reviews = service(store, votes_required=2)
    assert reviews.next_item("ada").id == first.id
    assert reviews.next_item("bob").id == first.id  # it needs two votes
    assert reviews.next_item("cyd").id == second.id  # two leases already cover the first
    reviews.vote(first.id, "ada", APPROVE)
    assert reviews.next_item("ada").id == second.id  # ada voted on the first: not again
    assert reviews.vote(first.id, "bob", APPROVE) is ReviewState.APPROVED
    assert reviews.next_item("bob") is None  # cyd and ada hold the second's two places


def test_filters_pick_by_category(store: Store, tmp_path: Path) -> None:
    items = queue_items(store, tmp_path, 2)
    reviews = service(store)
    assert reviews.next_item("ada", category="privacy") is None
    assert reviews.next_item("ada", category=items[0].category, relation="analogy").id == items[0].id


def test_reviewer_tokens_are_stored_hashed(store: Store) -> None:
    reviews = service(store)
    token = reviews.add_reviewer("ada", admin=True)
    from builder.review.service import token_digest

    row = store.reviewer_by_token(token_digest(token))
    assert row.name == "ada" and row.admin and row.token_sha256 != token
    with pytest.raises(Exception, match="already exists"):
        reviews.add_reviewer("ada")
