"""Schema migrations (listener/migrations): head equals the models on SQLite and PostgreSQL, a
database made before migrations is adopted with its rows, and `listener db upgrade`/`current`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from listener.cli import app
from listener.schema import BASELINE, current, head, model_metadata, upgrade
from listener.store import Store, make_engine
from tests.support.configs import write_setup

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, model_metadata()))


def test_the_schema_at_head_is_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        ran = upgrade(engine)
        assert ran[0] == BASELINE and ran[-1] == head() and len(set(ran)) == len(ran)
        assert differences(engine) == []
        assert current(engine).is_head
        assert upgrade(engine) == []  # a second time: nothing to do
    finally:
        engine.dispose()


def test_times_come_back_as_aware_utc(database_url: str) -> None:
    from listener.store import CursorRow

    store = Store(database_url)
    try:
        from zoneinfo import ZoneInfo

        amsterdam = datetime(2026, 11, 20, 13, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
        store.record_source_failure("k", "down", now=amsterdam)
        [row] = store.source_states()
        assert isinstance(row, CursorRow)
        assert row.updated_at == T0 and row.updated_at.utcoffset() is not None
        assert row.updated_at.tzinfo == UTC
    finally:
        store.close()


def test_a_database_made_before_migrations_is_adopted_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    metadata = model_metadata()
    # as an older listener made it: some tables missing, and none of those later revisions add
    later = ("acks", "escalations", "poll_leases")
    old_tables = [t for name, t in metadata.tables.items() if name not in later]
    metadata.create_all(engine, tables=old_tables)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO cursors (key, value, updated_at, failures) "
                "VALUES ('replay:x', '42', '2026-11-20 12:00:00', 0)"
            )
        )
    assert current(engine).revision is None and current(engine).adoptable
    engine.dispose()

    store = Store(url)
    try:
        assert store.cursor("replay:x") == "42"
        assert current(store.engine).is_head
        assert differences(store.engine) == []  # the missing tables were added
        with store.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head()
    finally:
        store.close()


def test_db_upgrade_and_current_on_the_command_line(
    tmp_path: Path, database_url: str, monkeypatch
) -> None:
    config = write_setup(tmp_path)
    monkeypatch.setenv("LISTENER_DATABASE", database_url)
    runner = CliRunner()

    before = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert before.exit_code == 0, before.output
    assert f"none (empty); head is {head()}" in before.output

    first = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert f"ran {BASELINE}" in first.output

    again = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert again.exit_code == 0 and "up to date" in again.output

    now = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert now.exit_code == 0 and f"{head()} (head)" in now.output
