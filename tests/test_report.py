"""`listener report`: precision per search from the feedback, on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.alert import AlertMessage
from listener.cli import app
from listener.config import load_config
from listener.health import SourceHealth, Trouble
from listener.post import Post
from listener.report import Counts, build_report
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
