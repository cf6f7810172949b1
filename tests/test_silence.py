"""Silences: matchers, a real SQLite outbox that stores but does not deliver, CLI, daemon."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from listener.alert import AlertMessage
from listener.cli import app
from listener.config import load_config
from listener.config.model import OutboxSettings
from listener.daemon import Daemon
from listener.outbox import Deliverer
from listener.post import Author, Post
from listener.silence import (
    MATCH_KEYS,
    Matcher,
    MatcherError,
    Silence,
    matches,
    parse_matcher,
    parse_matchers,
    silencing,
)
from listener.store import Decided, NewAlert, Store
from tests.support.configs import write_setup

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def message(
    *,
    org: str = "eemland",
    branch: str | None = "leusden",
    search: str = "de-bieb",
    level: str = "high",
    labels: tuple[str, ...] = ("outage", "complaint"),
    source: str = "bluesky",
    handle: str | None = "Marieke.bsky.social",
    n: int = 1,
) -> AlertMessage:
    post = Post(
        id=f"{source}:{n}",
        source=source,
        text=f"post {n}",
        created_at=NOW,
        author=Author(handle=handle, name="Marieke") if handle else None,
    )
    return AlertMessage(
        0, post, org, "Eemland", branch, branch, search, level, 50.0, labels=list(labels)
    )


def silence(*texts: str, ends: timedelta = timedelta(hours=2), sid: int = 1) -> Silence:
    return Silence(sid, parse_matchers(texts), NOW, NOW + ends, "test", "anna", NOW)


# --- parsing and matching -------------------------------------------------------------------------


def test_a_matcher_is_key_equals_or_key_not_equals_value() -> None:
    assert parse_matcher("branch=vathorst") == Matcher("branch", "=", "vathorst")
    assert parse_matcher(" level != low ") == Matcher("level", "!=", "low")
    assert parse_matcher("Label=outage") == Matcher("label", "=", "outage")
    assert parse_matcher("author=@Marieke.bsky.social") == Matcher(
        "author", "=", "marieke.bsky.social"
    )
    assert parse_matcher("branch=") == Matcher("branch", "=", "")
    assert str(parse_matcher("level!=low")) == "level!=low"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("brnch=vathorst", "bad matcher 'brnch=vathorst': unknown key 'brnch'; the keys are "),
        ("vathorst", "bad matcher 'vathorst': write key=value or key!=value, with key one of "),
        ("=vathorst", "bad matcher '=vathorst': no key; the keys are "),
        ("level=hgih", "no level 'hgih'; the levels are critical, high, normal, low"),
        ("branch=~vat.*", "regular expressions (=~) are not supported"),
        ("org=", "bad matcher 'org=': org needs a value"),
    ],
)
def test_a_bad_matcher_is_an_error_naming_it(text: str, says: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    assert says in str(caught.value)
    if "key" in says:
        assert ", ".join(MATCH_KEYS) in str(caught.value)


def test_a_silence_needs_a_matcher() -> None:
    with pytest.raises(MatcherError, match="at least one matcher"):
        parse_matchers([])


def test_every_matcher_must_hold() -> None:
    alert = message()
    assert matches(silence("org=eemland", "branch=leusden"), alert)
    assert not matches(silence("org=eemland", "branch=amersfoort"), alert)
    assert matches(silence("branch!=amersfoort", "level=high"), alert)
    assert not matches(silence("branch!=leusden"), alert)
    assert matches(silence("search=de-bieb", "source=bluesky"), alert)
    assert not matches(silence("source=mastodon"), alert)
    assert not matches(silence("level=critical"), alert)


def test_a_label_matches_when_it_is_one_of_the_alerts_labels() -> None:
    alert = message(labels=("outage", "complaint"))
    assert matches(silence("label=complaint"), alert)
    assert not matches(silence("label=praise"), alert)
    assert matches(silence("label!=praise"), alert)
    assert not matches(silence("label!=outage"), alert)


def test_an_empty_branch_means_no_particular_branch() -> None:
    assert matches(silence("branch="), message(branch=None))
    assert not matches(silence("branch="), message(branch="leusden"))
    assert matches(silence("branch!="), message(branch="leusden"))


def test_the_author_is_compared_without_at_and_case() -> None:
    assert matches(silence("author=@marieke.BSKY.social"), message(handle="Marieke.bsky.social"))
    assert not matches(silence("author=piet"), message(handle="Marieke.bsky.social"))
    assert not matches(silence("author=piet"), message(handle=None))
    assert matches(silence("author!=piet"), message(handle=None))


def test_alerts_about_listener_itself_are_silenced_only_by_org_listener() -> None:
    health = message(org="listener", branch=None, labels=("outage",), source="listener")
    assert not matches(silence("label=outage"), health)
    assert matches(silence("org=listener", "label=outage"), health)


def test_a_silence_is_active_from_its_start_until_its_end_or_its_expiry() -> None:
    s = silence("org=eemland")
    assert s.state(NOW - timedelta(seconds=1)) == "pending"
    assert s.state(NOW) == "active"
    assert s.state(NOW + timedelta(hours=2)) == "expired"
    early = Silence(
        1, s.matchers, NOW, NOW + timedelta(hours=2), "r", None, NOW, NOW + timedelta(minutes=5)
    )
    assert early.active_at(NOW + timedelta(minutes=4))
    assert early.state(NOW + timedelta(minutes=5)) == "expired"
    assert early.ended_at == NOW + timedelta(minutes=5)
    assert silencing([s], message(), NOW + timedelta(hours=1)) == s
    assert silencing([s], message(), NOW + timedelta(hours=3)) is None
    assert silencing([s], message(org="coda"), NOW) is None


# --- the store and the outbox, on a real SQLite file ----------------------------------------------


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)  # SQLite and PostgreSQL (tests/conftest.py)
    yield s
    s.close()


@dataclass
class Sink:
    sent: list[str] = field(default_factory=list)

    def send(self, alert: AlertMessage) -> str:
        self.sent.append(alert.post.id)
        return f"ref-{alert.alert_id}"


def decided(n: int, branch: str) -> Decided:
    alert = message(branch=branch, n=n)
    decision = {
        "id": alert.post.id,
        "org": "eemland",
        "branch": branch,
        "query": "de-bieb",
        "urgency": "high",
        "score": 50,
    }
    return Decided(alert.post, decision, NewAlert(alert, ["sink"]))


def deliver(store: Store, sink: Sink, now: datetime) -> None:
    Deliverer(store, {"sink": sink}, OutboxSettings(), clock=lambda: now).deliver_due()


def statuses(store: Store) -> list[tuple[int, str]]:
    return [(d.alert_id, d.status) for d in store.deliveries()]


def test_a_silenced_alert_is_stored_but_not_delivered_and_does_not_block_the_queue(
    store: Store,
) -> None:
    s = store.add_silence(["branch=leusden"], NOW + timedelta(hours=2), "verbouwing", now=NOW)
    saved = store.save_batch(
        "replay:x", None, [decided(1, "leusden"), decided(2, "amersfoort")], NOW
    )
    assert (saved.alerts, saved.silenced, saved.deliveries) == (2, 1, 1)
    sink = Sink()
    deliver(store, sink, NOW)
    assert sink.sent == ["bluesky:2"]  # the receiver's next alert went out
    assert statuses(store) == [(1, "silenced"), (2, "sent")]
    assert store.outbox_counts() == {"silenced": 1, "sent": 1}
    assert store.next_due_at() is None  # nothing left to deliver
    assert store.silenced_alerts() == {s.id: [1]}
    assert store.alert(1) is not None  # the alert itself is kept


def test_expiring_a_silence_delivers_new_alerts_and_keeps_the_silenced_ones_silenced(
    store: Store,
) -> None:
    s = store.add_silence(["org=eemland"], NOW + timedelta(hours=2), "campagne", now=NOW)
    store.save_batch("replay:x", None, [decided(1, "leusden")], NOW)
    later = NOW + timedelta(minutes=10)
    expired, changed = store.expire_silence(s.id, later)
    assert changed and expired.expired_at == later and expired.state(later) == "expired"
    store.save_batch("replay:x", None, [decided(2, "leusden")], later)
    sink = Sink()
    deliver(store, sink, later)
    assert sink.sent == ["bluesky:2"]
    assert statuses(store) == [(1, "silenced"), (2, "sent")]
    assert store.silences(later) == []
    assert [x.id for x in store.silences(later, include_expired=True)] == [s.id]
    again, changed = store.expire_silence(s.id, later + timedelta(minutes=1))
    assert not changed and again.expired_at == later
    with pytest.raises(KeyError):
        store.expire_silence(99, later)


def test_a_silence_that_ended_by_time_or_starts_later_does_not_apply(store: Store) -> None:
    store.add_silence(["org=eemland"], NOW + timedelta(minutes=30), "kort", now=NOW)
    store.add_silence(
        ["org=eemland"],
        NOW + timedelta(days=2),
        "morgen",
        starts_at=NOW + timedelta(days=1),
        now=NOW,
    )
    saved = store.save_batch("replay:x", None, [decided(1, "leusden")], NOW + timedelta(hours=1))
    assert saved.silenced == 0
    assert statuses(store) == [(1, "pending")]


def test_a_silence_must_end_after_it_starts_and_have_good_matchers(store: Store) -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        store.add_silence(["org=eemland"], NOW, "r", now=NOW)
    with pytest.raises(MatcherError, match="unknown key 'brnch'"):
        store.add_silence(["brnch=x"], NOW + timedelta(hours=1), "r", now=NOW)
    assert store.silences(NOW, include_expired=True) == []


# --- the CLI --------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("LISTENER_DATABASE", f"sqlite:///{db}")
    return write_setup(tmp_path), db


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def test_the_silence_commands_add_list_and_expire(setup: tuple[Path, Path]) -> None:
    config, db = setup
    code, output = cli(config, "silence", "list")
    assert (code, output.strip()) == (0, "no silences in force (--all shows ended ones)")
    code, output = cli(
        config,
        "silence", "add", "--match", "branch=leusden", "--match", "level!=low",
        "--for", "2h", "--reason", "verbouwing", "--by", "anna",
    )  # fmt: skip
    assert code == 0, output
    assert "silence 1 added: branch=leusden, level!=low, until " in output
    code, output = cli(
        config, "silence", "add", "--match", "org=eemland",
        "--until", "2099-01-01T09:00", "--reason", "lang",
    )  # fmt: skip
    assert code == 0, output
    assert "silence 2 added: org=eemland, until 2099-01-01 09:00 CET" in output

    code, output = cli(config, "silence", "list")
    assert code == 0 and "verbouwing" in output and "anna" in output and "lang" in output
    code, output = cli(config, "silence", "expire", "2")
    assert code == 0, output
    assert "silence 2 (org=eemland) expired; the 0 alert(s) it held back stay silenced" in output
    code, output = cli(config, "silence", "list")
    assert "verbouwing" in output and "lang" not in output

    code, output = cli(config, "silence", "list", "--all", "--json")
    assert code == 0, output
    rows = json.loads(output)
    assert [(r["id"], r["state"], r["matchers"]) for r in rows] == [
        (1, "active", ["branch=leusden", "level!=low"]),
        (2, "expired", ["org=eemland"]),
    ]
    assert rows[0]["created_by"] == "anna" and rows[0]["alerts_silenced"] == 0
    assert rows[1]["ends_at"] == "2099-01-01T08:00:00+00:00" and rows[1]["expired_at"]
    code, output = cli(config, "silence", "expire", "7")
    assert code == 1 and f"no silence 7 in sqlite:///{db}" in output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--match", "brnch=x", "--for", "2h"], "--match: bad matcher 'brnch=x': unknown key"),
        (
            ["--match", "branch=vathorst", "--for", "2h"],
            "no branch 'vathorst' in the configuration (there are: amersfoort, leusden)",
        ),
        (["--match", "org=eemland"], "give one of --for (like 2h) and --until"),
        (["--match", "org=eemland", "--for", "2h", "--until", "2099-01-01"], "give one of --for"),
        (["--match", "org=eemland", "--for", "2 hours"], "--for: bad duration '2 hours'"),
        (["--match", "org=eemland", "--until", "2020-01-01T00:00"], "has already passed"),
        (["--match", "org=eemland", "--until", "morgen"], "'morgen' is not a time like"),
    ],
)  # fmt: skip
def test_silence_add_says_what_is_wrong(
    setup: tuple[Path, Path], args: list[str], says: str
) -> None:
    config, db = setup
    code, output = cli(config, "silence", "add", *args, "--reason", "r")
    assert code == 2, output
    assert says in output
    assert not db.exists() or cli(config, "silence", "list", "--all", "--json")[1].strip() == "[]"


# --- the daemon, end to end -----------------------------------------------------------------------


def write_posts(path: Path, texts: dict[str, str]) -> Path:
    lines = [
        json.dumps(
            {
                "id": f"bluesky:{key}",
                "source": "bluesky",
                "text": text,
                "created_at": "2026-11-20T09:00:00Z",
                "author": {"handle": f"{key}.bsky.social"},
            }
        )
        for key, text in texts.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_daemon_stores_a_silenced_alert_and_delivers_the_rest(tmp_path: Path) -> None:
    posts = write_posts(
        tmp_path / "in.jsonl",
        {
            "leusden": "de bieb in Leusden is wéér dicht",
            "amersfoort": "de bieb in het Eemhuis in Amersfoort is dicht, niemand weet waarom",
        },
    )
    config = load_config(write_setup(tmp_path, posts=posts))
    screen = StringIO()
    daemon = Daemon.from_config(config, env={}, console=Console(file=screen, width=100))
    try:
        daemon.store.add_silence(["branch=leusden"], NOW + timedelta(days=1), "bekend", now=NOW)
        daemon.clock = lambda: NOW
        polls, delivered = daemon.run_once()
        assert (sum(p.alerts for p in polls), sum(p.silenced for p in polls)) == (2, 1)
        assert delivered.sent == 1
        assert "Eemhuis in Amersfoort" in screen.getvalue()
        assert "Leusden is wéér dicht" not in screen.getvalue()
        assert sorted(d.status for d in daemon.store.deliveries()) == ["sent", "silenced"]
        [(_, [alert_id])] = daemon.store.silenced_alerts().items()
        held = daemon.store.alert(alert_id)
        assert held is not None and held.branch == "leusden"
    finally:
        daemon.store.close()


def test_run_once_counts_the_silenced_alerts_in_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posts = write_posts(tmp_path / "in.jsonl", {"leusden": "de bieb in Leusden is wéér dicht"})
    config = write_setup(tmp_path, posts=posts)
    monkeypatch.setenv("LISTENER_DATABASE", f"sqlite:///{tmp_path / 'run.db'}")
    add = ("silence", "add", "--match", "branch=leusden", "--for", "1h", "--reason", "r")
    code, output = cli(config, *add)
    assert code == 0, output
    code, output = cli(config, "run", "--once")
    assert code == 0, output
    assert (
        "1 alerts (1 silenced, not delivered); 0 delivered, 0 failed, 0 left in the outbox"
        in output
    )
    code, output = cli(config, "silence", "list", "--json")
    assert json.loads(output)[0]["alerts_silenced"] == 1
