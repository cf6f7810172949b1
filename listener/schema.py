"""The database schema's version: Alembic migrations in `listener/migrations`, run from here.

`upgrade` brings a database to the newest revision (head) and returns the revisions it ran;
`Store` calls it at start, `listener db upgrade` on demand. No alembic.ini is needed: the
configuration points at the package's migrations folder and hands Alembic the connection.

A database made before migrations (listener's tables present, no `alembic_version`) is adopted:
the baseline revision creates only what it lacks (tables and indexes of the baseline), keeps its
rows, and stamps it; later revisions then run as on any other database.

Several processes may start at once: on PostgreSQL the upgrade holds an advisory lock for its
transaction (DDL is transactional there), and on SQLite the engine's `BEGIN IMMEDIATE`
serialises it; either way the second process finds the database at head.

A new table or column: change the model, then write a revision (see listener/migrations/
README.md): `python -m listener.schema revision "add forgotten authors"` autogenerates one
against a scratch SQLite database at head; check it, and `tests/test_migrations.py` proves the
schema after `upgrade head` equals the models on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001_baseline"
#: Tables only listener makes: one of them present without `alembic_version` means a database
#: made before migrations.
_OURS = ("posts", "alerts", "outbox", "cursors")
_LOCK_KEY = 0x6C697374656E6572  # "listener": the advisory lock of an upgrade on PostgreSQL


def model_metadata() -> MetaData:
    """The metadata of every table model (importing the modules that define them)."""
    from sqlmodel import SQLModel

    import listener.geo.nominatim
    import listener.health
    import listener.leases
    import listener.store  # noqa: F401

    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


@dataclass(frozen=True, slots=True)
class Version:
    revision: str | None  # None: no schema yet (or one made before migrations)
    head: str
    adoptable: bool = False  # made before migrations: `upgrade` adopts it

    @property
    def is_head(self) -> bool:
        return self.revision == self.head


def current(engine: Engine) -> Version:
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        tables = set(sa.inspect(connection).get_table_names())
    return Version(revision, head(), revision is None and bool(tables & set(_OURS)))


def upgrade(engine: Engine) -> list[str]:
    """Bring the database to head; returns the revisions that ran, oldest first (empty: it was
    up to date). RuntimeError when a table model has no revision that creates it."""
    chatter = logging.getLogger("alembic")
    if chatter.level == logging.NOTSET:  # not "Context impl SQLiteImpl." at every start
        chatter.setLevel(logging.WARNING)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = MigrationContext.configure(connection).get_current_revision()
        if before == head():
            ran: list[str] = []
        else:
            tables = set(sa.inspect(connection).get_table_names())
            if before is None and tables & set(_OURS):
                log.info(
                    "database: made before migrations; adopting it at the baseline (%s)", BASELINE
                )
            scripts = ScriptDirectory.from_config(alembic_config())
            ran = [
                script.revision
                for script in reversed(list(scripts.iterate_revisions("head", before)))
            ]
            command.upgrade(alembic_config(connection), "head")
            for revision in ran:
                log.info("database: ran migration %s", revision)
        missing = set(model_metadata().tables) - set(sa.inspect(connection).get_table_names())
    if missing:
        raise RuntimeError(
            f"table(s) {', '.join(sorted(missing))} have a model but no migration creates them: "
            "add a revision (listener/migrations/README.md)"
        )
    return ran


def revision(message: str) -> Path:
    """Autogenerate a revision from the models' difference to a scratch database at head."""
    from listener.store import make_engine

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
            script = command.revision(
                alembic_config(connection), message=message, autogenerate=True
            )
        engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


if __name__ == "__main__":  # python -m listener.schema revision "message"
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m listener.schema revision "what the revision does"')
    print(revision(sys.argv[2]))
