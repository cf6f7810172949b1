"""Console notifier: one rich Panel per alert, for `listener run --dry-run` and local testing.

Everything that came from a post is wrapped in `rich.text.Text`, never interpolated into a markup
string, so a post saying "[bold red]" prints exactly that.

A follow-up is printed indented under a '↳ reply to alert #12' line; an incident lists its posts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from listener.alert import AlertMessage
from listener.config.model import MainFile, Receiver
from listener.notify import follow_up_line, headline

LEVEL_STYLES: dict[str, str] = {
    "critical": "bold red",
    "high": "dark_orange",
    "normal": "yellow",
    "low": "blue",
}


class ConsoleNotifier:
    """Prints alerts to a rich Console (stdout unless one is given)."""

    def __init__(self, console: Console | None = None, timezone: str = "Europe/Amsterdam") -> None:
        self.console = console or Console()
        self.zone = ZoneInfo(timezone)

    @classmethod
    def from_receiver(
        cls,
        receiver: Receiver,
        main: MainFile,
        *,
        templates_dir: Path,
        env: Mapping[str, str],
        console: Console | None = None,
    ) -> ConsoleNotifier:
        return cls(console=console, timezone=main.timezone)

    def __repr__(self) -> str:
        return f"ConsoleNotifier(timezone={self.zone.key!r})"

    def send(self, alert: AlertMessage) -> str | None:
        self.console.print(self.render_any(alert))
        return None

    def render_any(self, alert: AlertMessage) -> RenderableType:
        """The panel; a follow-up's indented under the line saying what it follows."""
        if alert.follow_up is None:
            return self.render(alert)
        line = Text(follow_up_line(alert), style="dim")
        if alert.follow_up.parent_text:
            line.append(f" “{alert.follow_up.parent_text}”", style="dim italic")
        return Padding(Group(line, self.render(alert)), (0, 0, 0, 4))

    def render(self, alert: AlertMessage) -> Panel:
        post = alert.post
        style = LEVEL_STYLES.get(alert.level, "bold")
        parts: list[Text] = []

        author = post.author
        if author is not None:
            who = Text()
            who.append(author.name or author.handle or "unknown author", style="bold")
            if author.handle and author.name:
                who.append(f" (@{author.handle.lstrip('@')})", style="cyan")
            if author.followers is not None:
                who.append(f" · {author.followers:,} followers")
            if author.location:
                who.append(f" · 📍 {author.location}", style="dim")
            parts.append(who)

        if alert.incident is not None:
            incident = alert.incident
            listing = Text(f"{incident.summary}:", style="bold")
            for m in incident.members:
                which = f" · alert #{m.alert_id}" if m.alert_id else ""
                listing.append(f"\n  • {m.created_at} · {m.post_id}{which}", style="")
                listing.append(f"\n    {m.text or '(no text)'}", style="")
                if m.url:
                    listing.append(f"\n    {m.url}", style="cyan")
            parts.append(listing)
        parts.append(Text(post.text or "(no text)"))
        if post.url:
            parts.append(Text(post.url, style="underline cyan"))
        if alert.evidence:
            parts.append(_labelled("Why it matched:", alert.evidence))
        if alert.reasons:
            parts.append(_labelled("Urgency:", alert.reasons))

        when = post.created_at.astimezone(self.zone)
        footer = Text(
            f"{post.source} · {_format_time(when)} · search {alert.search_id} · "
            f"score {alert.score:g} · alert #{alert.alert_id}",
            style="dim",
        )
        parts.append(footer)
        return Panel(
            Group(*parts),
            title=Text(headline(alert), style=style),
            title_align="left",
            border_style=style,
        )


def _labelled(label: str, items: list[str]) -> Text:
    text = Text(label, style="bold")
    for item in items:
        text.append(f"\n  • {item}", style="")
    return text


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z")
