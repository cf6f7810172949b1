"""Alembic's environment: run by `listener.schema`, which passes the connection to migrate.

There is no alembic.ini: `listener.schema.alembic_config` points Alembic at this folder and
puts the connection in `config.attributes["connection"]`. SQLite runs in batch mode
(`render_as_batch`), so a later revision's ALTER TABLE works there too (copy and move).
"""

from __future__ import annotations

from alembic import context

from listener.schema import model_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=model_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
