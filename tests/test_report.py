"""`listener report`: precision per search from the feedback, on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from listener.alert import AlertMessage
from listener.cli import app
from listener.config import load_config
from listener.health import SourceHealth, Trouble
from listener.post import Author, Post
from listener.report import Counts, build_report, report_csv
from listener.store import Decided, NewAlert, Store
from tests.support.configs import write_setup

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
runner = CliRunner()


def save_alert(
    store: Store, n: int, search: str, now: datetime, *, org: str = "eemland", age_days: float = 1
) -> int:
    """One alert for post t:n, created `age_days` before `now`; returns its id."""
    post = Post(id=f"t:{n}", source="replay", text=f"post {n}", created_at=NOW)
    decision = {
        "id": post.id,
        "org": org,
        "branch": "leusden",
        "query": search,
        "urgency": "high",
        "score": 50,
    }
    message = AlertMessage(0, post, org, org.title(), "leusden", "Leusden", search, "high", 50.0)
    store.save_batch(
        "replay:x",
        None,
        [Decided(post, decision, NewAlert(message, ["console"]))],
        now - timedelta(days=age_days),
    )
    [alert] = [a for a in store.alerts_since(now - timedelta(days=365)) if a.post_id == post.id]
    assert alert.id is not None
    return alert.id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'listener.db'}")
    yield s
    s.close()


def fill(store: Store, now: datetime = NOW) -> None:
    """de-bieb: 10 alerts, 3 relevant, 2 not, 1 wrong branch, 4 unjudged; eemland-brand: 2
    alerts, none judged; plus one alert too old, one of another organisation, one about
    listener itself."""
    ids = [save_alert(store, n, "de-bieb", now) for n in range(10)]
    for alert_id in ids[:3]:
        store.add_feedback(alert_id, "relevant", by="anna")
    store.add_feedback(ids[3], "relevant", by="anna")  # changed her mind: the newest counts
    store.add_feedback(ids[3], "not-relevant", by="anna")
    store.add_feedback(ids[4], "not-relevant", by="ben")
    store.add_feedback(ids[5], "wrong-branch", branch="amersfoort", by="ben")
    save_alert(store, 20, "eemland-brand", now)
    save_alert(store, 21, "eemland-brand", now)
    old = save_alert(store, 30, "de-bieb", now, age_days=45)
    store.add_feedback(old, "not-relevant")
    other = save_alert(store, 40, "de-bieb", now, org="coda")
    store.add_feedback(other, "not-relevant")
    SourceHealth(store).alert(Trouble("rss:x", now, "rss:x has failed"), ["console"], now)


def test_counts_give_precision_with_unjudged_as_right_and_among_the_judged() -> None:
    counts = Counts(alerts=10, relevant=3, not_relevant=2, wrong_branch=1)

    assert (counts.judged, counts.unjudged) == (6, 4)
    assert counts.precision == pytest.approx(8 / 10)
    assert counts.judged_precision == pytest.approx(4 / 6)
    assert counts.branch_precision == pytest.approx(7 / 8)
    assert counts.judged_branch_precision == pytest.approx(3 / 4)
    empty = Counts()
    assert (empty.precision, empty.judged_precision, empty.branch_precision) == (None, None, None)
    assert Counts(alerts=2).judged_precision is None


def test_the_report_counts_each_search_of_the_period(store: Store) -> None:
    fill(store)

    report = build_report(store, NOW - timedelta(days=30), NOW, org="eemland")

    assert list(report.searches) == ["de-bieb", "eemland-brand"]
    bieb, brand = report.searches["de-bieb"], report.searches["eemland-brand"]
    assert (bieb.alerts, bieb.relevant, bieb.not_relevant, bieb.wrong_branch, bieb.unjudged) == (
        10,
        3,
        2,
        1,
        4,
    )
    assert (brand.alerts, brand.judged, brand.precision) == (2, 0, 1.0)
    assert report.total.alerts == 12 and report.total.not_relevant == 2
    assert report.total.precision == pytest.approx(10 / 12)


def test_without_org_every_organisation_counts_but_never_listener_itself(store: Store) -> None:
    fill(store)

    report = build_report(store, NOW - timedelta(days=30), NOW)

    assert report.total.alerts == 13  # 12 eemland + 1 coda; not the health alert
    assert report.searches["de-bieb"].not_relevant == 3
    assert not [s for s in report.searches if s.startswith("health:")]
    longer = build_report(store, NOW - timedelta(days=60), NOW)
    assert longer.total.alerts == 14 and longer.searches["de-bieb"].not_relevant == 4


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["report", *args, "--config", str(config)])
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A setup whose database holds `fill`'s alerts, created relative to now (the CLI's clock)."""
    path = write_setup(tmp_path)
    s = Store(load_config(path).database_url)
    try:
        fill(s, datetime.now(UTC))
    finally:
        s.close()
    return path


