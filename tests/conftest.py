"""Shared fixtures: the databases the store and end-to-end tests run on.

`database_url` runs a test on SQLite (a file in tmp_path) and on PostgreSQL (a fresh database
on a throwaway server, dropped afterwards). The server is `LISTENER_TEST_POSTGRES` when set
(.ci/run starts one), else one started here from the PostgreSQL binaries, when installed. With
neither, the PostgreSQL runs are skipped, except under CI (`CI` set), where that is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get(postgres.ENV)
    if url:
        yield url
        return
    if postgres.binaries() is None:
        reason = (
            f"no PostgreSQL server: set {postgres.ENV} or install PostgreSQL "
            "(apt-get install postgresql)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(reason)
    with postgres.server() as started:
        yield started


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with postgres.fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'listener.db'}"
    return str(request.getfixturevalue("postgres_url"))
