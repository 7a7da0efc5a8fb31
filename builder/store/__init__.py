"""The store: source of truth for items, their states and verdicts, and the review queue.

SQLite by default, PostgreSQL by URL. Every write is one transaction, so a run that dies
loses at most the shard it was working on, and a rerun picks up from what is stored. The store
persists; it does not decide.

`Store` is the one door in. Its methods live with their concern, one module each:
- `schema`: the tables (ORM rows on `_Base`, which the migrations are checked against);
- `engine`: opening a database URL safely, SQLite's settings, the transaction helpers;
- `items`: saving and querying items, the funnel's counts;
- `review`: the review queue, reviewers and sessions, `ReviewTransaction` (pair locks, votes,
  leases);
- `caches`: rendered images, text embeddings, model responses, testers' answers;
- `ledger`: runs, task records, releases and release intents.
"""

from __future__ import annotations

from builder.store.caches import AnswerCache, CacheStore
from builder.store.engine import open_engine, shown_url
from builder.store.items import Candidate, ItemStore
from builder.store.ledger import LedgerStore
from builder.store.review import PairMember, ReviewEntry, ReviewStore, ReviewTransaction
from builder.store.schema import (
    BULK_APPROVAL_REASON,
    AnswerRow,
    DecisionRow,
    EmbeddingRow,
    ItemRow,
    LeaseRow,
    ReleaseIntentRow,
    ReleaseRow,
    RenderRow,
    ResponseRow,
    ReviewerRow,
    ReviewRow,
    ReviewSessionRow,
    ReviewState,
    RunRow,
    TaskRecordRow,
    _Base,
)


class Store(ItemStore, ReviewStore, CacheStore, LedgerStore):
    """The store at a database URL (see `StoreBase.__init__`); close it, or use it in a `with`."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "BULK_APPROVAL_REASON",
    "AnswerCache",
    "AnswerRow",
    "Candidate",
    "DecisionRow",
    "EmbeddingRow",
    "ItemRow",
    "LeaseRow",
    "PairMember",
    "ReleaseIntentRow",
    "ReleaseRow",
    "RenderRow",
    "ResponseRow",
    "ReviewEntry",
    "ReviewRow",
    "ReviewSessionRow",
    "ReviewState",
    "ReviewTransaction",
    "ReviewerRow",
    "RunRow",
    "Store",
    "TaskRecordRow",
    "_Base",
    "open_engine",
    "shown_url",
]
