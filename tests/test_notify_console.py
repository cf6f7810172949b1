"""ConsoleNotifier: one rich Panel per alert, with untrusted text printed literally."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from listener.alert import AlertMessage
from listener.config.model import MainFile, Receiver
from listener.notify import build_notifier
from listener.notify.console import ConsoleNotifier
from listener.post import Author, Post


def make_alert(
    text: str = "De bieb in Vathorst is alweer dicht?!", **author: object
) -> AlertMessage:
    post = Post(
        id="p1",
        source="mastodon",
        text=text,
        created_at=datetime(2024, 5, 1, 12, 3, tzinfo=UTC),
        url="https://social.example/@jan/1",
        author=Author(
            **{"handle": "jan", "name": "Jan Jansen", "location": "Amersfoort", "followers": 1234}
            | author
        ),
    )
    return AlertMessage(
        alert_id=7,
        post=post,
        org_id="eemland",
        org_name="Bibliotheek Eemland",
        branch_id="vathorst",
        branch_name="Vathorst",
        search_id="eemland-brand",
        level="critical",
        score=0.91,
        reasons=["closure complaint", "author has 1,234 followers"],
        evidence=["'de bieb' + 'Vathorst' (3.1 km)"],
    )


def console_and_buffer() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None, legacy_windows=False), buffer


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
