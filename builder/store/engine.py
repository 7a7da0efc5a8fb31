"""Opening the store's database: URL safety (a bad URL, a missing driver or a server that does
not answer is one InputError that never shows the password), SQLite's settings, migrating the
schema, and the transaction helpers every part of the store writes through."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from builder import migrations
from builder.errors import InputError
from builder.store.schema import ItemRow


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


class StoreBase:
    """An open store: its engine, with the schema brought up to date, and the helpers to write
    in one transaction. Each part of the store (items, review, caches, ledger) extends it."""

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
        """One transaction: committed when the block ends, rolled back if it raises."""
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
