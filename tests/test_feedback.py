"""Feedback closes the loop: clicks in Slack and `listener feedback`, stored with the post.

The Slack tests run the real thing end to end: a replay file → the daemon (`run_once`) → alerts
in a local Slack-wire server; then signed block_actions payloads, built from the controls of the
delivered message, go over HTTP to the daemon's own HTTP server, and the message comes back
through `chat.update`. Signatures are computed here from Slack's documented recipe, not with
slack-sdk, so a mistake in how listener verifies them cannot hide behind the same mistake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from listener.cli import app
from listener.config import load_config
from listener.daemon import Daemon
from listener.feedback import FeedbackError, UnknownAlert, record
from listener.health import SourceHealth, Trouble
from listener.httpserver import HttpServer
from listener.store import AlertRow, Store
from tests.support.configs import write_setup
from tests.support.slackwire import SlackWireMessage, SlackWireServer

SECRET = "8f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99"
TOKEN = "xoxb-9999-8888-feedbacktoken-wxyz"
ENV = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET}
USER = "U0CLICK"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

POSTS = [
    ("t:leusden", "De bieb in Leusden is alweer dicht"),  # eemland / leusden
    ("t:eemhuis", "Het Eemhuis in Amersfoort: de bibliotheek is vandaag dicht"),  # / amersfoort
    ("t:nobranch", "Bieb Eemland heeft nieuwe openingstijden"),  # eemland, branch unknown
]

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_posts(folder: Path) -> None:
    lines = [
        json.dumps(
            {
                "id": post_id,
                "source": "replay",
                "text": text,
                "created_at": "2026-11-20T10:00:00Z",
                "url": f"https://social.example/{post_id}",
            }
        )
        for post_id, text in POSTS
    ]
    (folder / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def slack_setup(folder: Path, slack: SlackWireServer, port: int) -> Path:
    config = write_setup(
        folder,
        extra_main=f'[slack]\nbase_url = "{slack.base_url}"\ntimeout = "5s"\n\n'
        f"[http]\nport = {port}\n",
        extra_receivers='[[receivers]]\nid = "webcare"\ntype = "slack"\nchannel = "#webcare"\n',
        route_receivers='"webcare"',
    )
    write_posts(folder)
    return config


def alerts_by_post(store: Store) -> dict[str, AlertRow]:
    return {a.post_id: a for a in store.alerts_since(EPOCH)}


# --- signing and payloads, as Slack does them ----------------------------------------------------


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's headers: v0=HMAC-SHA256(secret, 'v0:' + timestamp + ':' + body)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def element(message: SlackWireMessage, action_id: str) -> dict[str, Any]:
    for block in message.blocks or []:
        for item in block.get("elements", []):
            if item.get("action_id") == action_id:
                return dict(item, block_id=block.get("block_id", "actions"))
    raise AssertionError(f"no {action_id} in the message")


def pressed(message: SlackWireMessage, action_id: str) -> dict[str, Any]:
    button = element(message, action_id)
    return {
        "type": "button",
        "action_id": action_id,
        "block_id": button["block_id"],
        "text": button["text"],
        "value": button["value"],
        "action_ts": "1764000000.000001",
    }


def chosen(message: SlackWireMessage, label: str) -> dict[str, Any]:
    select = element(message, "feedback_wrong_branch")
    [option] = [o for o in select["options"] if o["text"]["text"] == label]
    return {
        "type": "static_select",
        "action_id": "feedback_wrong_branch",
        "block_id": select["block_id"],
        "selected_option": option,
        "placeholder": select["placeholder"],
        "action_ts": "1764000000.000002",
    }


def payload(message: SlackWireMessage, action: dict[str, Any], user: str = USER) -> bytes:
    """A block_actions payload as Slack sends it for a click on `message`."""
    data = {
        "type": "block_actions",
        "user": {"id": user, "username": "anna", "name": "anna", "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "verification-token-not-used",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": "C0TEST",
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.abc",
        "team": {"id": "T0TEST", "domain": "test"},
        "channel": {"id": "C0TEST", "name": "webcare"},
        "message": {"type": "message", "ts": message.ts, "text": message.text},
        "response_url": "https://hooks.slack.example/actions/T0TEST/1/abc",
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(data)}).encode()


@dataclass
class Running:
    daemon: Daemon
    server: HttpServer
    slack: SlackWireServer
    messages: dict[str, SlackWireMessage]  # post id → the Slack message of its alert
    alerts: dict[str, AlertRow]  # post id → alert

    @property
    def url(self) -> str:
        return f"{self.server.url}/slack/actions"

    def send(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            self.url, content=body, headers=signed(body) if headers is None else headers
        )

    def click(self, post_id: str, action: dict[str, Any], user: str = USER) -> httpx.Response:
        return self.send(payload(self.messages[post_id], action, user))

    def verdicts(self) -> dict[str, tuple[str, str | None, str | None, str]]:
        """post id → (verdict, branch, by, via) of the newest feedback."""
        return {f.post_id: (f.verdict, f.branch, f.by, f.via) for f in self.daemon.store.feedback()}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with SlackWireServer(require_token=TOKEN) as slack:
        config = slack_setup(tmp_path, slack, free_port())
        daemon = Daemon.from_config(load_config(config), env=ENV)
        daemon.run_once()
        alerts = alerts_by_post(daemon.store)
        assert set(alerts) == {p for p, _ in POSTS}
        messages = {}
        for message in slack.wait_for(len(POSTS)):
            alert_id = message.metadata["event_payload"]["alert_id"] if message.metadata else None
            [post_id] = [p for p, a in alerts.items() if a.id == alert_id]
            messages[post_id] = message
        server = daemon.http_server(env=ENV)
        assert server is not None
        server.start()
        try:
            yield Running(daemon, server, slack, messages, alerts)
        finally:
            server.stop()
            daemon.store.close()


# --- Slack: clicks -------------------------------------------------------------------------------


def test_not_relevant_is_stored_with_the_post_and_the_message_says_who(running: Running) -> None:
    message = running.messages["t:leusden"]

    answer = running.click("t:leusden", pressed(message, "feedback_not_relevant"))

    assert answer.status_code == 200
    assert running.verdicts() == {"t:leusden": ("not-relevant", None, USER, "slack")}
    [update] = running.slack.wait_for_updates(1)
    assert (update.channel, update.ts, update.token) == ("C0TEST", message.ts, TOKEN)
    blocks = update.blocks or []
    assert blocks[-1]["elements"][0]["text"] == f"Marked not relevant by <@{USER}>"
    assert element(update, "feedback_relevant")["text"]["text"] == "Relevant after all"
    assert blocks[1] == (message.blocks or [])[1]  # the post itself is shown as before
    assert update.text == message.text


def test_relevant_after_all_takes_not_relevant_back(running: Running) -> None:
    running.click("t:leusden", pressed(running.messages["t:leusden"], "feedback_not_relevant"))
    [update] = running.slack.wait_for_updates(1)

    running.click("t:leusden", pressed(update, "feedback_relevant"))

    assert running.verdicts() == {"t:leusden": ("relevant", None, USER, "slack")}
    _, again = running.slack.wait_for_updates(2)
    assert (again.blocks or [])[-1]["elements"][0]["text"] == f"Marked relevant by <@{USER}>"
    assert element(again, "feedback_not_relevant")["value"] == str(running.alerts["t:leusden"].id)


def test_wrong_branch_stores_the_branch_chosen_and_preselects_it(running: Running) -> None:
    message = running.messages["t:leusden"]
    select = element(message, "feedback_wrong_branch")
    labels = [o["text"]["text"] for o in select["options"]]
    assert labels == ["No particular branch", "Eemhuis"]  # the other branch, not Leusden itself

    answer = running.click("t:leusden", chosen(message, "Eemhuis"), user="W0ENTERPRISE")

    assert answer.status_code == 200
    assert running.verdicts() == {
        "t:leusden": ("wrong-branch", "amersfoort", "W0ENTERPRISE", "slack")
    }
    [update] = running.slack.wait_for_updates(1)
    assert element(update, "feedback_wrong_branch")["initial_option"]["text"]["text"] == "Eemhuis"
    assert (update.blocks or [])[-1]["elements"][0]["text"] == (
        "Marked wrong branch by <@W0ENTERPRISE>: it is about Eemhuis"
    )


def test_no_particular_branch_is_wrong_branch_without_a_branch(running: Running) -> None:
    running.click("t:eemhuis", chosen(running.messages["t:eemhuis"], "No particular branch"))

    assert running.verdicts() == {"t:eemhuis": ("wrong-branch", None, USER, "slack")}
    [update] = running.slack.wait_for_updates(1)
    assert (update.blocks or [])[-1]["elements"][0]["text"].endswith(
        "it is about the organisation, no particular branch"
    )


def test_an_alert_without_a_branch_offers_every_branch(running: Running) -> None:
    select = element(running.messages["t:nobranch"], "feedback_wrong_branch")
    assert [o["text"]["text"] for o in select["options"]] == ["Bibliotheek Leusden", "Eemhuis"]

    running.click("t:nobranch", chosen(running.messages["t:nobranch"], "Bibliotheek Leusden"))

    assert running.verdicts() == {"t:nobranch": ("wrong-branch", "leusden", USER, "slack")}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="not-the-secret"), id="wrong secret"),
        pytest.param(lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="none"),
        pytest.param(lambda body: signed(body, timestamp=int(time.time()) - 6 * 60), id="stale"),
        pytest.param(lambda body: signed(body, timestamp=int(time.time()) + 6 * 60), id="future"),
        pytest.param(
            lambda body: signed(body) | {"X-Slack-Request-Timestamp": "soon"}, id="bad timestamp"
        ),
        pytest.param(lambda body: signed(body + b"&more=1"), id="another body"),
    ],
)
def test_a_request_without_a_valid_slack_signature_gets_401_and_changes_nothing(
    running: Running, headers: Any
) -> None:
    body = payload(
        running.messages["t:leusden"],
        pressed(running.messages["t:leusden"], "feedback_not_relevant"),
    )

    answer = running.send(body, headers(body))

    assert answer.status_code == 401
    assert running.verdicts() == {}
    methods = [method for method, _, _ in running.slack.requests]
    assert "chat.update" not in methods and "chat.postEphemeral" not in methods


def test_a_click_on_an_alert_this_database_lacks_gets_200_and_a_note_to_the_clicker(
    running: Running,
) -> None:
    action = pressed(running.messages["t:leusden"], "feedback_not_relevant") | {"value": "999"}

    answer = running.click("t:leusden", action)

    assert answer.status_code == 200  # Slack shows an error icon for anything else
    assert running.verdicts() == {}
    [note] = running.slack.wait_for_ephemerals(1)
    assert (note.channel, note.user) == ("C0TEST", USER)
    assert note.text == "listener could not record that: there is no alert 999."
    assert running.slack.updates == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"payload=not-json", id="not json"),
        pytest.param(urlencode({"payload": "[1, 2]"}).encode(), id="not an object"),
        pytest.param(
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "block_actions", "user": {"id": "<!channel>"}, "actions": []}
                    )
                }
            ).encode(),
            id="no user id",
        ),
        pytest.param(
            urlencode(
                {
                    "payload": json.dumps(
                        {
                            "type": "block_actions",
                            "user": {"id": USER},
                            "actions": [
                                {"action_id": "feedback_not_relevant", "value": "12; DROP"}
                            ],
                        }
                    )
                }
            ).encode(),
            id="bad alert id",
        ),
        pytest.param(
            urlencode(
                {
                    "payload": json.dumps(
                        {
                            "type": "block_actions",
                            "user": {"id": USER},
                            "actions": [
                                {
                                    "action_id": "feedback_wrong_branch",
                                    "selected_option": {"value": "leusden"},
                                }
                            ],
                        }
                    )
                }
            ).encode(),
            id="bad choice",
        ),
    ],
)
def test_a_signed_body_that_is_not_a_feedback_payload_gets_400(
    running: Running, body: bytes
) -> None:
    answer = running.send(body)

    assert answer.status_code == 400
    assert answer.json()["error"]
    assert running.verdicts() == {}


def test_open_post_and_other_interactions_are_acknowledged_and_change_nothing(
    running: Running,
) -> None:
    message = running.messages["t:leusden"]
    open_post = element(message, "open_post")
    action = {"type": "button", "action_id": "open_post", "block_id": open_post["block_id"]}
    shortcut = urlencode({"payload": json.dumps({"type": "shortcut", "user": {"id": USER}})})

    assert running.click("t:leusden", action).status_code == 200
    assert running.send(shortcut.encode()).status_code == 200

    # a real click after them is the barrier: the worker does its calls in order
    running.click("t:leusden", pressed(message, "feedback_not_relevant"))
    running.slack.wait_for_updates(1)
    assert running.verdicts() == {"t:leusden": ("not-relevant", None, USER, "slack")}
    assert [m for m, _, _ in running.slack.requests].count("chat.update") == 1


def test_a_failed_update_is_logged_and_the_feedback_is_kept(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running.slack.error_next(1, "cant_update_message", method="chat.update")
    message = running.messages["t:leusden"]

    assert running.click("t:leusden", pressed(message, "feedback_not_relevant")).status_code == 200

    running.click("t:eemhuis", pressed(running.messages["t:eemhuis"], "feedback_not_relevant"))
    [update] = running.slack.wait_for_updates(1)  # the second one; the first was refused
    assert update.ts == running.messages["t:eemhuis"].ts
    assert "t:leusden" in running.verdicts()
    assert "slack actions: chat.update failed: cant_update_message" in caplog.text


def test_the_secret_the_token_and_the_payload_never_reach_the_logs(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    message = running.messages["t:leusden"]
    body = payload(message, pressed(message, "feedback_not_relevant"))
    running.send(body, signed(body, secret="wrong"))
    running.send(b"payload=not-json")
    running.click("t:leusden", pressed(message, "feedback_not_relevant"))
    running.slack.wait_for_updates(1)

    for secret in (SECRET, TOKEN):
        assert secret not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("listener"))
    for quoted in ("verification-token-not-used", "De bieb in Leusden", "not-json"):
        assert quoted not in ours  # slack-sdk's own debug log shows what it sends; we do not
    assert f"marked not-relevant by {USER}" in ours  # it did log what happened


def test_without_the_signing_secret_there_is_no_slack_route(tmp_path: Path) -> None:
    with SlackWireServer(require_token=TOKEN) as slack:
        config = slack_setup(tmp_path, slack, free_port())
        daemon = Daemon.from_config(load_config(config), env={"SLACK_BOT_TOKEN": TOKEN})
        server = daemon.http_server(env={"SLACK_BOT_TOKEN": TOKEN})
        assert server is not None
        with server:
            answer = httpx.post(f"{server.url}/slack/actions", content=b"payload={}")
        daemon.store.close()
    assert answer.status_code == 404


def test_with_the_secret_but_no_token_clicks_are_recorded_without_updates(tmp_path: Path) -> None:
    env = {"LISTENER_TEST_SECRET": SECRET}
    with SlackWireServer(require_token=TOKEN) as slack:
        config = slack_setup(tmp_path, slack, free_port())
        text = config.read_text().replace(
            "[slack]\n", '[slack]\nsigning_secret_env = "LISTENER_TEST_SECRET"\n'
        )
        config.write_text(text)
        daemon = Daemon.from_config(load_config(config), env=env)
        daemon.run_once()  # the Slack receiver is inactive: the console has the alerts
        [alert, *_] = daemon.store.alerts_since(EPOCH)
        server = daemon.http_server(env=env)
        assert server is not None
        action = {"type": "button", "action_id": "feedback_not_relevant", "value": str(alert.id)}
        fake = SlackWireMessage("C0TEST", "", None, None, None, "1.000001", {})
        body = payload(fake, action)
        with server:
            answer = httpx.post(f"{server.url}/slack/actions", content=body, headers=signed(body))
        verdicts = [(f.alert_id, f.verdict) for f in daemon.store.feedback()]
        daemon.store.close()
        assert slack.requests == []
    assert answer.status_code == 200
    assert verdicts == [(alert.id, "not-relevant")]


# --- Slack: the 'Acknowledge' button ------------------------------------------------------------


def ack_button(alert: AlertRow) -> dict[str, Any]:
    """A click on 'Acknowledge' as Slack reports it (value: the alert id)."""
    return {
        "type": "button",
        "action_id": "acknowledge",
        "block_id": "actions",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": str(alert.id),
        "style": "primary",
        "action_ts": "1764000000.000003",
    }


def all_text(blocks: list[dict[str, Any]] | None) -> str:
    """Every text in a message's blocks, one per line."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                found.append(item["text"])
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(blocks)
    return "\n".join(found)


