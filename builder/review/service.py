"""The review operations the CLI, the web app and the Label Studio import share.

Every operation is one store transaction: a decision, the review state the policy derives
from it, the item state that state implies and the leases it frees change together or not at
all. Deciding on an item locks the review rows of its whole (seed, relation) pair, so two
decisions on one pair (the pair rule) or one item (votes) are applied one after the other;
handing out an item locks its review row without waiting, so reviewers never queue behind
each other and never both get an item that needs one more vote.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from builder.config.sections import ReviewSettings
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus, Verdict
from builder.review.policy import CastDecision, Decision, DecisionKind, Outcome, Policy, pair_conflict
from builder.review.recent import Recent
from builder.store import DecisionRow, PairMember, ReviewState, ReviewTransaction, Store

REVIEW_VERDICT = "review"
_PROGRESS = "progress"
_TRIES = 8  # choices a race may spoil in one request before it reports nothing to do


class ReviewRefused(InputError):
    """A decision the rules do not allow; the message says why and what to do instead."""


@dataclass
class BulkResult:
    applied: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (item id, why)

    def record(self, item_id: str, decide: Callable[[], object]) -> None:
        """Run one item's decision; a refusal is kept with its reason, the rest goes on."""
        try:
            decide()
        except ReviewRefused as refusal:
            self.refused.append((item_id, str(refusal)))
        else:
            self.applied.append(item_id)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReviewService:
    def __init__(
        self, store: Store, settings: ReviewSettings, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = Policy(settings.votes_required, settings.policy)
        self.clock = clock
        self._progress = Recent(settings.progress_seconds)

    # --- reviewers ---------------------------------------------------------------------

    def add_reviewer(self, name: str, admin: bool = False) -> str:
        """Register a reviewer; returns their login token (shown once, stored hashed)."""
        if not name.strip():
            raise InputError("a reviewer needs a name")
        token = new_token()
        self.store.add_reviewer(name.strip(), token_digest(token), admin)
        return token

    # --- handing out work --------------------------------------------------------------

    def next_item(
        self, reviewer: str, category: str | None = None, relation: str | None = None
    ) -> Item | None:
        """The item `reviewer` should look at next, leased to them; None when nothing is left."""
        now = self.clock()
        expires = now + timedelta(minutes=self.settings.lease_minutes)
        needed = self.policy.votes_required
        with self.store.review_transaction() as tx:
            for _ in range(_TRIES):
                item = tx.lease_next(reviewer, needed, now, expires, category, relation)
                # The statement chose by its snapshot: a lease another reviewer committed after
                # it started is seen only now. Rare; give that item back and choose again.
                if item is None or tx.claims(item.id, now, reviewer) < needed:
                    return item
                tx.drop_leases(item.id, reviewer)
        return None

    def skip(self, item_id: str, reviewer: str) -> None:
        """Give the item back and do not offer it to `reviewer` again."""
        with self.store.review_transaction() as tx:
            self._locked_member(tx, item_id)  # an unknown id is refused, not leased
            tx.lease(item_id, reviewer, self.clock(), skipped=True)

    # --- decisions ---------------------------------------------------------------------

    def vote(self, item_id: str, reviewer: str, decision: Decision, reason: str | None = None) -> ReviewState:
        """Cast or change `reviewer`'s vote; returns the item's review state afterwards."""
        reason = _clean(reason)
        if decision is Decision.REJECT and not reason:
            raise ReviewRefused(f"{item_id}: a rejection needs a reason")
        with self.store.review_transaction() as tx:
            member, pair = self._locked_member(tx, item_id)
            active = tx.active_decisions(item_id)
            own = [row.id for row in active if row.reviewer == reviewer and row.kind == DecisionKind.VOTE]
            if not self.policy.may_vote(member.state):
                if any(row.id in own and row.decision == decision.value for row in active):
                    return member.state  # a repeat (a rerun of a killed command): already counted
                raise ReviewRefused(
                    f"{item_id} is already {member.state}; only an admin can change it, with a reason"
                )
            cast = [_cast(row) for row in active if row.id not in own]
            cast.append(CastDecision(reviewer, decision, DecisionKind.VOTE, reason, self.clock()))
            outcome = self.policy.outcome(cast)
            _check_pair(member, pair, outcome)
            tx.supersede(own)
            tx.add_decision(item_id, reviewer, decision.value, DecisionKind.VOTE.value, reason)
            self._apply(tx, item_id, outcome)
            tx.drop_leases(item_id, None if outcome.decided else reviewer)
        self._progress.forget(_PROGRESS)  # once committed: a count read now sees the decision
        return outcome.state

    def finalize(self, item_id: str, admin: str, decision: Decision, reason: str | None) -> ReviewState:
        """An admin's final word: adjudicates a disputed item, or overrides any other state."""
        reason = _clean(reason)
        if not reason:
            raise ReviewRefused(f"{item_id}: an admin decision needs a reason")
        with self.store.review_transaction() as tx:
            member, pair = self._locked_member(tx, item_id)
            kind = (
                DecisionKind.ADJUDICATION if member.state is ReviewState.DISPUTED else DecisionKind.OVERRIDE
            )
            outcome = Outcome(decision.state, (admin,), (reason,))
            _check_pair(member, pair, outcome)
            tx.add_decision(item_id, admin, decision.value, kind.value, reason)
            self._apply(tx, item_id, outcome)
            tx.drop_leases(item_id)
        self._progress.forget(_PROGRESS)
        return outcome.state

    def vote_many(
        self, ids: Sequence[str], reviewer: str, decision: Decision, reason: str | None = None
    ) -> BulkResult:
        """Vote on many items, one transaction each: a run killed half-way leaves every item
        either fully decided or untouched, and a rerun goes on where it stopped."""
        result = BulkResult()
        for item_id in ids:
            result.record(item_id, partial(self.vote, item_id, reviewer, decision, reason))
        return result

    # --- progress ----------------------------------------------------------------------

    def progress(self) -> tuple[int, int]:
        """(decided items, items in the review queue), as counted at most
        `progress_seconds` ago or since a decision made through this service."""
        return self._progress.get(_PROGRESS, lambda _: self._count_progress())

    def _count_progress(self) -> tuple[int, int]:
        counts = self.store.review_counts()
        decided = counts.get(ReviewState.APPROVED.value, 0) + counts.get(ReviewState.REJECTED.value, 0)
        return decided, sum(counts.values())

    # --- internals ---------------------------------------------------------------------

    @staticmethod
    def _locked_member(tx: ReviewTransaction, item_id: str) -> tuple[PairMember, list[PairMember]]:
        """The item's place in its pair, with the pair's review rows locked."""
        pair = tx.lock_pair(item_id)
        if pair is None:
            raise ReviewRefused(f"unknown item id: {item_id}")
        member = next(m for m in pair if m.item_id == item_id)
        if member.state is None:
            raise ReviewRefused(f"{item_id} is not in the review queue")
        return member, pair

    @staticmethod
    def _apply(tx: ReviewTransaction, item_id: str, outcome: Outcome) -> None:
        """Write the derived review state and the item state it implies."""
        deciders = ", ".join(outcome.deciders) or None
        reasons = "; ".join(outcome.reasons) or None
        tx.set_review(item_id, outcome.state, deciders, reasons)
        item = tx.item(item_id)
        item.verdicts = [verdict for verdict in item.verdicts if verdict.name != REVIEW_VERDICT]
        item.status = ItemStatus.QUEUED
        if outcome.state is ReviewState.REJECTED:
            item.reject(
                Verdict(name=REVIEW_VERDICT, version=deciders or "", passed=False, reason=reasons or "")
            )
        elif outcome.state is ReviewState.APPROVED:
            item.verdicts.append(
                Verdict(name=REVIEW_VERDICT, version=deciders or "", passed=True, reason=reasons or "")
            )
        tx.save_item(item)


def _check_pair(member: PairMember, pair: list[PairMember], outcome: Outcome) -> None:
    if outcome.state is not ReviewState.APPROVED:
        return
    others = [(m.item_id, m.iteration, m.state) for m in pair if m.item_id != member.item_id]
    conflict = pair_conflict(member.iteration, others)
    if conflict:
        raise ReviewRefused(f"cannot approve {member.item_id}: {conflict}")


def _cast(row: DecisionRow) -> CastDecision:
    return CastDecision(row.reviewer, Decision(row.decision), DecisionKind(row.kind), row.reason, row.at)


def _clean(reason: str | None) -> str | None:
    return reason.strip() or None if reason else None
