"""Socket Mode end to end: slack_sdk's own SocketModeClient against a local Socket Mode stand-in.

The daemon posts real alerts to the Slack-wire server (through the stand-in, which serves
apps.connections.open and passes every other Web API call on, so one `[slack] base_url` does for
both); then envelopes shaped like Slack's — ✅ reactions, button clicks, things listener does not
handle — go over the websocket, and the test watches the envelopes being acknowledged, the
store, and the `chat.update`s that reach the Slack-wire server.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from listener.config import load_config
from listener.daemon import Daemon
from listener.slack_socket import SlackSocket, slack_socket
from tests.support.configs import write_setup
from tests.support.slacksocket import SlackSocketServer
from tests.support.slackwire import SlackWireMessage, SlackWireServer
from tests.support.threads import RECEIVERS, feed, post

APP_TOKEN = "xapp-1-A0TEST-1234567890-socketmodeapptoken0abcdef"
TOKEN = "xoxb-2222-3333-sockettoken-wxyz"
ENV = {"SOCKET_APP_TOKEN": APP_TOKEN, "SOCKET_BOT_TOKEN": TOKEN}
USER = "U0REACT"
COMPLAINT = "de bieb in Leusden is wéér dicht 😡 stond voor niks voor de deur"
OTHER = "Het Eemhuis in Amersfoort: de bibliotheek heeft vandaag geen wifi"
REPLY = "@marieke in Leusden? ik stond er ook, bieb dicht"


def write_config(folder: Path, base_url: str) -> Path:
    main = f"""
[slack]
token_env = "SOCKET_BOT_TOKEN"
app_token_env = "SOCKET_APP_TOKEN"
base_url = "{base_url}"
timeout = "5s"
"""
    return write_setup(
        folder, extra_main=main, extra_receivers=RECEIVERS, route_receivers='"slack", "console"'
    )


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.02)


def all_text(blocks: list[dict[str, Any]] | None) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def reaction(message: SlackWireMessage, name: str = "white_check_mark", user: str = USER) -> Any:
    """An events_api payload for a reaction_added event on `message`, as Slack sends it."""
    return {
        "token": "verification-token-not-used",
        "team_id": "T0TEST",
        "api_app_id": "A0TEST",
        "event": {
            "type": "reaction_added",
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": "C0TEST", "ts": message.ts},
            "item_user": "U0BOT",
            "event_ts": "1764000000.000100",
        },
        "type": "event_callback",
        "event_id": "Ev0TEST",
        "event_time": 1764000000,
    }


def click(message: SlackWireMessage, action_id: str, value: str, user: str = USER) -> Any:
    """An interactive block_actions payload for a button on `message`."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "anna", "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "verification-token-not-used",
        "container": {"type": "message", "message_ts": message.ts, "channel_id": "C0TEST"},
        "channel": {"id": "C0TEST", "name": "webcare"},
        "message": {"type": "message", "ts": message.ts, "text": message.text},
        "actions": [{"type": "button", "action_id": action_id, "value": value}],
    }


@dataclass
class Setup:
    daemon: Daemon
    slack: SlackWireServer
    socket_mode: SlackSocketServer
    socket: SlackSocket
    messages: list[SlackWireMessage]  # the alerts' messages, in the order they were posted
    updates_before: int  # chat.updates the daemon made itself (the parent's follow-up count)

    def updates(self, count: int) -> list[SlackWireMessage]:
        """Wait for `count` chat.updates after the daemon's own, and return those."""
        return self.slack.wait_for_updates(self.updates_before + count)[self.updates_before :]

    def alert_id(self, message: SlackWireMessage) -> int:
        assert message.metadata is not None
        return int(message.metadata["event_payload"]["alert_id"])

    def push_and_wait(self, type: str, payload: Any) -> str:
        """Push an envelope and wait until the client acknowledged it."""
        before = len(self.socket_mode.acks)
        envelope_id = self.socket_mode.push(type, payload)
        acks = self.socket_mode.wait_for_acks(before + 1)
        assert acks[before] == {"envelope_id": envelope_id}
        return envelope_id


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with (
        SlackWireServer(require_token=TOKEN) as slack,
        SlackSocketServer(app_token=APP_TOKEN, forward_to=slack.base_url) as socket_mode,
    ):
        config = load_config(write_config(tmp_path, socket_mode.base_url))
        console = Console(file=io.StringIO(), width=100)
        daemon = Daemon.from_config(config, env=ENV, console=console)
        feed(
            daemon,
            [post("bluesky:p1", COMPLAINT)],
            [post("bluesky:p2", REPLY, 10, reply_to="bluesky:p1", handle="joost")],
            [post("bluesky:p3", OTHER, 20, handle="anna")],
        )
        messages = slack.wait_for(3)
        assert messages[1].thread_ts == messages[0].ts  # p2 is a follow-up in p1's thread
        socket = slack_socket(config, daemon.store, ENV, ping_interval=0.5)
        assert socket is not None
        socket.start()
        try:
            socket_mode.wait_connected()
            yield Setup(daemon, slack, socket_mode, socket, messages, len(slack.updates))
        finally:
            socket.close()
            daemon.store.close()


