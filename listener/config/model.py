"""The shape of every file users edit: `config.toml`, `queries/*.toml` and `alerts/*.toml`.

Each class is a pydantic model with unknown keys forbidden, so a typo is an error that names the
field instead of a setting that silently does nothing. `listener.config.loader` reads the files,
validates them against these models, and turns pydantic's error locations into `file:line: field`.
Secrets never appear here: only the names of the environment variables that hold them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from listener.urgency.hours import OpeningHours

Level = Literal["critical", "high", "normal", "low"]
LEVELS: tuple[Level, ...] = ("critical", "high", "normal", "low")
SLUG = r"^[a-z0-9][a-z0-9_\-]*$"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """'30s', '5m', '1h', '2d' or a number of seconds; must be more than zero."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration must be like '30s', '5m', '1h' or '1d'")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"bad duration {value!r}: use a number with s, m, h or d, like '5m'")
    if seconds <= 0:
        raise ValueError(f"bad duration {value!r}: must be more than zero")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- config.toml -------------------------------------------------------------------------------


class ReplaySource(Strict):
    """A JSONL file of canonical posts, read from where the last run stopped."""

    enabled: bool = True
    path: str
    interval: Duration = timedelta(seconds=30)
    batch: int = Field(500, ge=1, le=100_000)
    as_new: bool = False  # demos: shift the posts' times so the newest one is "now"


class RssSource(Strict):
    """RSS/Atom feeds: a news-search URL templated from each search's terms, plus fixed feeds."""

    enabled: bool = True
    url_template: str | None = "https://news.google.com/rss/search?q={query}&hl=nl&gl=NL&ceid=NL:nl"
    feeds: list[str] = []
    interval: Duration = timedelta(minutes=15)
    timeout: Duration = timedelta(seconds=20)
    user_agent: str = "listener/0.1 (+https://github.com/listener-webcare/listener)"

    @field_validator("url_template")
    @classmethod
    def _has_query(cls, value: str | None) -> str | None:
        if value is not None and "{query}" not in value:
            raise ValueError("must contain {query}, where the search terms go")
        return value


class BlueskySource(Strict):
    """Bluesky post search (app.bsky.feed.searchPosts), logged in with an app password."""

    enabled: bool = True
    service: str = "https://bsky.social"  # the PDS that logs in and proxies search
    handle_env: str = "BLUESKY_HANDLE"
    app_password_env: str = "BLUESKY_APP_PASSWORD"
    interval: Duration = timedelta(minutes=5)
    overlap: Duration = timedelta(minutes=10)  # re-read this much before the last post seen
    lang: str | None = None  # e.g. "nl": only posts in that language
    limit: int = Field(100, ge=1, le=100)


JETSTREAM_INSTANCES = [
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
]


class JetstreamSource(Strict):
    """The whole Bluesky network's posts over a websocket, filtered by listener's own matcher."""

    enabled: bool = False  # bandwidth: a few dozen posts a second, all day
    instances: list[str] = JETSTREAM_INSTANCES
    interval: Duration = timedelta(seconds=5)  # how often the received posts are processed
    rewind: Duration = timedelta(seconds=5)  # reconnect this far before the last event seen
    queue_size: int = Field(10_000, ge=100)


class MastodonInstance(Strict):
    url: str  # https://mastodon.nl
    hashtags: list[str] = ["bieb", "bibliotheek"]
    token_env: str | None = None  # a user token enables statuses search


class MastodonSource(Strict):
    """Hashtag timelines (and statuses search with a token) per Mastodon instance."""

    enabled: bool = True
    instances: list[MastodonInstance] = []
    interval: Duration = timedelta(minutes=5)


