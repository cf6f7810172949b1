"""The database: posts seen, decisions, alerts and their outbox, and per-source cursors.

One transaction saves a batch: its new posts, their decisions, their alerts with one outbox row per
receiver, and the source's new cursor. So a crash either keeps the whole batch (and the cursor
moves on) or none of it (and the batch is fetched again); an alert is never half-written, and the
unique `(post_id, org)` key means a post is alerted at most once per organisation even when a
source returns it again.

Delivery claims an outbox row with a conditional UPDATE (`status` and lease checked in the WHERE
clause, row count must be 1), which is safe with several workers and on SQLite and PostgreSQL
alike. Each receiver's rows form a queue: only the first undelivered row of a receiver can be
claimed, so alerts reach a receiver in the order they were decided, retries included. A claim
is a lease: if the process dies mid-send, the row becomes due again when the lease expires, so
an alert is delivered at least once and a crash costs one duplicate at most (and none where
the receiver can be asked: a row whose lease ran out is `unclear`, `listener.outbox`).
`claim_many` takes the front of every receiver's queue in one transaction (up to a batch of
rows each, all under one lease; the rows behind a claimed one cannot be claimed by another
worker, as the queue rule sees the row before them `sending`), `finish_many` records the
outcomes of a batch in one transaction and `release` hands back rows claimed and not tried,
as they were.

SQLite runs in WAL mode with `busy_timeout` and `foreign_keys` on every connection, and every
transaction that writes starts with `BEGIN IMMEDIATE`, so a read-then-write never fails on a
lock upgrade; the store's read-only calls (`_reading`) start a plain, deferred BEGIN instead,
a snapshot that neither takes nor waits for the one write lock. A batch is saved with a
multi-row INSERT for its posts and one executemany each for their decisions, authors and
snapshots, so the write lock is held briefly.
PostgreSQL (`postgresql+psycopg://…`) runs READ COMMITTED and lets writers run side by side, so
no read-then-write here relies on being alone: inserts that may race another process's use
`INSERT … ON CONFLICT` (posts, stand-in posts, acknowledgements, cursors, failure counts),
claims are conditional UPDATEs, due escalations are taken with `FOR UPDATE SKIP LOCKED`, a post
seen again is locked while its growth is judged, and what no key can guard (placing an alert
against the organisation's recent ones, finding or opening a digest) holds an advisory lock
(`_serialise`); a batch PostgreSQL aborts for a deadlock is run again (`_rerunning`). Each of
these is also right on SQLite, where it is simply never contended.
All times are timezone-aware UTC: sqlmodel maps `datetime` to `UTCDateTime`, `timestamp with
time zone` on PostgreSQL, and gives back aware UTC on both.

The schema is migrated with Alembic (`listener.schema`, `listener/migrations`) when a Store
opens: a new table or column needs a revision there, not only a model here.

Conversations and spikes (`listener.spikes.Grouper`, when `save_batch` is given one) are decided
in the same transaction: each new alert is placed against the organisation's recent alerts and
open incidents, as stored so far, the batch's own earlier alerts included. A follow-up (a reply
or near-duplicate of an alerted post, one more post of an incident) is an alert row like any
other, so the unique keys and the outbox hold for it too, plus a row in `alert_links` naming
the alert whose thread it joins; an incident is the alert of the post that completed the spike,
with a row in `incidents` and `member` links to the alerts it names. Only new tables: databases
made before these existed get them at start-up (the baseline migration adds missing tables),
and their alerts load as before.

`post_authors` holds each saved post's author (normalised handle and source) and time, indexed
by handle and time, so `author_history` counts an author's earlier posts about an organisation
without reading post JSON. It is filled by `save_batch`: posts saved before the table existed
have no row and do not count.

`engagement_snapshots` holds a post's likes, reposts and replies each time a source returned it
(`save_batch`: when the post is first saved, and for the batch's posts the store already has,
its `seen`), with the growth per hour since the sighting before. With a `GrowthWatch`, an alerted
post growing fast gets a follow-up (`listener.growth`), in the same transaction: an alert row
with an `alert_links` row of kind `reach`. As an alert row's post is unique per organisation,
the follow-up's row names a stand-in post, `<post id>#reach<n>` (source `listener:reach`, its
JSON the post as seen then), which `posts_since` leaves out; the snapshot that raised it is
marked `raised`, so the next one needs the next step. Posts without counts (feed items) have no
snapshots.

Silences (`listener.silence`) are applied in `save_batch` too: the silences active at the batch's
`now` are read once, when its first alert is written, and the outbox rows of an alert one of them
matches are written with status `silenced` (not `pending`) and a row in `silenced_deliveries`
naming the silence. A silenced row is done as far as the queue is concerned (`_claimable` waits
only for `pending` and `sending` rows), so it never holds back the receiver's later alerts, and
it is never claimed, so it stays silenced after the silence ends. `silences` and
`silenced_deliveries` are new tables, created at start-up like the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Engine,
    Index,
    Insert,
    Table,
    UniqueConstraint,
    and_,
    delete,
    event,
    exists,
    func,
    or_,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from listener.alert import FOLLOW_UP_KINDS, AlertMessage, FollowUp, Progress
from listener.conversation import Recent
from listener.growth import GrowthWatch, Sighting, growth_between
from listener.match import normal_handle
from listener.post import Post
from listener.silence import Silence, parse_matcher, silencing
from listener.spikes import Grouper, OpenIncident, Placement
from listener.urgency.context import AuthorHistory
from listener.urgency.settings import default_settings

if TYPE_CHECKING:
    from listener.dispatch import Dispatcher, Hold


def utcnow() -> datetime:
    return datetime.now(UTC)


class PostRow(SQLModel, table=True):
    __tablename__ = "posts"
    id: str = Field(primary_key=True)
    source: str
    created_at: datetime
    fetched_at: datetime
    data: str


class PostAuthorRow(SQLModel, table=True):
    """Who wrote a saved post, for `Store.author_history` (posts without a handle have none)."""

    __tablename__ = "post_authors"
    __table_args__ = (Index("ix_post_authors_handle_time", "handle", "created_at"),)
    post_id: str = Field(foreign_key="posts.id", primary_key=True)
    handle: str  # normalised: `listener.match.normal_handle`
    source: str
    created_at: datetime


class EngagementSnapshotRow(SQLModel, table=True):
    """A post's counts as one poll saw them; `per_hour`: weighted engagement gained per hour
    since the snapshot before (None for the first); `raised`: a reach follow-up came of it."""

    __tablename__ = "engagement_snapshots"
    __table_args__ = (Index("ix_engagement_snapshots_post_time", "post_id", "seen_at"),)
    id: int | None = Field(default=None, primary_key=True)
    post_id: str = Field(foreign_key="posts.id")
    seen_at: datetime
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    per_hour: float | None = None
    raised: bool = False


#: The source of the stand-in posts that reach follow-ups' alert rows name.
REACH_SOURCE = "listener:reach"
ESCALATION_SOURCE = "listener:escalation"
#: The stand-in post an alert names once its post was forgotten: `forgotten:<alert id>`.
FORGOTTEN_SOURCE = "listener:forgotten"
STAND_IN_SOURCES = (REACH_SOURCE, ESCALATION_SOURCE, FORGOTTEN_SOURCE)  # posts that are not posts
#: An outbox row's last_error starts so when the receiver may have got the alert after all
#: (a timeout, a reset, a crash mid-send): the next attempt asks the receiver first.
UNKNOWN_OUTCOME = "outcome unknown: "
#: How many parsed alert messages a Store keeps (`Store._message`) before it starts over.
PARSED_REMEMBERED = 20_000


class LeaseLost(Exception):
    """`save_batch`'s fence failed: another instance polls the source now; nothing was saved."""


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    id: int | None = Field(default=None, primary_key=True)
    post_id: str = Field(foreign_key="posts.id", index=True)
    org: str | None = None
    branch: str | None = None
    search: str | None = None
    urgency: str
    score: float
    labels: str
    evidence: str
    distance_km: float | None = None
    decided_at: datetime


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("post_id", "org"),)
    id: int | None = Field(default=None, primary_key=True)
    post_id: str = Field(foreign_key="posts.id", index=True)
    org: str
    branch: str | None = None
    search: str
    level: str
    score: float
    created_at: datetime
    message: str = ""


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("alert_id", "receiver"),
        Index("ix_outbox_receiver_queue", "receiver", "status", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    receiver: str
    # pending | sending | sent | failed | silenced | held (in a digest, `digest_items`)
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None
    last_error: str | None = None
    external_ref: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


class FeedbackRow(SQLModel, table=True):
    """What a person said about an alert: the truth the backtest, `report` and `suggest` use.

    verdict is `relevant`, `not-relevant` or `wrong-branch` (then `branch` is the right branch,
    or None for 'the organisation, no particular branch'). The newest row for an alert counts.
    """

    __tablename__ = "feedback"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    post_id: str = Field(foreign_key="posts.id", index=True)
    org: str
    search: str
    verdict: str
    branch: str | None = None
    by: str | None = None  # who: a Slack user id or the local user name
    via: str = "cli"  # cli | slack
    created_at: datetime


VERDICTS = ("relevant", "not-relevant", "wrong-branch")


class AlertLinkRow(SQLModel, table=True):
    """Alert `alert_id` continues alert `parent_alert_id`: `kind` reply, duplicate or spike (a
    follow-up, delivered in the parent's thread), or member (an alert an incident names)."""

    __tablename__ = "alert_links"
    __table_args__ = (UniqueConstraint("alert_id", "parent_alert_id"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True)
    parent_alert_id: int = Field(foreign_key="alerts.id", index=True)
    kind: str
    created_at: datetime


class IncidentRow(SQLModel, table=True):
    """The incident raised for a spike: its alert, topic key and the time of its newest post."""

    __tablename__ = "incidents"
    alert_id: int = Field(foreign_key="alerts.id", primary_key=True)
    org: str = Field(index=True)
    key: str
    level: str
    started_at: datetime  # the first post's time
    last_at: datetime  # the newest post's time: the incident is open for `window` after it
    created_at: datetime


class SilenceRow(SQLModel, table=True):
    """A silence (`listener.silence.Silence`); matchers as a JSON list of 'key=value' strings."""

    __tablename__ = "silences"
    id: int | None = Field(default=None, primary_key=True)
    matchers: str
    starts_at: datetime
    ends_at: datetime = Field(index=True)
    reason: str
    created_by: str | None = None
    created_at: datetime
    expired_at: datetime | None = None

    def to_silence(self) -> Silence:
        return Silence(
            id=self.id or 0,
            matchers=tuple(parse_matcher(text) for text in json.loads(self.matchers)),
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            reason=self.reason,
            created_by=self.created_by,
            created_at=self.created_at,
            expired_at=self.expired_at,
        )


class SilencedDeliveryRow(SQLModel, table=True):
    """Outbox row `delivery_id` was not delivered (status `silenced`) because of `silence_id`."""

    __tablename__ = "silenced_deliveries"
    delivery_id: int = Field(foreign_key="outbox.id", primary_key=True)
    silence_id: int = Field(foreign_key="silences.id", index=True)


class DigestRow(SQLModel, table=True):
    """Alerts a route held for one receiver (`listener.dispatch`), sent as one message at
    `due_at`. `open` while it collects and waits (and between retries), then `sending`
    (claimed, with a lease), `sent` or `failed`."""

    __tablename__ = "digests"
    __table_args__ = (Index("ix_digests_bucket", "receiver", "route", "status", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    receiver: str
    route: str
    reason: str  # digest | quiet
    status: str = Field(default="open", index=True)
    due_at: datetime = Field(index=True)
    opened_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None  # after a failed attempt
    lease_until: datetime | None = None
    last_error: str | None = None
    external_ref: str | None = None
    sent_at: datetime | None = None


class DigestItemRow(SQLModel, table=True):
    """An outbox row (status `held`) waiting in a digest."""

    __tablename__ = "digest_items"
    delivery_id: int = Field(foreign_key="outbox.id", primary_key=True)
    digest_id: int = Field(foreign_key="digests.id", index=True)


class EscalationRow(SQLModel, table=True):
    """A critical alert that goes to `receivers` (JSON list) at `due_at` unless acknowledged by
    then: `pending`, then `sent` (with the follow-up alert it raised) or `called-off`."""

    __tablename__ = "escalations"
    alert_id: int = Field(foreign_key="alerts.id", primary_key=True)
    route: str
    due_at: datetime = Field(index=True)
    receivers: str
    status: str = Field(default="pending", index=True)
    decided_at: datetime | None = None
    follow_up_id: int | None = None


class AckRow(SQLModel, table=True):
    """Someone acknowledged an alert (the root of its conversation): it is being handled, so
    its escalation is called off. The first acknowledgement stays."""

    __tablename__ = "acks"
    alert_id: int = Field(foreign_key="alerts.id", primary_key=True)
    by: str | None = None  # a Slack user id, or a login name
    via: str = "cli"  # slack | cli
    acked_at: datetime


class CursorRow(SQLModel, table=True):
    __tablename__ = "cursors"
    key: str = Field(primary_key=True)
    value: str | None = None
    updated_at: datetime
    failures: int = 0
    last_error: str | None = None
    last_success_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to write with its decision: the message (alert_id filled in on insert) and where."""

    message: AlertMessage
    receivers: Sequence[str]


@dataclass(frozen=True, slots=True)
class Decided:
    post: Post
    decision: dict[str, Any]  # the decision JSON (decision.schema.json)
    alert: NewAlert | None = None


@dataclass(frozen=True, slots=True)
class SaveResult:
    new_posts: int
    alerts: int  # new alerts, incidents included; follow-ups not
    deliveries: int
    follow_ups: int = 0  # reach follow-ups included
    incidents: int = 0
    silenced: int = 0  # alerts (follow-ups included) whose deliveries a silence held back
    held: int = 0  # deliveries held for a digest or quiet hours


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    alert_id: int
    receiver: str
    attempts: int
    message: str
    unclear: bool = False  # an earlier attempt may have reached the receiver
    lease_until: datetime | None = None  # the claim holds until then
    was_status: str = "pending"  # before the claim: what `Store.release` puts back
    was_lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed outbox row, for `Store.finish_many`."""

    delivery_id: int
    status: str  # sent | pending (to be retried at `at`) | failed
    ref: str | None = None  # sent: the receiver's reference
    error: str | None = None  # pending, failed: why
    at: datetime | None = None  # sent: when; pending: the next attempt

    @classmethod
    def sent(cls, delivery_id: int, ref: str | None, now: datetime) -> Outcome:
        return cls(delivery_id, "sent", ref=ref, at=now)

    @classmethod
    def retry(cls, delivery_id: int, error: str, next_attempt_at: datetime) -> Outcome:
        return cls(delivery_id, "pending", error=error, at=next_attempt_at)

    @classmethod
    def failed(cls, delivery_id: int, error: str) -> Outcome:
        return cls(delivery_id, "failed", error=error)

    def values(self) -> dict[str, Any]:
        """The outbox row's new column values."""
        if self.status == "sent":
            return {
                "status": "sent",
                "external_ref": self.ref,
                "sent_at": self.at,
                "lease_until": None,
            }
        values: dict[str, Any] = {
            "status": self.status,
            "last_error": (self.error or "")[:1000],
            "lease_until": None,
        }
        if self.status == "pending":
            values["next_attempt_at"] = self.at
        return values


@dataclass(frozen=True, slots=True)
class ClaimedDigest:
    digest_id: int
    receiver: str
    route: str
    reason: str
    opened_at: datetime
    due_at: datetime
    attempts: int
    messages: list[str]  # the held alerts' JSON, oldest first
    unclear: bool = False  # an earlier attempt may have reached the receiver


@dataclass(slots=True)
class _Written:
    deliveries: int = 0
    held: int = 0
    silenced: bool = False


#: The execution option of the store's read-only engine (`Store._reading`): on SQLite its
#: transactions start with a plain (deferred) BEGIN, which takes no write lock.
READ_ONLY = "listener_read_only"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE (a plain
    BEGIN on a connection with the READ_ONLY execution option: a read waits for no writer)."""
    if not url.startswith("sqlite"):
        # A daemon uses a few connections at once (poller threads, the deliverer, HTTP);
        # pre-ping replaces connections the server closed (restart, idle timeout).
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800
        )
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


_T = TypeVar("_T")
#: PostgreSQL's deadlock_detected and serialization_failure: the transaction may simply be rerun.
_RERUN = ("40P01", "40001")


def _rerunning(work: Callable[[], _T], attempts: int = 5) -> _T:
    """Run a transaction, again when PostgreSQL aborted it for a deadlock with another one."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) not in _RERUN or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _insert(session: Session, model: type[SQLModel]) -> Any:
    """INSERT into `model`'s table in the session's dialect, which knows ON CONFLICT (SQLite and
    PostgreSQL both do): an insert that races another process's ends without an error."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _table(model: type[SQLModel]) -> Table:
    """A model's Core table."""
    table: Table = cast(Any, model).__table__
    return table


def _insert_into(session: Session, table: Table) -> Any:
    """`_insert` for a Core table."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _serialise(session: Session, key: str) -> None:
    """Hold the lock named `key` until the transaction ends. On PostgreSQL an advisory lock, for
    a find-or-create no unique key can guard; SQLite needs none, as BEGIN IMMEDIATE already
    lets one writer in at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            sql_text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._reader = self.engine.execution_options(**{READ_ONLY: True})
        self._parsed: dict[str, AlertMessage] = {}
        from listener.schema import upgrade

        upgrade(self.engine)  # migrations to head (listener.schema); logs the ones that ran

    def close(self) -> None:
        self.engine.dispose()

    def _reading(self) -> Session:
        """A session for reads only: on SQLite its transaction is a deferred BEGIN (a snapshot
        that neither takes nor waits for the write lock, so a read never queues behind a batch
        being saved); nothing may be written in it. The same as any session on PostgreSQL."""
        return Session(self._reader)

    # --- sources and posts ---------------------------------------------------------------------

    def cursor(self, key: str) -> str | None:
        with self._reading() as session, session.begin():
            row = session.get(CursorRow, key)
            return row.value if row else None

    def known_post_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self._reading() as session, session.begin():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(session.exec(select(PostRow.id).where(PostRow.id.in_(chunk))))  # type: ignore[attr-defined]
        return found

    def save_batch(
        self,
        source_key: str,
        cursor: str | None,
        decided: Sequence[Decided],
        now: datetime | None = None,
        grouper: Grouper | None = None,
        seen: Sequence[Post] = (),
        reach: GrowthWatch | None = None,
        dispatch: Dispatcher | None = None,
        fence: Callable[[Session], bool] | None = None,
    ) -> SaveResult:
        """Save new posts, decisions, alerts, outbox rows and the cursor: all or nothing. With a
        `grouper`, a new alert may become a follow-up of an earlier one or an incident. An
        alert that an active silence matches gets `silenced` outbox rows (`deliveries` counts
        only the rows to deliver). `seen` are posts of the batch the store already has: their
        counts are a new engagement snapshot, and with `reach`, an alerted one growing fast gets
        a follow-up (`_seen_again`). With `dispatch`, deliveries a route holds (digest mode,
        quiet hours) are written `held`, in a digest (`_hold`), and a critical alert whose route
        escalates gets an `escalations` row.

        Several processes may save at once (PostgreSQL): a post is inserted with ON CONFLICT DO
        NOTHING, so of two batches holding it, one saves it (and alerts on it) and the other
        skips it; the posts go in in id order, and alert placement is serialised per
        organisation (`_serialise`), and a transaction PostgreSQL aborts for a deadlock is
        rerun.

        `fence` runs first in the transaction and must return True, else nothing is saved and
        LeaseLost is raised: the poll lease (`listener.leases`) renews the instance's claim on
        the source there, holding its row until the commit, so an instance that lost the
        source cannot move its cursor, and none can take it over mid-save."""
        at = now or utcnow()
        return _rerunning(
            lambda: self._save_batch(
                source_key, cursor, decided, at, grouper, seen, reach, dispatch, fence
            )
        )

    def _save_batch(
        self,
        source_key: str,
        cursor: str | None,
        decided: Sequence[Decided],
        now: datetime,
        grouper: Grouper | None,
        seen: Sequence[Post],
        reach: GrowthWatch | None,
        dispatch: Dispatcher | None,
        fence: Callable[[Session], bool] | None = None,
    ) -> SaveResult:
        new_posts = alerts = deliveries = follow_ups = incidents = silenced = held = 0
        active: list[Silence] | None = None  # read when the first alert needs them
        with Session(self.engine) as session, session.begin():
            if fence is not None and not fence(session):
                raise LeaseLost(source_key)
            fresh = self._insert_posts(session, [item.post for item in decided], now)
            saved: list[Decided] = []
            for item in decided:
                if item.post.id in fresh:
                    fresh.discard(item.post.id)  # a post twice in the batch counts once
                    saved.append(item)
            self._insert_decided(session, saved, now)
            new_posts = len(saved)
            for item in saved:
                post = item.post
                new_alert = item.alert
                if new_alert is None and grouper is not None and post.reply_to:
                    new_alert = self._reply_to_alerted(session, post, grouper)
                if new_alert is None:
                    continue
                message = new_alert.message
                exists = session.exec(
                    select(AlertRow.id).where(
                        AlertRow.post_id == post.id, AlertRow.org == message.org_id
                    )
                ).first()
                if exists is not None:
                    continue
                receivers = list(new_alert.receivers)
                placed: Placement | None = None
                if grouper is not None and grouper.active:
                    _serialise(session, f"alerts:{message.org_id}")
                    recent, open_incidents = self._recent(session, message, grouper.lookback)
                    placed = grouper.place(message, receivers, recent, open_incidents)
                    message, receivers = placed.message, placed.receivers
                row = _add_alert(session, post.id, message, now)
                assert row.id is not None
                if placed is not None and placed.parent_id is not None:
                    follow_ups += 1
                    self._link(session, row.id, placed.parent_id, placed.link or "reply", now)
                    if placed.link == "spike":
                        self._touch_incident(session, placed.parent_id, post.created_at)
                else:
                    alerts += 1
                if placed is not None and placed.incident_key is not None:
                    incidents += 1
                    self._open_incident(session, row, placed, now)
                if active is None:
                    active = self._active_silences(session, now)
                written = self._write_deliveries(
                    session, row.id, message, receivers, now, active, dispatch
                )
                deliveries += written.deliveries
                held += written.held
                silenced += written.silenced
            for again in sorted({post.id: post for post in seen}.values(), key=_post_id):
                grown = self._seen_again(session, again, now, reach, dispatch)
                follow_ups += grown.follow_ups
                deliveries += grown.deliveries
                silenced += grown.silenced
                held += grown.held
            self._set_cursor(session, source_key, cursor, now)
        return SaveResult(new_posts, alerts, deliveries, follow_ups, incidents, silenced, held)

    def _insert_posts(self, session: Session, posts: Sequence[Post], now: datetime) -> set[str]:
        """Insert the posts the store lacks, in id order (two batches sharing posts then lock
        them in the same order), many to a multi-row INSERT; returns the ids inserted.
        A post another transaction inserts at the same time waits for it, and is then left
        out (ON CONFLICT DO NOTHING: RETURNING names only the rows this statement inserted)."""
        first: dict[str, Post] = {}
        for post in posts:
            first.setdefault(post.id, post)
        rows = [
            {
                "id": post_id,
                "source": first[post_id].source,
                "created_at": first[post_id].created_at.astimezone(UTC),
                "fetched_at": now,
                "data": json.dumps(first[post_id].to_dict(), ensure_ascii=False),
            }
            for post_id in sorted(first)
        ]
        if not rows:
            return set()
        table = _table(PostRow)  # Core, not the ORM: one compiled statement, cached
        statement = (
            _insert_into(session, table)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(table.c.id)  # the rows inserted (rowcount is not reliable here)
        )
        # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends the rows as
        # multi-row INSERTs, a batch of them a statement, on SQLite and psycopg alike
        result = session.connection().execute(statement, rows)
        return {str(post_id) for post_id in result.scalars()}

    def _insert_decided(self, session: Session, saved: Sequence[Decided], now: datetime) -> None:
        """The rows of each newly saved post: its decision, its author (when it names one) and
        its first engagement snapshot (when it has counts); an executemany per table (Core,
        not an ORM object per row: this is most of a big batch's time in its transaction)."""
        decisions: list[dict[str, Any]] = []
        authors: list[dict[str, Any]] = []
        snapshots: list[dict[str, Any]] = []
        for item in saved:
            post, d = item.post, item.decision
            first = Sighting.of(post, now)
            if first is not None:
                snapshots.append(
                    {
                        "post_id": post.id,
                        "seen_at": first.seen_at,
                        "likes": first.likes,
                        "reposts": first.reposts,
                        "replies": first.replies,
                        "per_hour": None,
                        "raised": False,
                    }
                )
            handle = normal_handle(post.author.handle or "") if post.author else ""
            if handle:
                authors.append(
                    {
                        "post_id": post.id,
                        "handle": handle,
                        "source": post.source,
                        "created_at": post.created_at.astimezone(UTC),
                    }
                )
            decisions.append(
                {
                    "post_id": post.id,
                    "org": d["org"],
                    "branch": d["branch"],
                    "search": d.get("query"),
                    "urgency": d["urgency"],
                    "score": d["score"],
                    "labels": json.dumps(d.get("labels", []), ensure_ascii=False),
                    "evidence": json.dumps(d.get("evidence", []), ensure_ascii=False),
                    "distance_km": d.get("distance_km"),
                    "decided_at": now,
                }
            )
        connection = session.connection()
        for model, rows in (
            (EngagementSnapshotRow, snapshots),
            (PostAuthorRow, authors),
            (DecisionRow, decisions),
        ):
            if rows:
                connection.execute(_table(model).insert(), rows)

    def _write_deliveries(
        self,
        session: Session,
        alert_id: int,
        message: AlertMessage,
        receivers: Sequence[str],
        now: datetime,
        active: Sequence[Silence],
        dispatch: Dispatcher | None,
    ) -> _Written:
        """One outbox row per receiver: `silenced` when an active silence matches the alert,
        else `held` in a digest when the route holds it (`dispatch`), else `pending`; and the
        alert's escalation when its route has one (not for silenced alerts)."""
        written = _Written()
        silence = silencing(active, message, now) if active else None
        plan = dispatch.plan(message, receivers, now) if dispatch is not None else None
        for receiver in receivers:
            hold = plan.holds.get(receiver) if plan is not None else None
            status = "silenced" if silence is not None else "held" if hold else "pending"
            delivery = DeliveryRow(
                alert_id=alert_id,
                receiver=receiver,
                status=status,
                next_attempt_at=now,
                created_at=now,
            )
            session.add(delivery)
            if status == "pending":
                written.deliveries += 1
                continue
            session.flush()
            assert delivery.id is not None
            if silence is not None:
                session.add(SilencedDeliveryRow(delivery_id=delivery.id, silence_id=silence.id))
            elif hold is not None:
                written.held += 1
                self._hold(session, delivery.id, receiver, hold, now)
        written.silenced = silence is not None
        if silence is None and plan is not None and plan.escalation is not None:
            escalation = plan.escalation
            session.add(
                EscalationRow(
                    alert_id=alert_id,
                    route=escalation.route,
                    due_at=escalation.due_at,
                    receivers=json.dumps(list(escalation.receivers)),
                )
            )
        return written

    def _hold(
        self, session: Session, delivery_id: int, receiver: str, hold: Hold, now: datetime
    ) -> None:
        """Put a delivery in the open digest of its receiver, route and due time (a new one
        when there is none yet): serialised, so two processes holding alerts for the same digest
        at once do not open two."""
        _serialise(
            session, f"digest:{receiver}:{hold.route}:{hold.reason}:{hold.due_at.isoformat()}"
        )
        digest = session.exec(
            select(DigestRow).where(
                DigestRow.receiver == receiver,
                DigestRow.route == hold.route,
                DigestRow.status == "open",
                DigestRow.due_at == hold.due_at,
                DigestRow.reason == hold.reason,
            )
        ).first()
        if digest is None:
            digest = DigestRow(
                receiver=receiver,
                route=hold.route,
                reason=hold.reason,
                due_at=hold.due_at,
                opened_at=now,
            )
            session.add(digest)
            session.flush()
        assert digest.id is not None
        session.add(DigestItemRow(delivery_id=delivery_id, digest_id=digest.id))

    # --- silences ------------------------------------------------------------------------------

    def _active_silences(self, session: Session, now: datetime) -> list[Silence]:
        rows = session.exec(
            select(SilenceRow)
            .where(
                col(SilenceRow.ends_at) > now,
                col(SilenceRow.starts_at) <= now,
                or_(col(SilenceRow.expired_at).is_(None), col(SilenceRow.expired_at) > now),
            )
            .order_by(col(SilenceRow.id))
        )
        return [row.to_silence() for row in rows]

    def add_silence(
        self,
        matchers: Sequence[str],
        ends_at: datetime,
        reason: str,
        *,
        created_by: str | None = None,
        starts_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Silence:
        """Store a silence (matchers as 'key=value' / 'key!=value'; MatcherError for a bad
        one); it holds back the matching alerts created from `starts_at` (default now) until
        `ends_at`. ValueError when it would end before it starts."""
        now = now or utcnow()
        starts_at = starts_at or now
        parsed = [str(parse_matcher(text)) for text in matchers]
        if not parsed:
            raise ValueError("a silence needs at least one matcher")
        if ends_at <= starts_at:
            raise ValueError(
                f"a silence must end after it starts ({ends_at.isoformat()} is not after "
                f"{starts_at.isoformat()})"
            )
        with Session(self.engine) as session, session.begin():
            row = SilenceRow(
                matchers=json.dumps(parsed, ensure_ascii=False),
                starts_at=starts_at.astimezone(UTC),
                ends_at=ends_at.astimezone(UTC),
                reason=reason,
                created_by=created_by,
                created_at=now,
            )
            session.add(row)
            session.flush()
            return row.to_silence()

    def silences(
        self, now: datetime | None = None, *, include_expired: bool = False
    ) -> list[Silence]:
        """The silences not yet ended at `now` (pending and active), oldest first; with
        `include_expired`, every silence."""
        now = now or utcnow()
        with self._reading() as session, session.begin():
            rows = [
                row.to_silence()
                for row in session.exec(select(SilenceRow).order_by(col(SilenceRow.id)))
            ]
        return [s for s in rows if include_expired or s.state(now) != "expired"]

    def expire_silence(self, silence_id: int, now: datetime | None = None) -> tuple[Silence, bool]:
        """End a silence now; returns it and whether it changed (False: it had already ended).
        Alerts it silenced stay silenced. KeyError if there is no such silence."""
        now = now or utcnow()
        with Session(self.engine) as session, session.begin():
            row = session.get(SilenceRow, silence_id)
            if row is None:
                raise KeyError(silence_id)
            if row.to_silence().state(now) == "expired":
                return row.to_silence(), False
            row.expired_at = now
            session.add(row)
            session.flush()
            return row.to_silence(), True

    def silenced_alerts(self) -> dict[int, list[int]]:
        """For each silence that held something back: the ids of the alerts, oldest first."""
        with self._reading() as session, session.begin():
            rows = session.exec(
                select(SilencedDeliveryRow.silence_id, DeliveryRow.alert_id)
                .join(DeliveryRow, col(DeliveryRow.id) == col(SilencedDeliveryRow.delivery_id))
                .order_by(col(DeliveryRow.alert_id))
            ).all()
        found: dict[int, list[int]] = {}
        for silence_id, alert_id in rows:
            alerts = found.setdefault(silence_id, [])
            if alert_id not in alerts:
                alerts.append(alert_id)
        return found

    # --- reach that grows between polls --------------------------------------------------------

    def _seen_again(
        self,
        session: Session,
        post: Post,
        now: datetime,
        reach: GrowthWatch | None,
        dispatch: Dispatcher | None = None,
    ) -> SaveResult:
        """Snapshot the counts of a post the store already has (none when the source gives no
        counts); with `reach`, write the follow-ups its growth since the last snapshot is worth
        (`follow_ups`, `deliveries` and `silenced` of the result count them)."""
        nothing = SaveResult(0, 0, 0)
        sighting = Sighting.of(post, now)
        # the post's row lock serialises two processes seeing it again at once (PostgreSQL)
        if sighting is None or session.get(PostRow, post.id, with_for_update=True) is None:
            return nothing
        earlier = list(
            session.exec(
                select(EngagementSnapshotRow)
                .where(EngagementSnapshotRow.post_id == post.id)
                .order_by(col(EngagementSnapshotRow.seen_at), col(EngagementSnapshotRow.id))
            )
        )
        snapshot = _snapshot_row(post.id, sighting)
        session.add(snapshot)
        if not earlier:
            return nothing
        last = earlier[-1]
        before = Sighting(last.seen_at, last.likes, last.reposts, last.replies)
        growth = growth_between(before, sighting, reach.settings if reach else default_settings())
        snapshot.per_hour = growth.per_hour
        raised_before = [r.per_hour for r in earlier if r.raised and r.per_hour is not None]
        if reach is None or growth.per_hour < reach.bar(raised_before):
            return nothing
        follow_ups = deliveries = silenced = held = 0
        stand_in = f"{post.id}#reach{len(raised_before) + 1}"
        for alert in self._alerts_of(session, post.id):
            raised = reach.follow_up(alert, post, growth, raised_before)
            if raised is None:
                continue
            message = raised.message
            alert_id = self._add_stand_in_alert(session, post, stand_in, REACH_SOURCE, message, now)
            self._link(session, alert_id, raised.parent_id, "reach", now)
            follow_ups += 1
            snapshot.raised = True
            active = self._active_silences(session, now)
            written = self._write_deliveries(
                session, alert_id, message, raised.receivers, now, active, dispatch
            )
            deliveries += written.deliveries
            held += written.held
            silenced += written.silenced
        return SaveResult(0, 0, deliveries, follow_ups, silenced=silenced, held=held)

    def _add_stand_in_alert(
        self,
        session: Session,
        post: Post,
        stand_in: str,
        source: str,
        message: AlertMessage,
        now: datetime,
    ) -> int:
        """An alert row for a follow-up that is not a new post (reach growing, an escalation):
        it names the stand-in post `stand_in` (written once, `source` listener's own, its JSON
        the post as it is now), as an alert row's post is unique per organisation. Returns the
        new alert's id; `message` is stored with that id."""
        seen_as = replace(post, id=stand_in, source=source)
        session.exec(
            _insert(session, PostRow)
            .values(
                id=stand_in,
                source=source,
                created_at=now,
                fetched_at=now,
                data=json.dumps(seen_as.to_dict(), ensure_ascii=False),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = _add_alert(session, stand_in, message, now)
        assert row.id is not None
        return row.id

    def _alerts_of(self, session: Session, post_id: str) -> list[Recent]:
        """The post's own alerts (not listener's), each with the thread it is in and its
        receivers."""
        found = []
        rows = session.exec(
            select(AlertRow.id, AlertRow.message)
            .where(AlertRow.post_id == post_id, AlertRow.org != "listener")
            .order_by(col(AlertRow.id))
        ).all()
        for alert_id, text in rows:
            if alert_id is None or not text:
                continue
            root = session.exec(
                select(AlertLinkRow.parent_alert_id).where(
                    AlertLinkRow.alert_id == alert_id,
                    col(AlertLinkRow.kind).in_(FOLLOW_UP_KINDS),
                )
            ).first()
            receivers = session.exec(
                select(DeliveryRow.receiver)
                .where(DeliveryRow.alert_id == alert_id)
                .order_by(col(DeliveryRow.id))
            ).all()
            message = AlertMessage.from_json(text)
            found.append(Recent(alert_id, message, root_id=root, receivers=tuple(receivers)))
        return found

    def snapshots(self, post_id: str) -> list[EngagementSnapshotRow]:
        """A post's engagement snapshots, oldest first."""
        with self._reading() as session, session.begin():
            rows = list(
                session.exec(
                    select(EngagementSnapshotRow)
                    .where(EngagementSnapshotRow.post_id == post_id)
                    .order_by(col(EngagementSnapshotRow.seen_at), col(EngagementSnapshotRow.id))
                )
            )
            session.expunge_all()
            return rows

    # --- conversations and spikes --------------------------------------------------------------

    def _recent(
        self, session: Session, message: AlertMessage, lookback: timedelta
    ) -> tuple[list[Recent], list[OpenIncident]]:
        """The organisation's alerts whose posts were made within `lookback` of the new post
        (either side), with the thread each is in and its receivers; and its incidents whose
        newest post is that recent."""
        moment = message.post.created_at.astimezone(UTC)
        since, until = moment - lookback, moment + lookback
        rows = session.exec(
            select(AlertRow.id, AlertRow.message)
            .join(PostRow, col(PostRow.id) == col(AlertRow.post_id))
            .where(
                AlertRow.org == message.org_id,
                col(PostRow.created_at) >= since,
                col(PostRow.created_at) <= until,
            )
            .order_by(col(AlertRow.id))
        ).all()
        ids = [alert_id for alert_id, _ in rows if alert_id is not None]
        roots: dict[int, int] = {}
        receivers: dict[int, list[str]] = {}
        grown: set[int] = set()  # reach and escalation follow-ups: not new posts
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            links = session.exec(
                select(
                    AlertLinkRow.alert_id, AlertLinkRow.parent_alert_id, AlertLinkRow.kind
                ).where(
                    col(AlertLinkRow.alert_id).in_(chunk),
                    col(AlertLinkRow.kind).in_(FOLLOW_UP_KINDS),
                )
            )
            for child, parent, kind in links:
                roots[child] = parent
                if kind in ("reach", "escalation"):  # the same post again
                    grown.add(child)
            sent_to = session.exec(
                select(DeliveryRow.alert_id, DeliveryRow.receiver)
                .where(col(DeliveryRow.alert_id).in_(chunk))
                .order_by(col(DeliveryRow.id))
            )
            for alert_id, receiver in sent_to:
                receivers.setdefault(alert_id, []).append(receiver)
        recent = [
            Recent(
                alert_id=alert_id,
                message=self._message(text),
                root_id=roots.get(alert_id),
                receivers=tuple(receivers.get(alert_id, ())),
            )
            for alert_id, text in rows
            if alert_id is not None and text and alert_id not in grown
        ]
        incidents = [
            OpenIncident(row.alert_id, row.key, row.last_at, row.level)
            for row in session.exec(
                select(IncidentRow).where(
                    IncidentRow.org == message.org_id, col(IncidentRow.last_at) >= since
                )
            )
        ]
        return recent, incidents

    def _message(self, text: str) -> AlertMessage:
        """An alert row's message, parsed once: `_recent` reads an organisation's alerts of the
        last day for every new alert, and parsing was most of its cost. Keyed by the text, so
        a message changed since (an update, a redaction) is parsed anew."""
        found = self._parsed.get(text)
        if found is None:
            found = AlertMessage.from_json(text)
            if len(self._parsed) >= PARSED_REMEMBERED:
                self._parsed.clear()
            self._parsed[text] = found
        return found

    def _reply_to_alerted(self, session: Session, post: Post, grouper: Grouper) -> NewAlert | None:
        """A reply that names no organisation itself, to a post alerted recently: an alert of
        the parent's organisation, to its receivers, which `place` makes a follow-up."""
        rows = session.exec(
            select(AlertRow.id, AlertRow.message)
            .where(AlertRow.post_id == post.reply_to, AlertRow.org != "listener")
            .order_by(col(AlertRow.id))
        ).all()
        for alert_id, text in rows:
            if alert_id is None or not text:
                continue
            receivers = session.exec(
                select(DeliveryRow.receiver)
                .where(DeliveryRow.alert_id == alert_id)
                .order_by(col(DeliveryRow.id))
            ).all()
            parent = Recent(alert_id, AlertMessage.from_json(text), receivers=tuple(receivers))
            message = grouper.reply_alert(post, parent)
            if message is not None and receivers:
                return NewAlert(message, list(receivers))
        return None

    def _link(
        self, session: Session, alert_id: int, parent_id: int, kind: str, now: datetime
    ) -> None:
        session.add(
            AlertLinkRow(alert_id=alert_id, parent_alert_id=parent_id, kind=kind, created_at=now)
        )

    def _touch_incident(self, session: Session, alert_id: int, posted: datetime) -> None:
        posted = posted.astimezone(UTC)  # one UPDATE: a later post is never overwritten
        session.exec(
            update(IncidentRow)
            .where(col(IncidentRow.alert_id) == alert_id, col(IncidentRow.last_at) < posted)
            .values(last_at=posted)
        )

    def _open_incident(
        self, session: Session, row: AlertRow, placed: Placement, now: datetime
    ) -> None:
        incident = placed.message.incident
        assert row.id is not None and incident is not None and placed.incident_key is not None
        times = [datetime.fromisoformat(m.created_at) for m in incident.members]
        session.add(
            IncidentRow(
                alert_id=row.id,
                org=row.org,
                key=placed.incident_key,
                level=row.level,
                started_at=min(times),
                last_at=max(times),
                created_at=now,
            )
        )
        for member_id in placed.members:
            self._link(session, member_id, row.id, "member", now)

    def links(self) -> list[AlertLinkRow]:
        """Every link between alerts, oldest first."""
        with self._reading() as session, session.begin():
            rows = list(session.exec(select(AlertLinkRow).order_by(col(AlertLinkRow.id))))
            session.expunge_all()
            return rows

    def incidents(self) -> list[IncidentRow]:
        with self._reading() as session, session.begin():
            rows = list(session.exec(select(IncidentRow).order_by(col(IncidentRow.alert_id))))
            session.expunge_all()
            return rows

    def delivery_ref(self, alert_id: int, receiver: str) -> str | None:
        """The external reference of an alert's delivery to a receiver, once it was sent."""
        with self._reading() as session, session.begin():
            return session.exec(
                select(DeliveryRow.external_ref).where(
                    DeliveryRow.alert_id == alert_id,
                    DeliveryRow.receiver == receiver,
                    DeliveryRow.status == "sent",
                )
            ).first()

    # --- acknowledgements -----------------------------------------------------------------------

    def root_alert(self, alert_id: int) -> int:
        """The alert whose conversation `alert_id` is in: itself, or the parent it follows."""
        with self._reading() as session, session.begin():
            return self._root(session, alert_id)

    def _root(self, session: Session, alert_id: int) -> int:
        parent = session.exec(
            select(AlertLinkRow.parent_alert_id).where(
                AlertLinkRow.alert_id == alert_id, col(AlertLinkRow.kind).in_(FOLLOW_UP_KINDS)
            )
        ).first()
        return parent if parent is not None else alert_id

    def acknowledge(
        self, alert_id: int, *, by: str | None, via: str, now: datetime | None = None
    ) -> tuple[AckRow, bool]:
        """Acknowledge an alert's conversation: the row for its root alert (a follow-up's
        parent), and whether it is new (False: someone acknowledged it before; their row is
        kept). KeyError when there is no such alert."""
        with Session(self.engine) as session, session.begin():
            if session.get(AlertRow, alert_id) is None:
                raise KeyError(alert_id)
            root = self._root(session, alert_id)
            inserted = session.exec(  # two acks at once: one row, the other finds it
                _insert(session, AckRow)
                .values(alert_id=root, by=by, via=via, acked_at=now or utcnow())
                .on_conflict_do_nothing(index_elements=["alert_id"])
                .returning(AckRow.alert_id)
            ).first()
            row = session.get(AckRow, root)
            assert row is not None
            session.expunge(row)
            return row, inserted is not None

    def ack_of(self, alert_id: int) -> AckRow | None:
        """The acknowledgement of the alert's conversation, if any."""
        with self._reading() as session, session.begin():
            row = session.get(AckRow, self._root(session, alert_id))
            if row is not None:
                session.expunge(row)
            return row

    def alert_for_ref(self, ref: str) -> tuple[int, str] | None:
        """(alert id, receiver) of the message a receiver answered with `ref` (Slack
        "channel:ts"), e.g. for a reaction on that message; None when no delivery has it."""
        with self._reading() as session, session.begin():
            found = session.exec(
                select(DeliveryRow.alert_id, DeliveryRow.receiver)
                .where(DeliveryRow.external_ref == ref, DeliveryRow.status == "sent")
                .order_by(col(DeliveryRow.id))
            ).first()
        return None if found is None else (int(found[0]), str(found[1]))

    def progress(self, alert_id: int, receiver: str | None = None) -> Progress:
        """What happened to an alert since it was sent: its follow-ups (those delivered to
        `receiver`, or all when None) and who acknowledged its conversation."""
        from listener.config.model import LEVELS

        with self._reading() as session, session.begin():
            query = (
                select(AlertRow.level)
                .join(AlertLinkRow, col(AlertLinkRow.alert_id) == col(AlertRow.id))
                .where(
                    AlertLinkRow.parent_alert_id == alert_id,
                    col(AlertLinkRow.kind).in_(FOLLOW_UP_KINDS),
                )
            )
            if receiver is not None:
                query = query.join(
                    DeliveryRow, col(DeliveryRow.alert_id) == col(AlertRow.id)
                ).where(DeliveryRow.receiver == receiver, DeliveryRow.status == "sent")
            levels = [str(level) for level in session.exec(query)]
            ack = session.get(AckRow, self._root(session, alert_id))
            if ack is not None:
                session.expunge(ack)
        ranked = [level for level in levels if level in LEVELS]
        highest = min(ranked, key=LEVELS.index) if ranked else None
        return Progress(
            follow_ups=len(levels),
            highest_level=highest,
            acked_by=ack.by if ack else None,
            acked_via=ack.via if ack else None,
            acked_at=_utc(ack.acked_at).isoformat() if ack else None,
        )

    def _set_cursor(self, session: Session, key: str, value: str | None, now: datetime) -> None:
        """Upsert the source's row (a None value keeps the cursor it had)."""
        statement: Insert = _insert(session, CursorRow).values(
            key=key, value=value, updated_at=now, failures=0, last_success_at=now
        )
        session.exec(
            statement.on_conflict_do_update(  # type: ignore[attr-defined]
                index_elements=["key"],
                set_={
                    "value": func.coalesce(statement.excluded.value, CursorRow.value),  # type: ignore[attr-defined]
                    "updated_at": now,
                    "failures": 0,
                    "last_error": None,
                    "last_success_at": now,
                },
            )
        )

    def record_source_failure(self, key: str, error: str, now: datetime | None = None) -> int:
        """Count one more consecutive failure of a source; returns the count."""
        now = now or utcnow()
        with Session(self.engine) as session, session.begin():
            statement = _insert(session, CursorRow).values(
                key=key, updated_at=now, failures=1, last_error=error[:1000]
            )
            counted = session.exec(  # one statement: two failures at once count two
                statement.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "failures": CursorRow.failures + 1,
                        "last_error": error[:1000],
                        "updated_at": now,
                    },
                ).returning(CursorRow.failures)
            ).one()
            return int(counted[0])

    def source_states(self) -> list[CursorRow]:
        with self._reading() as session, session.begin():
            rows = list(session.exec(select(CursorRow).order_by(CursorRow.key)))
            session.expunge_all()
            return rows

    def author_history(
        self,
        handle: str,
        org: str,
        before: datetime,
        days: int = 30,
        *,
        source: str | None = None,
    ) -> AuthorHistory:
        """The author's posts about `org` created in the `days` before `before` (not at or after
        it): how many, and how many of them were labelled complaint or praise. The handle is
        normalised (`@Marieke` is `marieke`); `source` ("bluesky", "x", …) keeps the same name
        on another network apart. Only posts saved since `post_authors` exists count."""
        key = normal_handle(handle)
        if not key:
            return AuthorHistory()
        before = before.astimezone(UTC)  # stored times are UTC
        since = before - timedelta(days=days)
        query = (
            select(DecisionRow.labels)
            .join(PostAuthorRow, col(PostAuthorRow.post_id) == col(DecisionRow.post_id))
            .where(
                col(PostAuthorRow.handle) == key,
                col(PostAuthorRow.created_at) >= since,
                col(PostAuthorRow.created_at) < before,
                col(DecisionRow.org) == org,
            )
        )
        if source is not None:
            query = query.where(col(PostAuthorRow.source) == source)
        with self._reading() as session, session.begin():
            rows = session.exec(query).all()
        posts = complaints = praise = 0
        for labels_json in rows:
            labels = json.loads(labels_json or "[]")
            posts += 1
            complaints += "complaint" in labels
            praise += "praise" in labels
        return AuthorHistory(posts=posts, complaints=complaints, praise=praise)

    # --- posts kept for backtests, and feedback --------------------------------------------------

    def posts_since(self, since: datetime) -> list[Post]:
        """Stored posts created at or after `since`, oldest first."""
        with self._reading() as session, session.begin():
            rows = session.exec(
                select(PostRow.data)
                .where(
                    col(PostRow.created_at) >= since,
                    col(PostRow.source).not_in(STAND_IN_SOURCES),
                )
                .order_by(col(PostRow.created_at), col(PostRow.id))
            ).all()
        return [Post.from_dict(json.loads(data)) for data in rows]

    def prune_posts(self, before: datetime) -> int:
        """Delete posts created before `before`, with their decisions, unless an alert was made
        for them (feedback hangs off alerts). Returns how many posts went."""
        with Session(self.engine) as session, session.begin():
            kept = select(AlertRow.post_id)
            old = select(PostRow.id).where(
                col(PostRow.created_at) < before, col(PostRow.id).not_in(kept)
            )
            session.exec(delete(DecisionRow).where(col(DecisionRow.post_id).in_(old)))
            session.exec(delete(PostAuthorRow).where(col(PostAuthorRow.post_id).in_(old)))
            session.exec(
                delete(EngagementSnapshotRow).where(col(EngagementSnapshotRow.post_id).in_(old))
            )
            result = session.exec(delete(PostRow).where(col(PostRow.id).in_(old)))
            return int(result.rowcount or 0)

    def alert(self, alert_id: int) -> AlertRow | None:
        with self._reading() as session, session.begin():
            row = session.get(AlertRow, alert_id)
            session.expunge_all()
            return row

    def add_feedback(
        self,
        alert_id: int,
        verdict: str,
        *,
        branch: str | None = None,
        by: str | None = None,
        via: str = "cli",
        now: datetime | None = None,
    ) -> FeedbackRow:
        """Record feedback on an alert. KeyError if there is no such alert; ValueError for a
        verdict that is not one of VERDICTS."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        with Session(self.engine) as session, session.begin():
            alert = session.get(AlertRow, alert_id)
            if alert is None:
                raise KeyError(alert_id)
            row = FeedbackRow(
                alert_id=alert_id,
                post_id=alert.post_id,
                org=alert.org,
                search=alert.search,
                verdict=verdict,
                branch=branch if verdict == "wrong-branch" else None,
                by=by,
                via=via,
                created_at=now or utcnow(),
            )
            session.add(row)
            session.flush()
            session.expunge(row)
            return row

    def latest_feedback(self, alert_id: int) -> FeedbackRow | None:
        """The newest feedback on an alert, if any."""
        with self._reading() as session, session.begin():
            row = session.exec(
                select(FeedbackRow)
                .where(FeedbackRow.alert_id == alert_id)
                .order_by(col(FeedbackRow.id).desc())
            ).first()
            if row is not None:
                session.expunge(row)
            return row

    def feedback(self, since: datetime | None = None) -> list[FeedbackRow]:
        """The newest feedback row of each alert (only alerts created since `since`, if given)."""
        with self._reading() as session, session.begin():
            query = select(FeedbackRow).order_by(col(FeedbackRow.alert_id), col(FeedbackRow.id))
            if since is not None:
                query = query.join(AlertRow, col(AlertRow.id) == col(FeedbackRow.alert_id)).where(
                    col(AlertRow.created_at) >= since
                )
            latest: dict[int, FeedbackRow] = {}
            for row in session.exec(query):
                latest[row.alert_id] = row
            session.expunge_all()
        return list(latest.values())

    def alerts_since(self, since: datetime) -> list[AlertRow]:
        """Alerts created at or after `since`, oldest first."""
        with self._reading() as session, session.begin():
            rows = list(
                session.exec(
                    select(AlertRow)
                    .where(col(AlertRow.created_at) >= since)
                    .order_by(col(AlertRow.id))
                )
            )
            session.expunge_all()
            return rows

    # --- outbox --------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 100) -> list[DeliveryRow]:
        """Outbox rows that may be claimed now, oldest first."""
        with self._reading() as session, session.begin():
            rows = list(
                session.exec(
                    select(DeliveryRow)
                    .where(_claimable(now))
                    .order_by(DeliveryRow.id)  # type: ignore[arg-type]
                    .limit(limit)
                )
            )
            session.expunge_all()
            return rows

    def claim(self, delivery_id: int, now: datetime, lease: timedelta) -> Claimed | None:
        """Take one outbox row for delivery, or None if another worker has it. `unclear` on
        the result: an earlier attempt may have reached the receiver (its lease ran out while
        sending, or it ended in an error of UNKNOWN_OUTCOME)."""
        with Session(self.engine) as session, session.begin():
            before = session.get(DeliveryRow, delivery_id)
            if before is None:
                return None
            was = (before.status, before.lease_until, before.last_error)
            result = session.exec(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, _claimable(now))  # type: ignore[arg-type]
                .values(
                    status="sending",
                    lease_until=now + lease,
                    attempts=DeliveryRow.attempts + 1,
                )
            )
            if result.rowcount != 1:
                return None
            return self._claimed(session, [(delivery_id, was)], now + lease)[0]

    def claim_many(
        self,
        now: datetime,
        lease: timedelta,
        *,
        per_receiver: int = 20,
        receivers: int = 100,
        skip: Iterable[str] = (),
    ) -> list[Claimed]:
        """Take the front of each receiver's queue for delivery in one transaction: up to
        `per_receiver` rows of each of up to `receivers` receivers (not those in `skip`), in
        queue order, all under one lease (`now + lease`). Oldest receiver first, each receiver's
        rows in the order they must be sent.

        A receiver's front row must be claimable as `claim` would take it (due, and nothing
        before it in the queue still pending or sending); the rows behind it come along while
        each is due itself (pending and due, or sending with its lease run out), up to the first
        that is not. Each row's claim is the same conditional UPDATE as `claim`'s (status
        `sending`, the lease, one more attempt). No other worker can take a row behind a claimed
        one (the queue rule sees the row before it `sending`), so a receiver's rows are sent by
        one worker, in order. On PostgreSQL the front rows are read `FOR UPDATE SKIP LOCKED`
        (two workers claiming at once split the receivers instead of waiting for each other)
        and the rows behind them `FOR UPDATE`. What the worker does not try, it hands back
        with `release`; what it tried, it records with `finish_many`. If it dies instead, the
        rows come free when the lease runs out, each `unclear` (asked about before re-sent)."""
        skipped = sorted(set(skip))
        return _rerunning(
            lambda: self._claim_many(now, lease, max(1, per_receiver), receivers, skipped)
        )

    def _claim_many(
        self, now: datetime, lease: timedelta, per_receiver: int, receivers: int, skip: list[str]
    ) -> list[Claimed]:
        postgres = self.engine.dialect.name == "postgresql"
        until = now + lease
        with Session(self.engine) as session, session.begin():
            fronts = select(DeliveryRow).where(_claimable(now))
            if skip:
                fronts = fronts.where(col(DeliveryRow.receiver).not_in(skip))
            fronts = fronts.order_by(col(DeliveryRow.id)).limit(receivers)
            if postgres:
                fronts = fronts.with_for_update(skip_locked=True)
            taken: list[tuple[int, tuple[str, datetime | None, str | None]]] = []
            for front in list(session.exec(fronts)):
                rows = [front]
                if per_receiver > 1:
                    behind = (
                        select(DeliveryRow)
                        .where(
                            col(DeliveryRow.receiver) == front.receiver,
                            col(DeliveryRow.id) > front.id,
                            col(DeliveryRow.status).in_(("pending", "sending")),
                        )
                        .order_by(col(DeliveryRow.id))
                        .limit(per_receiver - 1)
                    )
                    if postgres:
                        behind = behind.with_for_update()
                    for row in list(session.exec(behind)):
                        if not _due_itself(row, now):
                            break  # it holds back the rest of the queue
                        rows.append(row)
                was = {row.id or 0: (row.status, row.lease_until, row.last_error) for row in rows}
                ids = list(was)
                first = session.exec(
                    update(DeliveryRow)
                    .where(col(DeliveryRow.id) == ids[0], _claimable(now))
                    .values(status="sending", lease_until=until, attempts=DeliveryRow.attempts + 1)
                )
                if first.rowcount != 1:
                    continue  # another worker took it after all
                taken.append((ids[0], was[ids[0]]))
                if len(ids) > 1:
                    claimed = session.exec(
                        update(DeliveryRow)
                        .where(col(DeliveryRow.id).in_(ids[1:]), _claimable_itself(now))
                        .values(
                            status="sending", lease_until=until, attempts=DeliveryRow.attempts + 1
                        )
                        .returning(col(DeliveryRow.id))
                    )
                    got = {int(row_id) for (row_id,) in claimed}
                    for row_id in ids[1:]:
                        if row_id not in got:
                            break  # (not possible while these rows are locked) the rest waits
                        taken.append((row_id, was[row_id]))
                    # A row after a gap must not be sent before the one in the gap: undo it.
                    taken_ids = {row_id for row_id, _ in taken}
                    for row_id in ids[1:]:
                        if row_id in got and row_id not in taken_ids:
                            self._undo(session, row_id, was[row_id], None)
            if not taken:
                return []
            return self._claimed(session, taken, until)

    def _claimed(
        self,
        session: Session,
        taken: Sequence[tuple[int, tuple[str, datetime | None, str | None]]],
        until: datetime,
    ) -> list[Claimed]:
        """The Claimed of rows just claimed (ids with their status, lease and error before),
        in that order, with their alerts' messages."""
        ids = [row_id for row_id, _ in taken]
        found: dict[int, tuple[int, str, int, str]] = {}
        for chunk in self._chunks(ids):
            for row, message in session.exec(
                select(DeliveryRow, AlertRow.message)
                .join(AlertRow, col(AlertRow.id) == col(DeliveryRow.alert_id))
                .where(col(DeliveryRow.id).in_(chunk))
                .execution_options(populate_existing=True)  # as updated, not as first read
            ):
                found[row.id or 0] = (row.alert_id, row.receiver, row.attempts, message)
        claims = []
        for row_id, (status, lease_until, last_error) in taken:
            alert_id, receiver, attempts, message = found[row_id]
            unclear = status == "sending" or (last_error or "").startswith(UNKNOWN_OUTCOME)
            claims.append(
                Claimed(
                    row_id,
                    alert_id,
                    receiver,
                    attempts,
                    message,
                    unclear=unclear,
                    lease_until=until,
                    was_status=status,
                    was_lease_until=lease_until,
                )
            )
        return claims

    def release(self, claims: Iterable[Claimed]) -> int:
        """Hand back claimed rows that were not tried (a receiver that answered "not now", a
        stop, a lease running short): each as it was before the claim (status, lease, attempts),
        if this claim still holds it. Returns how many were handed back."""
        return self.finish_many((), release=claims)

    def finish_many(self, outcomes: Iterable[Outcome], release: Iterable[Claimed] = ()) -> int:
        """Record what became of claimed rows (sent, to retry, failed), and hand back the
        `release`d ones (as `release` does), in one transaction. Returns how many were handed
        back."""
        done = list(outcomes)
        back = list(release)
        if not done and not back:
            return 0
        with Session(self.engine) as session, session.begin():
            for outcome in done:
                session.exec(
                    update(DeliveryRow)
                    .where(col(DeliveryRow.id) == outcome.delivery_id)
                    .values(**outcome.values())
                )
            released = 0
            for claimed in back:
                was = (claimed.was_status, claimed.was_lease_until, None)
                released += self._undo(session, claimed.delivery_id, was, claimed.attempts)
            return released

    def _undo(
        self,
        session: Session,
        delivery_id: int,
        was: tuple[str, datetime | None, str | None],
        attempts: int | None,
    ) -> int:
        """Put a row this transaction (or a claim whose attempt count was `attempts`) set
        `sending` back as it was; 1 if it did."""
        status, lease_until, _ = was
        where = [col(DeliveryRow.id) == delivery_id, col(DeliveryRow.status) == "sending"]
        if attempts is not None:  # still ours: nobody claimed it since (after our lease ran out)
            where.append(col(DeliveryRow.attempts) == attempts)
        result = session.exec(
            update(DeliveryRow)
            .where(*where)
            .values(status=status, lease_until=lease_until, attempts=DeliveryRow.attempts - 1)
        )
        return int(result.rowcount or 0)

    def mark_sent(self, delivery_id: int, ref: str | None, now: datetime) -> None:
        self.finish_many([Outcome.sent(delivery_id, ref, now)])

    def mark_retry(self, delivery_id: int, error: str, next_attempt_at: datetime) -> None:
        self.finish_many([Outcome.retry(delivery_id, error, next_attempt_at)])

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self.finish_many([Outcome.failed(delivery_id, error)])

    def next_due_at(self) -> datetime | None:
        """When the earliest undelivered row becomes claimable (None when nothing is left):
        only the first row of each receiver's queue counts, as the rows behind it wait for it."""
        with self._reading() as session, session.begin():
            pending = session.exec(
                select(func.min(DeliveryRow.next_attempt_at)).where(
                    DeliveryRow.status == "pending", ~_waiting_before(DeliveryRow)
                )
            ).one()
            leased = session.exec(
                select(func.min(DeliveryRow.lease_until)).where(DeliveryRow.status == "sending")
            ).one()
        times = [t for t in (pending, leased) if t is not None]
        return min(times) if times else None

    # --- digests ------------------------------------------------------------------------------

    def due_digests(self, now: datetime, limit: int = 100) -> list[DigestRow]:
        """Digests that may be claimed now: due, not waiting out a retry, or whose lease ran
        out mid-send; oldest due first."""
        with self._reading() as session, session.begin():
            rows = list(
                session.exec(
                    select(DigestRow)
                    .where(_digest_claimable(now))
                    .order_by(col(DigestRow.due_at), col(DigestRow.id))
                    .limit(limit)
                )
            )
            session.expunge_all()
            return rows

    def claim_digest(self, digest_id: int, now: datetime, lease: timedelta) -> ClaimedDigest | None:
        """Take a due digest for sending, with its held alerts; None if another worker has it."""
        with Session(self.engine) as session, session.begin():
            before = session.get(DigestRow, digest_id)
            unclear = before is not None and (
                before.status == "sending" or (before.last_error or "").startswith(UNKNOWN_OUTCOME)
            )
            result = session.exec(
                update(DigestRow)
                .where(col(DigestRow.id) == digest_id, _digest_claimable(now))
                .values(status="sending", lease_until=now + lease, attempts=DigestRow.attempts + 1)
            )
            if result.rowcount != 1:
                return None
            digest = session.get(DigestRow, digest_id)
            assert digest is not None
            messages = session.exec(
                select(AlertRow.message)
                .join(DeliveryRow, col(DeliveryRow.alert_id) == col(AlertRow.id))
                .join(DigestItemRow, col(DigestItemRow.delivery_id) == col(DeliveryRow.id))
                .where(DigestItemRow.digest_id == digest_id)
                .order_by(col(DeliveryRow.id))
            ).all()
            return ClaimedDigest(
                digest_id=digest_id,
                receiver=digest.receiver,
                route=digest.route,
                reason=digest.reason,
                opened_at=digest.opened_at,
                due_at=digest.due_at,
                attempts=digest.attempts,
                messages=list(messages),
                unclear=unclear,
            )

    def mark_digest_sent(self, digest_id: int, ref: str | None, now: datetime) -> None:
        """The digest went out: it and each of its held deliveries are `sent`."""
        self._finish_digest(
            digest_id,
            {"status": "sent", "external_ref": ref, "sent_at": now, "lease_until": None},
            {"status": "sent", "external_ref": ref, "sent_at": now},
        )

    def mark_digest_retry(self, digest_id: int, error: str, next_attempt_at: datetime) -> None:
        self._finish_digest(
            digest_id,
            {
                "status": "open",
                "last_error": error[:1000],
                "next_attempt_at": next_attempt_at,
                "lease_until": None,
            },
            None,
        )

    def mark_digest_failed(self, digest_id: int, error: str) -> None:
        self._finish_digest(
            digest_id,
            {"status": "failed", "last_error": error[:1000], "lease_until": None},
            {"status": "failed", "last_error": error[:1000]},
        )

    def _finish_digest(
        self, digest_id: int, digest: dict[str, Any], items: dict[str, Any] | None
    ) -> None:
        with Session(self.engine) as session, session.begin():
            session.exec(update(DigestRow).where(col(DigestRow.id) == digest_id).values(**digest))
            if items is not None:
                held = select(DigestItemRow.delivery_id).where(DigestItemRow.digest_id == digest_id)
                session.exec(
                    update(DeliveryRow).where(col(DeliveryRow.id).in_(held)).values(**items)
                )

    def digests(self, status: str | None = None) -> list[DigestRow]:
        """Digests, oldest first (only those with `status`, when given)."""
        with self._reading() as session, session.begin():
            query = select(DigestRow).order_by(col(DigestRow.id))
            if status is not None:
                query = query.where(DigestRow.status == status)
            rows = list(session.exec(query))
            session.expunge_all()
            return rows

    def digest_sizes(self) -> dict[int, int]:
        """digest id → how many alerts it holds."""
        with self._reading() as session, session.begin():
            rows = session.exec(
                select(DigestItemRow.digest_id, func.count()).group_by(col(DigestItemRow.digest_id))
            ).all()
        return {int(digest_id): int(count) for digest_id, count in rows}

    # --- escalations ---------------------------------------------------------------------------

    def escalate_due(self, now: datetime) -> tuple[int, int]:
        """Escalate what is due: a critical alert nobody acknowledged gets a follow-up of kind
        `escalation` to the escalation receivers (instant; silences still apply); one that was
        acknowledged is called off. Returns (escalated, called off)."""
        from listener.spikes import PARENT_TEXT_MAX

        escalated = called_off = 0
        with self._reading() as session, session.begin():  # mostly nothing: no write lock
            if not session.exec(select(_any_escalation_due(now))).one():
                return 0, 0
        with Session(self.engine) as session, session.begin():
            due = list(  # rows another process is escalating now are its, and skipped
                session.exec(
                    select(EscalationRow)
                    .where(EscalationRow.status == "pending", col(EscalationRow.due_at) <= now)
                    .order_by(col(EscalationRow.due_at), col(EscalationRow.alert_id))
                    .with_for_update(skip_locked=True)
                )
            )
            active: list[Silence] | None = None
            for escalation in due:
                escalation.decided_at = now
                if session.get(AckRow, escalation.alert_id) is not None:
                    escalation.status = "called-off"
                    called_off += 1
                    continue
                parent = session.get(AlertRow, escalation.alert_id)
                assert parent is not None
                original = AlertMessage.from_json(parent.message)
                assert parent.id is not None
                text = " ".join(original.post.text.split())
                follow = FollowUp(
                    parent_alert_id=parent.id,
                    kind="escalation",
                    parent_level=parent.level,
                    parent_text=text[:PARENT_TEXT_MAX],
                )
                message = replace(original, follow_up=follow)
                stand_in = f"{parent.post_id}#escalation"
                alert_id = self._add_stand_in_alert(
                    session, original.post, stand_in, ESCALATION_SOURCE, message, now
                )
                self._link(session, alert_id, parent.id, "escalation", now)
                if active is None:
                    active = self._active_silences(session, now)
                receivers = json.loads(escalation.receivers)
                self._write_deliveries(session, alert_id, message, receivers, now, active, None)
                escalation.status = "sent"
                escalation.follow_up_id = alert_id
                escalated += 1
        return escalated, called_off

    def escalations(self) -> list[EscalationRow]:
        with self._reading() as session, session.begin():
            rows = list(session.exec(select(EscalationRow).order_by(col(EscalationRow.alert_id))))
            session.expunge_all()
            return rows

    def outbox_counts(self) -> dict[str, int]:
        with self._reading() as session, session.begin():
            rows = session.exec(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ).all()
        return {status: count for status, count in rows}

    def deliveries(self) -> list[DeliveryRow]:
        with self._reading() as session, session.begin():
            rows = list(session.exec(select(DeliveryRow).order_by(DeliveryRow.id)))  # type: ignore[arg-type]
            session.expunge_all()
            return rows

    # --- privacy: alert retention and forgetting an author (issue 8) -----------------------------

    FORGOTTEN_SOURCE = FORGOTTEN_SOURCE
    #: The last_error of an outbox row that will not be sent because its post was forgotten.
    FORGOTTEN_REASON = "forgotten on request"

    def prune_alerts(self, before: datetime) -> dict[str, int]:
        """Delete the alerts created before `before` with everything hanging off them (outbox
        rows, digest items, links, incidents, feedback, acknowledgements, escalations) and their
        posts, unless a newer alert still names the post. Returns how many rows of each kind
        went ({} when nothing was that old)."""
        with Session(self.engine) as session, session.begin():
            old: list[int] = []
            posts: set[str] = set()
            for alert_id, post_id in session.exec(
                select(AlertRow.id, AlertRow.post_id).where(col(AlertRow.created_at) < before)
            ):
                if alert_id is not None:
                    old.append(int(alert_id))
                    posts.add(post_id)
            if not old:
                return {}
            counts = self._delete_alerts(session, old)
            named: set[str] = set()
            for chunk in self._chunks(sorted(posts)):
                named.update(
                    session.exec(select(AlertRow.post_id).where(col(AlertRow.post_id).in_(chunk)))
                )
            for kind, n in self._delete_posts(session, sorted(posts - named)).items():
                counts[kind] = counts.get(kind, 0) + n
        return {kind: n for kind, n in counts.items() if n}

    def forget_author(
        self,
        handle: str,
        *,
        source: str | None = None,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Erase what is stored about an author (a request under the GDPR): their posts with
        the decisions, engagement snapshots and `post_authors` rows, and the text of the alerts
        about their posts. Alert rows stay (reports count them), each re-pointed at a stand-in
        post `forgotten:<alert id>` (source FORGOTTEN_SOURCE: no text, author or URL), with its
        stored message replaced by a redacted one (`_redacted`); feedback on those alerts goes
        with the post it judged. Their outbox rows still `pending` or `held` become `failed`
        (FORGOTTEN_REASON) and leave the digests not sent yet, and their pending escalations
        are called off, so nothing about them is sent later. Other alerts quoting the posts (a
        follow-up's parent text, an incident's members) lose the quote.

        Posts are found by the normalised handle in `post_authors`, and by the author handle in
        the JSON of posts without such a row (saved before the table existed, and listener's
        own stand-in posts of reach and escalation follow-ups). `source` ("bluesky", "x", …)
        leaves the same name on another network alone. Returns counts per kind; with
        `dry_run`, what would go, changing nothing. ValueError for an empty handle."""
        key = normal_handle(handle)
        if not key:
            raise ValueError("give the author's handle, such as @marieke.bsky.social")
        now = now or utcnow()
        with Session(self.engine) as session:
            transaction = session.begin()
            try:
                post_ids = self._posts_of_author(session, key, source)
                counts = self._forget_posts(session, post_ids, now) if post_ids else {}
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return {kind: n for kind, n in counts.items() if n}

    def _posts_of_author(self, session: Session, key: str, source: str | None) -> list[str]:
        """Ids of the posts by the author with normalised handle `key` (on `source` only, when
        given): from `post_authors`, from the JSON of posts without such a row, and the
        stand-in posts of listener's follow-ups of those (`<post id>#reach1`)."""
        by_row = select(PostAuthorRow.post_id).where(PostAuthorRow.handle == key)
        if source is not None:
            by_row = by_row.where(PostAuthorRow.source == source)
        found = set(session.exec(by_row))
        unlisted = select(PostRow.id, PostRow.data).where(
            ~exists().where(col(PostAuthorRow.post_id) == col(PostRow.id)),
            col(PostRow.source) != self.FORGOTTEN_SOURCE,
        )
        if source is not None:
            unlisted = unlisted.where(col(PostRow.source) == source)
        last = ""
        while True:  # in pages by id: the JSON of every such post is read
            page = session.exec(
                unlisted.where(col(PostRow.id) > last).order_by(col(PostRow.id)).limit(500)
            ).all()
            if not page:
                break
            last = page[-1][0]
            for post_id, data in page:
                try:
                    author = json.loads(data).get("author")
                except (ValueError, AttributeError):
                    continue
                written = author.get("handle") if isinstance(author, dict) else None
                if isinstance(written, str) and normal_handle(written) == key:
                    found.add(post_id)
        for post_id in sorted(found):
            if "#" not in post_id:
                found.update(
                    session.exec(
                        select(PostRow.id).where(
                            col(PostRow.id).startswith(f"{post_id}#", autoescape=True)
                        )
                    )
                )
        return sorted(found)

    def _forget_posts(self, session: Session, post_ids: list[str], now: datetime) -> dict[str, int]:
        """`forget_author` once the posts are found; counts per kind."""
        counts: dict[str, int] = {}

        def add(kind: str, n: int) -> None:
            counts[kind] = counts.get(kind, 0) + n

        alerts: list[AlertRow] = []
        for chunk in self._chunks(post_ids):
            alerts += session.exec(select(AlertRow).where(col(AlertRow.post_id).in_(chunk)))
        alert_ids = sorted(row.id for row in alerts if row.id is not None)
        for row in alerts:
            stand_in = f"forgotten:{row.id}"
            original = session.get(PostRow, row.post_id)
            created = original.created_at if original is not None else row.created_at
            if session.get(PostRow, stand_in) is None:
                blank = Post(stand_in, self.FORGOTTEN_SOURCE, "", _utc(created))
                session.add(
                    PostRow(
                        id=stand_in,
                        source=self.FORGOTTEN_SOURCE,
                        created_at=created,
                        fetched_at=now,
                        data=json.dumps(blank.to_dict(), ensure_ascii=False),
                    )
                )
                session.flush()
            row.post_id = stand_in
            row.message = self._redacted(row.message, stand_in)
            session.add(row)
            add("alerts redacted", 1)
        session.flush()
        for chunk in self._chunks(alert_ids):
            stopped = list(
                session.exec(
                    select(DeliveryRow.id).where(
                        col(DeliveryRow.alert_id).in_(chunk),
                        col(DeliveryRow.status).in_(("pending", "held")),
                    )
                )
            )
            if stopped:
                add("deliveries stopped", len(stopped))
                unsent = select(DigestRow.id).where(col(DigestRow.status).in_(("open", "sending")))
                result = session.exec(
                    delete(DigestItemRow).where(
                        col(DigestItemRow.delivery_id).in_(stopped),
                        col(DigestItemRow.digest_id).in_(unsent),
                    )
                )
                add("digest items removed", int(result.rowcount or 0))
                session.exec(
                    update(DeliveryRow)
                    .where(col(DeliveryRow.id).in_(stopped))
                    .values(status="failed", last_error=self.FORGOTTEN_REASON, lease_until=None)
                )
            result = session.exec(
                update(EscalationRow)
                .where(
                    col(EscalationRow.alert_id).in_(chunk), col(EscalationRow.status) == "pending"
                )
                .values(status="called-off", decided_at=now)
            )
            add("escalations called off", int(result.rowcount or 0))
            result = session.exec(delete(FeedbackRow).where(col(FeedbackRow.alert_id).in_(chunk)))
            add("feedback", int(result.rowcount or 0))
        add("digests emptied", self._delete_empty_digests(session, status="open"))
        add("quotes in other alerts", self._unquote(session, alert_ids, set(post_ids)))
        for kind, n in self._delete_posts(session, post_ids).items():
            add(kind, n)
        return counts

    def _unquote(self, session: Session, alert_ids: list[int], posts: set[str]) -> int:
        """Take the forgotten posts' text out of other alerts: follow-ups quoting a forgotten
        parent, and incidents listing a forgotten post among their members. How many changed."""
        from listener.alert import IncidentMember

        forgotten = set(alert_ids)
        others: set[int] = set()
        for chunk in self._chunks(alert_ids):
            for child, parent, kind in session.exec(
                select(
                    AlertLinkRow.alert_id, AlertLinkRow.parent_alert_id, AlertLinkRow.kind
                ).where(
                    or_(
                        col(AlertLinkRow.parent_alert_id).in_(chunk),
                        col(AlertLinkRow.alert_id).in_(chunk),
                    )
                )
            ):
                if kind != "member" and parent in forgotten and child not in forgotten:
                    others.add(child)  # a follow-up quoting its forgotten parent
                if kind == "member" and child in forgotten and parent not in forgotten:
                    others.add(parent)  # an incident listing a forgotten post
        changed = 0
        for alert_id in sorted(others):
            row = session.get(AlertRow, alert_id)
            if row is None or not row.message:
                continue
            message = AlertMessage.from_json(row.message)
            follow = message.follow_up
            if follow is not None and follow.parent_alert_id in forgotten:
                follow = replace(follow, parent_text="")
            incident = message.incident
            if incident is not None:
                members = [
                    IncidentMember(m.alert_id, self.FORGOTTEN_SOURCE, "", None, m.created_at)
                    if m.post_id in posts or m.alert_id in forgotten
                    else m
                    for m in incident.members
                ]
                incident = replace(incident, members=members)
            text = replace(message, follow_up=follow, incident=incident).to_json()
            if text != row.message:
                row.message = text
                session.add(row)
                changed += 1
        return changed

    @classmethod
    def _redacted(cls, text: str, stand_in: str) -> str:
        """An alert's stored message with nothing of its post or author left: no text, author,
        URL, place, counts or reply, no evidence or reasons (they quote the post), no quoted
        parent text or incident members. The organisation, branch, search, level, score and
        labels stay, and the post's network and time, so reports still count the alert."""
        from listener.alert import IncidentMember

        if not text:
            return text
        message = AlertMessage.from_json(text)
        post = Post(stand_in, message.post.source, "", message.post.created_at)
        follow = message.follow_up
        incident = message.incident
        if incident is not None:
            incident = replace(
                incident,
                members=[
                    IncidentMember(m.alert_id, cls.FORGOTTEN_SOURCE, "", None, m.created_at)
                    for m in incident.members
                ],
            )
        redacted = replace(
            message,
            post=post,
            reasons=[],
            evidence=[],
            distance_km=None,
            follow_up=None if follow is None else replace(follow, parent_text=""),
            incident=incident,
        )
        return redacted.to_json()

    def _delete_alerts(self, session: Session, alert_ids: list[int]) -> dict[str, int]:
        """Delete alerts with every row that refers to them; counts per kind."""
        counts: dict[str, int] = {}

        def gone(kind: str, statement: Any) -> None:
            counts[kind] = counts.get(kind, 0) + int(session.exec(statement).rowcount or 0)

        for chunk in self._chunks(alert_ids):
            deliveries = select(DeliveryRow.id).where(col(DeliveryRow.alert_id).in_(chunk))
            silenced = col(SilencedDeliveryRow.delivery_id).in_(deliveries)
            gone("silenced deliveries", delete(SilencedDeliveryRow).where(silenced))
            held = col(DigestItemRow.delivery_id).in_(deliveries)
            gone("digest items", delete(DigestItemRow).where(held))
            gone("deliveries", delete(DeliveryRow).where(col(DeliveryRow.alert_id).in_(chunk)))
            gone("feedback", delete(FeedbackRow).where(col(FeedbackRow.alert_id).in_(chunk)))
            linked = or_(
                col(AlertLinkRow.alert_id).in_(chunk), col(AlertLinkRow.parent_alert_id).in_(chunk)
            )
            gone("links", delete(AlertLinkRow).where(linked))
            gone("incidents", delete(IncidentRow).where(col(IncidentRow.alert_id).in_(chunk)))
            gone("escalations", delete(EscalationRow).where(col(EscalationRow.alert_id).in_(chunk)))
            gone("acks", delete(AckRow).where(col(AckRow.alert_id).in_(chunk)))
            gone("alerts", delete(AlertRow).where(col(AlertRow.id).in_(chunk)))
        counts["digests"] = self._delete_empty_digests(session)
        return counts

    def _delete_empty_digests(self, session: Session, status: str | None = None) -> int:
        """Delete the digests left without alerts (only those with `status`, when given)."""
        empty = delete(DigestRow).where(
            ~exists().where(col(DigestItemRow.digest_id) == col(DigestRow.id))
        )
        if status is not None:
            empty = empty.where(col(DigestRow.status) == status)
        return int(session.exec(empty).rowcount or 0)

    def _delete_posts(self, session: Session, post_ids: list[str]) -> dict[str, int]:
        """Delete posts with their decisions, authors, snapshots and feedback; counts per kind.
        The caller makes sure no alert names them any more."""
        counts: dict[str, int] = {}

        def gone(kind: str, statement: Any) -> None:
            counts[kind] = counts.get(kind, 0) + int(session.exec(statement).rowcount or 0)

        for chunk in self._chunks(post_ids):
            gone("feedback", delete(FeedbackRow).where(col(FeedbackRow.post_id).in_(chunk)))
            gone("decisions", delete(DecisionRow).where(col(DecisionRow.post_id).in_(chunk)))
            author = col(PostAuthorRow.post_id).in_(chunk)
            gone("post authors", delete(PostAuthorRow).where(author))
            counted = col(EngagementSnapshotRow.post_id).in_(chunk)
            gone("engagement snapshots", delete(EngagementSnapshotRow).where(counted))
            gone("posts", delete(PostRow).where(col(PostRow.id).in_(chunk)))
        return counts

    @staticmethod
    def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[list[Any]]:
        """`items` in lists of `size`: IN lists stay within the databases' parameter limits."""
        for start in range(0, len(items), size):
            yield list(items[start : start + size])


def _add_alert(session: Session, post_id: str, message: AlertMessage, now: datetime) -> AlertRow:
    """Insert the alert row for `message` about `post_id`; its stored message carries its id."""
    row = AlertRow(
        post_id=post_id,
        org=message.org_id,
        branch=message.branch_id,
        search=message.search_id,
        level=message.level,
        score=message.score,
        created_at=now,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    row.message = replace(message, alert_id=row.id).to_json()
    return row


def _snapshot_row(post_id: str, sighting: Sighting) -> EngagementSnapshotRow:
    return EngagementSnapshotRow(
        post_id=post_id,
        seen_at=sighting.seen_at,
        likes=sighting.likes,
        reposts=sighting.reposts,
        replies=sighting.replies,
    )


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Due now, and first in its receiver's queue: alerts reach each receiver in order, so a
    row waiting out a Retry-After holds back the rows behind it for the same receiver. Rows
    sent, failed or silenced are done: they hold nothing back."""
    return and_(_claimable_itself(now), ~_waiting_before(DeliveryRow))


def _claimable_itself(now: datetime) -> ColumnElement[bool]:
    """Due now, whatever is before it in the queue: pending and due, or its lease ran out."""
    row = DeliveryRow
    pending = and_(col(row.status) == "pending", col(row.next_attempt_at) <= now)
    expired = and_(col(row.status) == "sending", col(row.lease_until) < now)
    return or_(pending, expired)


def _due_itself(row: DeliveryRow, now: datetime) -> bool:
    """`_claimable_itself` of a row read."""
    if row.status == "pending":
        return _utc(row.next_attempt_at) <= now
    return row.status == "sending" and row.lease_until is not None and _utc(row.lease_until) < now


def _waiting_before(row: type[DeliveryRow]) -> ColumnElement[bool]:
    """An earlier row of the same receiver is still to be delivered."""
    earlier = aliased(DeliveryRow)
    return exists().where(
        col(earlier.receiver) == col(row.receiver),
        col(earlier.id) < col(row.id),
        col(earlier.status).in_(("pending", "sending")),
    )


def _any_escalation_due(now: datetime) -> ColumnElement[bool]:
    row = EscalationRow
    return exists().where(col(row.status) == "pending", col(row.due_at) <= now)


def _digest_claimable(now: datetime) -> ColumnElement[bool]:
    """A digest that is due and not waiting out a retry, or whose sender's lease ran out."""
    row = DigestRow
    waiting = and_(
        col(row.status) == "open",
        col(row.due_at) <= now,
        or_(col(row.next_attempt_at).is_(None), col(row.next_attempt_at) <= now),
    )
    expired = and_(col(row.status) == "sending", col(row.lease_until) < now)
    return or_(waiting, expired)


def _post_id(post: Post) -> str:
    return post.id


def _utc(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives back naive datetimes, which are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
