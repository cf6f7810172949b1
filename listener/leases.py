"""Which instance polls which source, when several daemons share one database.

The database is the coordinator; there is no cluster protocol of our own. `poll_leases` has a
row per source key: the instance that polls it (`owner`), until when its claim holds (`until`),
and when the next poll is due (`due`).

- **One poll at a time.** An instance polls a source only after `claim` took the row, in one
  conditional upsert (`INSERT … ON CONFLICT DO UPDATE … WHERE`, on SQLite and PostgreSQL alike):
  the row is taken only when no claim holds it (`until` has passed). The holder `renew`s the
  claim with each batch it saves, in the batch's own transaction (`fence`: conditional on still
  being the owner, and holding the row until the commit), and `release`s it at the end, setting
  when the next poll is due. An instance stalled past its lease cannot save or move the cursor.
- **Once per interval, not once per instance.** Every instance schedules every source, but a
  claim also needs the poll to be due, so N instances still poll a source about once per
  interval, and a source backing off (its next poll due later) backs off on all of them.
- **The last owner keeps it.** An instance that polled a source takes the next poll as soon as
  it is due; another one only `handover` later. A source stays on one instance while that one
  lives: Jetstream's websocket is open on one instance, not on all of them.
- **Takeover.** When an instance dies mid-poll, its claim runs out within `lease` (45 s by
  default) and the next instance to try takes over, from the cursor of the last batch saved (a
  batch and its cursor are saved in one transaction, so nothing is lost or skipped). When it
  dies between polls, another instance takes the poll `handover` after it was due. A claim held
  by a process on this same host that no longer exists (a crash, then a restart) is taken at
  once, and an instance that stops cleanly `resign`s its sources, so the others poll them as
  soon as they are due. An instance that finds a claim it cannot take yet learns from `Claim`
  when to try again.
- **Clocks.** Times are the database server's clock on PostgreSQL (`clock_timestamp()`), so
  instances on hosts whose clocks disagree still agree on who holds what; on SQLite, which is
  one host, this machine's clock.

A single instance behaves as before: it wins every claim of its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, or_
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, select, update

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=45)
#: How long after a poll was due another instance may take it from the instance that ran it last
#: (longer than the 10 s of slack `Daemon._next_due` gives that instance's own next tick).
HANDOVER = timedelta(seconds=15)


class PollLeaseRow(SQLModel, table=True):
    __tablename__ = "poll_leases"
    key: str = Field(primary_key=True)  # the source's key, e.g. "rss:search:eemland-brand"
    owner: str  # the instance that polls it, or polled it last: "host:pid:token"
    until: datetime  # its claim holds until then (a released claim: the moment of release)
    due: datetime  # the next poll is due then


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `Leases.claim`: taken, or who holds the source and when to try again."""

    taken: bool
    owner: str
    until: datetime
    due: datetime
    retry_at: datetime | None = None  # not taken: the earliest moment a claim could succeed


def instance_name() -> str:
    """This process's name in `poll_leases`: host, process id and a random token (a restarted
    process that got the same pid is still another instance)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _gone(owner: str) -> bool:
    """Whether `owner` was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process (an earlier instance name, e.g. in tests): not gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