class RedditSource(Strict):
    """Reddit search and subreddit listings, with OAuth client credentials."""

    enabled: bool = True
    client_id_env: str = "REDDIT_CLIENT_ID"
    client_secret_env: str = "REDDIT_CLIENT_SECRET"
    user_agent: str = "listener/0.1 (webcare social listening)"
    subreddits: list[str] = []  # e.g. ["Amersfoort", "thenetherlands"]: their `new` listings
    api_url: str = "https://oauth.reddit.com"
    token_url: str = "https://www.reddit.com/api/v1/access_token"
    interval: Duration = timedelta(minutes=10)


class XSource(Strict):
    """X API v2 recent search with a bearer token (paid per post read)."""

    enabled: bool = True
    bearer_env: str = "X_BEARER_TOKEN"
    api_url: str = "https://api.x.com"
    point_radius: bool = False  # one point_radius per branch, where the plan allows geo operators
    max_results: int = Field(100, ge=10, le=100)
    interval: Duration = timedelta(minutes=15)


class YouTubeSource(Strict):
    """YouTube Data API search with location + locationRadius per branch."""

    enabled: bool = True
    api_key_env: str = "YOUTUBE_API_KEY"
    api_url: str = "https://www.googleapis.com/youtube/v3"
    interval: Duration = timedelta(hours=1)  # search.list costs quota: keep it rare


class WebhookSource(Strict):
    """POST /ingest on the HTTP port: canonical posts from any other tool."""

    enabled: bool = False
    token_env: str = "LISTENER_WEBHOOK_TOKEN"  # Authorization: Bearer <token>
    hmac_secret_env: str = "LISTENER_WEBHOOK_SECRET"  # or X-Listener-Signature: sha256=<hex>
    max_bytes: int = Field(1_000_000, ge=1_000)


class Sources(Strict):
    replay: ReplaySource | None = None
    rss: RssSource | None = None
    bluesky: BlueskySource | None = None
    jetstream: JetstreamSource | None = None
    mastodon: MastodonSource | None = None
    reddit: RedditSource | None = None
    x: XSource | None = None
    youtube: YouTubeSource | None = None
    webhook: WebhookSource | None = None


class HttpSettings(Strict):
    """The daemon's HTTP port (off unless a port is given): POST /ingest for the webhook."""

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)


class ClusterSettings(Strict):
    """Several daemons on one database (`listener.leases`): how long an instance's claim on a
    poll holds without renewal, i.e. how soon another instance takes over from one that died."""

    lease: Duration = timedelta(seconds=45)

    @field_validator("lease")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("lease must be at least 1s")
        return value


class Retention(Strict):
    """How long posts seen are kept for backtests, and alerts (with their posts, deliveries,
    feedback and the rest) at all. Posts that were alerted stay as long as their alert."""

    posts: Duration = timedelta(days=90)
    alerts: Duration = timedelta(days=365)  # then the alert goes, with its post
    every: Duration = timedelta(days=1)  # how often the daemon prunes


class SpikeSettings(Strict):
    """Spikes and conversations (`listener.spikes`, `listener.conversation`): `size` or more
    alerts of one organisation about one branch (or, branch unknown, one topic) within `window`
    raise one incident; replies and near-duplicates of a post alerted within `follow_up_within`
    become follow-ups of its alert (a Slack thread) instead of new alerts."""

    enabled: bool = True  # incidents for spikes
    window: Duration = timedelta(hours=1)
    size: int = Field(5, ge=2, le=1000)
    follow_ups: bool = True  # replies and near-duplicates thread under the alert they follow
    follow_up_within: Duration = timedelta(hours=24)


class Backoff(Strict):
    """How long a failing source or delivery waits before the next try (doubling up to `max`)."""

    initial: Duration = timedelta(seconds=30)
    max: Duration = timedelta(hours=1)


class SlackSettings(Strict):
    token_env: str = "SLACK_BOT_TOKEN"
    # Slack's signing secret for POST /slack/actions (the feedback buttons), with [http] port.
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    # An app-level token (xapp-…, scope connections:write) turns on Socket Mode: the
    # 'Acknowledge' and feedback buttons and ✅ reactions reach listener without a public URL.
    app_token_env: str = "SLACK_APP_TOKEN"
    base_url: str = "https://slack.com/api/"
    timeout: Duration = timedelta(seconds=15)