def table_rows(output: str) -> dict[str, list[str]]:
    """The table's rows: first cell → the other cells."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            name, *cells = (cell.strip() for cell in line.strip("│").split("│"))
            rows[name] = cells
    return rows


def test_listener_report_prints_a_table_per_search_and_the_total(config: Path) -> None:
    code, output = cli(config, "--org", "eemland")

    assert code == 0, output
    assert "alerts about eemland since" in output
    rows = table_rows(output)
    assert rows["de-bieb"] == ["10", "3", "2", "1", "4", "0.80", "0.67", "0.88", "0.75"]
    assert rows["eemland-brand"] == ["2", "0", "0", "0", "2", "1.00", "-", "1.00", "-"]
    assert rows["all searches"] == ["12", "3", "2", "1", "6", "0.83", "0.67", "0.90", "0.75"]
    assert "unjudged alerts count as right" in output


def test_listener_report_json_has_every_figure(config: Path) -> None:
    code, output = cli(config, "--json", "--since", "60d")

    assert code == 0, output
    data = json.loads(output)
    assert data["org"] is None and data["unjudged_count_as_right"] is True
    assert data["searches"]["de-bieb"] == {
        "alerts": 12,
        "relevant": 3,
        "not_relevant": 4,
        "wrong_branch": 1,
        "unjudged": 4,
        "precision": pytest.approx(8 / 12),
        "judged_precision": pytest.approx(4 / 8),
        "branch_precision": pytest.approx(7 / 8),
        "judged_branch_precision": pytest.approx(3 / 4),
    }
    assert data["total"]["alerts"] == 14
    since = datetime.fromisoformat(data["since"])
    until = datetime.fromisoformat(data["until"])
    assert until - since == timedelta(days=60)


def test_listener_report_on_a_quiet_period_says_so(config: Path) -> None:
    code, output = cli(config, "--since", "1h", "--org", "eemland")
    assert code == 0, output
    assert "no alerts in this period" in output


def test_listener_report_refuses_a_bad_since_or_an_unknown_org(config: Path) -> None:
    code, output = cli(config, "--since", "a month")
    assert code == 2
    assert "--since: bad duration 'a month'" in output
    code, output = cli(config, "--org", "nowhere")
    assert code == 1
    assert "--org: no organisation 'nowhere' in the configuration (there are: eemland)" in output


# --- posts and alerts per branch, label, level and day; time to alert; top authors ------------

HOSTILE = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example")'


def save_post(
    store: Store,
    n: int,
    *,
    posted: datetime,
    alerted_after: timedelta | None,
    org: str | None = "eemland",
    branch: str | None = "leusden",
    labels: tuple[str, ...] = (),
    urgency: str = "normal",
    handle: str | None = "marieke",
) -> None:
    """Post t:n created at `posted`, saved (and alerted, unless `alerted_after` is None)
    `alerted_after` later; a post without alert is saved an hour after it was posted."""
    author = Author(handle=handle, name="Someone") if handle else None
    post = Post(id=f"a:{n}", source="replay", text=f"post {n}", created_at=posted, author=author)
    decision = {
        "id": post.id,
        "org": org,
        "branch": branch,
        "query": "de-bieb" if org else None,
        "urgency": urgency,
        "score": 50,
        "labels": list(labels),
    }
    alert = None
    if alerted_after is not None:
        assert org is not None
        message = AlertMessage(
            0, post, org, org.title(), branch, branch, "de-bieb", urgency, 50.0, list(labels)
        )
        alert = NewAlert(message, ["console"])
    saved = posted + (alerted_after if alerted_after is not None else timedelta(hours=1))
    store.save_batch("replay:x", None, [Decided(post, decision, alert)], saved)


def fill_activity(store: Store, now: datetime = NOW) -> None:
    """Seven posts about eemland in the last week (three alerted: after 4, 10 and 60 minutes),
    one about coda, one about nobody, and one about eemland from long ago."""
    day = now.replace(hour=10, minute=0) - timedelta(days=2)
    save_post(
        store, 1, posted=day, alerted_after=timedelta(minutes=4),
        labels=("complaint", "outage"), urgency="high",
    )  # fmt: skip
    save_post(
        store, 2, posted=day + timedelta(hours=1), alerted_after=timedelta(minutes=10),
        branch="amersfoort", labels=("question",),
    )  # fmt: skip
    save_post(
        store, 3, posted=day + timedelta(days=1), alerted_after=timedelta(minutes=60),
        branch=None, labels=("complaint",), urgency="critical", handle=HOSTILE,
    )  # fmt: skip
    save_post(store, 4, posted=day + timedelta(days=1), alerted_after=None, urgency="low")
    save_post(store, 5, posted=day, alerted_after=None, handle=FORMULA, urgency="low")
    save_post(store, 6, posted=day, alerted_after=None, handle=None, urgency="low")
    save_post(store, 7, posted=day, alerted_after=None, labels=("praise",), urgency="low")
    save_post(store, 8, posted=day, alerted_after=timedelta(hours=5), org="coda", branch="centrum")
    save_post(store, 9, posted=day, alerted_after=None, org=None, branch=None)
    save_post(store, 10, posted=now - timedelta(days=20), alerted_after=timedelta(minutes=1))


def test_the_report_counts_posts_and_alerts_per_branch_label_level_and_day(store: Store) -> None:
    fill_activity(store)

    report = build_report(
        store, NOW - timedelta(days=7), NOW, org="eemland", timezone="Europe/Amsterdam"
    )

    a = report.activity
    assert (a.posts, a.alerts) == (7, 3)
    assert {k: (t.posts, t.alerts) for k, t in a.branches.items()} == {
        "leusden": (5, 1),
        "amersfoort": (1, 1),
        "(branch unknown)": (1, 1),
    }
    assert list(a.branches) == ["leusden", "(branch unknown)", "amersfoort"]  # most posts first
    assert {k: (t.posts, t.alerts) for k, t in a.labels.items()} == {
        "complaint": (2, 2),
        "outage": (1, 1),
        "question": (1, 1),
        "praise": (1, 0),
    }
    assert {k: (t.posts, t.alerts) for k, t in a.levels.items()} == {
        "critical": (1, 1),
        "high": (1, 1),
        "normal": (1, 1),
        "low": (4, 0),
    }
    days = {d: (t.posts, t.alerts) for d, t in a.days.items()}
    assert list(days) == [date(2026, 11, 13) + timedelta(days=i) for i in range(8)]
    assert days[date(2026, 11, 18)] == (5, 2) and days[date(2026, 11, 19)] == (2, 1)
    assert sum(p for p, _ in days.values()) == 7


def test_time_from_post_to_alert_has_a_median_and_a_90th_percentile(store: Store) -> None:
    fill_activity(store)

    a = build_report(store, NOW - timedelta(days=7), NOW, org="eemland").activity

    assert a.delays == (timedelta(minutes=4), timedelta(minutes=10), timedelta(minutes=60))
    assert a.delay_median == timedelta(minutes=10)
    assert a.delay_p90 == timedelta(minutes=60)  # nearest rank: the 3rd of 3
    every_org = build_report(store, NOW - timedelta(days=7), NOW).activity
    assert every_org.delay_median == timedelta(minutes=35)  # (10 + 60) / 2 of four
    assert every_org.delay_p90 == timedelta(hours=5)


def test_top_authors_are_ranked_by_posts_about_the_organisation(store: Store) -> None:
    fill_activity(store)

    a = build_report(store, NOW - timedelta(days=7), NOW, org="eemland").activity

    assert [(x.handle, x.posts, x.alerts) for x in a.authors] == [
        ("marieke", 4, 2),
        (HOSTILE, 1, 1),
        (FORMULA, 1, 0),
    ]
    top_one = build_report(store, NOW - timedelta(days=7), NOW, org="eemland", top_authors=1)
    assert [x.handle for x in top_one.activity.authors] == ["marieke"]


def test_without_org_branches_are_named_with_their_organisation(store: Store) -> None:
    fill_activity(store)

    a = build_report(store, NOW - timedelta(days=7), NOW).activity

    assert (a.posts, a.alerts) == (8, 4)
    assert (a.branches["coda/centrum"].posts, a.branches["coda/centrum"].alerts) == (1, 1)
    assert "eemland/(branch unknown)" in a.branches


def test_the_csv_is_one_tidy_table_that_reads_back(store: Store) -> None:
    fill_activity(store)
    report = build_report(store, NOW - timedelta(days=7), NOW, org="eemland")

    rows = list(csv.DictReader(io.StringIO(report_csv(report))))

    assert set(rows[0]) == {"section", "key", "metric", "value"}
    value = {(r["section"], r["key"], r["metric"]): r["value"] for r in rows}
    assert value["branch", "leusden", "posts"] == "5"
    assert value["label", "complaint", "alerts"] == "2"
    assert value["level", "low", "posts"] == "4"
    assert value["post_to_alert", "", "median_seconds"] == "600.0"
    assert value["post_to_alert", "", "p90_seconds"] == "3600.0"
    assert value["day", "2026-11-18", "posts"] == "5"
    assert value["period", "", "org"] == "eemland"
    # a spreadsheet would run a cell that starts with '=': it gets an apostrophe
    assert value["author", "'" + FORMULA, "posts"] == "1"
    assert ("author", FORMULA, "posts") not in value


def report_config(tmp_path: Path) -> Path:
    path = write_setup(tmp_path)
    s = Store(load_config(path).database_url)
    try:
        fill_activity(s, datetime.now(UTC))
    finally:
        s.close()
    return path


def test_listener_report_text_shows_every_view(tmp_path: Path) -> None:
    code, output = cli(report_config(tmp_path), "--org", "eemland", "--since", "7d")

    assert code == 0, output
    assert "7 posts, 3 alerts; time from post to alert: median 10 min, 90% within 1 h 0 min" in (
        output
    )
    rows = table_rows(output)
    assert rows["leusden"] == ["5", "1"]
    assert rows["(branch unknown)"] == ["1", "1"]
    assert rows["complaint"] == ["2", "2"]
    assert rows["low"] == ["4", "0"]
    assert rows["marieke"] == ["4", "2"]
    assert rows[HOSTILE] == ["1", "1"]
    assert rows["de-bieb"][:2] == ["3", "0"]  # precision per search: 3 alerts, none judged
    day_rows = [r for name, r in rows.items() if name[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri",
                                                             "Sat", "Sun"}]  # fmt: skip
    assert len(day_rows) == 8 and sum(int(r[0]) for r in day_rows) == 7
    assert any("█" in r[2] for r in day_rows if len(r) > 2)


class WellFormed(HTMLParser):
    """Every opened element closed in order (HTML void elements excepted)."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "hr", "input", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_listener_report_html_is_one_well_formed_page_with_an_svg_chart(tmp_path: Path) -> None:
    code, output = cli(
        report_config(tmp_path), "--org", "eemland", "--since", "7d", "--format", "html"
    )

    assert code == 0, output
    assert output.startswith("<!DOCTYPE html>")
    parser = WellFormed()
    parser.feed(output)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    assert "svg" in parser.tags and "path" in parser.tags  # the chart, drawn inline
    assert "<style>" in output and "<link" not in output and "src=" not in output  # one file
    assert "<script>" not in output
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in output
    assert "Bibliotheek Eemland" in output and "1 h 0 min" in output


def test_listener_report_csv_goes_to_stdout_and_json_with_format_is_refused(
    tmp_path: Path,
) -> None:
    config = report_config(tmp_path)
    code, output = cli(config, "--org", "eemland", "--since", "7d", "--format", "csv")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert {"section": "activity", "key": "", "metric": "posts", "value": "7"} in rows

    code, output = cli(config, "--json", "--format", "csv")
    assert code == 2
    assert "--json and --format: give one of them" in output


def test_listener_report_html_without_the_template_says_which_is_missing(tmp_path: Path) -> None:
    config = report_config(tmp_path)
    (tmp_path / "alerts" / "templates" / "report.html.j2").unlink()

    code, output = cli(config, "--format", "html")

    assert code == 1
    assert "report.html.j2: template missing" in output
