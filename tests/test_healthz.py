"""GET /healthz on the daemon's real HTTP server: 200 while the scheduler runs and the database
answers, 503 with the reason otherwise; and the Docker image's HEALTHCHECK against it."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from listener.config import load_config
from listener.daemon import Daemon
from listener.httpserver import HttpServer
from tests.support.configs import write_setup

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(daemon: Daemon) -> HttpServer:
    server = daemon.http_server(env={})
    assert server is not None
    server.port = 0
    server.start()
    return server


def test_503_until_the_scheduler_runs_and_when_the_database_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    db = tmp_path / "db"
    db.mkdir()
    config = write_setup(tmp_path, extra_main="\n[http]\nport = 8080\n")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("sqlite:///listener.db", f"sqlite:///{db}/listener.db"))
    daemon = Daemon.from_config(load_config(config), env={})
    server = start(daemon)
    scheduler = BackgroundScheduler()
    try:
        before = httpx.get(f"{server.url}/healthz")
        assert before.status_code == 503
        assert before.json() == {
            "status": "unavailable",
            "reason": "scheduler: not running",
            "checks": {"scheduler": "not running", "database": "ok"},
        }

        daemon._scheduler = scheduler  # what run_forever holds
        scheduler.start()
        ok = httpx.get(f"{server.url}/healthz")
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "checks": {"scheduler": "ok", "database": "ok"}}
        assert httpx.head(f"{server.url}/healthz").status_code == 200
        assert httpx.post(f"{server.url}/healthz").status_code == 405

        daemon.store.engine.dispose()  # no connection left open: the next one must open the file
        shutil.rmtree(db)
        down = httpx.get(f"{server.url}/healthz")
        assert down.status_code == 503
        body = down.json()
        assert body["checks"]["scheduler"] == "ok"
        assert "unable to open database file" in body["checks"]["database"]
        assert body["reason"].startswith("database: ")
    finally:
        server.stop()
        if scheduler.running:
            scheduler.shutdown(wait=False)
        daemon.store.close()


def test_a_running_daemon_answers_200_and_stops_answering_when_it_stops(tmp_path: Path) -> None:
    port = free_port()
    config = write_setup(tmp_path, extra_main=f"\n[http]\nport = {port}\n")
    daemon = Daemon.from_config(load_config(config), env={})
    runner = threading.Thread(target=daemon.run_forever, name="daemon")
    runner.start()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(url)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.1)
                continue
            status = response.status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert "listener_outbox_depth" in metrics.text
    finally:
        daemon.stop_event.set()
        runner.join(timeout=60)
        daemon.store.close()
    assert not runner.is_alive()
    assert not daemon.scheduler_running()


def test_the_docker_images_config_serves_the_port_its_healthcheck_asks(tmp_path: Path) -> None:
    """The Dockerfile's sed turns the example config's [http] on at 0.0.0.0:8080, and its
    HEALTHCHECK asks that port for /healthz."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    [sed] = re.findall(r"RUN (sed -i .*? config\.toml)", dockerfile)
    [check] = re.findall(r"^HEALTHCHECK .*?\n(?:.*\\\n)*.*$", dockerfile, re.M)
    app = tmp_path / "app"
    app.mkdir()
    for name in ("queries", "alerts", "demo"):
        shutil.copytree(ROOT / name, app / name)
    shutil.copy(ROOT / "config.example.toml", app / "config.toml")
    subprocess.run(["bash", "-c", sed], cwd=app, check=True)
    http = load_config(app / "config.toml").main.http
    assert (http.host, http.port) == ("0.0.0.0", 8080)
    assert f"http://127.0.0.1:{http.port}/healthz" in check
    assert "--timeout=" in check and "--interval=" in check
    assert f"EXPOSE {http.port}" in dockerfile
    # the install step stays what `make` and .ci/run do: the project, non-editable
    assert "RUN pip install --no-cache-dir --disable-pip-version-check .\n" in dockerfile


def test_the_systemd_unit_runs_listener_as_its_own_user_with_hardening() -> None:
    unit = (ROOT / "deploy" / "listener.service").read_text(encoding="utf-8")
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in unit.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["Type"] == "simple"
    assert settings["User"] == "listener"
    assert settings["WorkingDirectory"]
    assert settings["EnvironmentFile"] == "/etc/listener/env"
    assert settings["Restart"] == "on-failure" and settings["RestartSec"]
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert "LISTENER_DATABASE=sqlite:////var/lib/listener/" in unit
    assert settings["ReadWritePaths"] == "/var/lib/listener"
    assert settings["ExecStart"].endswith("listener run")