class EmailSettings(Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str = "SMTP_PASSWORD"
    sender: str
    timeout: Duration = timedelta(seconds=30)


class OutboxSettings(Strict):
    """Delivery from the persisted outbox."""

    lease: Duration = timedelta(seconds=50)  # < a minute: a dead instance's send moves on
    max_attempts: int = Field(20, ge=1)
    backoff: Backoff = Backoff()
    every: Duration = timedelta(seconds=2)
    drain_timeout: Duration = timedelta(seconds=60)


class GeoSettings(Strict):
    """Looking up profile locations the offline gazetteer does not know."""

    nominatim: bool = False
    nominatim_domain: str = "nominatim.openstreetmap.org"
    nominatim_scheme: Literal["https", "http"] = "https"
    user_agent: str | None = None  # required when nominatim is on: who you are, with a contact
    timeout: Duration = timedelta(seconds=10)
    min_interval: Duration = timedelta(seconds=1)  # Nominatim's policy: one request a second

    @model_validator(mode="after")
    def _identify(self) -> GeoSettings:
        if self.nominatim and not (self.user_agent and "@" in self.user_agent):
            raise ValueError(
                "nominatim needs user_agent with a contact address, e.g. "
                "'listener (webcare@bibliotheek.example)'"
            )
        return self


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKLY = re.compile(r"^\s*([a-z]{3})\s+(\d{1,2}):(\d{2})\s*$")


class ReportSettings(Strict):
    """The weekly report by e-mail (`listener report` of the last 7 days)."""

    weekly: str | None = None  # "mon 08:30": day and local time (config `timezone`); none: off
    receivers: list[str] = []  # email receivers from alerts/*.toml (checked by the loader)
    org: str | None = None  # only this organisation; none: every organisation

    @field_validator("weekly")
    @classmethod
    def _day_and_time(cls, value: str | None) -> str | None:
        if value is not None:
            parse_weekly(value)
        return value

    @model_validator(mode="after")
    def _somebody_to_tell(self) -> ReportSettings:
        if self.weekly is not None and not self.receivers:
            raise ValueError("weekly needs receivers: email receivers from alerts/*.toml")
        return self

    @property
    def schedule(self) -> tuple[str, int, int] | None:
        """(day, hour, minute) of `weekly`, or None when the weekly report is off."""
        return None if self.weekly is None else parse_weekly(self.weekly)


def parse_weekly(value: str) -> tuple[str, int, int]:
    """'mon 08:30' → ('mon', 8, 30)."""
    found = _WEEKLY.match(value.lower())
    if found is None or found.group(1) not in WEEKDAYS:
        raise ValueError(f"bad weekly time {value!r}: write a day and a time, like 'mon 08:30'")
    hour, minute = int(found.group(2)), int(found.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"bad weekly time {value!r}: no such time of day")
    return found.group(1), hour, minute


class MainFile(Strict):
    """`config.toml`: where things are and how to reach the outside world."""

    database: str = "sqlite:///listener.db"
    timezone: str = "Europe/Amsterdam"
    queries_dir: str = "queries"
    alerts_dir: str = "alerts"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # JSON lines when stderr is not a terminal, text when it is (auto); or always one of them
    log_format: Literal["auto", "json", "text"] = "auto"
    # The urgency settings (labels, weights, levels, holidays), merged over the shipped
    # defaults (listener/urgency/default.toml); relative to this file. None: the defaults.
    urgency: str | None = None
    sources: Sources = Sources()
    source_backoff: Backoff = Backoff()
    slack: SlackSettings | None = None
    email: EmailSettings | None = None
    outbox: OutboxSettings = OutboxSettings()
    geo: GeoSettings = GeoSettings()
    http: HttpSettings = HttpSettings()
    retention: Retention = Retention()
    cluster: ClusterSettings = ClusterSettings()
    report: ReportSettings | None = None
    spikes: SpikeSettings = SpikeSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


# --- queries/*.toml ----------------------------------------------------------------------------


class Branch(Strict):
    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1)
    address: str | None = None
    town: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(3.0, gt=0, le=200)
    # A polygon instead of the radius: "gemeente:GM0307" or "gemeente:Amersfoort" (the
    # municipality, shipped with listener) or a GeoJSON file relative to the queries folder.
    area: str | None = None
    # Opening hours (listener.urgency.hours); None: the organisation's.
    hours: OpeningHours | None = None


