"""The store: source of truth for items, their states and verdicts, and the review queue.

SQLite by default, PostgreSQL by URL. Every write is one transaction, so a run that dies
loses at most the shard it was working on, and a rerun picks up from what is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from builder import migrations
from builder.errors import InputError
from builder.items import Item, ItemStatus, Verdict


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISPUTED = "disputed"  # reviewers disagree: an admin adjudicates


# The reason recorded on approvals given with `review approve --all`: a release card says so.
BULK_APPROVAL_REASON = "bulk approval (--all): no item was looked at"


def _now() -> datetime:
    return datetime.now(UTC)


class _Base(DeclarativeBase):
    pass


class ItemRow(_Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seed_id: Mapped[str] = mapped_column(String(128), index=True)
    category: Mapped[str] = mapped_column(String(64))
    relation: Mapped[str] = mapped_column(String(64), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ReviewRow(_Base):
    __tablename__ = "reviews"
    # reviewers are handed the oldest pending items: walk this index instead of sorting the queue
    __table_args__ = (Index("reviews_queue_order", "state", "queued_at", "item_id"),)

    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default=ReviewState.PENDING)
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RenderRow(_Base):
    """Render cache: a render key (backend, settings, text) -> the content-addressed file."""

    __tablename__ = "renders"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    renderer: Mapped[str] = mapped_column(Text, default="")
    file: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    phash: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    license: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)


class EmbeddingRow(_Base):
    """Text embeddings keyed by sha256(model, text): a text is encoded once, whatever item has it."""

    __tablename__ = "text_embeddings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ResponseRow(_Base):
    """Model answers keyed by (model, template version, rendered request): reruns replay them."""

    __tablename__ = "llm_responses"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AnswerRow(_Base):
    """Testers' answers, keyed like a response cache by (tester model, prompt, images' sha256,
    settings): kept for reviewers and reruns, never written to a release, deleted by
    `mirbench answers purge`."""

    __tablename__ = "attack_answers"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RunRow(_Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    settings: Mapped[str] = mapped_column(Text)
    stats: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A run that died unfinished, and the run that resumed its work.
    superseded_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TaskRecordRow(_Base):
    """What one orchestrated task reported when it finished (its stage stats)."""

    __tablename__ = "task_records"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64))
    stats: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ReleaseRow(_Base):
    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    location: Mapped[str] = mapped_column(Text)
    items: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))


class ReviewerRow(_Base):
    """A person who reviews; logs in with a token that is stored only as its sha256."""

    __tablename__ = "reviewers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DecisionRow(_Base):
    """Append-only log of review decisions; a changed vote supersedes (never deletes) the old one."""

    __tablename__ = "decisions"
    __table_args__ = (
        # at most one active vote per reviewer and item, whatever the race
        Index(
            "one_active_vote",
            "item_id",
            "reviewer",
            unique=True,
            postgresql_where=text("NOT superseded AND kind = 'vote'"),
            sqlite_where=text("NOT superseded AND kind = 'vote'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(32), index=True)
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)


class LeaseRow(_Base):
    """An item shown to a reviewer is theirs until `expires_at`; `skipped` keeps it from them."""

    __tablename__ = "leases"

    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)


class ReviewSessionRow(_Base):
    """A logged-in browser: the cookie holds a random token, the store only its sha256."""

    __tablename__ = "review_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    csrf: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReleaseIntentRow(_Base):
    """A release being written: its manifest hash, recorded before its folder is moved into place."""

    __tablename__ = "release_intents"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    location: Mapped[str] = mapped_column(Text)
    items: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class Candidate:
    """The latest candidate of one (seed, relation) pair, as the planner sees it."""

    item_id: str
    iteration: int
    status: ItemStatus
    feedback: list[str]


@dataclass(frozen=True)
class ReviewEntry:
    item: Item
    state: ReviewState
    reviewer: str | None
    reason: str | None
    decided_at: datetime | None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLAlchemy emits BEGIN itself (below), so that review transactions can BEGIN IMMEDIATE
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    """Review transactions take SQLite's write lock up front: a read-then-write transaction
    that finds another writer's commit after its snapshot would fail instead of waiting."""
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _chunks(values: Sequence[str], size: int = 900) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def shown_url(url: str) -> str:
    """`url` as it may be shown: password hidden; unparseable URLs are not shown at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparseable URL)"


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def open_engine(url: str, *, must_exist: bool = False, folder_to_create: Path | None = None) -> Engine:
    """An engine for the store at `url`, checked without writing anything.

    A malformed URL, a missing driver, a server that does not answer, or (with `must_exist`) a
    SQLite file that does not exist yet is one InputError naming the host, never the password.
    SQLite files are not opened here (that would create them): their folder must exist, or be
    `folder_to_create`, the one the command itself is about to create.
    """
    shown = shown_url(url)
    try:
        engine = create_engine(url)
    except (NoSuchModuleError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError too
        raise InputError(f"database URL {shown}: unknown database or driver not installed ({exc})") from None
    except ArgumentError:
        raise InputError(
            "malformed database URL; expected dialect+driver://user:password@host:port/database"
        ) from None
    if engine.dialect.is_async:
        driver = engine.url.drivername
        raise InputError(f"database URL {shown}: '{driver}' is an asyncio driver; use postgresql+psycopg")
    file = _sqlite_file(engine)
    if file is not None:
        if must_exist and not file.is_file():
            raise InputError(f"no store yet at {shown}; run `mirbench build` first")
        folder = file.resolve().parent
        if not folder.is_dir() and (folder_to_create is None or folder != Path(folder_to_create).resolve()):
            raise InputError(f"database URL {shown}: folder {folder} does not exist")
        return engine
    try:
        engine.connect().close()
    except DBAPIError as exc:
        engine.dispose()
        raise InputError(f"cannot connect to the database at {shown}: {_driver_reason(exc, url)}") from None
    return engine


def _driver_reason(exc: DBAPIError, url: str) -> str:
    """The driver's first line, with the password taken out should the driver repeat it."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = lines[0]
    password = make_url(url).password
    return reason.replace(str(password), "***") if password else reason