def test_acknowledge_is_stored_and_the_clicked_message_is_updated(running: Running) -> None:
    alert = running.alerts["t:leusden"]
    assert alert.id is not None
    message = running.messages["t:leusden"]

    answer = running.click("t:leusden", ack_button(alert))

    assert answer.status_code == 200
    ack = running.daemon.store.ack_of(alert.id)
    assert ack is not None
    assert (ack.alert_id, ack.by, ack.via) == (alert.id, USER, "slack")
    [update] = running.slack.wait_for_updates(1)
    assert (update.channel, update.ts, update.token) == ("C0TEST", message.ts, TOKEN)
    shown = all_text(update.blocks)
    assert "De bieb in Leusden is alweer dicht" in shown  # the alert, as it was
    assert f"Acknowledged by <@{USER}>" in shown
    assert update.text == message.text
    assert running.verdicts() == {}  # an acknowledgement is no feedback


def test_a_second_acknowledgement_keeps_the_first_one(running: Running) -> None:
    alert = running.alerts["t:leusden"]
    assert alert.id is not None
    running.click("t:leusden", ack_button(alert))
    running.slack.wait_for_updates(1)

    assert running.click("t:leusden", ack_button(alert), user="U0LATER").status_code == 200

    ack = running.daemon.store.ack_of(alert.id)
    assert ack is not None and (ack.by, ack.via) == (USER, "slack")
    _, again = running.slack.wait_for_updates(2)
    assert f"Acknowledged by <@{USER}>" in all_text(again.blocks)
    assert "U0LATER" not in all_text(again.blocks)


