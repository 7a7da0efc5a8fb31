"""Schema migrations of the store (Alembic). The store upgrades itself on first use;
`mirbench db upgrade` does it explicitly. A store made before migrations existed (0.1.0) is
recognised by its tables and stamped as revision 0001 first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

FOLDER = Path(__file__).resolve().parent


def _config(connection: Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    config.attributes["connection"] = connection
    return config


def revisions(engine: Engine) -> tuple[str | None, str]:
    """(the store's revision, the newest this code knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(_config(connection)).get_current_head()
    assert head is not None
    return current, head


def upgrade(engine: Engine) -> bool:
    """Bring the store to the newest schema; False when it already was."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    current, head = revisions(engine)
    if current == head:
        return False
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes may open a new store at once (review app workers, Dask workers):
            # one migrates, the others wait here and then find nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(7230414)"))
            current = MigrationContext.configure(connection).get_current_revision()
            if current == head:
                return False
        config = _config(connection)
        if current is None and inspect(connection).has_table("items"):
            command.stamp(config, "0001")
        command.upgrade(config, "head")
    return True