class Store:
    def __init__(self, url: str, *, must_exist: bool = False, migrate: bool = True):
        """Open the store at `url` (see `open_engine`); unless `migrate` is False, bring its
        schema up to date, creating it in an empty database unless `must_exist`."""
        self.url = url
        self.engine: Engine = open_engine(url, must_exist=must_exist)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        try:
            if must_exist and not inspect(self.engine).has_table(ItemRow.__tablename__):
                raise InputError(f"no store yet at {shown_url(url)}; run `mirbench build` first")
            if migrate:
                migrations.upgrade(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise InputError(
                f"cannot open the database at {shown_url(url)}: {_driver_reason(exc, url)}"
            ) from None
        except InputError:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    def _upsert(self, session: Session, table: Any, rows: list[dict[str, Any]], key: str | list[str]) -> None:
        if not rows:
            return
        keys = [key] if isinstance(key, str) else key
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table)
        updates = {column: statement.excluded[column] for column in rows[0] if column not in keys}
        session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)

    # --- items -------------------------------------------------------------------------

    def save_items(self, items: Iterable[Item]) -> None:
        rows = [
            {
                "id": item.id,
                "seed_id": item.seed_id,
                "category": item.category,
                "relation": item.relation,
                "iteration": item.iteration,
                "status": item.status.value,
                "reason": _reason(item.rejection),
                "data": item.model_dump_json(),
                "updated_at": _now(),
            }
            for item in items
        ]
        with self._session() as session:
            self._upsert(session, ItemRow.__table__, rows, "id")

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        found: dict[str, Item] = {}
        with Session(self.engine) as session:
            for chunk in _chunks(list(ids)):
                for data in session.scalars(select(ItemRow.data).where(ItemRow.id.in_(chunk))):
                    item = Item.model_validate_json(data)
                    found[item.id] = item
        missing = [item_id for item_id in ids if item_id not in found]
        if missing:
            raise InputError(f"unknown item id(s): {', '.join(missing[:10])}")
        return [found[item_id] for item_id in ids]

    def ids_with_status(
        self, status: ItemStatus, iteration: int | None, seed_ids: Iterable[str], relations: Iterable[str]
    ) -> list[str]:
        """Ids of one round's items (every round's, if `iteration` is None) in `status`, ordered
        by id so every run orders them alike."""
        query = (
            select(ItemRow.id, ItemRow.seed_id)
            .where(ItemRow.status == status.value, ItemRow.relation.in_(list(relations)))
            .order_by(ItemRow.id)
        )
        if iteration is not None:
            query = query.where(ItemRow.iteration == iteration)
        wanted = set(seed_ids)
        with Session(self.engine) as session:
            return [row.id for row in session.execute(query) if row.seed_id in wanted]

    def items_with_statuses(self, statuses: Iterable[ItemStatus]) -> list[Item]:
        query = (
            select(ItemRow.data)
            .where(ItemRow.status.in_([status.value for status in statuses]))
            .order_by(ItemRow.iteration, ItemRow.id)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    def latest_candidates(self, relations: Iterable[str]) -> dict[tuple[str, str], Candidate]:
        """For every (seed, relation) pair with a candidate, its highest-round candidate."""
        query = select(
            ItemRow.id,
            ItemRow.seed_id,
            ItemRow.relation,
            ItemRow.iteration,
            ItemRow.status,
            ItemRow.reason,
        ).where(ItemRow.relation.in_(list(relations)))
        latest: dict[tuple[str, str], Candidate] = {}
        with Session(self.engine) as session:
            for row in session.execute(query):
                pair = (row.seed_id, row.relation)
                if pair not in latest or latest[pair].iteration < row.iteration:
                    feedback = [row.reason] if row.reason else []
                    latest[pair] = Candidate(row.id, row.iteration, ItemStatus(row.status), feedback)
        return latest

    def status_counts(self, seed_ids: Iterable[str] | None = None) -> dict[str, int]:
        return self._count(ItemRow.status, seed_ids)

    def reason_counts(self, seed_ids: Iterable[str] | None = None) -> dict[str, int]:
        counts = self._count(
            ItemRow.reason,
            seed_ids,
            ItemRow.status.in_(
                [ItemStatus.REJECTED.value, ItemStatus.FAILED.value, ItemStatus.REFUSED.value]
            ),
        )
        return {reason: count for reason, count in counts.items() if reason}

    def cell_counts(self, status: ItemStatus) -> dict[tuple[str, str], int]:
        query = (
            select(ItemRow.category, ItemRow.relation, func.count())
            .where(ItemRow.status == status.value)
            .group_by(ItemRow.category, ItemRow.relation)
        )
        with Session(self.engine) as session:
            return {(row[0], row[1]): row[2] for row in session.execute(query)}

    def _count(self, column: Any, seed_ids: Iterable[str] | None, *where: Any) -> dict[str, int]:
        query = select(column, ItemRow.seed_id, func.count()).group_by(column, ItemRow.seed_id)
        for clause in where:
            query = query.where(clause)
        wanted = set(seed_ids) if seed_ids is not None else None
        counts: dict[str, int] = {}
        with Session(self.engine) as session:
            for value, seed_id, count in session.execute(query):
                if wanted is None or seed_id in wanted:
                    counts[value] = counts.get(value, 0) + count
        return counts

    # --- review queue ------------------------------------------------------------------

    def enqueue(self, items: Sequence[Item]) -> None:
        """Mark items queued and open a pending review for each, in one transaction."""
        for item in items:
            item.status = ItemStatus.QUEUED
        with self._session() as session:
            existing = set(
                session.scalars(select(ReviewRow.item_id).where(ReviewRow.item_id.in_([i.id for i in items])))
            )
            session.add_all(
                ReviewRow(item_id=i.id, state=ReviewState.PENDING.value, queued_at=_now())
                for i in items
                if i.id not in existing
            )
        self.save_items(items)

    def reviews(
        self,
        state: ReviewState | None = None,
        limit: int | None = None,
        category: str | None = None,
        relation: str | None = None,
        reviewer: str | None = None,
    ) -> list[ReviewEntry]:
        query = select(ReviewRow, ItemRow.data).join(ItemRow, ItemRow.id == ReviewRow.item_id)
        if state is not None:
            query = query.where(ReviewRow.state == state.value)
        if category:
            query = query.where(ItemRow.category == category)
        if relation:
            query = query.where(ItemRow.relation == relation)
        if reviewer:
            query = query.where(
                ReviewRow.item_id.in_(select(DecisionRow.item_id).where(DecisionRow.reviewer == reviewer))
            )
        query = query.order_by(ReviewRow.queued_at, ReviewRow.item_id).limit(limit)
        with Session(self.engine) as session:
            return [
                ReviewEntry(
                    Item.model_validate_json(data),
                    ReviewState(review.state),
                    review.reviewer,
                    review.reason,
                    review.decided_at,
                )
                for review, data in session.execute(query)
            ]

    def review_entry(self, item_id: str) -> ReviewEntry | None:
        query = (
            select(ReviewRow, ItemRow.data)
            .join(ItemRow, ItemRow.id == ReviewRow.item_id)
            .where(ReviewRow.item_id == item_id)
        )
        with Session(self.engine) as session:
            row = session.execute(query).first()
        if row is None:
            return None
        review, data = row
        return ReviewEntry(
            Item.model_validate_json(data),
            ReviewState(review.state),
            review.reviewer,
            review.reason,
            review.decided_at,
        )

    def pending_ids(self) -> list[str]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(ReviewRow.item_id)
                    .where(ReviewRow.state == ReviewState.PENDING.value)
                    .order_by(ReviewRow.queued_at, ReviewRow.item_id)
                )
            )

    def review_counts(self) -> dict[str, int]:
        query = select(ReviewRow.state, func.count()).group_by(ReviewRow.state)
        with Session(self.engine) as session:
            return {state: count for state, count in session.execute(query)}

    def approved_items(self) -> list[Item]:
        query = (
            select(ItemRow.data)
            .join(ReviewRow, ReviewRow.item_id == ItemRow.id)
            .where(ReviewRow.state == ReviewState.APPROVED.value)
            .order_by(ItemRow.category, ItemRow.relation, ItemRow.id)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    @contextmanager
    def review_transaction(self) -> Iterator[ReviewTransaction]:
        """One review transaction (SQLite: holding the write lock from its start)."""
        bind = self.engine.execution_options(sqlite_immediate=True)
        with Session(bind) as session, session.begin():
            yield ReviewTransaction(session)

    def add_reviewer(self, name: str, token_sha256: str, admin: bool) -> None:
        with self._session() as session:
            if session.get(ReviewerRow, name) is not None:
                raise InputError(f"reviewer {name!r} already exists")
            session.add(ReviewerRow(name=name, token_sha256=token_sha256, admin=admin))

    def reviewer_by_token(self, token_sha256: str) -> ReviewerRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalar(select(ReviewerRow).where(ReviewerRow.token_sha256 == token_sha256))

    def open_session(self, token_sha256: str, reviewer: str, csrf: str, expires_at: datetime) -> None:
        with self._session() as session:
            session.execute(delete(ReviewSessionRow).where(ReviewSessionRow.expires_at < _now()))
            session.add(
                ReviewSessionRow(
                    token_sha256=token_sha256, reviewer=reviewer, csrf=csrf, expires_at=expires_at
                )
            )

    def session_of(self, token_sha256: str) -> tuple[ReviewerRow, str] | None:
        """The reviewer and CSRF token of a live session, if any."""
        query = (
            select(ReviewerRow, ReviewSessionRow.csrf)
            .join(ReviewSessionRow, ReviewSessionRow.reviewer == ReviewerRow.name)
            .where(ReviewSessionRow.token_sha256 == token_sha256, ReviewSessionRow.expires_at > _now())
        )
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.execute(query).first()
            return (row[0], row[1]) if row is not None else None

    def close_session(self, token_sha256: str) -> None:
        with self._session() as session:
            session.execute(delete(ReviewSessionRow).where(ReviewSessionRow.token_sha256 == token_sha256))

    def image_file(self, sha256: str) -> str | None:
        """The stored file (relative to the artifacts folder) of a known image, by content hash."""
        with Session(self.engine) as session:
            return session.scalar(select(RenderRow.file).where(RenderRow.sha256 == sha256).limit(1))

    def decision_log(self, item_ids: Sequence[str] | None = None) -> list[DecisionRow]:
        """Every decision, oldest first (superseded ones included: the log is the history)."""
        query = select(DecisionRow).order_by(DecisionRow.id)
        if item_ids is not None:
            query = query.where(DecisionRow.item_id.in_(list(item_ids)))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def pair_rounds(self, item: Item) -> list[Item]:
        """Every round of an item's (seed, relation) pair, oldest first."""
        query = (
            select(ItemRow.data)
            .where(ItemRow.seed_id == item.seed_id, ItemRow.relation == item.relation)
            .order_by(ItemRow.iteration)
        )
        with Session(self.engine) as session:
            return [Item.model_validate_json(data) for data in session.scalars(query)]

    # --- render cache and text embeddings ----------------------------------------------

    def cached_renders(self, keys: Sequence[str]) -> dict[str, RenderRow]:
        found: dict[str, RenderRow] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            for chunk in _chunks(list(keys)):
                for row in session.scalars(select(RenderRow).where(RenderRow.key.in_(chunk))):
                    found[row.key] = row
        return found

    def cache_renders(self, rows: list[dict[str, str | None]]) -> None:
        with self._session() as session:
            self._upsert(session, RenderRow.__table__, rows, "key")

    def render_source_counts(self, renderer: str) -> dict[str, int]:
        """How often each retrieved source was used by `renderer` (for reuse caps across runs)."""
        query = (
            select(RenderRow.source, func.count())
            .where(RenderRow.renderer == renderer)
            .group_by(RenderRow.source)
        )
        with Session(self.engine) as session:
            return {source: count for source, count in session.execute(query) if source}

    def embeddings(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with Session(self.engine) as session:
            for chunk in _chunks(list(keys)):
                query = select(EmbeddingRow.key, EmbeddingRow.vector).where(EmbeddingRow.key.in_(chunk))
                found.update({key: vector for key, vector in session.execute(query)})
        return found

    def save_embeddings(self, vectors: dict[str, bytes]) -> None:
        rows = [{"key": key, "vector": vector} for key, vector in vectors.items()]
        with self._session() as session:
            self._upsert(session, EmbeddingRow.__table__, rows, "key")

    def cached_response(self, key: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(select(ResponseRow.text).where(ResponseRow.key == key))

    def cache_response(self, key: str, model: str, text: str) -> None:
        with self._session() as session:
            self._upsert(
                session,
                ResponseRow.__table__,
                [{"key": key, "model": model, "text": text, "created_at": _now()}],
                "key",
            )

    # --- testers' answers --------------------------------------------------------------

    @property
    def answer_cache(self) -> AnswerCache:
        """The answers table in the shape of an LLM client's response cache."""
        return AnswerCache(self)

    def answers(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with Session(self.engine) as session:
            for chunk in _chunks(list(keys)):
                query = select(AnswerRow.key, AnswerRow.text).where(AnswerRow.key.in_(chunk))
                found.update({key: text for key, text in session.execute(query)})
        return found

    def save_answer(self, key: str, model: str, text: str) -> None:
        with self._session() as session:
            self._upsert(
                session,
                AnswerRow.__table__,
                [{"key": key, "model": model, "text": text, "created_at": _now()}],
                "key",
            )

    def purge_answers(self) -> int:
        """Delete every stored answer; returns how many there were."""
        with self._session() as session:
            return session.execute(delete(AnswerRow)).rowcount or 0

    # --- runs and releases -------------------------------------------------------------

    def start_run(self, run_id: str, settings: dict[str, Any]) -> None:
        """Record a new run; runs that died unfinished are superseded by it (it resumes them)."""
        with self._session() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.finished_at.is_(None), RunRow.superseded_by.is_(None))
                .values(superseded_by=run_id)
            )
            session.add(RunRow(id=run_id, settings=json.dumps(settings, sort_keys=True)))

    def record_task(self, run_id: str, task: str, stats: dict[str, Any]) -> None:
        row = {
            "run_id": run_id,
            "task": task,
            "stage": stats["stage"],
            "stats": json.dumps(stats, sort_keys=True),
            "recorded_at": _now(),
        }
        with self._session() as session:
            self._upsert(session, TaskRecordRow.__table__, [row], ["run_id", "task"])

    def task_records(self, run_id: str) -> list[dict[str, Any]]:
        query = select(TaskRecordRow.stats).where(TaskRecordRow.run_id == run_id).order_by(TaskRecordRow.task)
        with Session(self.engine) as session:
            return [json.loads(stats) for stats in session.scalars(query)]

    def finish_run(self, run_id: str, stats: dict[str, Any]) -> None:
        with self._session() as session:
            row = session.get(RunRow, run_id)
            if row is not None:
                row.finished_at, row.stats = _now(), json.dumps(stats, sort_keys=True)

    def runs(self, limit: int = 5) -> list[RunRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)))

    def record_release(self, version: str, location: str, items: int, manifest_sha256: str) -> None:
        with self._session() as session:
            if session.get(ReleaseRow, version) is not None:
                raise InputError(f"release {version} already exists; versions are immutable")
            session.add(
                ReleaseRow(version=version, location=location, items=items, manifest_sha256=manifest_sha256)
            )
            intent = session.get(ReleaseIntentRow, version)
            if intent is not None:
                session.delete(intent)

    def record_release_intent(self, version: str, location: str, items: int, manifest_sha256: str) -> None:
        row = {
            "version": version,
            "location": location,
            "items": items,
            "manifest_sha256": manifest_sha256,
            "created_at": _now(),
        }
        with self._session() as session:
            self._upsert(session, ReleaseIntentRow.__table__, [row], "version")

    def release(self, version: str) -> ReleaseRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ReleaseRow, version)

    def release_intent(self, version: str) -> ReleaseIntentRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ReleaseIntentRow, version)

    def releases(self) -> list[ReleaseRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(ReleaseRow).order_by(ReleaseRow.created_at)))

    def release_intents(self) -> list[ReleaseIntentRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(ReleaseIntentRow).order_by(ReleaseIntentRow.created_at)))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PairMember:
    item_id: str
    iteration: int
    state: ReviewState | None  # None: not in the review queue


