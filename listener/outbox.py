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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from listener.alert import AlertMessage
from listener.config.model import OutboxSettings
from listener.notify import Notifier, TransportError
from listener.store import Store, utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RoundResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped_receivers: set[str] = field(default_factory=set)

    def add(self, other: RoundResult) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        settings: OutboxSettings,
        unavailable: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.settings = settings
        self.unavailable = dict(unavailable or {})
        self.clock = clock

    def deliver_due(self, stop: Callable[[], bool] = lambda: False) -> RoundResult:
        """One round: every row due now, oldest first."""
        result = RoundResult()
        while not stop():
            rows = self.store.due(self.clock(), limit=100)
            rows = [r for r in rows if r.receiver not in result.skipped_receivers]
            if not rows:
                break
            progressed = False
            for row in rows:
                if stop() or row.receiver in result.skipped_receivers:
                    continue
                claimed = self.store.claim(row.id or 0, self.clock(), self.settings.lease)
                if claimed is None:
                    continue  # another worker has it
                progressed = True
                self._deliver(
                    claimed.delivery_id, claimed.receiver, claimed.attempts, claimed.message, result
                )
            if not progressed:
                break
        return result

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

    def _deliver(
        self, delivery_id: int, receiver: str, attempts: int, message: str, result: RoundResult
    ) -> None:
        now = self.clock()
        notifier = self.notifiers.get(receiver)
        if notifier is None:
            reason = self.unavailable.get(receiver, f"receiver {receiver!r} is not configured")
            self._retry(delivery_id, receiver, attempts, reason, None, result)
            return
        try:
            alert = self._with_parent_ref(AlertMessage.from_json(message), receiver)
            ref = notifier.send(alert)
        except TransportError as exc:
            if exc.permanent:
                self.store.mark_failed(delivery_id, exc.message)
                result.failed += 1
                log.error(
                    "delivery %s to %s failed for good: %s", delivery_id, receiver, exc.message
                )
            else:
                self._retry(delivery_id, receiver, attempts, exc.message, exc.retry_after, result)
            return
        except Exception as exc:  # a bug in a notifier must not stop the others
            log.exception("delivery %s to %s crashed", delivery_id, receiver)
            self._retry(
                delivery_id, receiver, attempts, f"{type(exc).__name__}: {exc}", None, result
            )
            return
        self.store.mark_sent(delivery_id, ref, now)
        result.sent += 1
        log.info("alert delivered: delivery %s to %s (%s)", delivery_id, receiver, ref or "ok")

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
        delivery_id: int,
        receiver: str,
        attempts: int,
        error: str,
        retry_after: float | None,
        result: RoundResult,
    ) -> None:
        result.skipped_receivers.add(receiver)
        if attempts >= self.settings.max_attempts:
            self.store.mark_failed(delivery_id, f"gave up after {attempts} attempts: {error}")
            result.failed += 1
            log.error(
                "delivery %s to %s: gave up after %s attempts: %s",
                delivery_id,
                receiver,
                attempts,
                error,
            )
            return
        if retry_after is not None:
            wait = timedelta(seconds=max(0.0, retry_after))
        else:
            backoff = self.settings.backoff
            wait = min(backoff.initial * (2 ** max(0, attempts - 1)), backoff.max)
        self.store.mark_retry(delivery_id, error, self.clock() + wait)
        result.retried += 1
        log.warning(
            "delivery %s to %s will be retried in %.0fs: %s",
            delivery_id,
            receiver,
            wait.total_seconds(),
            error,
        )