def test_a_check_mark_acknowledges_the_alert_and_updates_its_message(setup: Setup) -> None:
    parent = setup.messages[0]
    alert_id = setup.alert_id(parent)

    setup.push_and_wait("events_api", reaction(parent))

    [update] = setup.updates(1)
    ack = setup.daemon.store.ack_of(alert_id)
    assert ack is not None and (ack.alert_id, ack.by, ack.via) == (alert_id, USER, "slack")
    assert (update.channel, update.ts, update.token) == ("C0TEST", parent.ts, TOKEN)
    assert COMPLAINT in all_text(update.blocks)  # the alert, as it was
    assert f"Acknowledged by <@{USER}>" in all_text(update.blocks)


def test_a_check_mark_on_a_follow_up_acknowledges_the_conversation_at_its_root(
    setup: Setup,
) -> None:
    parent, reply, _ = setup.messages
    root = setup.alert_id(parent)

    setup.push_and_wait("events_api", reaction(reply, "heavy_check_mark"))

    [update] = setup.updates(1)
    assert update.ts == parent.ts  # the root's message, in the channel
    ack = setup.daemon.store.ack_of(setup.alert_id(reply))
    assert ack is not None and (ack.alert_id, ack.by) == (root, USER)
    assert f"Acknowledged by <@{USER}>" in all_text(update.blocks)


def test_other_reactions_and_messages_change_nothing_but_are_acknowledged(
    setup: Setup,
) -> None:
    parent, _, other = setup.messages
    elsewhere = SlackWireMessage("C0TEST", "", None, None, None, "1700000000.000001", {})
    file_check = reaction(parent)
    file_check["event"]["item"] = {"type": "file", "file": "F0TEST"}

    setup.push_and_wait("events_api", reaction(parent, "thumbsup"))
    setup.push_and_wait("events_api", reaction(parent, "+1"))
    setup.push_and_wait("events_api", file_check)
    setup.push_and_wait("events_api", reaction(elsewhere))  # not one of our alerts
    setup.push_and_wait("events_api", reaction(other, "ballot_box_with_check"))  # the barrier

    [update] = setup.updates(1)
    assert update.ts == other.ts
    assert setup.daemon.store.ack_of(setup.alert_id(parent)) is None
    assert setup.daemon.store.ack_of(setup.alert_id(other)) is not None


def test_buttons_work_over_the_socket_as_over_http(setup: Setup) -> None:
    parent, _, other = setup.messages
    alert_id = setup.alert_id(parent)

    setup.push_and_wait("interactive", click(parent, "acknowledge", str(alert_id)))
    [update] = setup.updates(1)
    setup.push_and_wait(
        "interactive", click(other, "feedback_not_relevant", str(setup.alert_id(other)))
    )
    _, judged = setup.updates(2)

    ack = setup.daemon.store.ack_of(alert_id)
    assert ack is not None and (ack.by, ack.via) == (USER, "slack")
    assert update.ts == parent.ts and f"Acknowledged by <@{USER}>" in all_text(update.blocks)
    assert judged.ts == other.ts and f"Marked not relevant by <@{USER}>" in all_text(judged.blocks)
    [row] = setup.daemon.store.feedback()
    assert (row.alert_id, row.verdict, row.by, row.via) == (
        setup.alert_id(other),
        "not-relevant",
        USER,
        "slack",
    )


def test_an_acknowledge_click_on_an_unknown_alert_gets_a_note_to_the_clicker(
    setup: Setup,
) -> None:
    setup.push_and_wait("interactive", click(setup.messages[0], "acknowledge", "999"))

    [note] = setup.slack.wait_for_ephemerals(1)
    assert (note.user, note.text) == (
        USER,
        "listener could not record that: there is no alert 999.",
    )
    assert len(setup.slack.updates) == setup.updates_before


def test_the_client_reconnects_after_the_connection_drops(setup: Setup) -> None:
    assert (setup.socket_mode.opens, setup.socket_mode.connections) == (1, 1)

    setup.socket_mode.disconnect()
    setup.socket_mode.wait_connected(timeout=10, connections=2)

    assert setup.socket_mode.opens == 2  # a new URL from apps.connections.open
    setup.push_and_wait("events_api", reaction(setup.messages[0]))
    setup.updates(1)
    assert setup.daemon.store.ack_of(setup.alert_id(setup.messages[0])) is not None


