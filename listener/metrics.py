"""What the daemon's HTTP port tells monitoring: `GET /metrics` (Prometheus) and `GET /healthz`.

`Metrics` holds its own `CollectorRegistry` (never prometheus-client's global one, so two
daemons in one process, as in the tests, count apart). The daemon, the classifier and the
deliverer count into it as they work; what the database knows (the outbox's depth by status,
each source's last success and failures in a row) is read when Prometheus scrapes, by a custom
collector, so it is right after a restart and whoever else wrote to the database.

Labels are source keys, receiver ids and stage names only: never post text, search terms or
anything from the environment. Every metric name starts with `listener_`; the README lists them.

`healthz` answers 200 when the scheduler runs and the database answers a `SELECT 1`, else 503
with the reasons; both as JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from listener.httpserver import Handler, RawBody

if TYPE_CHECKING:
    from listener.alert import AlertMessage
    from listener.store import Store

__all__ = [
    "OUTBOX_STATUSES",
    "STAGES",
    "Metrics",
    "StageTimer",
    "healthz",
    "healthz_endpoint",
    "metrics_endpoint",
    "timed",
]

log = logging.getLogger(__name__)

#: The stages timed by `listener_stage_seconds`.
STAGES = ("match", "locate", "score", "save", "deliver")
#: The outbox's statuses, each reported (0 when none) by `listener_outbox_depth`.
OUTBOX_STATUSES = ("pending", "sending", "held", "failed", "silenced", "sent")

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# From a post to its alert: seconds when all is well, hours when a source lags or is down.
LATENCY_BUCKETS = (
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    43200,
    86400,
    172800,
)


class Metrics:
    """The daemon's metrics; see the module docstring. Thread-safe (prometheus-client is)."""

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        self.store = store
        r = self.registry
        self.posts_fetched = Counter(
            "listener_posts_fetched", "Posts fetched, per source key.", ["source"], registry=r
        )
        self.posts_new = Counter(
            "listener_posts_new",
            "Posts fetched that the database did not have yet, per source key.",
            ["source"],
            registry=r,
        )
        self.posts_matched = Counter(
            "listener_posts_matched",
            "New posts a saved search matched and tied to an organisation, per source key.",
            ["source"],
            registry=r,
        )
        self.source_errors = Counter(
            "listener_source_errors",
            "Polls that failed (the source backs off), per source key.",
            ["source"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "listener_poll_seconds",
            "How long a poll took (fetch, decide and save every batch), per source key.",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.alerts_sent = Counter(
            "listener_alerts_sent",
            "Alerts delivered, per receiver (an alert in a digest counts once).",
            ["receiver"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "listener_alerts_failed",
            "Alerts that failed for good (permanent error or out of attempts), per receiver.",
            ["receiver"],
            registry=r,
        )
        self.delivery_retries = Counter(
            "listener_delivery_retries",
            "Delivery attempts that will be retried later, per receiver.",
            ["receiver"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "listener_stage_seconds",
            "Time per post in each stage: match, locate, score (deciding one post), save (one "
            "batch's transaction) and deliver (one send to a receiver).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.post_to_alert = Histogram(
            "listener_post_to_alert_seconds",
            "From the post's own time (created_at) to its alert's delivery, per receiver.",
            ["receiver"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fetch_to_delivery = Histogram(
            "listener_fetch_to_delivery_seconds",
            "From the poll that fetched the post and saved its alert to the alert's delivery, "
            "per receiver.",
            ["receiver"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        if store is not None:
            self.registry.register(_DatabaseCollector(store))

    def known(self, sources: Iterable[str] = (), receivers: Iterable[str] = ()) -> None:
        """Show these sources' and receivers' series at 0 before anything happened."""
        for key in sources:
            for counter in (self.posts_fetched, self.posts_new, self.posts_matched):
                counter.labels(key)
            self.source_errors.labels(key)
        for receiver in receivers:
            for counter in (self.alerts_sent, self.alerts_failed, self.delivery_retries):
                counter.labels(receiver)
            self.post_to_alert.labels(receiver)
            self.fetch_to_delivery.labels(receiver)
        for stage in STAGES:
            self.stage_seconds.labels(stage)

    # --- what the daemon calls ------------------------------------------------------------------

    def batch(self, source: str, *, fetched: int, new: int, matched: int) -> None:
        """One batch of a poll was saved."""
        self.posts_fetched.labels(source).inc(fetched)
        self.posts_new.labels(source).inc(new)
        self.posts_matched.labels(source).inc(matched)

    def polled(self, source: str, seconds: float, *, failed: bool) -> None:
        self.poll_seconds.labels(source).observe(max(0.0, seconds))
        self.source_errors.labels(source).inc(1 if failed else 0)

    def sent(self, receiver: str, alert: AlertMessage | None, at: datetime, count: int = 1) -> None:
        """Alerts delivered to a receiver. With `alert` (one alert sent on its own, not a
        follow-up: those come late on purpose), the time from its post and from its fetch."""
        self.alerts_sent.labels(receiver).inc(count)
        if alert is None or alert.follow_up is not None:
            return
        at = _utc(at)
        self.post_to_alert.labels(receiver).observe(
            max(0.0, (at - _utc(alert.post.created_at)).total_seconds())
        )
        arrived = self._arrived(alert.alert_id)
        if arrived is not None:
            self.fetch_to_delivery.labels(receiver).observe(
                max(0.0, (at - arrived).total_seconds())
            )

    def failed(self, receiver: str, count: int = 1) -> None:
        self.alerts_failed.labels(receiver).inc(count)

    def retried(self, receiver: str) -> None:
        self.delivery_retries.labels(receiver).inc()

    def _arrived(self, alert_id: int) -> datetime | None:
        """When the alert was saved: by the poll that fetched its post (the same transaction)."""
        if self.store is None or not alert_id:
            return None
        try:
            row = self.store.alert(alert_id)
        except Exception:  # a metric must never cost a delivery
            log.debug("metrics: alert %s not read", alert_id, exc_info=True)
            return None
        return _utc(row.created_at) if row is not None else None


def timed(metrics: Metrics | None, stage: str) -> AbstractContextManager[Any]:
    """`with timed(metrics, "save"): ...` observes the block's time as that stage's, also
    when it raises; nothing without metrics."""
    if metrics is None:
        return nullcontext()
    return metrics.stage_seconds.labels(stage).time()


class StageTimer:
    """Adds up the time one post spends in each stage (`with timer.stage("match"): ...`, as
    often as needed), then `observe()` records one value per stage that ran. Stages do not nest.
    Without metrics it only passes through."""

    __slots__ = ("_metrics", "_spent", "_stage", "_started")

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics
        self._spent: dict[str, float] = {}
        self._stage = ""
        self._started = 0.0

    def stage(self, name: str) -> StageTimer:
        self._stage = name
        return self

    def __enter__(self) -> None:
        if self._metrics is not None:
            self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self._metrics is not None:
            spent = time.perf_counter() - self._started
            self._spent[self._stage] = self._spent.get(self._stage, 0.0) + spent

    def observe(self) -> None:
        if self._metrics is not None:
            for stage, seconds in self._spent.items():
                self._metrics.stage_seconds.labels(stage).observe(seconds)
            self._spent.clear()


class _DatabaseCollector:
    """What the database knows, read at scrape time: the outbox by status, each source's last
    success and failures in a row, and whether the database answered at all."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return list(self._families())  # names only: registering reads nothing

    def _families(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "listener_outbox_depth",
            "Outbox rows (one per alert and receiver) by status, read from the database.",
            labels=["status"],
        )
        yield GaugeMetricFamily(
            "listener_source_last_success_timestamp_seconds",
            "When each source last polled without error (Unix time), from the database.",
            labels=["source"],
        )
        yield GaugeMetricFamily(
            "listener_source_failures_in_a_row",
            "Consecutive failed polls of each source (0 after a success), from the database.",
            labels=["source"],
        )
        yield GaugeMetricFamily(
            "listener_database_up", "1 when the database answered this scrape's queries, else 0."
        )

    def collect(self) -> Iterable[Metric]:
        depth, last_success, failures, up = self._families()
        try:
            counts = self.store.outbox_counts()
            states = self.store.source_states()
        except Exception as exc:
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        for status in (*OUTBOX_STATUSES, *sorted(set(counts) - set(OUTBOX_STATUSES))):
            depth.add_metric([status], counts.get(status, 0))
        for state in states:
            failures.add_metric([state.key], state.failures)
            if state.last_success_at is not None:
                last_success.add_metric([state.key], _utc(state.last_success_at).timestamp())
        up.add_metric([], 1)
        return [depth, last_success, failures, up]


# --- the HTTP endpoints ------------------------------------------------------------------------


def metrics_endpoint(metrics: Metrics) -> Handler:
    """GET /metrics: the registry in the format the scraper asks for (Prometheus text by
    default, OpenMetrics when its Accept header says so)."""

    def handle(method: str, headers: Mapping[str, str], body: bytes) -> tuple[int, RawBody]:
        encoder, content_type = choose_encoder(headers.get("Accept", ""))
        return 200, RawBody(encoder(metrics.registry), content_type)

    return handle


def healthz(store: Store, scheduler_running: Callable[[], bool]) -> tuple[int, dict[str, Any]]:
    """200 when the scheduler runs and the database answers; 503 with the reasons otherwise."""
    checks: dict[str, str] = {}
    checks["scheduler"] = "ok" if scheduler_running() else "not running"
    checks["database"] = _database_answers(store)
    problems = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
    if problems:
        return 503, {"status": "unavailable", "reason": "; ".join(problems), "checks": checks}
    return 200, {"status": "ok", "checks": checks}


def healthz_endpoint(store: Store, scheduler_running: Callable[[], bool]) -> Handler:
    def handle(method: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        return healthz(store, scheduler_running)

    return handle


def _database_answers(store: Store) -> str:
    """'ok', or why not. A raw `SELECT 1` outside a transaction, so that it never waits for
    SQLite's write lock (the store begins its transactions IMMEDIATE)."""
    try:
        connection = store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        text = f"{type(exc).__name__}: {reason[0] if reason else ''}"[:300]
        password = store.engine.url.password
        if password:
            text = text.replace(str(password), "***")
        return text
    return "ok"


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite gives back naive datetimes, which are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
