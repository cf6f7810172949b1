"""Console notifier: one rich Panel per alert, for `listener run --dry-run` and local testing.

Everything that came from a post is wrapped in `rich.text.Text`, never interpolated into a markup
string, so a post saying "[bold red]" prints exactly that.

A follow-up is printed indented under a '↳ reply to alert #12' line; an incident lists its posts.
An escalation (a critical alert nobody acknowledged in time) is not indented: its panel's title
starts with 'ESCALATED', under a line saying which alert was not acknowledged.

`send_digest` prints a `Digest` as one panel: its title, then one line per alert (local time,
level, organisation / branch, author, the post text on one line, its link, urgency reasons).
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

from listener.alert import AlertMessage, Digest
from listener.config.model import MainFile, Receiver
from listener.notify import follow_up_line, headline

LEVEL_STYLES: dict[str, str] = {
    "critical": "bold red",
    "high": "dark_orange",
    "normal": "yellow",
    "low": "blue",
}
DIGEST_TEXT_MAX = 300  # characters of each post's text in a digest line


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

    def send_digest(self, digest: Digest) -> str | None:
        self.console.print(self.render_digest(digest))
        return None

    def render_digest(self, digest: Digest) -> Panel:
        """One panel: the digest's title, one line per alert."""
        lines: list[Text] = []
        for alert in digest.alerts:
            post = alert.post
            line = Text()
            line.append(_format_time(post.created_at.astimezone(self.zone)), style="dim")
            line.append(" · ")
            line.append(alert.level.upper(), style=LEVEL_STYLES.get(alert.level, "bold"))
            line.append(f" · {alert.where}")
            if alert.follow_up is not None:
                line.append(f" · {follow_up_line(alert)}", style="dim")
            who = _author(alert)
            if who:
                line.append(f" · {who}", style="bold")
            line.append(" · ")
            line.append(_clip(" ".join(post.text.split()), DIGEST_TEXT_MAX) or "(no text)")
            if post.url:
                line.append(f" · {post.url}", style="cyan")
            if alert.reasons:
                line.append(f" · {'; '.join(alert.reasons)}", style="dim")
            line.append(f" · alert #{alert.alert_id}", style="dim")
            lines.append(line)
        return Panel(
            Group(*lines) if lines else Text("(no alerts)", style="dim"),
            title=Text(digest.title, style="bold"),
            title_align="left",
        )

    def render_any(self, alert: AlertMessage) -> RenderableType:
        """The panel; a follow-up's indented under the line saying what it follows (an
        escalation's is not: it stands on its own)."""
        if alert.follow_up is None:
            return self.render(alert)
        if alert.follow_up.kind == "escalation":
            line = Text("ESCALATED: ", style="bold red")
            line.append(follow_up_line(alert).removeprefix("↳ "), style="bold")
            return Group(line, self.render(alert))
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
        title = headline(alert)
        if alert.follow_up is not None and alert.follow_up.kind == "escalation":
            title = f"ESCALATED · {title}"
        return Panel(
            Group(*parts),
            title=Text(title, style=style),
            title_align="left",
            border_style=style,
        )


def _author(alert: AlertMessage) -> str:
    """'Jan Jansen (@jan)' on one line, or ''."""
    author = alert.post.author
    if author is None:
        return ""
    handle = (author.handle or "").lstrip("@")
    if author.name and handle:
        who = f"{author.name} (@{handle})"
    else:
        who = author.name or (f"@{handle}" if handle else "")
    return " ".join(who.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _labelled(label: str, items: list[str]) -> Text:
    text = Text(label, style="bold")
    for item in items:
        text.append(f"\n  • {item}", style="")
    return text


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z")