def test_unknown_and_malformed_envelopes_are_acknowledged_and_logged_by_type_only(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "zeer geheime tekst uit een slash command"

    setup.push_and_wait("slash_commands", {"command": "/listener", "text": secret_text})
    setup.push_and_wait("events_api", {"event": {"type": "message", "text": secret_text}})
    setup.push_and_wait("events_api", {"event": secret_text})
    setup.push_and_wait("interactive", {"type": "block_actions", "user": {"id": secret_text}})
    setup.push_and_wait("interactive", {"type": "view_submission", "view": {"x": secret_text}})
    setup.push_and_wait("events_api", [secret_text])  # not even an object
    setup.socket_mode.send_raw(json.dumps({"type": secret_text}))  # no envelope id: no ack
    setup.push_and_wait("events_api", reaction(setup.messages[0]))  # the barrier
    setup.updates(1)

    assert len(setup.socket_mode.acks) == 7
    assert "ignored a slash_commands envelope" in caplog.text
    assert "ignored a message event" in caplog.text
    assert "refused: the payload has no user id" in caplog.text
    assert secret_text not in caplog.text


def test_no_token_and_no_payload_reaches_the_logs(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    parent = setup.messages[0]

    setup.push_and_wait("interactive", click(parent, "feedback_not_relevant", "999"))
    setup.push_and_wait("events_api", reaction(parent))
    setup.updates(1)
    setup.socket_mode.disconnect()
    setup.socket_mode.wait_connected(timeout=10, connections=2)
    setup.push_and_wait("interactive", click(parent, "acknowledge", str(setup.alert_id(parent))))
    setup.updates(2)

    for secret in (APP_TOKEN, TOKEN):
        assert secret not in caplog.text
    assert APP_TOKEN not in repr(setup.socket)
    ours = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("slack_sdk.web")
    )  # slack_sdk's Web API client logs what it sends at DEBUG; the socket side does not
    for quoted in ("verification-token-not-used", "wéér dicht", "Ev0TEST"):
        assert quoted not in ours
    assert f"acknowledged by {USER}" in ours  # it did log what happened


# --- without the socket: the factory ------------------------------------------------------------


def test_without_an_app_token_or_slack_section_there_is_no_socket(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9/api/"))
    daemon = Daemon.from_config(config, env={"SOCKET_BOT_TOKEN": TOKEN})
    try:
        assert slack_socket(config, daemon.store, {"SOCKET_BOT_TOKEN": TOKEN}) is None
        assert "set SOCKET_APP_TOKEN" in caplog.text
        bare = load_config(write_setup(tmp_path / "bare"))
        assert slack_socket(bare, daemon.store, ENV) is None
        assert "no [slack] section" in caplog.text
    finally:
        daemon.store.close()


def test_without_the_bot_token_acknowledgements_are_recorded_without_updates(
    tmp_path: Path,
) -> None:
    with (
        SlackWireServer(require_token=TOKEN) as slack,
        SlackSocketServer(app_token=APP_TOKEN, forward_to=slack.base_url) as socket_mode,
    ):
        config = load_config(write_config(tmp_path, socket_mode.base_url))
        daemon = Daemon.from_config(config, env=ENV, console=Console(file=io.StringIO()))
        feed(daemon, [post("bluesky:p1", COMPLAINT)])
        [message] = slack.wait_for(1)
        socket = slack_socket(config, daemon.store, {"SOCKET_APP_TOKEN": APP_TOKEN})
        assert socket is not None
        socket.start()
        try:
            socket_mode.wait_connected()
            socket_mode.push("events_api", reaction(message))
            socket_mode.wait_for_acks(1)
            alert_id = int((message.metadata or {})["event_payload"]["alert_id"])
            eventually(lambda: daemon.store.ack_of(alert_id) is not None)
        finally:
            socket.close()
            daemon.store.close()
        assert "chat.update" not in [method for method, _, _ in slack.requests]


def test_a_refused_app_token_is_retried_quietly_and_close_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with SlackSocketServer(app_token="xapp-the-right-one-0000000000") as socket_mode:
        config = load_config(write_config(tmp_path, socket_mode.base_url))
        daemon = Daemon.from_config(config, env=ENV, console=Console(file=io.StringIO()))
        socket = slack_socket(config, daemon.store, ENV)
        assert socket is not None
        socket.start()
        eventually(lambda: "cannot connect (invalid_auth)" in caplog.text)
        started = time.monotonic()
        socket.close()
        daemon.store.close()
    assert time.monotonic() - started < 5
    assert socket_mode.connections == 0
    assert APP_TOKEN not in caplog.text
