"""What people's feedback says about the alerts: precision per search, over a period.

`build_report` reads the alerts of the period and the newest feedback on each from the store and
counts; `listener report` prints the result as a table or JSON. The counting is one function,
`tally(alerts, verdicts, key)`, so more views (per branch, label or level) are more keys, and
more formats are more printers of the same `Report`.

The figures of a group of alerts (`Counts`):

- precision: the organisation was right, (alerts − not relevant) / alerts. Unjudged alerts count
  as right: nobody said otherwise, and a webcare team mostly speaks up about the wrong ones;
- judged precision: the same among the judged alerts only, (judged − not relevant) / judged;
- branch precision: among the alerts whose organisation was right, the share whose branch (or
  'no particular branch') was right too, (org right − wrong branch) / org right; unjudged count
  as right here as well; judged branch precision is relevant / (relevant + wrong branch).

A figure without alerts to divide by is None ('-' in the table). Alerts about listener itself
(source health) are not counted.

`Activity` is what happened in the period, from the posts and decisions tables: posts about an
organisation (its decision names one; created in the period) and alerts (created in the period)
per branch, per label and per level, the time from a post to its alert (median and 90th
percentile, nearest rank; a post stamped after its alert counts as 0), the authors with the
most posts, and posts and alerts per local day. Counts are GROUP BY queries; only the
timestamps needed for the day buckets and delays are read row by row, because a local day and a
percentile are not portable SQL.

Renderers of the same `Report`: `report_csv` (one tidy CSV: section, key, metric, value),
`chart_svg` / `chart_png` (the daily chart, matplotlib on its Agg canvas, never pyplot, so it
needs no display and is safe in the daemon's threads), and `render_report` (subject, text and
HTML from the Jinja2 templates `report_subject.txt.j2`, `report.txt.j2` and `report.html.j2` in
the alerts templates folder; the HTML one autoescaped).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, cast, func, type_coerce
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from listener.config.loader import REPORT_TEMPLATES
from listener.config.model import LEVELS
from listener.health import SYSTEM
from listener.store import AlertRow, DecisionRow, PostRow, Store

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "Activity",
    "AuthorCount",
    "Counts",
    "RenderedReport",
    "Report",
    "Tally",
    "build_report",
    "chart_png",
    "chart_svg",
    "render_report",
    "report_csv",
    "tally",
]

NO_BRANCH = "(branch unknown)"
TOP_AUTHORS = 10


@dataclass(slots=True)
class Counts:
    """The alerts of one group (a search; later a branch, label or level) and their verdicts."""

    alerts: int = 0
    relevant: int = 0
    not_relevant: int = 0
    wrong_branch: int = 0

    def add(self, verdict: str | None) -> None:
        self.alerts += 1
        if verdict == "relevant":
            self.relevant += 1
        elif verdict == "not-relevant":
            self.not_relevant += 1
        elif verdict == "wrong-branch":
            self.wrong_branch += 1

    @property
    def judged(self) -> int:
        return self.relevant + self.not_relevant + self.wrong_branch

    @property
    def unjudged(self) -> int:
        return self.alerts - self.judged

    @property
    def precision(self) -> float | None:
        return _share(self.alerts - self.not_relevant, self.alerts)

    @property
    def judged_precision(self) -> float | None:
        return _share(self.judged - self.not_relevant, self.judged)

    @property
    def branch_precision(self) -> float | None:
        org_right = self.alerts - self.not_relevant
        return _share(org_right - self.wrong_branch, org_right)

    @property
    def judged_branch_precision(self) -> float | None:
        return _share(self.relevant, self.relevant + self.wrong_branch)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "relevant": self.relevant,
            "not_relevant": self.not_relevant,
            "wrong_branch": self.wrong_branch,
            "unjudged": self.unjudged,
            "precision": self.precision,
            "judged_precision": self.judged_precision,
            "branch_precision": self.branch_precision,
            "judged_branch_precision": self.judged_branch_precision,
        }


@dataclass(slots=True)
class Tally:
    """Posts about an organisation and alerts in one group (a branch, label, level or day)."""

    posts: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"posts": self.posts, "alerts": self.alerts}


@dataclass(frozen=True, slots=True)
class AuthorCount:
    handle: str
    posts: int
    alerts: int


@dataclass(frozen=True, slots=True)
class Activity:
    """What happened in the period; see the module docstring."""

    posts: int = 0
    alerts: int = 0
    branches: dict[str, Tally] = field(default_factory=dict)
    labels: dict[str, Tally] = field(default_factory=dict)
    levels: dict[str, Tally] = field(default_factory=dict)
    delays: tuple[timedelta, ...] = ()  # post → alert, sorted
    authors: tuple[AuthorCount, ...] = ()
    days: dict[date, Tally] = field(default_factory=dict)  # every local day of the period

    @property
    def delay_median(self) -> timedelta | None:
        n = len(self.delays)
        if not n:
            return None
        middle = self.delays[n // 2]
        return middle if n % 2 else (self.delays[n // 2 - 1] + middle) / 2

    @property
    def delay_p90(self) -> timedelta | None:
        if not self.delays:
            return None
        return self.delays[math.ceil(0.9 * len(self.delays)) - 1]

    def as_dict(self) -> dict[str, Any]:
        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "posts": self.posts,
            "alerts": self.alerts,
            "branches": {k: v.as_dict() for k, v in self.branches.items()},
            "labels": {k: v.as_dict() for k, v in self.labels.items()},
            "levels": {k: v.as_dict() for k, v in self.levels.items()},
            "post_to_alert_seconds": {
                "alerts": len(self.delays),
                "median": seconds(self.delay_median),
                "p90": seconds(self.delay_p90),
            },
            "top_authors": [
                {"handle": a.handle, "posts": a.posts, "alerts": a.alerts} for a in self.authors
            ],
            "days": {day.isoformat(): v.as_dict() for day, v in self.days.items()},
        }


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    org: str | None  # only this organisation's alerts; None: all
    searches: dict[str, Counts] = field(default_factory=dict)
    total: Counts = field(default_factory=Counts)
    activity: Activity = field(default_factory=Activity)
    timezone: str = "UTC"  # the days of `activity` are local days of this zone

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "org": self.org,
            "timezone": self.timezone,
            "unjudged_count_as_right": True,
            "searches": {search: counts.as_dict() for search, counts in self.searches.items()},
            "total": self.total.as_dict(),
            **self.activity.as_dict(),
        }


def tally(
    alerts: Iterable[AlertRow],
    verdicts: Mapping[int, str],
    key: Callable[[AlertRow], str],
) -> dict[str, Counts]:
    """`Counts` per `key(alert)`, sorted by key; `verdicts` is the newest verdict per alert id."""
    groups: dict[str, Counts] = {}
    for alert in alerts:
        assert alert.id is not None
        groups.setdefault(key(alert), Counts()).add(verdicts.get(alert.id))
    return dict(sorted(groups.items()))


def build_report(
    store: Store,
    since: datetime,
    now: datetime,
    *,
    org: str | None = None,
    timezone: str = "UTC",
    top_authors: int = TOP_AUTHORS,
) -> Report:
    """The report on the posts and alerts created since `since` (until `now`), as the feedback
    stands `now`; days are local days in `timezone`."""
    alerts = [
        a
        for a in store.alerts_since(since)
        if a.org != SYSTEM and (org is None or a.org == org) and a.created_at <= now
    ]
    verdicts = {row.alert_id: row.verdict for row in store.feedback(since)}
    total = Counts()
    for alert in alerts:
        assert alert.id is not None
        total.add(verdicts.get(alert.id))
    searches = tally(alerts, verdicts, key=lambda a: a.search)
    activity = build_activity(store, since, now, org=org, timezone=timezone, top=top_authors)
    return Report(
        since=since,
        until=now,
        org=org,
        searches=searches,
        total=total,
        activity=activity,
        timezone=timezone,
    )


def build_activity(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    org: str | None = None,
    timezone: str = "UTC",
    top: int = TOP_AUTHORS,
) -> Activity:
    """Posts about an organisation and alerts in [since, until]; see the module docstring."""
    zone = ZoneInfo(timezone)
    d, p, a = DecisionRow, PostRow, AlertRow

    def branch_key(row_org: str, branch: str | None) -> str:
        name = branch or NO_BRANCH
        return name if org is not None else f"{row_org}/{name}"

    post_scope = [
        col(d.org).is_not(None),
        col(d.org) != SYSTEM,
        col(p.created_at) >= since,
        col(p.created_at) <= until,
    ]
    alert_scope = [col(a.org) != SYSTEM, col(a.created_at) >= since, col(a.created_at) <= until]
    if org is not None:
        post_scope.append(col(d.org) == org)
        alert_scope.append(col(a.org) == org)
    handle = _json_text(store, col(p.data), ("author", "handle"))

    branches: dict[str, Tally] = {}
    labels: dict[str, Tally] = {}
    levels: dict[str, Tally] = {level: Tally() for level in LEVELS}
    days = {day: Tally() for day in _days(since, until, zone)}
    posts = alerts = 0
    delays: list[timedelta] = []
    with Session(store.engine) as session, session.begin():
        grouped_posts = session.execute(
            sql_select(col(d.org), col(d.branch), col(d.urgency), col(d.labels), func.count())
            .join(p, col(p.id) == col(d.post_id))
            .where(*post_scope)
            .group_by(col(d.org), col(d.branch), col(d.urgency), col(d.labels))
        ).all()
        grouped_alerts = session.execute(
            sql_select(col(a.org), col(a.branch), col(a.level), col(d.labels), func.count())
            .join(d, col(d.post_id) == col(a.post_id), isouter=True)
            .where(*alert_scope)
            .group_by(col(a.org), col(a.branch), col(a.level), col(d.labels))
        ).all()
        post_times = session.exec(
            select(p.created_at).join(d, col(d.post_id) == col(p.id)).where(*post_scope)
        ).all()
        alert_times = session.exec(
            select(a.created_at, p.created_at)
            .join(p, col(p.id) == col(a.post_id))
            .where(*alert_scope)
        ).all()
        author_posts = session.exec(
            select(handle, func.count())
            .select_from(d)
            .join(p, col(p.id) == col(d.post_id))
            .where(*post_scope, handle.is_not(None))
            .group_by(handle)
        ).all()
        author_alerts = session.exec(
            select(handle, func.count())
            .select_from(a)
            .join(p, col(p.id) == col(a.post_id))
            .where(*alert_scope, handle.is_not(None))
            .group_by(handle)
        ).all()

    for row_org, branch, urgency, label_json, n in grouped_posts:
        posts += n
        branches.setdefault(branch_key(str(row_org), branch), Tally()).posts += n
        levels.setdefault(urgency, Tally()).posts += n
        for label in _labels(label_json):
            labels.setdefault(label, Tally()).posts += n
    for row_org, branch, level, label_json, n in grouped_alerts:
        alerts += n
        branches.setdefault(branch_key(row_org, branch), Tally()).alerts += n
        levels.setdefault(level, Tally()).alerts += n
        for label in _labels(label_json):
            labels.setdefault(label, Tally()).alerts += n
    for created in post_times:
        day = _local_day(created, zone)
        if day in days:
            days[day].posts += 1
    for alerted, posted in alert_times:
        day = _local_day(alerted, zone)
        if day in days:
            days[day].alerts += 1
        delays.append(max(_aware(alerted) - _aware(posted), timedelta(0)))

    by_alerts = dict(author_alerts)
    ranked = sorted(author_posts, key=lambda row: (-row[1], -by_alerts.get(row[0], 0), row[0]))
    authors = tuple(AuthorCount(h, n, by_alerts.get(h, 0)) for h, n in ranked[:top])
    return Activity(
        posts=posts,
        alerts=alerts,
        branches=_by_count(branches),
        labels=_by_count(labels),
        levels=levels,
        delays=tuple(sorted(delays)),
        authors=authors,
        days=days,
    )


def _json_text(store: Store, column: Any, path: tuple[str, ...]) -> Any:
    """A text field inside a JSON text column: JSON_EXTRACT on SQLite, #>> on PostgreSQL."""
    as_json = (
        cast(column, JSON)
        if store.engine.dialect.name == "postgresql"
        else type_coerce(column, JSON)
    )
    return as_json[path].as_string()


