"""ConsoleNotifier: one rich Panel per alert or digest, with untrusted text printed literally."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from listener.alert import AlertMessage, Digest, FollowUp
from listener.config.model import MainFile, Receiver
from listener.notify import build_notifier
from listener.notify.console import ConsoleNotifier
from tests.support.alerts import TEXT
from tests.support.alerts import make_alert as support_alert


def make_alert(text: str = TEXT, **author: object) -> AlertMessage:
    reasons = ["closure complaint", "author has 1,234 followers"]
    return support_alert(text, alert_id=7, reasons=reasons, **author)


def console_and_buffer(width: int = 120) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, color_system=None, legacy_windows=False), buffer


def test_it_prints_one_panel_with_every_fact_of_the_alert() -> None:
    console, buffer = console_and_buffer()

    assert ConsoleNotifier(console).send(make_alert()) is None

    out = buffer.getvalue()
    for fact in [
        "CRITICAL · Bibliotheek Eemland / Vathorst",
        "De bieb in Vathorst is alweer dicht?!",
        "Jan Jansen (@jan)",
        "1,234 followers",
        "Amersfoort",
        "https://social.example/@jan/1",
        "Why it matched:",
        "  • 'de bieb' + 'Vathorst' (3.1 km)",
        "Urgency:",
        "  • closure complaint",
        "  • author has 1,234 followers",
        "mastodon · 2024-05-01 14:03 CEST",  # shown in Europe/Amsterdam
    ]:
        assert fact in out
    assert out.count("╭") == 1


@pytest.mark.parametrize(
    "hostile",
    ["[bold red]shouting[/bold red]", "[link=https://evil.example]click[/link]", ":fire: [/]"],
)
def test_markup_in_post_text_and_author_prints_literally(hostile: str) -> None:
    console, buffer = console_and_buffer()

    ConsoleNotifier(console).send(make_alert(text=hostile, name=hostile, location=hostile))

    assert buffer.getvalue().count(hostile) == 3


def test_build_notifier_gives_a_console_notifier_with_the_configured_time_zone() -> None:
    console, _ = console_and_buffer()
    receiver = Receiver(id="screen", type="console")

    notifier = build_notifier(
        receiver, MainFile(timezone="UTC"), Path("alerts/templates"), env={}, console=console
    )

    assert isinstance(notifier, ConsoleNotifier)
    assert notifier.console is console
    assert notifier.zone.key == "UTC"


def test_an_unknown_receiver_type_is_a_value_error() -> None:
    receiver = Receiver.model_construct(id="pager", type="pager", channel=None, to=[])

    with pytest.raises(ValueError, match="unknown type 'pager'"):
        build_notifier(receiver, MainFile(), Path("alerts/templates"), env={})


def test_a_handle_that_already_starts_with_at_is_shown_with_one() -> None:
    console, buffer = console_and_buffer()
    ConsoleNotifier(console).send(make_alert(handle="@joost@mastodon.nl"))
    assert "(@joost@mastodon.nl)" in buffer.getvalue()
    assert "@@" not in buffer.getvalue()


def test_an_escalation_is_not_indented_and_says_escalated() -> None:
    console, buffer = console_and_buffer()
    alert = replace(make_alert(), follow_up=FollowUp(parent_alert_id=12, kind="escalation"))

    ConsoleNotifier(console).send(alert)

    lines = buffer.getvalue().splitlines()
    assert lines[0].rstrip() == "ESCALATED: not acknowledged in time: escalation of alert #12"
    assert lines[1].startswith("╭─ ESCALATED · 🔴 CRITICAL · Bibliotheek Eemland / Vathorst")


def test_a_reply_is_indented_under_its_line() -> None:
    console, buffer = console_and_buffer()
    alert = replace(make_alert(), follow_up=FollowUp(parent_alert_id=12, kind="reply"))

    ConsoleNotifier(console).send(alert)

    lines = buffer.getvalue().splitlines()
    assert lines[0].rstrip() == "    ↳ reply to alert #12"
    assert lines[1].startswith("    ╭─ 🔴 CRITICAL")
    assert "ESCALATED" not in buffer.getvalue()


def make_digest(*alerts: AlertMessage, reason: str = "digest") -> Digest:
    return Digest(
        digest_id=3,
        receiver="screen",
        route="routes.toml#1",
        reason=reason,
        opened_at="2024-05-01T12:05:00Z",
        due_at="2024-05-01T21:00:00Z",
        alerts=list(alerts),
    )


def test_a_digest_prints_its_title_and_one_line_per_alert() -> None:
    console, buffer = console_and_buffer(width=1000)  # wide: each alert's line stays one line
    second = replace(
        make_alert("tweede\nregel " + "x" * 400, name="Piet"),
        alert_id=8,
        level="high",
        branch_name=None,
        reasons=["reach"],
    )

    assert ConsoleNotifier(console).send_digest(make_digest(make_alert(), second)) is None

    out = buffer.getvalue()
    assert out.count("╭") == 1
    assert "Digest: 2 alerts (1 critical, 1 high)" in out.splitlines()[0]
    lines = [line for line in out.splitlines() if "CEST ·" in line]
    assert len(lines) == 2
    first = "2024-05-01 14:03 CEST · CRITICAL · Bibliotheek Eemland / Vathorst · Jan Jansen"
    assert first in lines[0]
    for fact in [
        "(@jan)",
        "De bieb in Vathorst is alweer dicht?!",
        "https://social.example/@jan/1",
        "closure complaint; author has 1,234 followers",
        "alert #7",
    ]:
        assert fact in lines[0], fact
    assert "HIGH · Bibliotheek Eemland · Piet (@jan) · tweede regel xxx" in lines[1]
    clipped = "tweede regel " + "x" * (299 - 13) + "…"  # one line, 300 characters
    assert clipped in lines[1] and "x" * 287 not in out


def test_an_empty_digest_still_prints_its_title() -> None:
    console, buffer = console_and_buffer()
    ConsoleNotifier(console).send_digest(make_digest(reason="quiet"))
    assert "Held during quiet hours: 0 alerts" in buffer.getvalue()
