"""The `listener` command: run the daemon, check the configuration, and try searches offline.

A thin layer over the library: every command loads the configuration the same way and prints
configuration problems as `file:line: field: what is wrong` with exit code 1.
"""

from __future__ import annotations

import getpass
import json
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from listener import __version__
from listener.config import Config, ConfigError, load_config
from listener.post import Author, Geo, Post, PostError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from listener.backtest import LevelScores, Mistake, Scores, Truth
    from listener.compare import Comparison
    from listener.report import Report as ReportData
    from listener.report import Tally
    from listener.silence import Matcher
    from listener.store import Store

app = typer.Typer(
    help="Social listening for webcare teams: saved searches, where a post is about, and alerts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
alerts_out = Console(highlight=False, emoji=False)  # alerts wrap inside their panels
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The config file (TOML).", envvar="LISTENER_CONFIG"),
]
DEFAULT_CONFIG = Path("config.example.toml")


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(Text(str(problem)))
        err.print(Text(f"{len(exc.problems)} problem(s) in the configuration", style="bold red"))
        raise typer.Exit(1) from None


def _setup_logging(cfg: Config) -> None:
    """Logs on stderr: JSON lines or text (`log_format`), scrubbed of the secrets in the
    environment (`listener.logs`)."""
    import os

    from listener.logs import config_secret_names, setup_logging

    setup_logging(
        cfg.main.log_level,
        cfg.main.log_format,
        env=os.environ,
        secret_names=config_secret_names(cfg),
        stream=sys.stderr,
    )


def _version(value: bool) -> None:
    if value:
        out.print(f"listener {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Social listening for webcare teams."""


@app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG,
    once: Annotated[
        bool, typer.Option("--once", help="Run every source one time, deliver, and exit.")
    ] = False,
) -> None:
    """Run the daemon: poll the sources, decide, alert. Stops cleanly on SIGTERM or Ctrl-C."""
    from listener.daemon import Daemon

    cfg = _load(config)
    _setup_logging(cfg)
    try:
        daemon = Daemon.from_config(cfg, console=alerts_out)
    except (SQLAlchemyError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        err.print(Text(f"cannot open the database {_safe_url(cfg.database_url)}: {reason}"))
        raise typer.Exit(1) from None

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("listener").info("signal %s: stopping", signal.Signals(signum).name)
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if once:
            polls, delivered = daemon.run_once()
            counts = daemon.store.outbox_counts()
            left = counts.get("pending", 0) + counts.get("sending", 0)
            silenced = sum(p.silenced for p in polls)
            err.print(
                Text(
                    f"once: {sum(p.fetched for p in polls)} posts fetched, "
                    f"{sum(p.new_posts for p in polls)} new, "
                    f"{sum(p.alerts for p in polls)} alerts"
                    + (f" ({silenced} silenced, not delivered)" if silenced else "")
                    + "; "
                    f"{delivered.sent} delivered, {delivered.failed} failed, "
                    f"{left} left in the outbox"
                    + (f", {held} held for a digest" if (held := counts.get("held", 0)) else "")
                )
            )
        else:
            daemon.run_forever()
    finally:
        daemon.store.close()


@app.command()
def check(
    config: ConfigOption = DEFAULT_CONFIG,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 when a search has warnings (common words, loose fuzzy)."
        ),
    ] = False,
) -> None:
    """Validate the config, queries and alerts; print a summary, or every problem and exit 1.
    Then warn about searches that would drown the team (exit 1 with --strict)."""
    cfg = _load(config)
    from listener.daemon import build_notifiers
    from listener.query.lint import lint
    from listener.sources import build_sources

    branches = sum(len(o.branches) for o in cfg.organisations.values())
    out.print(Text(f"config {cfg.path}: OK", style="bold green"))
    out.print(Text(f"  database: {_safe_url(cfg.database_url)}"))
    out.print(Text(f"  organisations: {len(cfg.organisations)}, branches: {branches}"))
    for org in cfg.organisations.values():
        names = ", ".join(b.id for b in org.branches) or "no branches"
        out.print(Text(f"    {org.id}: {org.name} ({names})"))
    out.print(Text(f"  searches: {len(cfg.searches)}"))
    for search in cfg.searches:
        scope = search.org or "all organisations"
        out.print(Text(f"    {search.id}: {search.kind}, {scope}, fuzzy {search.fuzzy}"))
    unavailable: dict[str, str] = {}
    sources = build_sources(
        cfg.main, cfg.searches, cfg.organisations, cfg.base_dir, unavailable=unavailable
    )
    out.print(Text(f"  sources: {len(sources)}"))
    for source in sources:
        out.print(Text(f"    {source.key} every {_duration(source.interval.total_seconds())}"))
    for kind, reason in unavailable.items():
        out.print(Text(f"    {kind}: not running ({reason})", style="yellow"))
    _, unavailable = build_notifiers(cfg)
    out.print(Text(f"  receivers: {len(cfg.receivers)}, routes: {len(cfg.routes)}"))
    for receiver in cfg.receivers.values():
        state = unavailable.get(receiver.id)
        reason = state.split(" inactive: ", 1)[-1] if state else ""
        line = f"    {receiver.id}: {receiver.type}" + (f" (inactive: {reason})" if state else "")
        out.print(Text(line, style="yellow" if state else ""))
    if cfg.default_receiver is not None:
        out.print(Text(f"    default (alerts no route matches): {cfg.default_receiver}"))
    else:
        out.print(Text("    default: none (alerts no route matches are dropped)"))
    replay = cfg.main.sources.replay
    if replay and replay.enabled and not cfg.resolve(replay.path).is_file():
        warning = f"  warning: replay file {cfg.resolve(replay.path)} does not exist (yet)"
        out.print(Text(warning, style="yellow"))
    if not cfg.routes and cfg.default_receiver is None:
        out.print(Text("  warning: no routes, so no alert goes anywhere", style="yellow"))
    warnings = lint(cfg)
    for found in warnings:
        out.print(Text(str(found), style="yellow"))
    if warnings:
        out.print(Text(f"{len(warnings)} warning(s) about the searches", style="yellow"))
        if strict:
            raise typer.Exit(1)


