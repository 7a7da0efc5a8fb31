"""Alembic environment: migrations run on the connection the store hands over."""

import logging

from alembic import context

logging.getLogger("alembic").setLevel(logging.WARNING)

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
