"""The `listener` command: run the daemon, check the configuration, and try searches offline.

A thin layer over the library: every command loads the configuration the same way and prints
configuration problems as `file:line: field: what is wrong` with exit code 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from listener import __version__
from listener.config import Config, ConfigError, load_config
from listener.post import Author, Geo, Post, PostError

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


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    _setup_logging(cfg.main.log_level)
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
            err.print(
                Text(
                    f"once: {sum(p.fetched for p in polls)} posts fetched, "
                    f"{sum(p.new_posts for p in polls)} new, "
                    f"{sum(p.alerts for p in polls)} alerts; "
                    f"{delivered.sent} delivered, {delivered.failed} failed, "
                    f"{left} left in the outbox"
                )
            )
        else:
            daemon.run_forever()
    finally:
        daemon.store.close()


@app.command()
def check(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Validate the config, queries and alerts; print a summary, or every problem and exit 1."""
    cfg = _load(config)
    from listener.daemon import build_notifiers
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
    replay = cfg.main.sources.replay
    if replay and replay.enabled and not cfg.resolve(replay.path).is_file():
        warning = f"  warning: replay file {cfg.resolve(replay.path)} does not exist (yet)"
        out.print(Text(warning, style="yellow"))
    if not cfg.routes:
        out.print(Text("  warning: no routes, so no alert goes anywhere", style="yellow"))


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
    posts: Annotated[Path, typer.Option("--posts", help="Canonical posts, one JSON a line.")],
    truth: Annotated[
        Path, typer.Option("--truth", help="The right answers: {id, org, branch} a line.")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[
        bool, typer.Option("--json", help="The figures and mistakes as JSON.")
    ] = False,
) -> None:
    """Score listener against a truth file, beside keyword-only and radius-only baselines."""
    from listener.backtest import BacktestError, read_posts, read_truth
    from listener.backtest import backtest as run_backtest
    from listener.pipeline import Classifier

    cfg = _load(config)
    try:
        report = run_backtest(Classifier(cfg), read_posts(posts), read_truth(truth))
    except BacktestError as exc:
        err.print(Text(str(exc)))
        raise typer.Exit(1) from None
    if as_json:
        out.print(json.dumps(report.as_dict(), ensure_ascii=False), markup=False)
        return
    out.print(Text(f"{report.posts} posts, {report.about_an_organisation} about an organisation"))
    table = Table()
    table.add_column("system", no_wrap=True)
    for heading in ("org P", "org R", "org F1", "br P", "br R", "br F1", "br acc"):
        table.add_column(heading, justify="right", no_wrap=True)
    for name, s in report.systems.items():
        figures = (s.precision, s.recall, s.f1, s.branch_precision, s.branch_recall, s.branch_f1)
        table.add_row(name, *(f"{x:.3f}" for x in (*figures, s.branch_accuracy)))
    out.print(table)
    for name, s in report.systems.items():
        out.print(Text(f"{name}: branch accuracy on {s.branch_total} posts tied to the right "
                       f"organisation, {s.branch_right} right"))  # fmt: skip
    out.print(Text(f"listener's mistakes: {len(report.mistakes)}", style="bold"))
    for m in report.mistakes:
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
    decision = Classifier(cfg).decide(post)
    if decision.org:
        where = decision.org + (f" / {decision.branch}" if decision.branch else " (branch unknown)")
        out.print(Text(f"about: {where} via search {decision.query}", style="bold"))
        out.print(Text(f"urgency: {decision.urgency} ({decision.score:g})"))
        if decision.labels:
            out.print(Text(f"labels: {', '.join(decision.labels)}"))
    else:
        out.print(Text("about: no organisation (no alert)", style="bold"))
    for title, lines in (
        ("evidence", decision.evidence),
        ("urgency reasons", decision.reasons),
        ("near-misses", decision.near_misses),
    ):
        out.print(Text(f"{title}:" + ("" if lines else " none")))
        for line in lines:
            out.print(Text(f"  - {line}"))


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