class Organisation(Strict):
    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1)
    aliases: list[str] = []
    handles: list[str] = []
    branches: list[Branch] = []
    hours: OpeningHours | None = None  # the default for its branches; None: unknown

    @model_validator(mode="after")
    def _unique_branches(self) -> Organisation:
        seen: set[str] = set()
        for branch in self.branches:
            if branch.id in seen:
                raise ValueError(f"branch id {branch.id!r} is used twice")
            seen.add(branch.id)
        return self


class Search(Strict):
    id: str = Field(pattern=SLUG)
    org: str | None = None
    kind: Literal["brand", "local"]
    terms: list[str] = []
    fuzzy: int = Field(88, ge=50, le=100)
    exclude: list[str] = []
    sources: list[str] = []
    interval: Duration | None = None
    languages: list[str] = []
    sense_cues: list[str] = []  # more words that show another sense of the terms (local searches)
    query: str | None = None  # the query language (listener.query); checked by the loader

    @model_validator(mode="after")
    def _needs_something_to_find(self) -> Search:
        if self.kind == "brand" and self.org is None:
            raise ValueError("a brand search needs org: the organisation whose names it finds")
        if self.kind == "local" and not self.terms and not (self.query or "").strip():
            raise ValueError("a local search needs terms or a query, such as 'de bieb'")
        return self


class QueryFile(Strict):
    import_csv: list[str] = []
    organisations: list[Organisation] = []
    searches: list[Search] = []


# --- alerts/*.toml -----------------------------------------------------------------------------


class Receiver(Strict):
    """Where alerts can go. Secrets (tokens, webhook URLs, signing keys) are never written here,
    only the names of the environment variables that hold them."""

    id: str = Field(pattern=SLUG)
    type: Literal["console", "slack", "slack_webhook", "email", "webhook"]
    channel: str | None = None  # slack: '#webcare' or a channel id
    to: list[str] = []  # email: the addresses
    url_env: str | None = None  # slack_webhook, webhook: the variable holding the URL
    secret_env: str | None = None  # webhook: the variable holding the HMAC signing secret

    @model_validator(mode="after")
    def _settings_for_type(self) -> Receiver:
        if self.type == "slack" and not self.channel:
            raise ValueError("a slack receiver needs channel, e.g. '#webcare' or a channel id")
        if self.type == "email" and not self.to:
            raise ValueError("an email receiver needs to = ['someone@example.org']")
        if self.type in ("slack_webhook", "webhook") and not self.url_env:
            raise ValueError(
                f"a {self.type} receiver needs url_env: the environment variable that holds "
                "its URL, e.g. 'WEBCARE_WEBHOOK_URL'"
            )
        if self.type == "webhook" and not self.secret_env:
            raise ValueError(
                "a webhook receiver needs secret_env: the environment variable that holds the "
                "secret its requests are signed with"
            )
        if self.type != "email" and self.to:
            raise ValueError("to is only for email receivers")
        if self.type != "slack" and self.channel:
            raise ValueError("channel is only for slack receivers")
        if self.type not in ("slack_webhook", "webhook") and self.url_env:
            raise ValueError("url_env is only for slack_webhook and webhook receivers")
        if self.type != "webhook" and self.secret_env:
            raise ValueError("secret_env is only for webhook receivers")
        return self