def test_acknowledging_an_alert_this_database_lacks_gets_a_note_to_the_clicker(
    running: Running,
) -> None:
    action = ack_button(running.alerts["t:leusden"]) | {"value": "999"}

    answer = running.click("t:leusden", action)

    assert answer.status_code == 200
    [note] = running.slack.wait_for_ephemerals(1)
    assert (note.channel, note.user) == ("C0TEST", USER)
    assert note.text == "listener could not record that: there is no alert 999."
    assert running.slack.updates == []
    assert all(running.daemon.store.ack_of(a.id or 0) is None for a in running.alerts.values())


def test_feedback_after_an_acknowledgement_keeps_the_acknowledgement_on_the_message(
    running: Running,
) -> None:
    alert = running.alerts["t:leusden"]
    running.click("t:leusden", ack_button(alert))
    running.slack.wait_for_updates(1)

    running.click("t:leusden", pressed(running.messages["t:leusden"], "feedback_not_relevant"))

    _, update = running.slack.wait_for_updates(2)
    shown = all_text(update.blocks)
    assert f"Marked not relevant by <@{USER}>" in shown
    assert f"Acknowledged by <@{USER}>" in shown
    assert running.verdicts() == {"t:leusden": ("not-relevant", None, USER, "slack")}


def test_an_acknowledge_button_without_an_alert_id_gets_400(running: Running) -> None:
    action = ack_button(running.alerts["t:leusden"]) | {"value": "twelve"}

    answer = running.click("t:leusden", action)

    assert answer.status_code == 400
    assert all(running.daemon.store.ack_of(a.id or 0) is None for a in running.alerts.values())