def _labels(value: str | None) -> list[str]:
    if not value:
        return []
    loaded = json.loads(value)
    return [str(x) for x in loaded] if isinstance(loaded, list) else []


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    return _aware(moment).astimezone(zone).date()


def _days(since: datetime, until: datetime, zone: ZoneInfo) -> list[date]:
    first, last = _local_day(since, zone), _local_day(until, zone)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _by_count(groups: dict[str, Tally]) -> dict[str, Tally]:
    """Most posts first, then most alerts, then by name."""
    return dict(sorted(groups.items(), key=lambda kv: (-kv[1].posts, -kv[1].alerts, kv[0])))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- renderers ---------------------------------------------------------------------------------


def format_duration(value: timedelta | None) -> str:
    """'45 s', '12 min', '12 min 5 s', '3 h 20 min', '2 d 4 h'; '-' for None."""
    if value is None:
        return "-"
    s = round(value.total_seconds())
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def format_share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """A spreadsheet opens a cell starting with = + - @ as a formula: a hostile author handle
    would run. Such text gets a leading apostrophe (what spreadsheets themselves do)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def report_rows(report: Report) -> list[tuple[str, str, str, object]]:
    """The report as tidy rows: (section, key, metric, value)."""
    rows: list[tuple[str, str, str, object]] = [
        ("period", "", "since", report.since.isoformat()),
        ("period", "", "until", report.until.isoformat()),
        ("period", "", "org", report.org or ""),
        ("period", "", "timezone", report.timezone),
    ]
    for search, counts in report.searches.items():
        rows += [("search", search, k, v) for k, v in counts.as_dict().items()]
    rows += [("total", "all searches", k, v) for k, v in report.total.as_dict().items()]
    activity = report.activity
    rows += [("activity", "", "posts", activity.posts), ("activity", "", "alerts", activity.alerts)]
    for section, groups in (
        ("branch", activity.branches),
        ("label", activity.labels),
        ("level", activity.levels),
    ):
        for key, group in groups.items():
            rows += [(section, key, "posts", group.posts), (section, key, "alerts", group.alerts)]
    for metric, value in activity.as_dict()["post_to_alert_seconds"].items():
        rows.append(
            ("post_to_alert", "", metric if metric == "alerts" else f"{metric}_seconds", value)
        )
    for author in activity.authors:
        rows += [
            ("author", author.handle, "posts", author.posts),
            ("author", author.handle, "alerts", author.alerts),
        ]
    for day, tallied in activity.days.items():
        rows += [
            ("day", day.isoformat(), "posts", tallied.posts),
            ("day", day.isoformat(), "alerts", tallied.alerts),
        ]
    return rows


def report_csv(report: Report) -> str:
    """One tidy CSV with the header section,key,metric,value (None is an empty value)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "key", "metric", "value"))
    for row in report_rows(report):
        writer.writerow([_csv_cell(cell) for cell in row])
    return buffer.getvalue()


