"""The daemon: poll each source on its schedule, decide, store, and deliver from the outbox.

It only wires the stages. A poll fetches a batch, decides every new post, and saves posts,
decisions, alerts, outbox rows and the source's cursor in one transaction (`Store.save_batch`);
posts it already has are not decided again, but their counts are saved as a new engagement
snapshot there, and an alerted one growing fast gets a follow-up (`listener.growth`);
a failing source is logged with its reason and backs off (doubling, up to `source_backoff.max`,
or the server's Retry-After) while the others keep running. Delivery runs in its own thread,
woken as soon as a poll saved alerts and every `outbox.every` for retries, escalations and
digests that come due (the routes' modes, quiet hours and escalation: `listener.dispatch`).

`run_once` polls every source until it has nothing more, then drains the outbox: what
`listener run --once` does. `run_forever` uses APScheduler with a first run at start-up, grace
for late runs and jitter; SIGTERM/SIGINT set a flag: the batch in flight is finished or abandoned
as a whole, and the outbox keeps whatever was not delivered. It also prunes the posts older than
`[retention] posts` at start and every `[retention] every` (posts that were alerted stay), so
`listener backtest --since` has recent posts to replay and the database does not grow for ever.
With `[report] weekly` it mails the report on the last 7 days (`send_weekly_report`), retrying
a transient failure with the outbox's backoff in a one-off job. With `[slack]` and an app token
(`SLACK_APP_TOKEN`) it holds a Socket Mode connection (`listener.slack_socket`), so the
'Acknowledge' and feedback buttons and ✅ reactions reach it without a public URL.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from listener.alert import AlertMessage
from listener.config import Config
from listener.dispatch import Dispatcher
from listener.feedback import slack_actions
from listener.geo.nominatim import ProfileGeocoder
from listener.growth import GrowthWatch
from listener.health import SourceHealth
from listener.heap import settle, unsettle
from listener.httpserver import Handler, HttpServer
from listener.leases import Claim, Leases
from listener.metrics import Metrics, healthz_endpoint, metrics_endpoint, timed
from listener.notify import Notifier, NotifierUnavailable, build_notifier
from listener.outbox import Deliverer, RoundResult
from listener.pipeline import CONSOLE_FALLBACK, Classifier, HistoryLookup
from listener.post import Post
from listener.reload import Changes, ConfigWatcher, SwapLock, compare
from listener.route import route
from listener.slack_socket import slack_socket
from listener.sources import Source, SourceError, SourceUnavailable, build_sources, uses
from listener.sources.webhook import IngestEndpoint
from listener.spikes import Grouper
from listener.store import LeaseLost, SaveResult, Store, utcnow
from listener.text import fold
from listener.urgency.context import AuthorHistory

if TYPE_CHECKING:
    from sqlmodel import Session

    from listener.config.model import Search

log = logging.getLogger(__name__)
#: Seconds a thread runs before Python lets another have the GIL (`sys.setswitchinterval`).
SWITCH_INTERVAL = 0.0005
MAX_BATCHES_PER_POLL = 1000
REPORT_PERIOD = timedelta(days=7)  # what the weekly report covers


@dataclass(slots=True)
class PollResult:
    fetched: int = 0
    new_posts: int = 0
    alerts: int = 0
    skipped: int = 0
    follow_ups: int = 0
    silenced: int = 0  # alerts and follow-ups stored but held back by a silence
    error: str | None = None
    elsewhere: Claim | None = None  # not polled: another instance holds it, or it is not due


def build_notifiers(
    config: Config, env: Mapping[str, str] | None = None, console: object | None = None
) -> tuple[dict[str, Notifier], dict[str, str]]:
    """The notifiers that can deliver now, and the reason for each receiver that cannot."""
    env = os.environ if env is None else env
    notifiers: dict[str, Notifier] = {}
    unavailable: dict[str, str] = {}
    for receiver in config.receivers.values():
        try:
            notifiers[receiver.id] = build_notifier(
                receiver,
                config.main,
                config.templates_dir,
                env=env,
                console=console,  # type: ignore[arg-type]
            )
        except NotifierUnavailable as exc:
            unavailable[receiver.id] = str(exc)
    if CONSOLE_FALLBACK not in notifiers and CONSOLE_FALLBACK not in config.receivers:
        from listener.config.model import Receiver

        fallback = Receiver(id=CONSOLE_FALLBACK, type="console")
        notifiers[CONSOLE_FALLBACK] = build_notifier(
            fallback,
            config.main,
            config.templates_dir,
            env=env,
            console=console,  # type: ignore[arg-type]
        )
    return notifiers, unavailable


def history_lookup(store: Store, source: str) -> HistoryLookup:
    """What the urgency score asks about a post's author, `(handle, org_id, before)`: their
    posts about that organisation in the 30 days before, on the same network (the post's
    `source`), from the database. Posts of the batch being decided are not saved yet."""

    def lookup(handle: str, org_id: str, before: datetime) -> AuthorHistory:
        return store.author_history(handle, org_id, before, source=source)

    return lookup


def build_grouper(config: Config, active: set[str]) -> Grouper:
    """Conversations and spikes as `[spikes]` says: an incident goes where its level routes it
    (active receivers only, else the console, as alerts do); an organisation's own names and
    handles are never a spike's topic word."""

    def receivers(message: AlertMessage, level: str) -> list[str]:
        chosen = route(
            config.routes,
            org=message.org_id,
            search=message.search_id,
            level=level,
            branch=message.branch_id,
            labels=message.labels,
            source=message.post.source,
            default=config.default_receiver,
        )
        usable = [r for r in chosen if r in active]
        return usable or ([CONSOLE_FALLBACK] if chosen else [])

    ignore = {
        org.id: frozenset(
            word for name in (org.name, *org.aliases, *org.handles) for word in fold(name).split()
        )
        for org in config.organisations.values()
    }
    return Grouper(config.main.spikes, receivers, ignore)