# --- record(): the checks both ways in share --------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Daemon, dict[str, AlertRow]]]:
    config = write_setup(tmp_path)
    write_posts(tmp_path)
    daemon = Daemon.from_config(load_config(config), env={})
    daemon.run_once()
    try:
        yield daemon, alerts_by_post(daemon.store)
    finally:
        daemon.store.close()


def test_the_newest_feedback_on_an_alert_counts(stored: tuple[Daemon, dict[str, AlertRow]]) -> None:
    daemon, alerts = stored
    orgs = daemon.config.organisations
    alert = alerts["t:leusden"]
    assert alert.id is not None

    record(daemon.store, orgs, alert.id, "not-relevant", by="anna")
    record(daemon.store, orgs, alert.id, "wrong-branch", branch="amersfoort", by="ben")

    [row] = daemon.store.feedback()
    assert (row.alert_id, row.post_id, row.org, row.search) == (
        alert.id,
        "t:leusden",
        "eemland",
        alert.search,
    )
    assert (row.verdict, row.branch, row.by, row.via) == (
        "wrong-branch",
        "amersfoort",
        "ben",
        "cli",
    )


@pytest.mark.parametrize(
    ("post", "verdict", "branch", "message"),
    [
        (
            "t:leusden",
            "wrong-branch",
            "utrecht",
            "'utrecht' is not a branch of eemland: choose from amersfoort, leusden",
        ),
        (
            "t:leusden",
            "wrong-branch",
            "leusden",
            "already says branch leusden: if that is right, it is relevant",
        ),
        (
            "t:nobranch",
            "wrong-branch",
            None,
            "names no branch already: say which branch it is about",
        ),
        (
            "t:leusden",
            "not-relevant",
            "amersfoort",
            "a branch only goes with wrong-branch, not with not-relevant",
        ),
        (
            "t:leusden",
            "maybe",
            None,
            "the verdict is one of relevant, not-relevant, wrong-branch, not 'maybe'",
        ),
    ],
)
def test_feedback_that_makes_no_sense_is_refused_saying_why(
    stored: tuple[Daemon, dict[str, AlertRow]],
    post: str,
    verdict: str,
    branch: str | None,
    message: str,
) -> None:
    daemon, alerts = stored
    alert_id = alerts[post].id
    assert alert_id is not None

    with pytest.raises(FeedbackError) as caught:
        record(daemon.store, daemon.config.organisations, alert_id, verdict, branch=branch)

    assert message in str(caught.value)
    assert daemon.store.feedback() == []