def _chart(report: Report) -> Any:
    """The daily chart as a matplotlib Figure on an Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = list(report.activity.days)
    figure = Figure(figsize=(8, 2.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = list(range(len(days)))
    axes.bar(
        [i - 0.2 for i in x],
        [t.posts for t in report.activity.days.values()],
        width=0.4,
        label="posts",
        color="#90a4ae",
    )
    axes.bar(
        [i + 0.2 for i in x],
        [t.alerts for t in report.activity.days.values()],
        width=0.4,
        label="alerts",
        color="#ef6c00",
    )
    step = max(1, math.ceil(len(days) / 14))
    axes.set_xticks(x[::step], [day.strftime("%a %d-%m") for day in days][::step], fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(axis="y", labelsize=8)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.legend(loc="upper left", frameon=False, fontsize=8, ncols=2)
    figure.tight_layout()
    return figure


def chart_svg(report: Report) -> str:
    """The daily chart as an inline <svg> element (no XML prolog, no date, text as paths)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "listener"}):
        _chart(report).savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :].strip()


def chart_png(report: Report) -> bytes:
    """The daily chart as PNG (for e-mail: clients that drop inline SVG show images)."""
    buffer = io.BytesIO()
    _chart(report).savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class RenderedReport:
    subject: str
    text: str
    html: str


