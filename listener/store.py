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
an alert is delivered at least once and a crash costs one duplicate at most.

SQLite runs in WAL mode with `busy_timeout` and `foreign_keys` on every connection, and every
transaction starts with `BEGIN IMMEDIATE`, so a read-then-write never fails on a lock upgrade.
All times are timezone-aware UTC (sqlmodel stores and returns them so).

Conversations and spikes (`listener.spikes.Grouper`, when `save_batch` is given one) are decided
in the same transaction: each new alert is placed against the organisation's recent alerts and
open incidents, as stored so far, the batch's own earlier alerts included. A follow-up (a reply
or near-duplicate of an alerted post, one more post of an incident) is an alert row like any
other, so the unique keys and the outbox hold for it too, plus a row in `alert_links` naming
the alert whose thread it joins; an incident is the alert of the post that completed the spike,
with a row in `incidents` and `member` links to the alerts it names. Only new tables: databases
made before these existed get them at start-up (`create_all`), and their alerts load as before.

`post_authors` holds each saved post's author (normalised handle and source) and time, indexed
by handle and time, so `author_history` counts an author's earlier posts about an organisation
without reading post JSON. It is filled by `save_batch`: posts saved before the table existed
have no row and do not count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Index,
    UniqueConstraint,
    and_,
    delete,
    event,
    exists,
    func,
    or_,
    update,
)
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from listener.alert import FOLLOW_UP_KINDS, AlertMessage
from listener.conversation import Recent
from listener.match import normal_handle
from listener.post import Post
from listener.spikes import Grouper, OpenIncident, Placement
from listener.urgency.context import AuthorHistory


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
    status: str = Field(default="pending", index=True)  # pending | sending | sent | failed
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
    follow_ups: int = 0
    incidents: int = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    alert_id: int
    receiver: str
    attempts: int
    message: str


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
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
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        SQLModel.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- sources and posts ---------------------------------------------------------------------

    def cursor(self, key: str) -> str | None:
        with Session(self.engine) as session, session.begin():
            row = session.get(CursorRow, key)
            return row.value if row else None

    def known_post_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        with Session(self.engine) as session, session.begin():
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
    ) -> SaveResult:
        """Save new posts, decisions, alerts, outbox rows and the cursor: all or nothing. With a
        `grouper`, a new alert may become a follow-up of an earlier one or an incident."""
        now = now or utcnow()
        new_posts = alerts = deliveries = follow_ups = incidents = 0
        with Session(self.engine) as session, session.begin():
            for item in decided:
                if session.get(PostRow, item.post.id) is not None:
                    continue
                post = item.post
                session.add(
                    PostRow(
                        id=post.id,
                        source=post.source,
                        created_at=post.created_at.astimezone(UTC),
                        fetched_at=now,
                        data=json.dumps(post.to_dict(), ensure_ascii=False),
                    )
                )
                session.flush()  # rows that refer to the post come after it
                handle = normal_handle(post.author.handle or "") if post.author else ""
                if handle:
                    session.add(
                        PostAuthorRow(
                            post_id=post.id,
                            handle=handle,
                            source=post.source,
                            created_at=post.created_at.astimezone(UTC),
                        )
                    )
                d = item.decision
                session.add(
                    DecisionRow(
                        post_id=post.id,
                        org=d["org"],
                        branch=d["branch"],
                        search=d.get("query"),
                        urgency=d["urgency"],
                        score=d["score"],
                        labels=json.dumps(d.get("labels", []), ensure_ascii=False),
                        evidence=json.dumps(d.get("evidence", []), ensure_ascii=False),
                        distance_km=d.get("distance_km"),
                        decided_at=now,
                    )
                )
                new_posts += 1
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
                if grouper is not None:
                    recent, open_incidents = self._recent(session, message, grouper.lookback)
                    placed = grouper.place(message, receivers, recent, open_incidents)
                    message, receivers = placed.message, placed.receivers
                row = AlertRow(
                    post_id=post.id,
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
                for receiver in receivers:
                    session.add(
                        DeliveryRow(
                            alert_id=row.id,
                            receiver=receiver,
                            next_attempt_at=now,
                            created_at=now,
                        )
                    )
                    deliveries += 1
            self._set_cursor(session, source_key, cursor, now)
        return SaveResult(new_posts, alerts, deliveries, follow_ups, incidents)

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
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            links = session.exec(
                select(AlertLinkRow.alert_id, AlertLinkRow.parent_alert_id).where(
                    col(AlertLinkRow.alert_id).in_(chunk),
                    col(AlertLinkRow.kind).in_(FOLLOW_UP_KINDS),
                )
            )
            for child, parent in links:
                roots[child] = parent
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
                message=AlertMessage.from_json(text),
                root_id=roots.get(alert_id),
                receivers=tuple(receivers.get(alert_id, ())),
            )
            for alert_id, text in rows
            if alert_id is not None and text
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
        row = session.get(IncidentRow, alert_id)
        if row is not None and posted.astimezone(UTC) > row.last_at:
            row.last_at = posted.astimezone(UTC)
            session.add(row)

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
        with Session(self.engine) as session, session.begin():
            rows = list(session.exec(select(AlertLinkRow).order_by(col(AlertLinkRow.id))))
            session.expunge_all()
            return rows

    def incidents(self) -> list[IncidentRow]:
        with Session(self.engine) as session, session.begin():
            rows = list(session.exec(select(IncidentRow).order_by(col(IncidentRow.alert_id))))
            session.expunge_all()
            return rows

    def delivery_ref(self, alert_id: int, receiver: str) -> str | None:
        """The external reference of an alert's delivery to a receiver, once it was sent."""
        with Session(self.engine) as session, session.begin():
            return session.exec(
                select(DeliveryRow.external_ref).where(
                    DeliveryRow.alert_id == alert_id,
                    DeliveryRow.receiver == receiver,
                    DeliveryRow.status == "sent",
                )
            ).first()

    def _set_cursor(self, session: Session, key: str, value: str | None, now: datetime) -> None:
        row = session.get(CursorRow, key)
        if row is None:
            row = CursorRow(key=key, value=value, updated_at=now)
        elif value is not None:
            row.value = value
        row.updated_at = now
        row.failures = 0
        row.last_error = None
        row.last_success_at = now
        session.add(row)

    def record_source_failure(self, key: str, error: str, now: datetime | None = None) -> int:
        """Count one more consecutive failure of a source; returns the count."""
        now = now or utcnow()
        with Session(self.engine) as session, session.begin():
            row = session.get(CursorRow, key) or CursorRow(key=key, updated_at=now)
            row.failures += 1
            row.last_error = error[:1000]
            row.updated_at = now
            session.add(row)
            return row.failures

    def source_states(self) -> list[CursorRow]:
        with Session(self.engine) as session, session.begin():
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
        with Session(self.engine) as session, session.begin():
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
        with Session(self.engine) as session, session.begin():
            rows = session.exec(
                select(PostRow.data)
                .where(col(PostRow.created_at) >= since)
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
            result = session.exec(delete(PostRow).where(col(PostRow.id).in_(old)))
            return int(result.rowcount or 0)

    def alert(self, alert_id: int) -> AlertRow | None:
        with Session(self.engine) as session, session.begin():
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

    def feedback(self, since: datetime | None = None) -> list[FeedbackRow]:
        """The newest feedback row of each alert (only alerts created since `since`, if given)."""
        with Session(self.engine) as session, session.begin():
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
        with Session(self.engine) as session, session.begin():
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
        with Session(self.engine) as session, session.begin():
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
        """Take one outbox row for delivery, or None if another worker has it."""
        with Session(self.engine) as session, session.begin():
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
            row = session.get(DeliveryRow, delivery_id)
            assert row is not None
            alert = session.get(AlertRow, row.alert_id)
            assert alert is not None
            return Claimed(row.id or 0, row.alert_id, row.receiver, row.attempts, alert.message)

    def mark_sent(self, delivery_id: int, ref: str | None, now: datetime) -> None:
        self._finish(delivery_id, status="sent", external_ref=ref, sent_at=now, lease_until=None)

    def mark_retry(self, delivery_id: int, error: str, next_attempt_at: datetime) -> None:
        self._finish(
            delivery_id,
            status="pending",
            last_error=error[:1000],
            next_attempt_at=next_attempt_at,
            lease_until=None,
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._finish(delivery_id, status="failed", last_error=error[:1000], lease_until=None)

    def _finish(self, delivery_id: int, **values: Any) -> None:
        with Session(self.engine) as session, session.begin():
            session.exec(
                update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(**values)  # type: ignore[arg-type]
            )

    def next_due_at(self) -> datetime | None:
        """When the earliest undelivered row becomes claimable (None when nothing is left)."""
        with Session(self.engine) as session, session.begin():
            pending = session.exec(
                select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.status == "pending")
            ).one()
            leased = session.exec(
                select(func.min(DeliveryRow.lease_until)).where(DeliveryRow.status == "sending")
            ).one()
        times = [t for t in (pending, leased) if t is not None]
        return min(times) if times else None

    def outbox_counts(self) -> dict[str, int]:
        with Session(self.engine) as session, session.begin():
            rows = session.exec(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ).all()
        return {status: count for status, count in rows}

    def deliveries(self) -> list[DeliveryRow]:
        with Session(self.engine) as session, session.begin():
            rows = list(session.exec(select(DeliveryRow).order_by(DeliveryRow.id)))  # type: ignore[arg-type]
            session.expunge_all()
            return rows


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Due now, and first in its receiver's queue: alerts reach each receiver in order, so a
    row waiting out a Retry-After holds back the rows behind it for the same receiver."""
    row = DeliveryRow
    earlier = aliased(DeliveryRow)
    pending = and_(col(row.status) == "pending", col(row.next_attempt_at) <= now)
    expired = and_(col(row.status) == "sending", col(row.lease_until) < now)
    waiting_before = exists().where(
        col(earlier.receiver) == col(row.receiver),
        col(earlier.id) < col(row.id),
        col(earlier.status).in_(("pending", "sending")),
    )
    return and_(or_(pending, expired), ~waiting_before)