def searches_of(source: Source, searches: Sequence[Search]) -> list[str]:
    """The saved searches a source polls for: the one its key names ("rss:search:de-bieb",
    "x:search:de-bieb:2"), else every search that runs on its kind of source."""
    parts = source.key.split(":")
    ids = {search.id for search in searches}
    for at, part in enumerate(parts[:-1]):
        if part == "search" and parts[at + 1] in ids:
            return [parts[at + 1]]
    return [search.id for search in searches if uses(search, source.name)]


def _profile_geocoder(config: Config, store: Store) -> ProfileGeocoder | None:
    """Nominatim for profile locations the gazetteer does not know, when [geo] turns it on."""
    if not config.main.geo.nominatim:
        return None
    geocoder = ProfileGeocoder(config.main.geo, store.engine)
    log.info("profile locations the gazetteer does not know: %r", geocoder)
    return geocoder


@dataclass
class Daemon:
    config: Config
    store: Store
    sources: list[Source]
    classifier: Classifier
    deliverer: Deliverer
    active: set[str]
    clock: Callable[[], datetime] = utcnow
    health: SourceHealth | None = None
    grouper: Grouper | None = None  # conversations and spikes ([spikes])
    reach: GrowthWatch | None = None  # follow-ups for alerted posts growing fast ([reach])
    dispatch: Dispatcher | None = None  # digests, quiet hours and escalation of the routes
    metrics: Metrics | None = None  # GET /metrics (listener.metrics)
    leases: Leases | None = None  # one instance polls a source at a time (listener.leases)
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.9, 1.1))
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake_delivery: threading.Event = field(default_factory=threading.Event)
    _not_before: dict[str, datetime] = field(default_factory=dict)
    _on_stop: list[Callable[[], None]] = field(default_factory=list)  # after the HTTP server
    # the weekly report: its period, and the receivers still to send it to (attempts so far)
    _report_lock: threading.Lock = field(default_factory=threading.Lock)
    _report_period: tuple[datetime, datetime] | None = None
    _report_pending: dict[str, int] = field(default_factory=dict)
    # tuning while it runs (`listener.reload`): how often `run_forever` checks the configuration
    # files (None: never); the lock polls share and `apply` takes alone; the running scheduler
    reload_every: timedelta | None = timedelta(seconds=2)
    _swap: SwapLock = field(default_factory=SwapLock)
    _scheduler: Any = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        console: object | None = None,
        store: Store | None = None,
    ) -> Daemon:
        store = store or Store(config.database_url)
        notifiers, unavailable = build_notifiers(config, env, console)
        for reason in unavailable.values():
            log.warning("%s", reason)
        sources = build_sources(config.main, config.searches, config.organisations, config.base_dir)
        grouper = build_grouper(config, set(notifiers))
        metrics = Metrics(store)
        metrics.known([s.key for s in sources], [*notifiers, *unavailable])
        return cls(
            config=config,
            store=store,
            sources=sources,
            classifier=Classifier(config, geocode=_profile_geocoder(config, store)),
            deliverer=Deliverer(store, notifiers, config.main.outbox, unavailable, metrics=metrics),
            active=set(notifiers),
            health=SourceHealth(store),
            grouper=grouper,
            reach=GrowthWatch(config.urgency, grouper.route),
            dispatch=Dispatcher(config.routes, config.main.timezone, active=set(notifiers)),
            metrics=metrics,
            leases=Leases(store.engine, lease=config.main.cluster.lease),
        )

    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def poll(self, source: Source, *, scheduled: bool = False) -> PollResult:
        """Fetch from one source until it has nothing more, saving each batch as a whole.

        With leases (several instances on one database), only after claiming the source's poll:
        a `scheduled` poll only when it is due, and skipped when another instance holds it
        (`result.elsewhere` says who, and when to try again); an unscheduled one (`run --once`)
        waits for another instance's poll to end, up to the lease."""
        result = PollResult()
        now = self.clock()
        not_before = self._not_before.get(source.key)
        if not_before is not None and now < not_before:
            return result  # backing off
        leases = self.leases
        claim: Claim | None = None
        if leases is not None:
            claim = self._claim(leases, source, scheduled=scheduled)
            if not claim.taken:
                result.elsewhere = claim
                return result
        started = time.monotonic()
        try:
            return self._poll(source, result, started)
        finally:
            if leases is not None and claim is not None:
                leases.release(source.key, self._next_due(source, leases, claim.due))

    def _claim(self, leases: Leases, source: Source, *, scheduled: bool) -> Claim:
        claim = leases.claim(source.key, due_matters=scheduled)
        if claim.taken or scheduled:
            if not claim.taken:
                log.debug("poll %s: not now (%s until %s)", source.key, claim.owner, claim.until)
            return claim
        deadline = time.monotonic() + leases.lease.total_seconds() + 5
        log.info("poll %s: waiting for %s to finish polling it", source.key, claim.owner)
        while not claim.taken and time.monotonic() < deadline and not self.stopping():
            time.sleep(0.25)
            claim = leases.claim(source.key, due_matters=False)
        if not claim.taken:
            log.warning("poll %s: still polled by %s; skipped", source.key, claim.owner)
        return claim

    def _next_due(self, source: Source, leases: Leases, claimed_at: datetime) -> datetime:
        """When the next poll of `source` is due: an interval after this one was claimed (not
        after it ended, so a poll that takes a while does not push the next one back), less a
        little slack so this instance's own next tick (a thread may have started this one
        late) finds it due; or, backing off, when the back-off ends."""
        interval = source.interval
        due = claimed_at + interval - min(interval / 4, timedelta(seconds=10))
        not_before = self._not_before.get(source.key)
        if not_before is not None:
            due = max(due, leases.now() + (not_before - self.clock()))
        return due

    def _poll(self, source: Source, result: PollResult, started: float) -> PollResult:
        for _ in range(MAX_BATCHES_PER_POLL):
            if self.stopping():
                break
            try:
                batch = source.fetch(self.store.cursor(source.key))
            except SourceError as exc:
                result.error = str(exc)
                self._back_off(source, str(exc), exc.retry_after, permanent=not exc.transient)
                self._check_health(source, result)
                self._polled(source, result, started)
                return result
            except Exception as exc:  # a bug in one source must not stop the daemon
                log.exception("source %s crashed", source.key)
                result.error = f"{type(exc).__name__}: {exc}"
                self._back_off(source, result.error, None)
                self._check_health(source, result)
                self._polled(source, result, started)
                return result
            result.fetched += len(batch.posts)
            result.skipped += batch.skipped
            fence = self.leases.fence(source.key) if self.leases is not None else None
            try:
                saved = self._decide_and_save(
                    source.key, source.name, batch.cursor, batch.posts, fence
                )
            except LeaseLost:  # stalled past the lease: the new owner fetches from the cursor
                log.warning(
                    "poll %s: another instance took it over; this batch is left to it", source.key
                )
                break
            result.new_posts += saved.new_posts
            result.alerts += saved.alerts
            result.follow_ups += saved.follow_ups
            result.silenced += saved.silenced
            if saved.alerts or saved.follow_ups:
                self.wake_delivery.set()  # deliver now, not at the next tick
            if not batch.more:
                break
        self._not_before.pop(source.key, None)
        self._check_health(source, result)
        self._polled(source, result, started)
        return result

    def _polled(self, source: Source, result: PollResult, started: float) -> None:
        """The poll's one log line (its numbers as fields too, for JSON logs) and metrics."""
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.polled(source.key, seconds, failed=result.error is not None)
        searches = searches_of(source, self.config.searches)
        log.info(
            "poll %s (%s): %d fetched, %d new, %d alerts, %d follow-ups, %d silenced, "
            "%d skipped in %.2fs%s",
            source.key,
            ", ".join(searches) or "no search",
            result.fetched,
            result.new_posts,
            result.alerts,
            result.follow_ups,
            result.silenced,
            result.skipped,
            seconds,
            f"; failed: {result.error}" if result.error is not None else "",
            extra={
                "event": "poll",
                "source": source.key,
                "searches": searches,
                "fetched": result.fetched,
                "new": result.new_posts,
                "alerts": result.alerts,
                "follow_ups": result.follow_ups,
                "silenced": result.silenced,
                "skipped": result.skipped,
                "duration_s": round(seconds, 3),
                "error": result.error,
            },
        )

    def _check_health(self, source: Source, result: PollResult) -> None:
        """Record the poll; raise one alert about listener when a source has been failing or
        silent far longer than its schedule allows."""
        if self.health is None:
            return
        now = self.clock()
        if result.error is None:
            self.health.succeeded(source.key, result.new_posts, now)
        else:
            self.health.failed(source.key, result.error, now)
        trouble = self.health.trouble(source.key, source.interval, now)
        if trouble is not None and self.health.alert(trouble, sorted(self.active), now):
            log.error("alert about listener itself: %s", trouble.text)
            self.wake_delivery.set()

    def _back_off(
        self, source: Source, error: str, retry_after: float | None, *, permanent: bool = False
    ) -> None:
        """Wait before the next poll: doubling per failure, or the server's Retry-After, or the
        maximum when the error will not go away by itself (a feed URL that answers 404)."""
        failures = self.store.record_source_failure(source.key, error, self.clock())
        settings = self.config.main.source_backoff
        wait = (
            settings.max if permanent else min(settings.initial * 2 ** (failures - 1), settings.max)
        )
        wait = min(wait * self.jitter(), settings.max)  # sources that failed together part
        if retry_after:
            wait = max(wait, timedelta(seconds=retry_after))
        self._not_before[source.key] = self.clock() + wait
        log.log(
            logging.ERROR if permanent else logging.WARNING,
            "source %s failed (%d in a row), next try in %.0fs: %s",
            source.key,
            failures,
            wait.total_seconds(),
            error,
        )

    def deliver(self) -> RoundResult:
        return self.deliverer.deliver_due(self.stopping)

    def prune_posts(self) -> int:
        """Forget the posts older than `[retention] posts` (alerted posts stay); how many went."""
        before = self.clock() - self.config.main.retention.posts
        gone = self.store.prune_posts(before)
        log.info(
            "retention: %d post(s) from before %s pruned (alerted posts are kept)",
            gone,
            before.isoformat(timespec="minutes"),
        )
        return gone

    def prune_alerts(self) -> dict[str, int]:
        """Delete the alerts older than `[retention] alerts`, with their deliveries, digest
        items, links, incidents, feedback, acknowledgements, escalations and posts; how many
        rows of each kind went."""
        before = self.clock() - self.config.main.retention.alerts
        gone = self.store.prune_alerts(before)
        log.info(
            "retention: %d alert(s) from before %s deleted%s",
            gone.get("alerts", 0),
            before.isoformat(timespec="minutes"),
            ", with " + ", ".join(f"{n} {kind}" for kind, n in gone.items() if kind != "alerts")
            if gone
            else "",
        )
        return gone

    def _prune_job(self) -> None:
        try:
            self.prune_posts()
        except Exception:  # a database hiccup: the next round tries again
            log.exception("pruning old posts failed")
        try:
            self.prune_alerts()
        except Exception:
            log.exception("pruning old alerts failed")

    # --- the weekly report ([report] weekly) -----------------------------------------------------

    def send_weekly_report(self, *, retry: bool = False) -> datetime | None:
        """Mail the report on the last 7 days to the [report] receivers. A retry sends the same
        period again, only to the receivers whose send failed transiently. Returns when to
        retry (outbox backoff: doubling from `initial` up to `max`), or None when done."""
        from listener.notify import TransportError
        from listener.notify.email import EmailNotifier
        from listener.report import build_report

        settings = self.config.main.report
        if settings is None:
            return None
        with self._report_lock:
            now = self.clock()
            if not retry or self._report_period is None:
                self._report_period = (now - REPORT_PERIOD, now)
                self._report_pending = dict.fromkeys(settings.receivers, 0)
            if not self._report_pending:
                return None
            since, until = self._report_period
            report = build_report(
                self.store, since, until, org=settings.org, timezone=self.config.main.timezone
            )
            org_name = self.config.organisations[settings.org].name if settings.org else None
            outbox = self.config.main.outbox
            wait: timedelta | None = None
            for name, attempts in list(self._report_pending.items()):
                notifier = self.deliverer.notifiers.get(name)
                if not isinstance(notifier, EmailNotifier):
                    reason = self.deliverer.unavailable.get(name, "not an email receiver")
                    log.error("weekly report: receiver %s cannot send it: %s", name, reason)
                    del self._report_pending[name]
                    continue
                try:
                    ref = notifier.send_report(report, org_name=org_name)
                except TransportError as exc:
                    attempts += 1
                    if exc.permanent or attempts >= outbox.max_attempts:
                        log.error(
                            "weekly report to %s failed for good (attempt %d): %s",
                            name,
                            attempts,
                            exc.message,
                        )
                        del self._report_pending[name]
                        continue
                    self._report_pending[name] = attempts
                    delay = min(outbox.backoff.initial * 2 ** (attempts - 1), outbox.backoff.max)
                    if exc.retry_after:
                        delay = max(delay, timedelta(seconds=exc.retry_after))
                    wait = delay if wait is None else min(wait, delay)
                    log.warning(
                        "weekly report to %s failed (%d in a row), next try in %.0fs: %s",
                        name,
                        attempts,
                        delay.total_seconds(),
                        exc.message,
                    )
                else:
                    del self._report_pending[name]
                    log.info("weekly report sent to %s: %s", name, ref)
            return None if wait is None else now + wait

    def schedule_weekly_report(self, scheduler: Any) -> None:
        """Add the `[report] weekly` job to an APScheduler scheduler (local time of `timezone`)."""
        settings = self.config.main.report
        schedule = settings.schedule if settings is not None else None
        if schedule is None:
            return
        day, hour, minute = schedule
        scheduler.add_job(
            self.weekly_report_job,
            "cron",
            args=[scheduler],
            id="weekly-report",
            day_of_week=day,
            hour=hour,
            minute=minute,
            timezone=self.config.main.timezone,
            misfire_grace_time=6 * 3600,  # a laptop that slept through 08:30 still sends it
        )

    def weekly_report_job(self, scheduler: Any, retry: bool = False) -> None:
        """The job: send, and when some receiver failed, add a one-off retry job."""
        try:
            retry_at = self.send_weekly_report(retry=retry)
        except Exception:  # a database hiccup: try the same report again soon
            retry_at = self.clock() + self.config.main.outbox.backoff.initial
            log.exception("weekly report failed; next try at %s", retry_at.isoformat())
        if retry_at is None:
            return
        if scheduler.get_job("weekly-report-retry") is not None:
            scheduler.remove_job("weekly-report-retry")  # one retry pending at most
        scheduler.add_job(
            self.weekly_report_job,
            "date",
            args=[scheduler, True],
            id="weekly-report-retry",
            run_date=retry_at,
            misfire_grace_time=None,
        )

    def _decide_and_save(
        self,
        key: str,
        name: str,
        cursor: str | None,
        posts: Sequence[Post],
        fence: Callable[[Session], bool] | None = None,
    ) -> SaveResult:
        """Decide the posts the store does not have yet (`name`: the source they came from) and
        save them as one batch with `cursor`; posts it has are passed on as `seen` (their counts
        may have grown). Counted in the metrics under `key`."""
        first: dict[str, Post] = {}
        for post in posts:  # a post twice in one batch is decided once
            first.setdefault(post.id, post)
        unique = list(first.values())
        known = self.store.known_post_ids(first)
        decided = [
            self.classifier.process(
                post,
                name,
                self.active,
                now=self.clock(),
                history=history_lookup(self.store, post.source),
                metrics=self.metrics,
            )
            for post in unique
            if post.id not in known
        ]
        seen = [post for post in unique if post.id in known]
        with timed(self.metrics, "save"):
            saved = self.store.save_batch(
                key,
                cursor,
                decided,
                self.clock(),
                grouper=self.grouper,
                seen=seen,
                reach=self.reach,
                dispatch=self.dispatch,
                fence=fence,
            )
        if self.metrics is not None:
            matched = sum(1 for item in decided if item.decision.get("org"))
            self.metrics.batch(key, fetched=len(posts), new=saved.new_posts, matched=matched)
        return saved

    def ingest(self, posts: Sequence[Post]) -> int:
        """Posts pushed to POST /ingest: decided and saved as one batch; returns how many are new.
        Safe from several HTTP threads at once (the store's transaction serialises them)."""
        with self._swap.shared():  # a config reload waits for this batch, as for a poll
            saved = self._decide_and_save("webhook", "webhook", None, posts)
            if saved.alerts or saved.follow_ups:
                self.wake_delivery.set()
            return saved.new_posts

    def scheduler_running(self) -> bool:
        """Whether `run_forever`'s scheduler runs (and the daemon is not stopping): GET /healthz."""
        scheduler = self._scheduler
        return scheduler is not None and bool(scheduler.running) and not self.stopping()

    def http_server(self, env: Mapping[str, str] | None = None) -> HttpServer | None:
        """The HTTP port's server, when [http] port is set: GET /healthz and GET /metrics
        (`listener.metrics`), POST /ingest for the webhook, and POST /slack/actions for the
        feedback buttons when Slack's signing secret is set."""
        http = self.config.main.http
        webhook = self.config.main.sources.webhook
        if http.port is None:
            return None
        env = os.environ if env is None else env
        routes: dict[tuple[str, str], Handler] = {}
        routes["GET", "/healthz"] = healthz_endpoint(self.store, self.scheduler_running)
        if self.metrics is not None:
            routes["GET", "/metrics"] = metrics_endpoint(self.metrics)
        if webhook is not None and webhook.enabled:
            try:
                endpoint = IngestEndpoint(webhook, env, self.ingest)
                routes["POST", "/ingest"] = endpoint.handle
            except SourceUnavailable as exc:
                log.warning("%s", exc)
        actions = slack_actions(self.config, self.store, env, clock=self.clock)
        if actions is not None:
            routes["POST", "/slack/actions"] = actions.handle
            self._on_stop.append(actions.close)
        max_body = webhook.max_bytes if webhook is not None else 1_000_000
        return HttpServer(http.host, http.port, routes, max_body=max_body)

    def close_sources(self) -> None:
        """Stop the sources that hold a connection open (Jetstream's websocket)."""
        for source in self.sources:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    # --- tuning while it runs (`listener.reload`) ------------------------------------------------

    def apply(self, config: Config, *, env: Mapping[str, str] | None = None) -> Changes:
        """Swap in a new configuration while running: searches, organisations, routes,
        receivers (notifiers), the dispatcher, grouper and classifier, and the sources. A source
        whose settings and search are unchanged keeps running as it is; new ones are scheduled,
        and removed or changed ones are unscheduled and closed (Jetstream's websocket). Posts
        already stored are not decided again, so a changed search does not alert on them anew.
        Everything is built first; the swap itself holds `_swap` alone, so no poll runs with
        half of each configuration. Returns what changed. ValueError when the sources cannot be
        built (two with one key): nothing is swapped then."""
        from listener.notify.console import ConsoleNotifier

        current = self.deliverer.notifiers.values()  # the console alerts print to, kept
        console = next((n.console for n in current if isinstance(n, ConsoleNotifier)), None)
        notifiers, unavailable = build_notifiers(config, env, console)
        built = build_sources(
            config.main, config.searches, config.organisations, config.base_dir, env=env
        )
        same_geo = config.main.geo == self.config.main.geo
        geocode = self.classifier.geocode if same_geo else _profile_geocoder(config, self.store)
        classifier = Classifier(config, geocode=geocode)
        grouper = build_grouper(config, set(notifiers))
        active = set(notifiers)
        with self._swap.alone():
            changes = compare(self.config, config, self.sources, [s.key for s in built])
            running = {source.key: source for source in self.sources}
            renewed = {*changes.sources.changed, *changes.sources.added}
            sources = [s if s.key in renewed else running[s.key] for s in built]
            dropped = [running[key] for key in (*changes.sources.removed, *changes.sources.changed)]
            self.config = config
            if self.leases is not None:
                self.leases.lease = config.main.cluster.lease
            self.sources = sources
            self.classifier = classifier
            self.active = active
            self.grouper = grouper
            self.reach = GrowthWatch(config.urgency, grouper.route)
            self.dispatch = Dispatcher(config.routes, config.main.timezone, active=active)
            self.deliverer = Deliverer(
                self.store,
                notifiers,
                config.main.outbox,
                unavailable,
                clock=self.deliverer.clock,
                metrics=self.metrics,
            )
            for source in dropped:
                self._not_before.pop(source.key, None)
            scheduler = self._scheduler
            if scheduler is not None:
                for source in dropped:
                    if scheduler.get_job(f"poll:{source.key}") is not None:
                        scheduler.remove_job(f"poll:{source.key}")
                start = datetime.now(scheduler.timezone)
                for source in sources:
                    if source.key in renewed:
                        self._schedule_poll(scheduler, source, start)
        for source in dropped:
            close = getattr(source, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing source %s failed", source.key)
        if self.metrics is not None:  # new sources and receivers show at 0 too
            self.metrics.known([s.key for s in sources], [*notifiers, *unavailable])
        for reason in unavailable.values():
            log.warning("%s", reason)
        if self._scheduler is not None:  # running: the old classifier goes, the new one settles
            settle()
        return changes

    def _schedule_poll(self, scheduler: Any, source: Source, start: datetime) -> None:
        """Poll `source` from `start` on, every `source.interval`. No jitter: the lease's due time
        must find the instance that polled last on time (`listener.leases`, handover)."""
        seconds = source.interval.total_seconds()
        scheduler.add_job(
            self._poll_job,
            "interval",
            args=[source],
            id=f"poll:{source.key}",
            seconds=seconds,
            next_run_time=start,
            misfire_grace_time=max(1, int(seconds)),
            replace_existing=True,
        )

    def _poll_job(self, source: Source) -> None:
        """A scheduled poll: with one configuration throughout, and not of a source a reload
        took out while this run waited."""
        with self._swap.shared():
            if not any(s is source for s in self.sources):
                return
            result = self.poll(source, scheduled=True)
        retry_at = result.elsewhere.retry_at if result.elsewhere is not None else None
        scheduler = self._scheduler
        if retry_at is not None and scheduler is not None:
            # Try again when the claim could be taken (the holder's lease ends, or the poll
            # is due), not only at the next tick: that is how a dead instance's work moves.
            job = scheduler.get_job(f"poll:{source.key}")
            spread = min(1.0, 0.1 * source.interval.total_seconds())  # instances part
            when = retry_at + timedelta(seconds=random.uniform(0, spread))
            if job is not None and (job.next_run_time is None or when < job.next_run_time):
                job.modify(next_run_time=when)

    def _reload_job(self, watcher: ConfigWatcher) -> None:
        try:
            watcher.check()
        except Exception:  # a bug in reloading must not stop the daemon: keep the old config
            log.exception("reloading the configuration failed; still running the last good one")

    def run_once(self) -> tuple[list[PollResult], RoundResult]:
        polls = [self.poll(source) for source in self.sources if not self.stopping()]
        delivered = self.deliverer.drain(stop=self.stopping)
        self.close_sources()
        return polls, delivered

    def _delivery_loop(self) -> None:
        """Deliver whenever a poll saved alerts, and every `outbox.every` for retries."""
        every = self.config.main.outbox.every.total_seconds()
        while not self.stopping():
            try:
                self.deliver()
            except Exception:  # a database hiccup must not end delivery for good
                log.exception("delivery round failed; trying again in %.0fs", every)
            self.wake_delivery.wait(every)
            self.wake_delivery.clear()

    def run_forever(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        # The delivery thread waits on the database and the network, hands the GIL back at
        # each call, and must get it again while a poll decides posts in pure Python: with the
        # default 5 ms switch interval, each of its many small steps could wait that long.
        sys.setswitchinterval(SWITCH_INTERVAL)
        # What lives as long as the daemon (gazetteer, indexes, matchers) out of the garbage
        # collector's full collections (`listener.heap`)
        log.debug("garbage collector settled in %.0f ms", 1000 * settle())

        scheduler = BackgroundScheduler(
            timezone=self.config.main.timezone,
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        start = datetime.now(scheduler.timezone)
        self._scheduler = scheduler  # `apply` reschedules the polls of a new configuration
        for source in self.sources:
            self._schedule_poll(scheduler, source, start)
        if self.reload_every is not None:  # tuning while it runs (`listener.reload`)
            reload_seconds = self.reload_every.total_seconds()
            scheduler.add_job(
                self._reload_job,
                "interval",
                args=[ConfigWatcher(self)],
                id="reload-config",
                seconds=reload_seconds,
                misfire_grace_time=max(1, int(reload_seconds)),
            )
        every = self.config.main.retention.every.total_seconds()
        scheduler.add_job(
            self._prune_job,
            "interval",
            id="prune-posts",
            seconds=every,
            next_run_time=start,  # at start, then every `[retention] every`
            misfire_grace_time=max(1, int(every)),
        )
        self.schedule_weekly_report(scheduler)
        socket = slack_socket(self.config, self.store, os.environ, clock=self.clock)
        if socket is not None:  # Acknowledge, feedback and ✅ without a public URL
            socket.start()
            self._on_stop.append(socket.close)
        server = self.http_server()
        if server is not None:
            server.start()
            log.info("HTTP on %s: %s", server.url, ", ".join(p for _, p in server.routes) or "-")
        scheduler.start()
        deliverer = threading.Thread(target=self._delivery_loop, name="deliver")
        deliverer.start()
        log.info(
            "listener running: %d sources, %d searches, receivers %s",
            len(self.sources),
            len(self.config.searches),
            ", ".join(sorted(self.active)),
        )
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            log.info("stopping: finishing the work in flight")
            if server is not None:
                server.stop()
            for close in self._on_stop:
                close()
            scheduler.shutdown(wait=True)
            self._scheduler = None  # stopped: a later `apply` reschedules and settles nothing
            if self.leases is not None:  # the other instances take our sources when due
                try:
                    self.leases.resign()
                except Exception:  # the database is gone: the leases run out by themselves
                    log.exception("handing the sources to the other instances failed")
            self.wake_delivery.set()
            deliverer.join()
            self.close_sources()
            counts = self.store.outbox_counts()
            log.info("stopped; outbox: %s", counts or "empty")
            unsettle()
