"""What the urgency score needs to know beyond the post: when, open or closed, and who.

The pipeline builds one `Context` per decision, after the organisation and branch are known:
the time of the decision, whether that branch (or the organisation) is open then according to
its opening hours, whether today is a public holiday, and the author's history with the
organisation from the database (looked up by the daemon; None offline). `growth` is the
post's engagement gained between the last two polls that saw it (`listener.growth`), when
there is one: the reach factor then takes it instead of the engagement per hour since posting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuthorHistory:
    """The author's earlier posts about one organisation, in the look-back window (30 days)."""

    posts: int = 0  # earlier posts about the organisation (alerted or not)
    complaints: int = 0  # of which labelled complaint
    praise: int = 0  # of which labelled praise


@dataclass(frozen=True, slots=True)
class Growth:
    """Weighted engagement (likes, reposts and replies, weighted as `[reach]` says) gained
    between two polls that saw the post, `minutes` apart (at least `[reach]
    growth_min_minutes`)."""

    gained: float
    minutes: float

    @property
    def per_hour(self) -> float:
        return self.gained * 60 / self.minutes if self.minutes > 0 else 0.0

    @property
    def span(self) -> str:
        """'35 min', '3 h'."""
        if self.minutes < 120:
            return f"{self.minutes:.0f} min"
        return f"{self.minutes / 60:.0f} h"

    def describe(self) -> str:
        """'+240 likes/reposts/replies in 35 min (411/h)'."""
        sign = "+" if self.gained >= 0 else "−"
        return (
            f"{sign}{abs(self.gained):,.0f} likes/reposts/replies in {self.span} "
            f"({self.per_hour:,.0f}/h)"
        )


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime  # timezone-aware; when the decision is made
    open_now: bool | None = None  # the branch or organisation is open at `now`; None: unknown
    holiday: str | None = None  # the name of today's public holiday, if it is one
    history: AuthorHistory | None = None  # None: unknown (offline, `listener try`)
    growth: Growth | None = None  # engagement gained between the last two polls; None: unknown
