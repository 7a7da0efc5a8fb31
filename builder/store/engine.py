"""Opening the store's database: URL safety (a bad URL, a missing driver or a server that does
not answer is one InputError that never shows the password), SQLite's settings, migrating the
schema, and the transaction helpers every part of the store writes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from builder.core.errors import InputError, SystemFault
from builder.core.outputs import check_work_folder
from builder.store import migrations
from builder.store.schema import ItemRow

_log = logging.getLogger("builder.store")
# How long a store waits for a database that stopped answering before it fails (a restart takes
# seconds); the review app waits not at all and answers 503 instead.
DATABASE_WAIT_SECONDS = 60.0


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


def in_chunks(values: Sequence[str], size: int = 900) -> Iterator[Sequence[str]]:
    """`values` in slices small enough for one `IN (...)` on every database."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def shown_url(url: str) -> str:
    """`url` as it may be shown: password hidden; unparseable URLs are not shown at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # a port that is not a number is a ValueError
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
    `folder_to_create`, the one the command itself is about to create (checked: a folder it
    may write in, or one it can create).
    """
    shown = shown_url(url)
    if folder_to_create is not None:
        check_work_folder(folder_to_create)
    try:
        # pre_ping: a pooled connection that a database restart cut is replaced, not used
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except (NoSuchModuleError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError too
        raise InputError(f"database URL {shown}: unknown database or driver not installed ({exc})") from None
    except (ArgumentError, ValueError):  # a port that is not a number is a ValueError
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


def wait_for_reconnects(engine: Engine, url: str, seconds: float) -> None:
    """From now on, a new connection to a database that does not answer (one that restarts) is
    tried again with back-off for up to `seconds`, each wait reported on the `builder.store`
    logger; past that, a SystemFault names the database and says the rerun resumes. Opening a
    store does not wait: a wrong URL fails at once."""
    if seconds <= 0 or engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        started, pause, attempt = time.monotonic(), 0.25, 0
        while True:
            attempt += 1
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                waited = time.monotonic() - started
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                password = make_url(url).password
                reason = reason.replace(str(password), "***") if password else reason
                if waited + pause > seconds:
                    raise SystemFault(
                        f"the database at {shown_url(url)} did not answer for {waited:.0f} s ({reason}); "
                        "nothing half-done was kept: rerun once it is back to resume"
                    ) from None
                _log.warning(
                    "database at %s not answering (%s); reconnect %d in %.1f s (waiting up to %.0f s)",
                    shown_url(url),
                    reason,
                    attempt,
                    pause,
                    seconds,
                )
                time.sleep(pause)
                pause = min(pause * 2, 2.0)


def _driver_reason(exc: DBAPIError, url: str) -> str:
    """The driver's first line, with the password taken out should the driver repeat it."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = lines[0]
    password = make_url(url).password
    return reason.replace(str(password), "***") if password else reason


class StoreBase:
    """An open store: its engine, with the schema brought up to date, and the helpers to write
    in one transaction. Each part of the store (items, review, caches, ledger) extends it."""

    def __init__(
        self,
        url: str,
        *,
        must_exist: bool = False,
        migrate: bool = True,
        wait_seconds: float = DATABASE_WAIT_SECONDS,
    ):
        """Open the store at `url` (see `open_engine`); unless `migrate` is False, bring its
        schema up to date, creating it in an empty database unless `must_exist`. Once open, a
        database that stops answering is waited for up to `wait_seconds` (see
        `wait_for_reconnects`)."""
        self.url = url
        self.engine: Engine = open_engine(url, must_exist=must_exist)
        wait_for_reconnects(self.engine, url, wait_seconds)
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
        """One transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine) as session, session.begin():
            yield session

    def _insert_new(self, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
        """Insert the rows whose `keys` are not in `table` yet; keep what is there (atomic: of
        two writers of one key, the first one's row stays)."""
        if not rows:
            return
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self._session() as session:
            for start in range(0, len(rows), 500):
                statement = dialect.insert(table).on_conflict_do_nothing(index_elements=keys)
                session.execute(statement, rows[start : start + 500])

    def _upsert(self, session: Session, table: Any, rows: list[dict[str, Any]], key: str | list[str]) -> None:
        if not rows:
            return
        keys = [key] if isinstance(key, str) else key
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table)
        updates = {column: statement.excluded[column] for column in rows[0] if column not in keys}
        session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)