class ReviewTransaction:
    """Persistence primitives for one review transaction; builder.review.service decides."""

    def __init__(self, session: Session):
        self.session = session

    def lock_pair(self, item_id: str) -> list[PairMember] | None:
        """Lock the review rows of every item of `item_id`'s (seed, relation) pair, in id order
        (concurrent decisions on one pair then queue up instead of deadlocking). None: unknown."""
        target = select(ItemRow.seed_id, ItemRow.relation).where(ItemRow.id == item_id).subquery()
        same_pair = (ItemRow.seed_id == target.c.seed_id) & (ItemRow.relation == target.c.relation)
        rounds = dict(
            self.session.execute(select(ItemRow.id, ItemRow.iteration).join(target, same_pair)).all()
        )
        if item_id not in rounds:
            return None
        states = dict(
            self.session.execute(
                select(ReviewRow.item_id, ReviewRow.state)
                .where(ReviewRow.item_id.in_(list(rounds)))
                .order_by(ReviewRow.item_id)
                .with_for_update()
            ).all()
        )
        return [
            PairMember(member, iteration, ReviewState(states[member]) if member in states else None)
            for member, iteration in sorted(rounds.items())
        ]

    def active_decisions(self, item_id: str) -> list[DecisionRow]:
        query = (
            select(DecisionRow)
            .where(DecisionRow.item_id == item_id, DecisionRow.superseded.is_(False))
            .order_by(DecisionRow.id)
        )
        return list(self.session.scalars(query))

    def supersede(self, decision_ids: Sequence[int]) -> None:
        if decision_ids:
            self.session.execute(
                update(DecisionRow).where(DecisionRow.id.in_(list(decision_ids))).values(superseded=True)
            )

    def add_decision(self, item_id: str, reviewer: str, decision: str, kind: str, reason: str | None) -> None:
        self.session.add(
            DecisionRow(
                item_id=item_id, reviewer=reviewer, decision=decision, kind=kind, reason=reason, at=_now()
            )
        )
        self.session.flush()

    def set_review(self, item_id: str, state: ReviewState, reviewer: str | None, reason: str | None) -> None:
        decided = state in (ReviewState.APPROVED, ReviewState.REJECTED)
        self.session.execute(
            update(ReviewRow)
            .where(ReviewRow.item_id == item_id)
            .values(
                state=state.value, reviewer=reviewer, reason=reason, decided_at=_now() if decided else None
            )
        )

    def item(self, item_id: str) -> Item:
        return Item.model_validate_json(
            self.session.scalar(select(ItemRow.data).where(ItemRow.id == item_id))
        )

    def save_item(self, item: Item) -> None:
        self.session.execute(
            update(ItemRow)
            .where(ItemRow.id == item.id)
            .values(
                status=item.status.value,
                reason=_reason(item.rejection),
                data=item.model_dump_json(),
                updated_at=_now(),
            )
        )

    def drop_leases(self, item_id: str, reviewer: str | None = None) -> None:
        """Release an item's leases (one reviewer's, or everyone's); skips are kept."""
        statement = delete(LeaseRow).where(LeaseRow.item_id == item_id, LeaseRow.skipped.is_(False))
        if reviewer is not None:
            statement = statement.where(LeaseRow.reviewer == reviewer)
        self.session.execute(statement)

    def held_lease(self, reviewer: str, now: datetime) -> str | None:
        """A pending item `reviewer` holds a live lease on and has not voted on yet."""
        query = (
            select(LeaseRow.item_id)
            .join(ReviewRow, ReviewRow.item_id == LeaseRow.item_id)
            .where(
                LeaseRow.reviewer == reviewer,
                LeaseRow.skipped.is_(False),
                LeaseRow.expires_at > now,
                ReviewRow.state == ReviewState.PENDING.value,
                ~_voted(reviewer),
            )
            .order_by(LeaseRow.expires_at)
            .limit(1)
        )
        return self.session.scalar(query)

    def candidates(
        self,
        reviewer: str,
        votes_required: int,
        now: datetime,
        limit: int,
        category: str | None = None,
        relation: str | None = None,
    ) -> list[str]:
        """Pending items, oldest first, that `reviewer` has neither voted on nor skipped and
        that still need a vote beyond those cast and those leased to others."""
        skipped = (
            select(LeaseRow.item_id)
            .where(LeaseRow.reviewer == reviewer, LeaseRow.skipped.is_(True))
            .where(LeaseRow.item_id == ReviewRow.item_id)
            .exists()
        )
        query = (
            select(ReviewRow.item_id)
            .where(
                ReviewRow.state == ReviewState.PENDING.value,
                ~_voted(reviewer),
                ~skipped,
                _claims(ReviewRow.item_id, now) < votes_required,
            )
            .order_by(ReviewRow.queued_at, ReviewRow.item_id)
            .limit(limit)
        )
        if category or relation:
            query = query.join(ItemRow, ItemRow.id == ReviewRow.item_id)
            if category:
                query = query.where(ItemRow.category == category)
            if relation:
                query = query.where(ItemRow.relation == relation)
        return list(self.session.scalars(query))

    def lock_if_pending(self, item_id: str) -> bool:
        """Lock a pending item's review row unless another transaction holds it (then: False)."""
        query = (
            select(ReviewRow.item_id)
            .where(ReviewRow.item_id == item_id, ReviewRow.state == ReviewState.PENDING.value)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalar(query) is not None

    def claims(self, item_id: str, now: datetime, reviewer: str) -> int:
        """Votes cast on an item plus live leases on it held by reviewers other than `reviewer`."""
        query = select(_claims(literal(item_id, String(32)), now, excluding=reviewer))
        return int(self.session.scalar(query) or 0)

    def lease(self, item_id: str, reviewer: str, expires_at: datetime, skipped: bool = False) -> None:
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(LeaseRow).values(
            item_id=item_id, reviewer=reviewer, expires_at=expires_at, skipped=skipped
        )
        self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["item_id", "reviewer"], set_={"expires_at": expires_at, "skipped": skipped}
            )
        )