#: In a route's `branches`: the alerts that name no branch (branch unknown).
NO_BRANCH = "-"


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_SPAN = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
WORKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def parse_clock(value: str) -> tuple[int, int]:
    """'08:30' → (8, 30)."""
    found = _CLOCK.match(value.strip())
    if found is None:
        raise ValueError(f"bad time of day {value!r}: write it like '08:30'")
    return int(found.group(1)), int(found.group(2))


def parse_span(value: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """'18:00-08:00' → ((18, 0), (8, 0)); the span may run past midnight."""
    found = _SPAN.match(value)
    if found is None:
        raise ValueError(f"bad hours {value!r}: write a span like '18:00-08:00'")
    start, end = parse_clock(found.group(1)), parse_clock(found.group(2))
    if start == end:
        raise ValueError(f"bad hours {value!r}: the span starts where it ends")
    return start, end


def _days(value: object) -> object:
    """'workdays' and 'weekend' as shorthands for lists of days."""
    if value == "workdays":
        return list(WORKDAYS)
    if value == "weekend":
        return ["sat", "sun"]
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Days = Annotated[list[Weekday], BeforeValidator(_days)]


class Route(Strict):
    """Which alerts go where, and when. A route matches when each of its non-empty matchers does
    (an empty one matches everything); the first matching route wins unless it says
    `continue = true`. `mode`, quiet hours and escalation apply to the alerts this route sends
    to its receivers (`listener.dispatch`)."""

    id: str | None = Field(None, pattern=SLUG)  # default: "<file>#<n>" (set by the loader)
    orgs: list[str] = []
    branches: list[str] = []  # branch ids of the routed orgs; "-": alerts that name no branch
    searches: list[str] = []
    labels: list[str] = []  # any of these urgency labels
    sources: list[str] = []  # the post's source: bluesky, mastodon, rss, …
    min_level: Level = "low"
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")
    # instant: each alert at once; digest: one message with what came in, every `digest_every`
    # or at the `digest_at` times (local, config `timezone`) on the `digest_days`.
    mode: Literal["instant", "digest"] = "instant"
    digest_every: Duration | None = None
    digest_at: list[str] = []  # ["08:30", "13:00"]
    digest_days: Days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # or "workdays"
    # Quiet hours (local): alerts are held and sent as one message when they end; with
    # during_quiet = "critical", critical alerts still go out at once.
    quiet_hours: str | None = None  # "18:00-08:00"
    quiet_days: Days = []  # whole days, e.g. "weekend"
    during_quiet: Literal["hold", "critical"] = "hold"
    # A critical alert nobody acknowledged within `escalate_after` goes to `escalate_to` too.
    escalate_after: Duration | None = None
    escalate_to: list[str] = []

    @field_validator("digest_at")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_clock(item)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _span(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Route:
        if self.mode == "digest" and (self.digest_every is None) == (not self.digest_at):
            raise ValueError(
                "a digest route needs digest_every (e.g. '1h') or digest_at (e.g. ['08:30']), "
                "one of the two"
            )
        if self.mode == "instant" and (self.digest_every is not None or self.digest_at):
            raise ValueError("digest_every and digest_at need mode = 'digest'")
        if self.digest_every is not None and self.digest_every < timedelta(minutes=1):
            raise ValueError("digest_every must be at least a minute")
        if not self.digest_days:
            raise ValueError("digest_days names no day")
        if (self.escalate_after is None) != (not self.escalate_to):
            raise ValueError(
                "escalation needs both escalate_after (e.g. '15m') and escalate_to "
                "(the receivers, e.g. ['oncall-mail'])"
            )
        return self

    @property
    def quiet(self) -> bool:
        """Whether the route has quiet hours or quiet days."""
        return self.quiet_hours is not None or bool(self.quiet_days)


class AlertsFile(Strict):
    #: The receiver for alerts that no route matches (at most one across all alerts files).
    default: str | None = None
    receivers: list[Receiver] = []
    routes: list[Route] = []