@app.command()
def sources(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the sources: which run and which cannot (and why), their health and cursors."""
    from listener.health import SourceHealth
    from listener.sources import build_sources
    from listener.store import Store

    cfg = _load(config)
    unavailable: dict[str, str] = {}
    built = build_sources(
        cfg.main, cfg.searches, cfg.organisations, cfg.base_dir, unavailable=unavailable
    )
    store = Store(cfg.database_url)
    try:
        health = {row.key: row for row in SourceHealth(store).rows()}
        cursors = {row.key: row.value for row in store.source_states()}
    finally:
        store.close()
    table = Table("source", "every", "last success", "new", "trouble", "cursor")
    for source in built:
        row = health.get(source.key)
        trouble = ""
        if row is not None and row.failing_since is not None:
            trouble = f"failing since {row.failing_since:%Y-%m-%d %H:%M}: {row.last_error}"
        table.add_row(
            Text(source.key),
            _duration(source.interval.total_seconds()),
            f"{row.last_success_at:%Y-%m-%d %H:%M}" if row and row.last_success_at else "never",
            str(row.last_posts) if row else "-",
            Text(trouble, style="red"),
            Text((cursors.get(source.key) or "")[:40]),
        )
    out.print(table)
    for kind, reason in unavailable.items():
        out.print(Text(f"{kind}: not running: {reason}", style="yellow"))
    configured = {
        name for name in type(cfg.main.sources).model_fields if getattr(cfg.main.sources, name)
    }
    for name in type(cfg.main.sources).model_fields:
        if name not in configured:
            out.print(
                Text(f"{name}: not configured (add [sources.{name}] to {cfg.path})", style="dim")
            )


STATUS_ALERTS = 10  # the most recent alerts `listener status` shows
STATUS_TEXT = 80  # characters of each alert's post text


@app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The state of a (running) daemon, from the database alone: the sources, the outbox and
    the most recent alerts."""
    from zoneinfo import ZoneInfo

    from listener.sources import build_sources

    cfg = _load(config)
    zone = ZoneInfo(cfg.main.timezone)
    built = build_sources(cfg.main, cfg.searches, cfg.organisations, cfg.base_dir, unavailable={})
    intervals = {source.key: source.interval for source in built}
    url = cfg.database_url
    states: list[Any] = []
    counts: dict[str, int] = {}
    alerts: list[dict[str, Any]] = []
    leases: dict[str, Any] = {}
    missing = url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()
    if not missing:  # no SQLite file yet: nothing has run, and status does not create it
        from listener.leases import Leases

        store = _open_store(cfg)
        try:
            states, counts, alerts = _status_rows(store)
            leases = {row.key: row for row in Leases(store.engine).rows()}
        finally:
            store.close()
    now = datetime.now(UTC)
    by_key = {state.key: state for state in states}
    sources_out: list[dict[str, object]] = []
    for key in [*intervals, *sorted(set(by_key) - set(intervals))]:
        state, interval = by_key.get(key), intervals.get(key)
        polled = _aware(state.updated_at) if state is not None else None
        failures = state.failures if state is not None else 0
        next_run: datetime | None = None
        if interval is not None and polled is not None and not failures:
            next_run = polled + interval
        lease = leases.get(key)
        sources_out.append(
            {
                "key": key,
                "interval_s": interval.total_seconds() if interval is not None else None,
                "last_poll_at": polled,
                "last_success_at": _aware(state.last_success_at)
                if state is not None and state.last_success_at is not None
                else None,
                "failures": failures,
                "last_error": state.last_error if state is not None else None,
                "backing_off": bool(failures),
                "next_run_at": next_run,
                "configured": interval is not None,
                # the instance polling it now, or that polled it last (`listener.leases`)
                "instance": lease.owner if lease is not None else None,
                "polling": lease is not None and _aware(lease.until) > now,
            }
        )
    outbox = {name: counts.get(name, 0) for name in OUTBOX_STATUSES}
    outbox.update({name: n for name, n in counts.items() if name not in outbox})
    if as_json:
        typer.echo(
            json.dumps(
                {"sources": sources_out, "outbox": outbox, "alerts": alerts},
                ensure_ascii=False,
                default=lambda value: value.isoformat(),
            )
        )
        return
    table = Table(
        "source", "every", "last success", "failures", "last error", "next run", "instance"
    )
    for row in sources_out:
        interval_s = row["interval_s"]
        success, next_at, error = row["last_success_at"], row["next_run_at"], row["last_error"]
        if row["polling"]:
            next_text = "polling now"
        elif row["backing_off"]:
            next_text = "backing off"
        elif isinstance(next_at, datetime):
            next_text = _local(next_at, zone)
        elif row["configured"]:
            next_text = "at start"
        else:
            next_text = "-"  # webhook pushes, health alerts, or a source no longer configured
        table.add_row(
            Text(str(row["key"])),
            _duration(interval_s) if isinstance(interval_s, float) else "-",
            _local(success, zone) if isinstance(success, datetime) else "never",
            str(row["failures"]),
            Text(_cut(str(error or ""), 120), style="red"),
            next_text,
            Text(str(row["instance"] or "-")),
        )
    _print_wide(table)
    out.print(Text("outbox: " + ", ".join(f"{name} {n}" for name, n in outbox.items())))
    if not alerts:
        out.print(Text("no alerts yet"))
        return
    recent = Table("id", "time", "level", "org/branch", "post")
    for alert in alerts:
        where = f"{alert['org']}/{alert['branch']}" if alert["branch"] else str(alert["org"])
        recent.add_row(
            str(alert["id"]),
            _local(alert["created_at"], zone),
            Text(str(alert["level"])),
            Text(where),
            Text(str(alert["text"])),  # untrusted: never markup
        )
    _print_wide(recent)


OUTBOX_STATUSES = ("pending", "sending", "held", "failed", "silenced", "sent")


def _status_rows(store: Store) -> tuple[list[Any], dict[str, int], list[dict[str, Any]]]:
    """The sources' states, the outbox by status and the most recent alerts (their post text
    as the alert has it, personal data masked, cut to `STATUS_TEXT` characters)."""
    from sqlmodel import Session, col, select

    from listener.alert import AlertMessage
    from listener.store import AlertRow

    states = store.source_states()
    counts = store.outbox_counts()
    with Session(store.engine) as session:
        rows = list(
            session.exec(select(AlertRow).order_by(col(AlertRow.id).desc()).limit(STATUS_ALERTS))
        )
    alerts: list[dict[str, Any]] = []
    for row in rows:
        try:
            text = AlertMessage.from_json(row.message).post.text if row.message else ""
        except (ValueError, KeyError, TypeError):
            text = ""
        alerts.append(
            {
                "id": row.id,
                "created_at": _aware(row.created_at),
                "level": row.level,
                "org": row.org,
                "branch": row.branch,
                "text": _cut(" ".join(text.split()), STATUS_TEXT),
            }
        )
    return states, counts, alerts


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _aware(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives back naive datetimes, which are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
def classify(
    input: Annotated[Path, typer.Option("--input", "-i", help="Canonical posts, one JSON a line.")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="One decision JSON per line.")] = False,
) -> None:
    """Decide about posts offline: match, locate, score. No network, no alerts, no database."""
    from listener.pipeline import Classifier

    cfg = _load(config)
    classifier = Classifier(cfg)
    table = Table("post", "org", "branch", "search", "urgency", "score", "evidence")
    bad = 0
    try:
        lines = input.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        err.print(Text(f"{input}: {exc.strerror or exc}"))
        raise typer.Exit(1) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            post = Post.from_dict(json.loads(line))
        except (ValueError, PostError) as exc:
            err.print(Text(f"{input}:{number}: skipped: {exc}"))
            bad += 1
            continue
        decision = classifier.decide(post)
        if as_json:
            out.print(json.dumps(decision.to_json(), ensure_ascii=False), markup=False)
        else:
            table.add_row(
                Text(post.id),
                Text(decision.org or "-"),
                Text(decision.branch or "-"),
                Text(decision.query or "-"),
                Text(decision.urgency),
                f"{decision.score:g}",
                Text("\n".join(decision.evidence + decision.reasons)),
            )
    if not as_json:
        out.print(table)
    if bad:
        raise typer.Exit(1)


@app.command()
def backtest(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Replay the posts stored this far back, e.g. 30d."),
    ] = None,
    posts: Annotated[
        Path | None, typer.Option("--posts", help="Canonical posts, one JSON a line.")
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="The older version: a directory (an older copy of the project, or a queries "
            "folder) or a git ref such as HEAD.",
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option("--truth", help="The right answers: {id, org, branch} a line.")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[
        bool, typer.Option("--json", help="The figures, posts and mistakes as JSON.")
    ] = False,
) -> None:
    """Replay posts through the searches: what a change adds and drops, near-misses, and
    precision and recall against a truth file or the feedback given on alerts."""
    from listener.backtest import BacktestError, read_posts, read_truth

    if (since is None) == (posts is None):
        err.print("give exactly one of --since (the stored posts) and --posts (a posts file)")
        raise typer.Exit(2)
    if posts is not None and against is None and truth is None:
        err.print("--posts needs --truth, --against or both")
        raise typer.Exit(2)
    window = _since(since) if since is not None else None
    cfg = _load(config)
    try:
        truth_file = read_truth(truth) if truth is not None else {}
        if posts is not None:
            replayed, where = read_posts(posts), f"from {posts}"
            if against is None:
                _baseline_backtest(cfg, replayed, truth_file, as_json)
                return
            feedback: dict[str, Truth] = {}
        else:
            assert window is not None
            replayed, feedback, where = _stored_posts(cfg, datetime.now(UTC) - window)
    except BacktestError as exc:
        err.print(Text(str(exc)))
        raise typer.Exit(1) from None
    _compare(cfg, replayed, truth_file, feedback, against, where, as_json)


def _baseline_backtest(
    cfg: Config, posts: list[Post], truth: dict[str, Truth], as_json: bool
) -> None:
    """The posts file against a truth file, beside the keyword-only and radius-only baselines."""
    from listener.backtest import BacktestError
    from listener.backtest import backtest as run_backtest
    from listener.pipeline import Classifier

    try:
        # every search verified (no presearch), so near-misses of all of them show
        report = run_backtest(Classifier(cfg, presearch=False), posts, truth)
    except BacktestError as exc:
        err.print(Text(str(exc)))
        raise typer.Exit(1) from None
    if as_json:
        out.print(json.dumps(report.as_dict(), ensure_ascii=False), markup=False)
        return
    out.print(Text(f"{report.posts} posts, {report.about_an_organisation} about an organisation"))
    _print_scores(report.systems)
    if report.levels is not None:
        _print_levels(report.levels)
    out.print(Text(f"listener's mistakes: {len(report.mistakes)}", style="bold"))
    _print_mistakes(report.mistakes)


def _print_levels(levels: LevelScores) -> None:
    """Urgency levels against the truth: the confusion matrix and the figures."""
    from listener.backtest import LEVELS_AND_NONE

    table = Table(title="urgency level: truth (rows) against listener (columns)")
    table.add_column("truth", no_wrap=True)
    for name in LEVELS_AND_NONE:
        table.add_column(name, justify="right", no_wrap=True)
    for truth, row in levels.confusion.items():
        table.add_row(truth, *(str(row[name]) for name in LEVELS_AND_NONE))
    out.print(table)
    rho = "-" if levels.spearman is None else f"{levels.spearman:.3f}"
    out.print(
        Text(
            f"critical recall {levels.critical_recall:.3f} "
            f"({levels.critical_found}/{levels.critical}); exact level {levels.exact_rate:.3f} "
            f"({levels.exact}/{levels.about} posts about an organisation); critical posts two or "
            f"more levels off: {levels.critical_two_off}; Spearman's rank correlation of score "
            f"with the true level: {rho}"
        )
    )


def _stored_posts(cfg: Config, since: datetime) -> tuple[list[Post], dict[str, Truth], str]:
    """The posts stored since `since`, the feedback on them as truth, and where they are from."""
    from listener.compare import feedback_truth
    from listener.store import Store

    try:
        store = Store(cfg.database_url)
    except (SQLAlchemyError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        err.print(Text(f"cannot open the database {_safe_url(cfg.database_url)}: {reason}"))
        raise typer.Exit(1) from None
    try:
        posts = store.posts_since(since)
        feedback = feedback_truth(store, [p.id for p in posts])
    finally:
        store.close()
    return posts, feedback, f"stored since {since:%Y-%m-%d %H:%M} UTC"


def _compare(
    cfg: Config,
    posts: list[Post],
    truth_file: dict[str, Truth],
    feedback: dict[str, Truth],
    against: str | None,
    where: str,
    as_json: bool,
) -> None:
    from listener.compare import KINDS, CompareError, compare, load_against, merge_truth
    from listener.pipeline import Classifier

    truth = merge_truth(truth_file, feedback)
    new = Classifier(cfg, presearch=False)  # near-misses of every search, as `try` shows
    try:
        if against is None:
            report = compare(new, None, posts, truth, new_label=str(cfg.path))
        else:
            with load_against(cfg, against) as older:
                old = Classifier(older.config, gazetteer=new.gazetteer, presearch=False)
                report = compare(
                    new, old, posts, truth, new_label=str(cfg.path), old_label=older.label
                )
    except CompareError as exc:
        err.print(Text(str(exc)))
        raise typer.Exit(1) from None
    if as_json:
        data = report.as_dict()
        data["from"] = where
        data["truth_from"] = {
            "file": sum(1 for p in posts if p.id in truth_file),
            "feedback": sum(1 for p in posts if p.id in feedback and p.id not in truth_file),
        }
        out.print(json.dumps(data, ensure_ascii=False), markup=False)
        return
    versions = f"old {report.old_label} → new {cfg.path}" if against else f"config {cfg.path}"
    out.print(Text(f"{report.posts} posts {where}; {versions}", style="bold"))
    _print_search_counts(report)
    if against is not None:
        for kind in KINDS:
            changes = report.of_kind(kind)
            if changes:
                out.print(Text(f"{kind} ({len(changes)}):", style="bold"))
            for change in changes:
                out.print(Text(f"  {change.post_id}: {change.old.where} → {change.new.where}"))
                out.print(Text(f"      {change.text}", style="dim"))
                if kind != "added":
                    _print_lines("was", change.old.evidence)
                _print_lines("now", change.new.evidence)
        if not report.changes:
            out.print(Text("no post is decided differently", style="bold"))
    out.print(
        Text(f"near-misses, posts not matched now ({len(report.near_misses)}):", style="bold")
    )
    for miss in report.near_misses:
        was = f" (old: {miss.old.where})" if miss.old and miss.old.org else ""
        out.print(Text(f"  {miss.post_id}{was}"))
        out.print(Text(f"      {miss.text}", style="dim"))
        _print_lines("", miss.near_misses)
    if not report.systems:
        out.print(Text("no truth for these posts: give --truth, or feedback on alerts"))
        return
    from_file = sum(1 for p in posts if p.id in truth_file)
    from_feedback = sum(1 for p in posts if p.id in feedback and p.id not in truth_file)
    out.print(
        Text(
            f"truth for {report.truth_posts} posts: {from_file} from --truth, "
            f"{from_feedback} from feedback",
            style="bold",
        )
    )
    _print_scores(report.systems)
    name = list(report.systems)[-1 if against else 0]
    mistakes = report.mistakes[name]
    out.print(Text(f"{name}'s mistakes: {len(mistakes)}", style="bold"))
    _print_mistakes(mistakes)


def _print_search_counts(report: Comparison) -> None:
    compared = report.old_label is not None
    table = Table()
    table.add_column("search", no_wrap=True)
    headings = ("old", "new", "added", "dropped", "changed") if compared else ("posts",)
    for heading in headings:
        table.add_column(heading, justify="right", no_wrap=True)
    for row in report.searches:
        name = row.search
        if compared and not row.in_old:
            name += " (new)"
        elif not row.in_new:
            name += " (gone)"
        figures = (
            (row.old, row.new, row.added, row.dropped, row.changed) if compared else (row.new,)
        )
        table.add_row(Text(name), *(str(x) for x in figures))
    out.print(table)


def _print_lines(title: str, lines: Sequence[str]) -> None:
    if title:
        out.print(Text(f"      {title}:", style="dim"))
    for line in lines:
        out.print(Text(f"      - {line}", style="dim"))


def _print_scores(systems: Mapping[str, Scores]) -> None:
    table = Table()
    table.add_column("system", no_wrap=True)
    for heading in ("org P", "org R", "org F1", "br P", "br R", "br F1", "br acc"):
        table.add_column(heading, justify="right", no_wrap=True)
    for name, s in systems.items():
        figures = (s.precision, s.recall, s.f1, s.branch_precision, s.branch_recall, s.branch_f1)
        table.add_row(name, *(f"{x:.3f}" for x in (*figures, s.branch_accuracy)))
    out.print(table)
    for name, s in systems.items():
        out.print(Text(f"{name}: branch accuracy on {s.branch_total} posts tied to the right "
                       f"organisation, {s.branch_right} right"))  # fmt: skip


def _print_mistakes(mistakes: Sequence[Mistake]) -> None:
    for m in mistakes:
        out.print(Text(f"  {m.kind}: {m.id}: got {m.got}, expected {m.expected}"))
        out.print(Text(f"      {m.text}", style="dim"))
        for line in m.evidence:
            out.print(Text(f"      - {line}", style="dim"))


@app.command("try")
def try_text(
    text: Annotated[str, typer.Argument(help="The post text to try.")],
    config: ConfigOption = DEFAULT_CONFIG,
    location: Annotated[
        str | None, typer.Option(help="The author's profile location, e.g. 'Amersfoort'.")
    ] = None,
    lat: Annotated[float | None, typer.Option(help="The post's latitude.")] = None,
    lon: Annotated[float | None, typer.Option(help="The post's longitude.")] = None,
    followers: Annotated[int | None, typer.Option(help="The author's followers.")] = None,
    lang: Annotated[str | None, typer.Option(help="The post's language, e.g. nl.")] = None,
    source: Annotated[str, typer.Option(help="The source the post comes from.")] = "replay",
) -> None:
    """Decide about one text typed by hand, with every piece of evidence and near-miss."""
    from listener.pipeline import Classifier

    if (lat is None) != (lon is None):
        err.print("give both --lat and --lon, or neither")
        raise typer.Exit(2)
    cfg = _load(config)
    post = Post(
        id="try:1",
        source=source,
        text=text,
        created_at=datetime.now(UTC),
        lang=lang,
        author=Author(handle="you", location=location, followers=followers),
        geo=Geo(lat, lon) if lat is not None and lon is not None else None,
    )
    decision = Classifier(cfg, presearch=False).decide(post)  # every near-miss, too
    if decision.org:
        where = decision.org + (f" / {decision.branch}" if decision.branch else " (branch unknown)")
        out.print(Text(f"about: {where} via search {decision.query}", style="bold"))
        out.print(Text(f"urgency: {decision.urgency} ({decision.score:g})"))
        reasons, score, level = decision.reasons, decision.score, decision.urgency
        labels, heading = decision.labels, "urgency breakdown:"
    else:
        from listener.urgency.score import score_post

        out.print(Text("about: no organisation (no alert)", style="bold"))
        urgency = score_post(post, cfg.urgency)
        reasons, score, level = urgency.reasons, urgency.score, urgency.level
        labels = urgency.labels
        heading = "urgency breakdown (if it were about an organisation):"
    if labels:
        out.print(Text(f"labels: {', '.join(labels)}"))
    for title, lines in (("evidence", decision.evidence),):
        out.print(Text(f"{title}:" + ("" if lines else " none")))
        for line in lines:
            out.print(Text(f"  - {line}"))
    _print_breakdown(heading, reasons, score, level, cfg)
    out.print(Text("near-misses:" + ("" if decision.near_misses else " none")))
    for line in decision.near_misses:
        out.print(Text(f"  - {line}"))


def _print_breakdown(
    heading: str, reasons: Sequence[str], score: float, level: str, cfg: Config
) -> None:
    """Each factor of the urgency score with its points, then the total and the level."""
    out.print(Text(heading))
    rows = []
    for reason in reasons:
        factor, _, rest = reason.partition(": ")
        what, _, points = rest.rpartition(" ")
        rows.append((factor, points, what))
    width = max([len(f) for f, _, _ in rows] + [len("total")])
    for factor, points, what in rows:
        out.print(Text(f"  {factor:<{width}} {points:>6}  {what}"))
    levels = cfg.urgency.levels
    floors = f"critical ≥ {levels.critical:g}, high ≥ {levels.high:g}, normal ≥ {levels.normal:g}"
    out.print(Text(f"  {'total':<{width}} {score:>6g}  {level} ({floors})", style="bold"))


@app.command()
def feedback(
    alert_id: Annotated[
        int, typer.Argument(metavar="ALERT_ID", help="The alert's number ('listener alert #12').")
    ],
    verdict: Annotated[
        Literal["relevant", "not-relevant", "wrong-branch"],
        typer.Argument(metavar="VERDICT", help="What a person says about the alert."),
    ],
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch",
            help="With wrong-branch: the branch the post is about (leave it out for 'the "
            "organisation, no particular branch').",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who says so (default: your user name).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Say whether an alert was right: stored with the post, counted by `listener report`."""
    from listener.feedback import FeedbackError, UnknownAlert, record

    cfg = _load(config)
    store = _open_store(cfg)
    try:
        alert, row = record(
            store, cfg.organisations, alert_id, verdict, branch=branch, by=by or _user_name()
        )
    except UnknownAlert as exc:
        err.print(Text(f"{exc} in {_safe_url(cfg.database_url)}"))
        raise typer.Exit(1) from None
    except FeedbackError as exc:
        err.print(Text(str(exc)))
        raise typer.Exit(1) from None
    finally:
        store.close()
    where = alert.org + (f" / {alert.branch}" if alert.branch else "")
    said = row.verdict
    if row.verdict == "wrong-branch":
        said += f": it is about {row.branch or 'the organisation, no particular branch'}"
    out.print(Text(f"alert {alert_id} ({where}, search {alert.search}): marked {said}"))


@app.command()
def ack(
    alert_id: Annotated[
        int, typer.Argument(metavar="ALERT_ID", help="The alert's number ('listener alert #12').")
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Who is handling it (default: your user name).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Acknowledge an alert: someone is handling it, so its escalation stops.

    The acknowledgement is for the alert's conversation: a follow-up's acknowledges the alert
    it follows. The first acknowledgement stays (Slack's 'Acknowledge' button and a ✅ reaction
    record one too). When config.toml has [slack] and its bot token (token_env) is set, the
    conversation's Slack messages are updated to say who acknowledged it; when that fails, a
    warning says so and the acknowledgement is kept. Exit code 1 for an alert the database lacks.
    """
    import os
    from zoneinfo import ZoneInfo

    cfg = _load(config)
    zone = ZoneInfo(cfg.main.timezone)
    who = by or _user_name()
    store = _open_store(cfg)
    try:
        try:
            if not 0 < alert_id < 2**63:  # SQLite's integers
                raise KeyError(alert_id)
            row, new = store.acknowledge(alert_id, by=who, via="cli", now=datetime.now(UTC))
        except KeyError:
            err.print(Text(f"there is no alert {alert_id} in {_safe_url(cfg.database_url)}"))
            raise typer.Exit(1) from None
        root = row.alert_id
        conversation = f" (conversation of alert {root})" if root != alert_id else ""
        if not new:
            acked_at = row.acked_at if row.acked_at.tzinfo else row.acked_at.replace(tzinfo=UTC)
            out.print(
                Text(
                    f"alert {alert_id}{conversation} was already acknowledged by "
                    f"{row.by or 'someone'} via {row.via} at {_local(acked_at, zone)}"
                )
            )
            return
        out.print(Text(f"alert {alert_id} acknowledged{conversation} by {row.by or 'someone'}"))
        _ack_in_slack(cfg, store, root, os.environ)
    finally:
        store.close()


def _ack_in_slack(cfg: Config, store: Store, root: int, env: Mapping[str, str]) -> None:
    """chat.update each Slack message of alert `root` so it shows the acknowledgement; failures
    are warnings (by Slack's error code or the exception's type, never the token)."""
    import http.client

    from slack_sdk.errors import SlackApiError, SlackClientError

    from listener.feedback import slack_client, slack_error, split_ref, update_message

    client = slack_client(cfg, env)
    if client is None:
        return
    for receiver in cfg.receivers.values():
        if receiver.type != "slack":
            continue
        ref = store.delivery_ref(root, receiver.id)
        where = split_ref(ref) if ref else None
        if where is None:
            continue
        try:
            update_message(store, client, root, *where)
        except SlackApiError as exc:
            reason = slack_error(exc)
        except (SlackClientError, OSError, http.client.HTTPException) as exc:
            reason = type(exc).__name__
        else:
            out.print(Text(f"updated the Slack message in {receiver.id}"))
            continue
        err.print(Text(f"warning: could not update the Slack message in {receiver.id}: {reason}"))


@app.command()
def forget(
    author: Annotated[
        str,
        typer.Option(
            "--author", help="The author's handle as the network shows it ('@' and case ignored)."
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option("--source", help="Only their posts on this network: bluesky, mastodon, x, …"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Erase without asking first.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Erase what listener stored about an author (a request under the GDPR): their posts,
    decisions, engagement snapshots and author rows, and the text of the alerts about their
    posts (the alert rows stay, redacted, so counts add up; nothing about them is sent later).
    Says what it found and asks first (--yes: does not ask); then says what it removed."""
    from listener.config.loader import KNOWN_SOURCES
    from listener.match import normal_handle

    if source is not None and source not in KNOWN_SOURCES:
        err.print(
            Text(f"--source: unknown source {source!r} (known: {', '.join(sorted(KNOWN_SOURCES))})")
        )
        raise typer.Exit(2)
    who = f"@{normal_handle(author)}" + (f" on {source}" if source else "")
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        try:
            found = store.forget_author(author, source=source, dry_run=True)
        except ValueError as exc:
            err.print(Text(f"--author: {exc}"))
            raise typer.Exit(2) from None
        if not found:
            out.print(Text(f"nothing stored about {who} in {_safe_url(cfg.database_url)}"))
            return
        out.print(Text(f"stored about {who} (nothing erased yet): {_kinds(found)}"))
        if not yes and not typer.confirm("erase it?", default=False, err=True):
            err.print(Text("nothing erased"))
            raise typer.Exit(1)
        gone = store.forget_author(author, source=source)
        silences = [
            s.id
            for s in store.silences(include_expired=True)
            if any(
                m.key == "author" and normal_handle(m.value) == normal_handle(author)
                for m in s.matchers
            )
        ]
    finally:
        store.close()
    out.print(Text(f"forgot {who}: {_kinds(gone)}"))
    if silences:
        names = ", ".join(str(n) for n in silences)
        out.print(
            Text(f"note: silence(s) {names} name this author in their matchers", style="yellow")
        )


_FORGET_ORDER = (
    "posts",
    "decisions",
    "engagement snapshots",
    "post authors",
    "feedback",
    "alerts redacted",
    "quotes in other alerts",
    "deliveries stopped",
    "digest items removed",
    "digests emptied",
    "escalations called off",
)


def _kinds(counts: Mapping[str, int]) -> str:
    """'3 posts, 3 decisions, 1 alerts redacted': what `forget` erases, posts first."""
    order = {kind: i for i, kind in enumerate(_FORGET_ORDER)}
    kinds = sorted(counts, key=lambda kind: order.get(kind, len(order)))
    return ", ".join(f"{counts[kind]} {kind}" for kind in kinds)


silence_app = typer.Typer(
    help="Silences: hold back the alerts that match some facts for a while, without losing them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(silence_app, name="silence")


@silence_app.command("add")
def silence_add(
    match: Annotated[
        list[str],
        typer.Option(
            "--match",
            help="key=value or key!=value, key one of org, branch, search, level, label, "
            "source, author; repeat it: all must hold.",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown in `silence list`.")],
    for_: Annotated[
        str | None, typer.Option("--for", help="How long, from now: 30m, 2h, 3d.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Until when: ISO 8601, like 2026-11-23T17:00 (the config's timezone unless "
            "it says another).",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who made it (default: your user name).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Silence the alerts that match, from now for --for or until --until: they are stored,
    not delivered."""
    from zoneinfo import ZoneInfo

    from listener.config.model import parse_duration
    from listener.silence import MatcherError, parse_matchers

    if (for_ is None) == (until is None):
        err.print(Text("give one of --for (like 2h) and --until (like 2026-11-23T17:00)"))
        raise typer.Exit(2)
    try:
        matchers = parse_matchers(match)
    except MatcherError as exc:
        err.print(Text(f"--match: {exc}"))
        raise typer.Exit(2) from None
    cfg = _load(config)
    zone = ZoneInfo(cfg.main.timezone)
    problems = _unknown_in_config(cfg, matchers)
    for problem in problems:
        err.print(Text(f"--match: {problem}"))
    if problems:
        raise typer.Exit(2)
    now = datetime.now(UTC)
    if for_ is not None:
        try:
            ends_at = now + parse_duration(for_)
        except ValueError as exc:
            err.print(Text(f"--for: {exc}"))
            raise typer.Exit(2) from None
    else:
        assert until is not None
        try:
            ends_at = datetime.fromisoformat(until)
        except ValueError:
            err.print(Text(f"--until: {until!r} is not a time like 2026-11-23T17:00"))
            raise typer.Exit(2) from None
        if ends_at.tzinfo is None:
            ends_at = ends_at.replace(tzinfo=zone)
        if ends_at <= now:
            err.print(Text(f"--until: {until} has already passed"))
            raise typer.Exit(2)
    store = _open_store(cfg)
    try:
        silence = store.add_silence(
            [str(m) for m in matchers], ends_at, reason, created_by=by or _user_name(), now=now
        )
    finally:
        store.close()
    out.print(
        Text(
            f"silence {silence.id} added: {silence.match_text}, until "
            f"{_local(silence.ends_at, zone)}; matching alerts are stored, not delivered"
        )
    )


def _unknown_in_config(cfg: Config, matchers: Sequence[Matcher]) -> list[str]:
    """Matchers naming an organisation, branch or search the configuration does not have:
    a typo would silence nothing (or, with !=, everything)."""
    from listener.silence import SYSTEM_ORG

    known = {
        "org": {*cfg.organisations, SYSTEM_ORG},
        "branch": {b.id for o in cfg.organisations.values() for b in o.branches} | {""},
        "search": {s.id for s in cfg.searches},
    }
    names = {"org": "organisation", "branch": "branch", "search": "search"}
    problems = []
    for m in matchers:
        if m.key in known and m.value not in known[m.key]:
            there = ", ".join(sorted(v for v in known[m.key] if v)) or "none"
            problems.append(
                f"{m}: no {names[m.key]} {m.value!r} in the configuration (there are: {there})"
            )
    return problems


@silence_app.command("list")
def silence_list(
    all_: Annotated[bool, typer.Option("--all", help="Also the silences that have ended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """The silences in force (and pending), with how many alerts each held back."""
    from zoneinfo import ZoneInfo

    cfg = _load(config)
    zone = ZoneInfo(cfg.main.timezone)
    now = datetime.now(UTC)
    url = cfg.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        silences, held = [], {}
    else:
        store = _open_store(cfg)
        try:
            silences = store.silences(now, include_expired=all_)
            held = store.silenced_alerts()
        finally:
            store.close()
    if as_json:
        rows = [
            {
                "id": s.id,
                "matchers": [str(m) for m in s.matchers],
                "state": s.state(now),
                "starts_at": s.starts_at.isoformat(),
                "ends_at": s.ends_at.isoformat(),
                "expired_at": s.expired_at.isoformat() if s.expired_at else None,
                "reason": s.reason,
                "created_by": s.created_by,
                "created_at": s.created_at.isoformat(),
                "alerts_silenced": len(held.get(s.id, [])),
                "alert_ids": held.get(s.id, []),
            }
            for s in silences
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not silences:
        out.print(Text("no silences" if all_ else "no silences in force (--all shows ended ones)"))
        return
    table = Table()
    for heading in ("id", "matchers", "state", "from", "until", "by", "alerts", "reason"):
        table.add_column(heading, no_wrap=heading != "reason")
    for s in silences:
        table.add_row(
            str(s.id),
            Text(s.match_text),
            s.state(now),
            _local(s.starts_at, zone),
            _local(s.ended_at, zone) + (" (expired)" if s.expired_at == s.ended_at else ""),
            Text(s.created_by or "-"),
            str(len(held.get(s.id, []))),
            Text(s.reason),
        )
    _print_wide(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[
        int, typer.Argument(metavar="ID", help="The silence's number (`listener silence list`).")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """End a silence now. The alerts it held back stay silenced; new ones are delivered."""
    from zoneinfo import ZoneInfo

    cfg = _load(config)
    zone = ZoneInfo(cfg.main.timezone)
    store = _open_store(cfg)
    try:
        silence, changed = store.expire_silence(silence_id)
        held = len(store.silenced_alerts().get(silence_id, []))
    except KeyError:
        err.print(Text(f"no silence {silence_id} in {_safe_url(cfg.database_url)}"))
        raise typer.Exit(1) from None
    finally:
        store.close()
    if not changed:
        out.print(
            Text(
                f"silence {silence_id} ({silence.match_text}) had already ended at "
                f"{_local(silence.ended_at, zone)}: nothing changed"
            )
        )
        return
    out.print(
        Text(
            f"silence {silence_id} ({silence.match_text}) expired; the {held} alert(s) it held "
            "back stay silenced, new matching alerts are delivered"
        )
    )


def _local(moment: datetime, zone: tzinfo) -> str:
    """'2026-11-23 17:00 CET': a time as people in the config's timezone read it."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


class ReportFormat(StrEnum):
    text = "text"
    html = "html"
    csv = "csv"


@app.command()
def report(
    since: Annotated[
        str, typer.Option("--since", help="The posts and alerts of this last stretch: 7d, 12h, …")
    ] = "30d",
    org: Annotated[
        str | None, typer.Option("--org", help="Only this organisation's posts and alerts.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The figures as JSON.")] = False,
    output_format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="text: tables here; html: one self-contained page on stdout; csv: tidy rows.",
        ),
    ] = ReportFormat.text,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Posts and alerts per branch, label and level, time to alert, top authors, a daily chart,
    and precision per search from the feedback (unjudged alerts count as right)."""
    from listener.report import build_report, report_csv

    window = _since(since)
    if as_json and output_format is not ReportFormat.text:
        err.print(Text("--json and --format: give one of them"))
        raise typer.Exit(2)
    cfg = _load(config)
    if org is not None and org not in cfg.organisations:
        known = ", ".join(cfg.organisations) or "none"
        err.print(Text(f"--org: no organisation {org!r} in the configuration (there are: {known})"))
        raise typer.Exit(1)
    now = datetime.now(UTC)
    store = _open_store(cfg)
    try:
        result = build_report(store, now - window, now, org=org, timezone=cfg.main.timezone)
    finally:
        store.close()
    if as_json:
        out.print(json.dumps(result.as_dict(), ensure_ascii=False), markup=False)
        return
    if output_format is ReportFormat.csv:
        typer.echo(report_csv(result), nl=False)
        return
    if output_format is ReportFormat.html:
        typer.echo(_report_html(cfg, result), nl=False)
        return
    _print_report(result)


def _report_html(cfg: Config, result: ReportData) -> str:
    import jinja2

    from listener.report import chart_svg, render_report

    org_name = cfg.organisations[result.org].name if result.org else None
    try:
        return render_report(
            result, cfg.templates_dir, chart=chart_svg(result), org_name=org_name
        ).html
    except jinja2.TemplateNotFound as exc:
        err.print(
            Text(
                f"{cfg.templates_dir / (exc.name or '')}: template missing "
                "(copy it from the alerts/templates folder that comes with listener)"
            )
        )
        raise typer.Exit(1) from None
    except jinja2.TemplateError as exc:
        err.print(Text(f"report template in {cfg.templates_dir}: {type(exc).__name__}: {exc}"))
        raise typer.Exit(1) from None


def _print_report(result: ReportData) -> None:
    from listener.report import Counts, format_duration

    org = result.org
    scope = f" about {org}" if org else ""
    activity = result.activity
    out.print(
        Text(f"posts and alerts{scope} since {result.since:%Y-%m-%d %H:%M} UTC", style="bold")
    )
    out.print(
        Text(
            f"{activity.posts} posts, {activity.alerts} alerts; time from post to alert: "
            f"median {format_duration(activity.delay_median)}, "
            f"90% within {format_duration(activity.delay_p90)}"
        )
    )
    _print_tallies("day", {f"{day:%a %Y-%m-%d}": t for day, t in activity.days.items()}, bars=True)
    for heading, groups in (
        ("branch", activity.branches),
        ("label", activity.labels),
        ("level", activity.levels),
    ):
        if groups:
            _print_tallies(heading, groups)
    if activity.authors:
        authors = Table()
        authors.add_column("top author", no_wrap=True)
        authors.add_column("posts", justify="right")
        authors.add_column("alerts", justify="right")
        for author in activity.authors:
            authors.add_row(Text(author.handle), str(author.posts), str(author.alerts))
        _print_wide(authors)
    out.print(Text("precision per search, from the feedback on the alerts", style="bold"))
    if not result.total.alerts:
        out.print(Text("no alerts in this period"))
        return
    table = Table()
    table.add_column("search", no_wrap=True)
    headings = ("alerts", "relevant", "not rel.", "wrong br.", "unjudged")
    for heading in (*headings, "precision", "judged P", "branch P", "judged br P"):
        table.add_column(heading, justify="right", no_wrap=True)

    def row(name: str, c: Counts) -> None:
        counts = (c.alerts, c.relevant, c.not_relevant, c.wrong_branch, c.unjudged)
        shares = (c.precision, c.judged_precision, c.branch_precision, c.judged_branch_precision)
        table.add_row(
            Text(name),
            *(str(n) for n in counts),
            *("-" if s is None else f"{s:.2f}" for s in shares),
        )

    for search, counts in result.searches.items():
        row(search, counts)
    row("all searches", result.total)
    _print_wide(table)
    out.print(
        Text(
            "precision: the organisation was right, (alerts - not relevant) / alerts; unjudged "
            "alerts count as right. judged P: the same among judged alerts only. branch P: of "
            "those with the right organisation, the branch was right too; judged br P: "
            "relevant / (relevant + wrong branch).",
            style="dim",
        )
    )


@app.command()
def suggest(
    search: Annotated[
        str | None, typer.Option("--search", help="Only this search (its id).")
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="The feedback on alerts of this last stretch: 90d, …")
    ] = "90d",
    min_posts: Annotated[
        int,
        typer.Option("--min-posts", min=1, help="Rejected posts a suggestion must remove."),
    ] = 2,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Propose exclusions and sense cues from 'not-relevant' feedback, as a diff. Writes nothing."""
    from listener.suggest import apply_dir
    from listener.suggest import suggest as make_suggestions

    window = _since(since)
    cfg = _load(config)
    if search is not None and search not in {s.id for s in cfg.searches}:
        known = ", ".join(s.id for s in cfg.searches) or "none"
        err.print(Text(f"--search: no search {search!r} in the configuration (there are: {known})"))
        raise typer.Exit(1)
    url = cfg.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        out.print(Text(f"no database yet at {url}: no feedback to learn from"))
        return
    store = _open_store(cfg)
    try:
        result = make_suggestions(
            cfg, store, since=datetime.now(UTC) - window, search_id=search, min_posts=min_posts
        )
    finally:
        store.close()
    scope = f" on search {search}" if search else ""
    if not result.rejected_alerts:
        out.print(
            Text(
                f"No alert{scope} was marked not-relevant in the last {since}: nothing to "
                "suggest. (`listener feedback ALERT_ID not-relevant` marks one.)"
            )
        )
        return
    base = apply_dir(cfg, Path.cwd())
    for line in result.summary(base):
        typer.echo(line)
    if not result.proposed:
        typer.echo(
            f"# No safe suggestion: every candidate word is in fewer than {min_posts} rejected "
            "posts, or also in posts nobody rejected. Nothing was changed."
        )
        return
    typer.echo(result.diff(base), nl=False)
    again = " ".join(
        ["listener suggest"]
        + ([f"--config {config}"] if config != DEFAULT_CONFIG else [])
        + ([f"--search {search}"] if search else [])
        + ([f"--since {since}"] if since != "90d" else [])
        + ([f"--min-posts {min_posts}"] if min_posts != 2 else [])
    )
    cwd = Path.cwd().resolve()
    here, diff_file = ("", "fix.diff") if base == cwd else (f"cd {base} && ", cwd / "fix.diff")
    err.print(
        Text(
            f"Nothing was changed. To apply: {again} > fix.diff; then {here}git apply {diff_file} "
            f"(or patch -p1 < {diff_file}), and check with listener check.",
            style="dim",
        )
    )


def _print_tallies(heading: str, groups: Mapping[str, Tally], *, bars: bool = False) -> None:
    """Posts and alerts per group; with `bars`, a bar of the posts (and alerts) beside."""
    table = Table()
    table.add_column(heading, no_wrap=True)
    table.add_column("posts", justify="right")
    table.add_column("alerts", justify="right")
    if bars:
        table.add_column("", no_wrap=True)
    most = max((t.posts for t in groups.values()), default=0) or 1
    for key, t in groups.items():
        cells: list[Text | str] = [Text(key), str(t.posts), str(t.alerts)]
        if bars:
            posts = round(30 * t.posts / most)
            alerts = min(posts, round(30 * t.alerts / most)) if t.alerts else 0
            bar = Text("█" * alerts, style="dark_orange") + Text(
                "█" * (posts - alerts), style="grey50"
            )
            cells.append(bar)
        table.add_row(*cells)
    _print_wide(table)


db_app = typer.Typer(
    help="The database's schema: migrations, which also run when listener starts.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


def _schema_engine(cfg: Config) -> Engine:
    from listener.store import make_engine

    return make_engine(cfg.database_url)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Bring the database's schema to the newest revision, printing the migrations that ran."""
    from listener.schema import head, upgrade

    cfg = _load(config)
    engine = _schema_engine(cfg)
    try:
        ran = upgrade(engine)
    except (SQLAlchemyError, RuntimeError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        err.print(Text(f"cannot upgrade the database {_safe_url(cfg.database_url)}: {reason}"))
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    for revision in ran:
        out.print(Text(f"ran {revision}"))
    if not ran:
        out.print(Text(f"up to date: {head()}"))


@db_app.command("current")
def db_current(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """The database's schema revision, and whether it is the newest (head)."""
    from listener.schema import current

    cfg = _load(config)
    engine = _schema_engine(cfg)
    try:
        version = current(engine)
    except (SQLAlchemyError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        err.print(Text(f"cannot open the database {_safe_url(cfg.database_url)}: {reason}"))
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if version.is_head:
        out.print(Text(f"{version.revision} (head)"))
    elif version.revision is None:
        state = "made before migrations" if version.adoptable else "empty"
        out.print(Text(f"none ({state}); head is {version.head}: run `listener db upgrade`"))
    else:
        out.print(Text(f"{version.revision} (not head: {version.head}); run `listener db upgrade`"))


def _print_wide(table: Table) -> None:
    """A table printed whole, however narrow the terminal (or a pipe's 80 columns): a report
    with a column cut to '…' says nothing."""
    from rich.measure import Measurement

    needed = Measurement.get(out, out.options.update(max_width=10_000), table).maximum
    Console(highlight=False, soft_wrap=True, width=max(out.width, needed)).print(table)


def _open_store(cfg: Config) -> Store:
    from listener.store import Store

    try:
        return Store(cfg.database_url)
    except (SQLAlchemyError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        err.print(Text(f"cannot open the database {_safe_url(cfg.database_url)}: {reason}"))
        raise typer.Exit(1) from None


def _user_name() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no USER/LOGNAME in the environment
        return None


def _since(value: str) -> timedelta:
    """The --since option as a duration; a usage error (exit 2) when it is not one."""
    from listener.config.model import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        err.print(Text(f"--since: {exc}"))
        raise typer.Exit(2) from None


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
