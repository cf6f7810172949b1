"""Deliver what the outbox holds: claim a row, send it, mark it sent, retried or failed.

Transient errors (network, timeouts, HTTP 429/5xx, SMTP 4xx) are retried with exponential backoff,
or after exactly the `Retry-After` the receiver asked for; permanent ones (Slack
`channel_not_found`,
SMTP 5xx) are marked failed with the reason and logged as errors. A receiver that is not available
(its token was removed from the environment) keeps its rows pending, so fixing the setting delivers
them. Rows are sent oldest first, and a receiver that answered "not now" is not tried again in the
same round, so its alerts stay in order.

A follow-up (`AlertMessage.follow_up`) is sent with its parent's external reference for the same
receiver filled in, so Slack threads it under the parent's message and e-mail answers the
parent's Message-ID; the parent comes earlier in that receiver's queue, so it was tried first.
Once a follow-up is in the thread, a notifier with `update_parent` re-renders the parent's
message (its header counts the follow-ups); a failure there is logged, the follow-up stays sent.

Nothing doubled where the receiver can tell: when an earlier attempt may have reached the
receiver (a timeout or another error without Retry-After, or a crash mid-send whose lease ran
out), a notifier with `find_sent` is asked first; if it finds the message by its idempotency key
(Slack: the message metadata), the row is marked sent with that reference instead of re-sent.

Rows are claimed in batches (`Store.claim_many`: the front of every receiver's queue, up to
CLAIM_PER_RECEIVER rows each, in one transaction), the receivers taking turns and each one's rows
sent in order; their outcomes are written together (`Store.finish_many`, at the end of the batch,
before a follow-up, or once the oldest has waited MARKS_MAX_AGE), so a delivery costs a fraction of
a write transaction instead of three. Only for a receiver with `find_sent` (Slack), though: one
that cannot be asked later has each send recorded before the next, so a crash re-sends at most
the one in flight, as before. What a batch does not try goes back as it was, in the
same transaction (`Store.release`): a receiver's rows behind one to be retried (they stay behind
it), everything when stopping, and whatever is left once half the lease has gone. A process
killed mid-batch leaves its rows `sending` until the lease runs out; then each is `unclear` and
asked about before it is sent again, so the sent ones are found, not sent twice.

Each round also escalates what is due (`Store.escalate_due`: critical alerts nobody
acknowledged) and sends the digests that are due (`send_digest`, one message for the alerts a
route held; retried and failed like a single alert, all its alerts at once).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from listener.alert import AlertMessage, Digest
from listener.config.model import OutboxSettings
from listener.metrics import Metrics, timed
from listener.notify import Notifier, TransportError
from listener.store import UNKNOWN_OUTCOME, Claimed, ClaimedDigest, Outcome, Store, utcnow

log = logging.getLogger(__name__)

#: Outbox rows claimed per receiver at once (`Store.claim_many`): sent in order by one worker.
CLAIM_PER_RECEIVER = 20
#: Seconds an outcome may wait for the rest of its batch before it is written.
MARKS_MAX_AGE = 1.0


@dataclass(slots=True)
class RoundResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    digests: int = 0  # digests sent (their alerts are not in `sent`)
    escalated: int = 0
    found: int = 0  # sent before all along: found by the receiver's idempotency lookup
    skipped_receivers: set[str] = field(default_factory=set)

    def add(self, other: RoundResult) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.digests += other.digests
        self.escalated += other.escalated
        self.found += other.found


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        settings: OutboxSettings,
        unavailable: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.settings = settings
        self.unavailable = dict(unavailable or {})
        self.clock = clock
        self.metrics = metrics  # alerts sent, failed and retried; send time; latencies
        self.per_receiver = CLAIM_PER_RECEIVER

    def deliver_due(self, stop: Callable[[], bool] = lambda: False) -> RoundResult:
        """One round: escalations due, every row due now (oldest first), then due digests."""
        result = RoundResult()
        escalated, called_off = self.store.escalate_due(self.clock())
        result.escalated += escalated
        if escalated or called_off:
            log.warning(
                "escalation: %d critical alert(s) not acknowledged in time re-sent, %d called off",
                escalated,
                called_off,
            )
        self._deliver_rows(result, stop)
        self._deliver_digests(result, stop)
        return result

    def _deliver_rows(self, result: RoundResult, stop: Callable[[], bool]) -> None:
        """Claim the front of every receiver's queue at once (`Store.claim_many`), send it, and
        again, until nothing is due (a receiver that answered "not now" sits the round out)."""
        while not stop():
            claims = self.store.claim_many(
                self.clock(),
                self.settings.lease,
                per_receiver=self.per_receiver,
                skip=result.skipped_receivers,
            )
            if not claims:
                break
            self._deliver_claims(claims, result, stop)

    def _deliver_claims(
        self, claims: Sequence[Claimed], result: RoundResult, stop: Callable[[], bool]
    ) -> None:
        """Send claimed rows, the receivers taking turns, each receiver's in queue order. What
        is not tried goes back (`Store.release`, in the transaction recording the outcomes): a
        receiver's rows after one that is to be retried (they stay behind it), everything
        when stopping, and what is left once half the lease has gone (so no claim runs out
        while its rows wait their turn)."""
        queues: dict[str, deque[Claimed]] = {}
        for claimed in claims:
            queues.setdefault(claimed.receiver, deque()).append(claimed)
        hand_back_at = time.monotonic() + self.settings.lease.total_seconds() / 2
        marks = _Marks(self.store)
        left: list[Claimed] = []
        try:
            while queues:
                for receiver in list(queues):
                    if (
                        receiver in result.skipped_receivers
                        or stop()
                        or time.monotonic() >= hand_back_at
                    ):
                        left.extend(queues.pop(receiver))
                        continue
                    queue = queues[receiver]
                    claimed = queue.popleft()
                    if not queue:
                        del queues[receiver]
                    self._deliver(claimed, result, marks)
        finally:
            for queue in queues.values():
                left.extend(queue)
            marks.flush(release=left)

    def _deliver_digests(self, result: RoundResult, stop: Callable[[], bool]) -> None:
        for digest in self.store.due_digests(self.clock()):
            if stop():
                return
            claimed = self.store.claim_digest(digest.id or 0, self.clock(), self.settings.lease)
            if claimed is not None:
                self._send_digest(claimed, result)

    def drain(
        self, timeout: timedelta | None = None, stop: Callable[[], bool] = lambda: False
    ) -> RoundResult:
        """Deliver until nothing is due within `timeout` (for `listener run --once`)."""
        limit = self.clock() + (timeout if timeout is not None else self.settings.drain_timeout)
        total = RoundResult()
        while not stop():
            total.add(self.deliver_due(stop))
            next_at = self.store.next_due_at()
            if next_at is None or next_at > limit:
                break
            time.sleep(max(0.05, min(1.0, (next_at - self.clock()).total_seconds())))
        return total

    def _deliver(self, claimed: Claimed, result: RoundResult, marks: _Marks) -> None:
        delivery_id, receiver = claimed.delivery_id, claimed.receiver
        now = self.clock()
        notifier = self.notifiers.get(receiver)
        if notifier is None:
            reason = self.unavailable.get(receiver, f"receiver {receiver!r} is not configured")
            self._retry(claimed, reason, None, result, marks, unclear=False)
            return
        try:
            alert = AlertMessage.from_json(claimed.message)
            if alert.follow_up is not None:
                marks.flush()  # its parent may be in this batch: where it went is needed now
            alert = self._with_parent_ref(alert, receiver)
            find_sent = getattr(notifier, "find_sent", None)
            ref = find_sent(alert) if claimed.unclear and find_sent is not None else None
            if ref is not None:
                marks.add(Outcome.sent(delivery_id, ref, now))
                result.found += 1
                if self.metrics is not None:
                    self.metrics.sent(receiver, None, now)
                log.warning(
                    "delivery %s to %s had reached it before (found %s): not sent again",
                    delivery_id,
                    receiver,
                    ref,
                )
                return
            with timed(self.metrics, "deliver"):
                ref = notifier.send(alert)
        except TransportError as exc:
            if exc.permanent:
                marks.add(Outcome.failed(delivery_id, exc.message))
                result.failed += 1
                if self.metrics is not None:
                    self.metrics.failed(receiver)
                log.error(
                    "delivery %s to %s failed for good: %s", delivery_id, receiver, exc.message
                )
            else:
                self._retry(claimed, exc.message, exc.retry_after, result, marks)
            return
        except Exception as exc:  # a bug in a notifier must not stop the others
            log.exception("delivery %s to %s crashed", delivery_id, receiver)
            self._retry(claimed, f"{type(exc).__name__}: {exc}", None, result, marks)
            return
        marks.add(Outcome.sent(delivery_id, ref, now))
        if find_sent is None:
            marks.flush()  # a receiver that cannot be asked later: recorded before the next send
        result.sent += 1
        if self.metrics is not None:
            self.metrics.sent(receiver, alert, self.clock())
        log.info("alert delivered: delivery %s to %s (%s)", delivery_id, receiver, ref or "ok")
        if alert.follow_up is not None:
            marks.flush()  # the parent's message counts the follow-ups sent
            self._update_parent(notifier, alert, receiver)

    def _update_parent(self, notifier: Notifier, alert: AlertMessage, receiver: str) -> None:
        """After a follow-up went into its parent's thread: re-render the parent's message."""
        update = getattr(notifier, "update_parent", None)
        follow = alert.follow_up
        if update is None or follow is None or not follow.parent_ref:
            return
        parent_id = follow.parent_alert_id
        parent = self.store.alert(parent_id)
        if parent is None or not parent.message:
            return
        try:
            update(
                AlertMessage.from_json(parent.message),
                follow.parent_ref,
                self.store.progress(parent_id, receiver),
                self.store.latest_feedback(parent_id),
            )
        except TransportError as exc:
            log.warning("alert %s on %s: header not updated: %s", parent_id, receiver, exc.message)
        except Exception:  # the follow-up is delivered; a bug here must not undo that
            log.exception("alert %s on %s: updating the message crashed", parent_id, receiver)

    def _send_digest(self, claimed: ClaimedDigest, result: RoundResult) -> None:
        receiver, digest_id = claimed.receiver, claimed.digest_id
        notifier = self.notifiers.get(receiver)
        send = getattr(notifier, "send_digest", None)
        if notifier is None or send is None:
            reason = self.unavailable.get(receiver, f"receiver {receiver!r} cannot send digests")
            self._retry_digest(claimed, reason, None, result)
            return
        digest = Digest(
            digest_id=digest_id,
            receiver=receiver,
            route=claimed.route,
            reason=claimed.reason,
            opened_at=claimed.opened_at.isoformat(),
            due_at=claimed.due_at.isoformat(),
            alerts=[AlertMessage.from_json(text) for text in claimed.messages if text],
        )
        try:
            find_sent = getattr(notifier, "find_sent_digest", None)
            ref = find_sent(digest) if claimed.unclear and find_sent is not None else None
            if ref is None:
                with timed(self.metrics, "deliver"):
                    ref = send(digest)
            else:
                log.warning("digest %s had reached %s before (%s)", digest_id, receiver, ref)
        except TransportError as exc:
            if exc.permanent:
                self.store.mark_digest_failed(digest_id, exc.message)
                result.failed += len(digest.alerts)
                if self.metrics is not None:
                    self.metrics.failed(receiver, len(digest.alerts))
                log.error("digest %s to %s failed for good: %s", digest_id, receiver, exc.message)
            else:
                error = (
                    exc.message if exc.retry_after is not None else UNKNOWN_OUTCOME + exc.message
                )
                self._retry_digest(claimed, error, exc.retry_after, result)
            return
        except Exception as exc:
            log.exception("digest %s to %s crashed", digest_id, receiver)
            error = f"{UNKNOWN_OUTCOME}{type(exc).__name__}: {exc}"
            self._retry_digest(claimed, error, None, result)
            return
        self.store.mark_digest_sent(digest_id, ref, self.clock())
        result.digests += 1
        if self.metrics is not None:  # held on purpose: no latency
            self.metrics.sent(receiver, None, self.clock(), count=len(digest.alerts))
        log.info(
            "digest %s delivered to %s: %d alert(s) (%s)",
            digest_id,
            receiver,
            len(digest.alerts),
            ref or "ok",
        )

    def _retry_digest(
        self, claimed: ClaimedDigest, error: str, retry_after: float | None, result: RoundResult
    ) -> None:
        digest_id, receiver = claimed.digest_id, claimed.receiver
        if claimed.attempts >= self.settings.max_attempts:
            self.store.mark_digest_failed(
                digest_id, f"gave up after {claimed.attempts} attempts: {error}"
            )
            result.failed += len(claimed.messages)
            if self.metrics is not None:
                self.metrics.failed(receiver, len(claimed.messages))
            log.error("digest %s to %s: gave up: %s", digest_id, receiver, error)
            return
        wait = self._wait(claimed.attempts, retry_after)
        self.store.mark_digest_retry(digest_id, error, self.clock() + wait)
        result.retried += 1
        if self.metrics is not None:
            self.metrics.retried(receiver)
        log.warning(
            "digest %s to %s will be retried in %.0fs: %s",
            digest_id,
            receiver,
            wait.total_seconds(),
            error,
        )

    def _wait(self, attempts: int, retry_after: float | None) -> timedelta:
        if retry_after is not None:
            return timedelta(seconds=max(0.0, retry_after))
        backoff = self.settings.backoff
        wait: timedelta = min(backoff.initial * (2 ** min(max(0, attempts - 1), 32)), backoff.max)
        return wait

    def _with_parent_ref(self, alert: AlertMessage, receiver: str) -> AlertMessage:
        """A follow-up, with where its parent went to this receiver (Slack "channel:ts", an
        e-mail's Message-ID), so the notifier can thread it. The receiver's queue order means
        the parent was tried first; if it failed or never went here, the ref stays None."""
        if alert.follow_up is None:
            return alert
        ref = self.store.delivery_ref(alert.follow_up.parent_alert_id, receiver)
        return replace(alert, follow_up=replace(alert.follow_up, parent_ref=ref))

    def _retry(
        self,
        claimed: Claimed,
        error: str,
        retry_after: float | None,
        result: RoundResult,
        marks: _Marks,
        *,
        unclear: bool = True,
    ) -> None:
        """Try again later (after `retry_after` or the backoff), or give up after max_attempts.
        `unclear`: the attempt may have reached the receiver (it was sent, and no Retry-After
        said "not now"), so the next attempt asks the receiver first (`find_sent`)."""
        delivery_id, receiver, attempts = claimed.delivery_id, claimed.receiver, claimed.attempts
        result.skipped_receivers.add(receiver)
        if attempts >= self.settings.max_attempts:
            marks.add(Outcome.failed(delivery_id, f"gave up after {attempts} attempts: {error}"))
            result.failed += 1
            if self.metrics is not None:
                self.metrics.failed(receiver)
            log.error(
                "delivery %s to %s: gave up after %s attempts: %s",
                delivery_id,
                receiver,
                attempts,
                error,
            )
            return
        wait = self._wait(attempts, retry_after)
        if unclear and retry_after is None and not error.startswith(UNKNOWN_OUTCOME):
            error = UNKNOWN_OUTCOME + error  # no "not now" from the receiver: it may have it
        marks.add(Outcome.retry(delivery_id, error, self.clock() + wait))
        result.retried += 1
        if self.metrics is not None:
            self.metrics.retried(receiver)
        log.warning(
            "delivery %s to %s will be retried in %.0fs: %s",
            delivery_id,
            receiver,
            wait.total_seconds(),
            error,
        )


class _Marks:
    """The outcomes of a batch's deliveries, written together (`Store.finish_many`): at the end
    of the batch, before a follow-up (which needs its parent's reference), and once the oldest
    has waited MARKS_MAX_AGE. Until then a row sent stays `sending`, so its receiver's queue
    stays held; if the process dies first, the row's next attempt asks the receiver first."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.outcomes: list[Outcome] = []
        self.since = 0.0

    def add(self, outcome: Outcome) -> None:
        if not self.outcomes:
            self.since = time.monotonic()
        self.outcomes.append(outcome)
        if time.monotonic() - self.since >= MARKS_MAX_AGE:
            self.flush()

    def flush(self, release: Sequence[Claimed] = ()) -> None:
        """Write the outcomes so far, and hand back `release` in the same transaction."""
        outcomes, self.outcomes = self.outcomes, []
        if outcomes or release:
            self.store.finish_many(outcomes, release=release)
