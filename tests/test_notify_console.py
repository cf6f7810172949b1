"""ConsoleNotifier: one rich Panel per alert, with untrusted text printed literally."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from listener.alert import AlertMessage
from listener.config.model import MainFile, Receiver
from listener.notify import build_notifier
from listener.notify.console import ConsoleNotifier
from tests.support.alerts import TEXT
from tests.support.alerts import make_alert as support_alert


def make_alert(text: str = TEXT, **author: object) -> AlertMessage:
    reasons = ["closure complaint", "author has 1,234 followers"]
    return support_alert(text, alert_id=7, reasons=reasons, **author)


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
