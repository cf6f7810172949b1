"""Alembic migrations of listener's database; see README.md here and `listener.schema`."""
