"""The store: source of truth for items, their states and verdicts, and the review queue.

SQLite by default, PostgreSQL by URL. Every write is one transaction, so a run that dies
loses at most the shard it was working on, and a rerun picks up from what is stored. The store
persists; it does not decide.

`Store` is the one door in. Its methods live with their concern, one module each:
- `schema`: the tables (ORM rows on `_Base`, which the migrations are checked against);
- `engine`: opening a database URL safely, SQLite's settings, the transaction helpers;
- `items`: saving and querying items;
- `review`: the review queue, reviewers and sessions, `ReviewTransaction` (pair locks, votes,
  leases);
- `leases`: the one lease query that deals items (the review queue) and seeds (the seed queue);
- `caches`: rendered images, text embeddings, model responses, testers' answers, the
  structured-output format each server accepts;
- `ledger`: runs, the items each run touched, task records, releases and release intents;
- `seeds`: seeds imported from public sources for curation (builder/curation/ decides);
- `calibrations`: judges' agreement with human labels (builder/stages/judge/calibration/ decides
  which one is quoted);
- `evaluations`: evaluation runs, their items, responses and verdicts (builder/evaluation/ decides).
"""

from __future__ import annotations

from builder.store.caches import AnswerCache, CacheStore
from builder.store.calibrations import CalibrationRecord, CalibrationStore
from builder.store.engine import open_engine, shown_url
from builder.store.evaluations import EvaluationStore
from builder.store.items import Candidate, ItemStore
from builder.store.leases import ITEM_QUEUE, SEED_QUEUE, LeaseQueue
from builder.store.ledger import LedgerStore
from builder.store.review import PairMember, ReviewEntry, ReviewStore, ReviewTransaction
from builder.store.schema import (
    BULK_APPROVAL_REASON,
    SEED_ID_PREFIX,
    AnswerRow,
    DecisionRow,
    EmbeddingRow,
    ItemRow,
    LearnedFormatRow,
    LeaseRow,
    ReleaseIntentRow,
    ReleaseRow,
    RenderRow,
    ResponseRow,
    ReviewerRow,
    ReviewRow,
    ReviewSessionRow,
    ReviewState,
    RunItemRow,
    RunRow,
    SeedRow,
    SeedState,
    SeedVoteEditRow,
    TaskRecordRow,
    _Base,
)
from builder.store.seeds import SeedStore


class Store(ItemStore, ReviewStore, CacheStore, LedgerStore, SeedStore, CalibrationStore, EvaluationStore):
    """The store at a database URL (see `StoreBase.__init__`); close it, or use it in a `with`."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "BULK_APPROVAL_REASON",
    "ITEM_QUEUE",
    "SEED_ID_PREFIX",
    "SEED_QUEUE",
    "AnswerCache",
    "AnswerRow",
    "CalibrationRecord",
    "Candidate",
    "DecisionRow",
    "EmbeddingRow",
    "ItemRow",
    "LearnedFormatRow",
    "LeaseQueue",
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
    "RunItemRow",
    "RunRow",
    "SeedRow",
    "SeedState",
    "SeedVoteEditRow",
    "Store",
    "TaskRecordRow",
    "_Base",
    "open_engine",
    "shown_url",
]