class Leases:
    """Claims on source polls for one instance (`owner`), in the database behind `engine`."""

    def __init__(
        self,
        engine: Engine,
        owner: str | None = None,
        *,
        lease: timedelta = LEASE,
        handover: timedelta = HANDOVER,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.owner = owner or instance_name()
        self.lease = lease
        self.handover = handover
        self._clock = clock  # None: the database's clock (PostgreSQL) or this machine's

    def now(self, session: Session | None = None) -> datetime:
        if self._clock is not None:
            return self._clock()
        if self.engine.dialect.name == "postgresql":
            if session is not None:
                return _utc(session.exec(sql_text("SELECT clock_timestamp()")).one()[0])  # type: ignore[call-overload]
            with Session(self.engine) as own:
                return self.now(own)
        return datetime.now(UTC)

    def claim(self, key: str, *, due_matters: bool = True) -> Claim:
        """Take the poll of `key` if no claim holds it and (with `due_matters`) it is due; a
        `listener run --once` polls whether due or not, but still one instance at a time."""
        with Session(self.engine) as session, session.begin():
            now = self.now(session)
            row = session.get(PollLeaseRow, key)
            gone = row is not None and row.owner != self.owner and _gone(row.owner)
            free = col(PollLeaseRow.until) <= now
            ours = col(PollLeaseRow.owner) == self.owner
            if gone and row is not None:  # its process is gone, its claim with it: as if ours
                ours = or_(ours, col(PollLeaseRow.owner) == row.owner)
                free = or_(free, col(PollLeaseRow.owner) == row.owner)
            condition = free
            if due_matters:
                condition = and_(
                    free,
                    or_(
                        and_(ours, col(PollLeaseRow.due) <= now),
                        col(PollLeaseRow.due) <= now - self.handover,
                    ),
                )
            postgres = session.get_bind().dialect.name == "postgresql"
            insert = (postgresql.insert if postgres else sqlite.insert)(PollLeaseRow).values(
                key=key, owner=self.owner, until=now + self.lease, due=now
            )
            taken = session.exec(
                insert.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"owner": self.owner, "until": now + self.lease},
                    where=condition,
                ).returning(col(PollLeaseRow.owner))
            ).first()
            if taken is not None:
                if gone and row is not None:
                    log.warning("%s: took over from %s, which is gone", key, row.owner)
                return Claim(True, self.owner, now + self.lease, now)
            held = session.exec(select(PollLeaseRow).where(PollLeaseRow.key == key)).one()
            until, due = _utc(held.until), _utc(held.due)
            wait_due = due if held.owner == self.owner else due + self.handover
            retry_at = max(until, wait_due if due_matters else until, now)
            return Claim(False, held.owner, until, due, retry_at)

    def renew(self, key: str) -> bool:
        """Extend this instance's claim on `key`; False when it is not ours any more (we were
        stalled past the lease and another instance took the source over)."""
        with Session(self.engine) as session, session.begin():
            return self.fence(key)(session)

    def fence(self, key: str) -> Callable[[Session], bool]:
        """For `Store.save_batch`: renew this instance's claim on `key` inside the save's own
        transaction, True when it is still ours. The row stays locked until the save commits,
        so no other instance takes the source over while its batch and cursor are saved."""

        def renew_in(session: Session) -> bool:
            now = self.now(session)
            result = session.exec(
                update(PollLeaseRow)
                .where(col(PollLeaseRow.key) == key, col(PollLeaseRow.owner) == self.owner)
                .values(until=now + self.lease)
            )
            return bool(result.rowcount)

        return renew_in

    def release(self, key: str, next_due: datetime | timedelta) -> None:
        """End this instance's claim on `key`; its next poll is due at `next_due` (or that long
        from now). It stays the owner, so it takes the next poll first."""
        with Session(self.engine) as session, session.begin():
            now = self.now(session)
            due = now + next_due if isinstance(next_due, timedelta) else next_due
            session.exec(
                update(PollLeaseRow)
                .where(col(PollLeaseRow.key) == key, col(PollLeaseRow.owner) == self.owner)
                .values(until=now, due=due)
            )

    def resign(self) -> int:
        """On a clean stop: hand this instance's sources to the others, which then take each
        one's next poll when it is due instead of `handover` later. Returns how many."""
        with Session(self.engine) as session, session.begin():
            now = self.now(session)
            rows = list(session.exec(select(PollLeaseRow).where(PollLeaseRow.owner == self.owner)))
            for row in rows:
                row.due = _utc(row.due) - self.handover  # others: when due, not later
                row.until = min(_utc(row.until), now)
                session.add(row)
            return len(rows)

    def rows(self) -> list[PollLeaseRow]:
        """Every source's lease row (`listener status`)."""
        with Session(self.engine) as session, session.begin():
            found = list(session.exec(select(PollLeaseRow).order_by(col(PollLeaseRow.key))))
            session.expunge_all()
            return found