def test_an_unknown_alert_and_an_alert_about_listener_itself_take_no_feedback(
    stored: tuple[Daemon, dict[str, AlertRow]],
) -> None:
    daemon, _ = stored
    orgs = daemon.config.organisations
    with pytest.raises(UnknownAlert, match="there is no alert 999"):
        record(daemon.store, orgs, 999, "not-relevant")
    with pytest.raises(UnknownAlert, match="there is no alert 99999999999999999999"):
        record(daemon.store, orgs, 99_999_999_999_999_999_999, "not-relevant")

    now = datetime.now(UTC)
    SourceHealth(daemon.store).alert(Trouble("rss:x", now, "rss:x has failed"), ["console"], now)
    [health] = [a for a in daemon.store.alerts_since(EPOCH) if a.org == "listener"]
    assert health.id is not None
    with pytest.raises(FeedbackError, match="about listener itself"):
        record(daemon.store, orgs, health.id, "not-relevant")
    assert daemon.store.feedback() == []


# --- listener feedback -------------------------------------------------------------------------


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def test_listener_feedback_records_each_verdict(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    write_posts(tmp_path)
    daemon = Daemon.from_config(load_config(config), env={})
    daemon.run_once()
    alerts = alerts_by_post(daemon.store)
    daemon.store.close()
    leusden, eemhuis, nobranch = (alerts[p].id for p, _ in POSTS)

    code, output = cli(config, "feedback", str(leusden), "not-relevant", "--by", "anna")
    assert code == 0, output
    assert f"alert {leusden} (eemland / leusden, search de-bieb): marked not-relevant" in output
    code, output = cli(config, "feedback", str(eemhuis), "wrong-branch")
    assert code == 0, output
    assert "marked wrong-branch: it is about the organisation, no particular branch" in output
    code, output = cli(config, "feedback", str(nobranch), "wrong-branch", "--branch", "leusden")
    assert code == 0, output
    assert "(eemland, search eemland-brand): marked wrong-branch: it is about leusden" in output

    store = Store(load_config(config).database_url)
    try:
        rows = {f.post_id: (f.verdict, f.branch, f.by, f.via) for f in store.feedback()}
    finally:
        store.close()
    assert rows["t:leusden"] == ("not-relevant", None, "anna", "cli")
    assert rows["t:eemhuis"][:2] == ("wrong-branch", None)
    assert rows["t:eemhuis"][2]  # the local user name by default
    assert rows["t:nobranch"][:2] == ("wrong-branch", "leusden")


def test_listener_feedback_says_what_is_wrong_and_exits_1(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    write_posts(tmp_path)
    daemon = Daemon.from_config(load_config(config), env={})
    daemon.run_once()
    leusden = alerts_by_post(daemon.store)["t:leusden"].id
    daemon.store.close()

    code, output = cli(config, "feedback", "999", "not-relevant")
    assert code == 1
    assert "there is no alert 999 in sqlite:///" in output
    code, output = cli(config, "feedback", str(leusden), "wrong-branch", "--branch", "utrecht")
    assert code == 1
    assert "'utrecht' is not a branch of eemland: choose from amersfoort, leusden" in output
    code, output = cli(config, "feedback", str(leusden), "relevant", "--branch", "amersfoort")
    assert code == 1
    assert "a branch only goes with wrong-branch" in output
    code, output = cli(config, "feedback", str(leusden), "meh")
    assert code == 2
    assert "'meh' is not one of" in output
    assert "Traceback" not in output