def template_environments(templates_dir: Path) -> tuple[jinja2.Environment, jinja2.Environment]:
    """(text, html) Jinja2 environments over the templates folder; undefined names are errors,
    the HTML one autoescapes."""
    import jinja2

    loader = jinja2.FileSystemLoader(templates_dir)
    text_env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        autoescape=False,
        keep_trailing_newline=True,
    )
    html_env = jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, autoescape=True
    )
    for env in (text_env, html_env):
        env.filters["duration"] = format_duration
        env.filters["share"] = format_share
    return text_env, html_env


def render_report(
    report: Report,
    templates_dir: Path,
    *,
    chart: str = "",
    org_name: str | None = None,
    title: str = "listener report",
) -> RenderedReport:
    """Subject, text and HTML from the report templates; raises jinja2.TemplateError.

    `chart` is trusted HTML put in the page as is (`chart_svg`, or an <img> of the PNG);
    everything from the report (handles, branch and search names) is escaped by the template."""
    from markupsafe import Markup

    zone = ZoneInfo(report.timezone)
    context = {
        "title": title,
        "report": report,
        "activity": report.activity,
        "org_name": org_name,
        "since": report.since.astimezone(zone),
        "until": report.until.astimezone(zone),
        "chart": Markup(chart),
    }
    text_env, html_env = template_environments(templates_dir)
    subject = text_env.get_template(REPORT_TEMPLATES[0]).render(context)
    return RenderedReport(
        subject=" ".join(subject.split()),
        text=text_env.get_template(REPORT_TEMPLATES[1]).render(context),
        html=html_env.get_template(REPORT_TEMPLATES[2]).render(context),
    )
