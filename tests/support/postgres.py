"""A throwaway PostgreSQL server for the tests, and a fresh database per test.

The server is the one .ci/run starts (then `LISTENER_TEST_POSTGRES` names it), or one started
here from the Debian binaries (/usr/lib/postgresql/*/bin): `initdb` into a temporary folder as
the `postgres` user when running as root, trust authentication, listening on 127.0.0.1 at a
free port with its socket in that folder, durability off (it is thrown away).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ENV = "LISTENER_TEST_POSTGRES"


def binaries() -> Path | None:
    """The newest PostgreSQL bin folder with initdb, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def server() -> Iterator[str]:
    """Start a PostgreSQL server; yields its SQLAlchemy URL (database `postgres`)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
    folder = Path(tempfile.mkdtemp(prefix="listener-pg-"))
    data = folder / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        folder.chmod(0o700)
        subprocess.run(
            _as_postgres(
                [
                    *(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
                    *("--no-sync", "-E", "UTF8", "--locale", "C"),
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = _free_port()
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres(
                [
                    *(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options),
                    *("-l", str(folder / "server.log"), "-w", "-t", "60", "start"),
                ]
            ),
            check=True,
            capture_output=True,
        )
        # If this process is killed (a timeout, ^C twice), a watchdog stops the server and
        # removes its folder, so no server outlives the test run.
        stop = " ".join(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate"]))
        watchdog = subprocess.Popen(
            [
                "sh",
                "-c",
                f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
                f"{stop} stop >/dev/null 2>&1; rm -rf {folder}",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            watchdog.kill()
            watchdog.wait()
            subprocess.run(
                _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _admin(url: str) -> psycopg.Connection:
    parts = make_url(url)
    return psycopg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        dbname=parts.database or "postgres",
        autocommit=True,
    )


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards; yields its URL."""
    name = f"listener_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
