"""What the urgency score needs to know beyond the post: when, open or closed, and who.

The pipeline builds one `Context` per decision, after the organisation and branch are known:
the time of the decision, whether that branch (or the organisation) is open then according to
its opening hours, whether today is a public holiday, and the author's history with the
organisation from the database (looked up by the daemon; None offline).
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
class Context:
    now: datetime  # timezone-aware; when the decision is made
    open_now: bool | None = None  # the branch or organisation is open at `now`; None: unknown
    holiday: str | None = None  # the name of today's public holiday, if it is one
    history: AuthorHistory | None = None  # None: unknown (offline, `listener try`)
