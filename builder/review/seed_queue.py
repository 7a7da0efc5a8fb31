"""Human curation of seeds: the seed queue, under the rules of item review.

The same reviewers (and logins), the same policy (`review.votes_required`, unanimous or
majority), the same leases and the same append-only audit trail: votes are rows of the review's
`decisions` table and leases rows of its `leases` table, keyed by the seed's id (`sd-...`, never
an item id), written through the review's own transaction primitives. A reviewer accepts a seed
in a category (the one proposed, or another they choose: the edit is kept with the vote; with no
proposal they must choose), or as out of scope (with a reason), optionally setting its key
phrase; rejects it (with a reason); or skips it. Accepting voters who pick different categories
disagree: the seed is disputed and an admin decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from builder.config.sections import ReviewSettings
from builder.config.taxonomy import Taxonomy
from builder.core.words import contains_phrase
from builder.curation.sources import OUT_OF_SCOPE
from builder.review.policy import CastDecision, Decision, DecisionKind, Outcome, Policy
from builder.review.service import ReviewRefused
from builder.store import (
    SEED_QUEUE,
    DecisionRow,
    ReviewState,
    ReviewTransaction,
    SeedRow,
    SeedState,
    SeedVoteEditRow,
    Store,
)

_STATE = {
    ReviewState.PENDING: SeedState.PENDING,
    ReviewState.DISPUTED: SeedState.DISPUTED,
    ReviewState.APPROVED: SeedState.ACCEPTED,
    ReviewState.REJECTED: SeedState.REJECTED,
}


@dataclass(frozen=True)
class SeedEdit:
    category: str | None = None
    key_phrase: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SeedCuration:
    def __init__(
        self,
        store: Store,
        settings: ReviewSettings,
        taxonomy: Taxonomy,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = Policy(settings.votes_required, settings.policy)
        self.categories = set(taxonomy.categories)
        self.clock = clock

    def next_seed(self, reviewer: str, category: str | None = None) -> SeedRow | None:
        """The seed `reviewer` should curate next, leased to them; None when nothing is left."""
        now = self.clock()
        expires = now + timedelta(minutes=self.settings.lease_minutes)
        filters = {"category": category} if category else {}
        with self.store.review_transaction() as tx:
            chosen = tx.lease_next_id(SEED_QUEUE, reviewer, self.policy.votes_required, now, expires, filters)
            if chosen is None:
                return None
            row = tx.session.get(SeedRow, chosen)
            tx.session.expunge(row)
            return row

    def skip(self, seed_id: str, reviewer: str) -> None:
        with self.store.review_transaction() as tx:
            self._locked(tx, seed_id)  # an unknown id is refused, not leased
            tx.lease(seed_id, reviewer, self.clock(), skipped=True)

    def vote(
        self,
        seed_id: str,
        reviewer: str,
        decision: Decision,
        reason: str | None = None,
        edit: SeedEdit | None = None,
    ) -> SeedState:
        """Cast or change `reviewer`'s vote on a seed; returns the seed's state afterwards."""
        reason = (reason or "").strip() or None
        if decision is Decision.REJECT and not reason:
            raise ReviewRefused(f"{seed_id}: a rejection needs a reason")
        with self.store.review_transaction() as tx:
            row = self._locked(tx, seed_id)
            edit = self._checked(row, edit or SeedEdit(), decision, reason)
            active = tx.active_decisions(seed_id)
            own = [d.id for d in active if d.reviewer == reviewer and d.kind == DecisionKind.VOTE]
            state = ReviewState(_review_state(row.state))
            if not self.policy.may_vote(state):
                if any(d.id in own and d.decision == decision.value for d in active):
                    return SeedState(row.state)  # a repeat (a rerun of a killed command): already counted
                raise ReviewRefused(
                    f"{seed_id} is already {row.state}; only an admin can change it, with a reason"
                )
            cast = [_cast(d) for d in active if d.id not in own]
            cast.append(CastDecision(reviewer, decision, DecisionKind.VOTE, reason, self.clock()))
            tx.supersede(own)
            tx.add_decision(seed_id, reviewer, decision.value, DecisionKind.VOTE.value, reason)
            self._keep_edit(tx, seed_id, reviewer, edit)
            outcome = self.policy.outcome(cast)
            result = self._apply(tx, row, outcome)
            tx.drop_leases(seed_id, None if outcome.decided else reviewer)
        return result

    def finalize(
        self, seed_id: str, admin: str, decision: Decision, reason: str | None, edit: SeedEdit | None = None
    ) -> SeedState:
        """An admin's final word on a seed: adjudicates a disputed one, or overrides."""
        reason = (reason or "").strip() or None
        if not reason:
            raise ReviewRefused(f"{seed_id}: an admin decision needs a reason")
        with self.store.review_transaction() as tx:
            row = self._locked(tx, seed_id)
            edit = self._checked(row, edit or SeedEdit(), decision, reason)
            kind = DecisionKind.ADJUDICATION if row.state == SeedState.DISPUTED else DecisionKind.OVERRIDE
            tx.add_decision(seed_id, admin, decision.value, kind.value, reason)
            self._keep_edit(tx, seed_id, admin, edit)
            result = self._apply(tx, row, Outcome(decision.state, (admin,), (reason,)))
            tx.drop_leases(seed_id)
        return result

    # --- internals ---------------------------------------------------------------------

    def _checked(self, row: SeedRow, edit: SeedEdit, decision: Decision, reason: str | None) -> SeedEdit:
        """The edit, checked: a known category (or out of scope, which needs a reason), a key
        phrase the seed contains; accepting needs a category, chosen or proposed."""
        if edit.category is not None and edit.category not in self.categories | {OUT_OF_SCOPE}:
            known = ", ".join([*sorted(self.categories), OUT_OF_SCOPE])
            raise ReviewRefused(f"{row.id}: unknown category '{edit.category}'; known: {known}")
        if decision is Decision.APPROVE:
            chosen = edit.category or row.category
            if chosen is None:
                raise ReviewRefused(
                    f"{row.id}: no category proposed: choose one, or out of scope with a reason"
                )
            if chosen == OUT_OF_SCOPE and not reason:
                raise ReviewRefused(f"{row.id}: out of scope needs a reason (what the seed asks for)")
        phrase = (edit.key_phrase or "").strip() or None
        if phrase and not contains_phrase(row.text, phrase):
            raise ReviewRefused(f"{row.id}: key phrase {phrase!r} does not occur in the seed")
        return SeedEdit(edit.category, phrase)

    @staticmethod
    def _keep_edit(tx: ReviewTransaction, seed_id: str, reviewer: str, edit: SeedEdit) -> None:
        if edit.category is None and edit.key_phrase is None:
            return
        decision = tx.session.scalar(
            select(DecisionRow.id)
            .where(DecisionRow.item_id == seed_id, DecisionRow.reviewer == reviewer)
            .order_by(DecisionRow.id.desc())
            .limit(1)
        )
        tx.session.add(
            SeedVoteEditRow(decision_id=decision, category=edit.category, key_phrase=edit.key_phrase)
        )
        tx.session.flush()

    def _apply(self, tx: ReviewTransaction, row: SeedRow, outcome: Outcome) -> SeedState:
        """Write the seed's state, and for an accepted seed the category and key phrase its
        deciders chose (accepting deciders who disagree on the category: disputed)."""
        state = _STATE[outcome.state]
        seed = tx.session.get(SeedRow, row.id, with_for_update=True)
        assert seed is not None
        if outcome.state is ReviewState.APPROVED:
            edits = self._edits(tx, row.id, set(outcome.deciders))
            categories = {e.category or seed.category for e in edits} or {seed.category}
            if len(categories) > 1:
                state = SeedState.DISPUTED
            else:
                seed.category = categories.pop()
                phrases = [e.key_phrase for e in edits if e.key_phrase]
                seed.key_phrase = phrases[-1] if phrases else seed.key_phrase
                if seed.category is None:
                    raise ReviewRefused(f"{row.id}: accepting a seed without a category: choose one")
                if seed.category == OUT_OF_SCOPE:  # accepted as out of scope: the reason is the vote's
                    state, seed.category = SeedState.OUT_OF_SCOPE, None
        seed.state = state.value
        seed.decided_by = (
            ", ".join(outcome.deciders) if state not in (SeedState.PENDING, SeedState.DISPUTED) else None
        )
        tx.session.flush()
        return state

    @staticmethod
    def _edits(tx: ReviewTransaction, seed_id: str, deciders: set[str]) -> list[SeedEdit]:
        """Each decider's edit on their standing decision (a decider without one: no change)."""
        rows = tx.session.execute(
            select(DecisionRow.reviewer, SeedVoteEditRow.category, SeedVoteEditRow.key_phrase)
            .join(SeedVoteEditRow, SeedVoteEditRow.decision_id == DecisionRow.id, isouter=True)
            .where(DecisionRow.item_id == seed_id, DecisionRow.superseded.is_(False))
            .order_by(DecisionRow.id)
        ).all()
        latest = {
            reviewer: SeedEdit(category, phrase)
            for reviewer, category, phrase in rows
            if reviewer in deciders
        }
        return list(latest.values())

    @staticmethod
    def _locked(tx: ReviewTransaction, seed_id: str) -> SeedRow:
        row = tx.session.get(SeedRow, seed_id, with_for_update=True)
        if row is None:
            raise ReviewRefused(f"unknown seed id: {seed_id}")
        if row.state in (SeedState.IMPORTED.value, SeedState.ALIAS.value):
            raise ReviewRefused(f"{seed_id} is {row.state}, not in the curation queue")
        return row


def _review_state(state: str) -> str:
    """The review state a seed's state stands for (out of scope counts as decided)."""
    if state == SeedState.OUT_OF_SCOPE.value:
        return ReviewState.REJECTED.value
    return {v.value: k.value for k, v in _STATE.items()}[state]


def _cast(row: DecisionRow) -> CastDecision:
    return CastDecision(row.reviewer, Decision(row.decision), DecisionKind(row.kind), row.reason, row.at)


def decision_log(store: Store, seed_id: str) -> list[DecisionRow]:
    """The seed's audit trail: every decision, superseded ones included."""
    return store.decision_log([seed_id])
