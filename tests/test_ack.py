"""`listener ack`: acknowledge an alert's conversation from the command line.

A real daemon posts a parent alert and a follow-up in its thread to the Slack-wire server, on a
SQLite file; then the command runs through typer's CliRunner against the same configuration,
with and without the bot token in the environment.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.cli import app
from listener.config import load_config
from listener.daemon import Daemon
from listener.store import Store
from tests.support.slackwire import SlackWireMessage, SlackWireServer
from tests.support.threads import TOKEN, feed, make_daemon, post

runner = CliRunner()
COMPLAINT = "de bieb in Leusden is wéér dicht 😡 stond voor niks voor de deur"
REPLY = "@marieke in Leusden? ik stond er ook, bieb dicht"


@dataclass
class Delivered:
    config: Path
    slack: SlackWireServer
    parent: SlackWireMessage
    reply: SlackWireMessage
    parent_id: int
    reply_id: int
    updates_before: int  # chat.updates the daemon made itself

    def ack(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        result = runner.invoke(
            app, ["ack", *args, "--config", str(self.config)], env=env or {}, catch_exceptions=False
        )
        return result.exit_code, result.output

    def new_updates(self) -> list[SlackWireMessage]:
        return self.slack.updates[self.updates_before :]

    def ack_row(self, alert_id: int) -> tuple[int, str | None, str] | None:
        store = Store(load_config(self.config).database_url)
        try:
            row = store.ack_of(alert_id)
        finally:
            store.close()
        return None if row is None else (row.alert_id, row.by, row.via)


@pytest.fixture
def delivered(tmp_path: Path) -> Iterator[Delivered]:
    with SlackWireServer(require_token=TOKEN) as slack:
        daemon: Daemon = make_daemon(tmp_path, slack, console=io.StringIO())
        feed(
            daemon,
            [post("bluesky:p1", COMPLAINT)],
            [post("bluesky:p2", REPLY, 10, reply_to="bluesky:p1", handle="joost")],
        )
        parent, reply = slack.wait_for(2)
        assert reply.thread_ts == parent.ts
        ids = [int((m.metadata or {})["event_payload"]["alert_id"]) for m in (parent, reply)]
        daemon.store.close()
        yield Delivered(
            daemon.config.path, slack, parent, reply, ids[0], ids[1], len(slack.updates)
        )


def test_ack_of_a_follow_up_acknowledges_its_conversation(delivered: Delivered) -> None:
    code, output = delivered.ack(str(delivered.reply_id), "--by", "anna")

    assert code == 0, output
    assert output.strip() == (
        f"alert {delivered.reply_id} acknowledged (conversation of alert "
        f"{delivered.parent_id}) by anna"
    )
    assert delivered.ack_row(delivered.reply_id) == (delivered.parent_id, "anna", "cli")
    assert delivered.ack_row(delivered.parent_id) == (delivered.parent_id, "anna", "cli")
    assert delivered.new_updates() == []  # no bot token in the environment: Slack untouched


def test_a_second_ack_says_who_was_first_and_keeps_them(delivered: Delivered) -> None:
    delivered.ack(str(delivered.parent_id), "--by", "anna")

    code, output = delivered.ack(str(delivered.reply_id), "--by", "ben")

    assert code == 0, output
    assert output.startswith(
        f"alert {delivered.reply_id} (conversation of alert {delivered.parent_id}) was already "
        "acknowledged by anna via cli at 20"
    )
    assert output.rstrip().endswith(("CET", "CEST", "UTC"))  # the config's timezone
    assert delivered.ack_row(delivered.parent_id) == (delivered.parent_id, "anna", "cli")


def test_ack_without_by_records_the_login_name(delivered: Delivered) -> None:
    code, output = delivered.ack(
        str(delivered.parent_id), env={"LOGNAME": "webcare-anna", "USER": "webcare-anna"}
    )

    assert code == 0, output
    assert output.strip() == f"alert {delivered.parent_id} acknowledged by webcare-anna"
    assert delivered.ack_row(delivered.parent_id) == (delivered.parent_id, "webcare-anna", "cli")


@pytest.mark.parametrize("alert_id", ["999", "0", "99999999999999999999"])
def test_ack_of_an_unknown_alert_says_so_and_exits_1(delivered: Delivered, alert_id: str) -> None:
    code, output = delivered.ack(alert_id)

    assert code == 1
    assert f"there is no alert {alert_id} in sqlite:///" in output
    assert "Traceback" not in output
    assert delivered.ack_row(delivered.parent_id) is None


def test_with_the_bot_token_the_root_message_in_slack_shows_the_ack(delivered: Delivered) -> None:
    code, output = delivered.ack(
        str(delivered.reply_id), "--by", "anna", env={"THREADS_SLACK_TOKEN": TOKEN}
    )

    assert code == 0, output
    assert "updated the Slack message in slack" in output
    [update] = delivered.new_updates()
    assert (update.channel, update.ts, update.token) == ("C0TEST", delivered.parent.ts, TOKEN)
    shown = json.dumps(update.blocks, ensure_ascii=False)
    assert COMPLAINT in shown
    assert "Acknowledged by anna" in shown  # a login name: no mention
    assert TOKEN not in output


def test_a_failed_slack_update_is_a_warning_and_the_ack_is_kept(delivered: Delivered) -> None:
    delivered.slack.error_next(1, "cant_update_message", method="chat.update")

    code, output = delivered.ack(
        str(delivered.parent_id), "--by", "anna", env={"THREADS_SLACK_TOKEN": TOKEN}
    )

    assert code == 0, output
    assert "warning: could not update the Slack message in slack: cant_update_message" in output
    assert delivered.ack_row(delivered.parent_id) == (delivered.parent_id, "anna", "cli")
    assert TOKEN not in output


def test_ack_is_documented_in_the_help() -> None:
    result = runner.invoke(app, ["ack", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert "Acknowledge an alert" in result.output
    assert "--by" in result.output
