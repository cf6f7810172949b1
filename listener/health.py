"""Source health: is every source still hearing what it should?

Silent misses are the worst failure a listening tool has: a revoked app password makes a
source fail quietly forever. So each poll is recorded (success with the number of posts, or the
error), and a source that has been failing far longer than its schedule allows, or that has
brought nothing new for far longer than it normally does, raises one alert about listener
itself, to every active receiver: "bluesky:search:eemland has failed for 2 hours (since
09:14): 401 …: the app password may have been revoked". One alert per outage: it is keyed on
when the outage began, so the outbox's unique key keeps it from repeating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from listener.alert import AlertMessage
from listener.post import Author, Post
from listener.store import Decided, NewAlert, Store

#: A source is failing for real after this many missed polls, and at least this long.
FAILING_POLLS = 4
FAILING_AT_LEAST = timedelta(hours=1)
#: A source is silent after this long without one new post (unless it is configured otherwise).
SILENT_AFTER = timedelta(hours=24)
SYSTEM = "listener"  # the 'organisation' of alerts about listener itself


class SourceHealthRow(SQLModel, table=True):
    __tablename__ = "source_health"
    key: str = Field(primary_key=True)
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_new_post_at: datetime | None = None
    last_posts: int = 0
    last_error: str | None = None
    failing_since: datetime | None = None
    silent_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Trouble:
    key: str
    since: datetime
    text: str


def _locked(session: Session, key: str) -> SourceHealthRow:
    """The source's row, made if missing and locked for the transaction: two instances writing
    one source's health (one finishing a poll as another takes it over) neither fail nor lose
    a write. (SQLite's BEGIN IMMEDIATE already lets one writer in at a time.)"""
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql.insert if postgres else sqlite.insert)(SourceHealthRow).values(
        key=key, last_posts=0
    )
    session.exec(insert.on_conflict_do_nothing(index_elements=["key"]))
    row = session.get(SourceHealthRow, key, with_for_update=True)
    assert row is not None
    return row


class SourceHealth:
    def __init__(self, store: Store, silent_after: timedelta = SILENT_AFTER) -> None:
        self.store = store
        self.silent_after = silent_after
        SourceHealthRow.__table__.create(store.engine, checkfirst=True)  # type: ignore[attr-defined]

    def succeeded(self, key: str, new_posts: int, now: datetime) -> None:
        with Session(self.store.engine, expire_on_commit=False) as session, session.begin():
            row = _locked(session, key)
            row.last_poll_at = row.last_success_at = now
            row.last_posts = new_posts
            row.failing_since = None
            if new_posts or row.last_new_post_at is None:
                row.last_new_post_at = now
            session.add(row)

    def failed(self, key: str, error: str, now: datetime) -> None:
        with Session(self.store.engine, expire_on_commit=False) as session, session.begin():
            row = _locked(session, key)
            row.last_poll_at = now
            row.last_error = error[:1000]
            row.failing_since = row.failing_since or now
            session.add(row)

    def rows(self) -> list[SourceHealthRow]:
        from sqlmodel import select

        with Session(self.store.engine, expire_on_commit=False) as session, session.begin():
            found = list(session.exec(select(SourceHealthRow).order_by(SourceHealthRow.key)))
            session.expunge_all()
            return found

    def trouble(self, key: str, interval: timedelta, now: datetime) -> Trouble | None:
        """What is wrong with a source, once it has been wrong long enough to tell someone."""
        with Session(self.store.engine, expire_on_commit=False) as session, session.begin():
            row = session.get(SourceHealthRow, key)
        if row is None:
            return None
        if row.failing_since is not None:
            failing = now - row.failing_since
            if failing >= max(FAILING_AT_LEAST, FAILING_POLLS * interval):
                since = f"{row.failing_since:%Y-%m-%d %H:%M} UTC"
                return Trouble(
                    key,
                    row.failing_since,
                    f"{key} has failed for {_hours(failing)} (since {since}): {row.last_error}. "
                    "Check its settings and credentials (`listener sources`).",
                )
            return None
        quiet_since = row.last_new_post_at
        if quiet_since is not None and now - quiet_since >= max(self.silent_after, 48 * interval):
            since = f"{quiet_since:%Y-%m-%d %H:%M} UTC"
            return Trouble(
                key,
                quiet_since,
                f"{key} has brought no new post for {_hours(now - quiet_since)} (since {since}) "
                "although it answers: its searches may no longer match what people write, or "
                "the service may be filtering us.",
            )
        return None

    def alert(self, trouble: Trouble, receivers: Sequence[str], now: datetime) -> int:
        """Raise one alert about listener itself for this outage; returns alerts created."""
        post = Post(
            id=f"{SYSTEM}:health:{trouble.key}:{trouble.since.isoformat()}",
            source=SYSTEM,
            text=trouble.text,
            created_at=now,
            author=Author(handle=SYSTEM, name="listener"),
        )
        message = AlertMessage(
            alert_id=0,
            post=post,
            org_id=SYSTEM,
            org_name="listener",
            branch_id=None,
            branch_name=None,
            search_id=f"health:{trouble.key}",
            level="high",
            score=60.0,
            labels=["outage"],
            reasons=[f"source health: {trouble.key}"],
            evidence=[],
        )
        decision = {
            "id": post.id,
            "org": SYSTEM,
            "branch": None,
            "query": message.search_id,
            "urgency": "high",
            "score": 60.0,
            "labels": ["outage"],
            "evidence": [trouble.text],
        }
        item = Decided(post, decision, NewAlert(message, list(receivers)))
        saved = self.store.save_batch(f"{SYSTEM}:health", None, [item], now)
        return saved.alerts


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours >= 2 else f"{span.total_seconds() / 60:.0f} minutes"