def _voted(reviewer: str) -> Any:
    """SQL: `reviewer` has an active vote on the review row's item."""
    return (
        select(DecisionRow.id)
        .where(
            DecisionRow.item_id == ReviewRow.item_id,
            DecisionRow.reviewer == reviewer,
            DecisionRow.kind == "vote",
            DecisionRow.superseded.is_(False),
        )
        .exists()
    )


def _claims(item_id: Any, now: datetime, excluding: str | None = None) -> Any:
    """SQL: active votes on the item plus live, unskipped leases on it (not `excluding`'s)."""
    votes = (
        select(func.count())
        .select_from(DecisionRow)
        .where(DecisionRow.item_id == item_id, DecisionRow.kind == "vote", DecisionRow.superseded.is_(False))
        .scalar_subquery()
    )
    leases = (
        select(func.count())
        .select_from(LeaseRow)
        .where(LeaseRow.item_id == item_id, LeaseRow.skipped.is_(False), LeaseRow.expires_at > now)
    )
    if excluding is not None:
        leases = leases.where(LeaseRow.reviewer != excluding)
    return votes + leases.scalar_subquery()


class AnswerCache:
    def __init__(self, store: Store):
        self.store = store

    def cached_response(self, key: str) -> str | None:
        return self.store.answers([key]).get(key)

    def cache_response(self, key: str, model: str, text: str) -> None:
        self.store.save_answer(key, model, text)


def _reason(verdict: Verdict | None) -> str:
    return f"{verdict.name}: {verdict.reason}" if verdict is not None else ""
