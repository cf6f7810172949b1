"""The urgency score: a reason for every point, each factor, and settings from TOML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import ConfigError, load_config
from listener.pipeline import Classifier
from listener.post import Author, Engagement, Post
from listener.urgency.context import AuthorHistory, Context
from listener.urgency.score import score_post
from listener.urgency.settings import UrgencySettings, default_settings, settings_from
from tests.support.configs import write_setup

WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def post(
    text: str,
    followers: int | None = None,
    engagement: Engagement | None = None,
    created: datetime = WHEN,
) -> Post:
    return Post("p", "x", text, created, author=Author(followers=followers), engagement=engagement)


def points_of(reasons: list[str]) -> float:
    total = 0.0
    for reason in reasons:
        found = re.search(r"([+−])(\d+(?:\.\d+)?)$", reason)
        assert found, f"no points in reason {reason!r}"
        total += float(found.group(2)) * (1 if found.group(1) == "+" else -1)
    return total


@pytest.mark.parametrize(
    ("text", "followers", "engagement", "context"),
    [
        ("de bieb is ALWEER dicht 😡!!", 8400, Engagement(420, 150, 37), None),
        ("Brand in de bieb, politie is er", 900, None, Context(WHEN)),
        ("Weet iemand hoe laat de bieb open is?", 40, None, Context(WHEN, open_now=True)),
        ("mijn pasnummer is 2090 4412 8831, help", None, None, None),
        (
            "de wifi is echt waardeloos",
            3000,
            Engagement(5, 0, 0),
            Context(WHEN + timedelta(days=2), history=AuthorHistory(4, 2, 0)),
        ),
    ],
)
def test_every_point_has_a_reason(
    text: str, followers: int | None, engagement: Engagement | None, context: Context | None
) -> None:
    urgency = score_post(post(text, followers, engagement), default_settings(), context)
    assert urgency.reasons
    assert points_of(urgency.reasons) == pytest.approx(urgency.score, abs=0.15)


def test_a_second_label_adds_its_beside_points() -> None:
    urgency = score_post(post("de bieb is weer dicht"))
    assert urgency.reasons == ["outage: 'dicht' +45", "complaint: 'weer dicht' +10"]
    assert (urgency.score, urgency.level) == (55, "high")


def test_reach_counts_on_a_complaint_not_on_praise() -> None:
    complaint = score_post(post("Schandalig hoe de bieb omgaat met vrijwilligers", 8400))
    assert "reach: 8,400 followers +12.3" in complaint.reasons
    praise = score_post(post("Wat een fijne bieb ❤️", 8400, Engagement(900, 300, 50)))
    assert praise.reasons == [] and praise.level == "low"


def test_engagement_counts_per_hour_since_posting() -> None:
    busy = Engagement(likes=200, reposts=0, replies=0)
    fresh = score_post(post("de wifi is kapot", engagement=busy), None, Context(WHEN))
    old = score_post(
        post("de wifi is kapot", engagement=busy), None, Context(WHEN + timedelta(hours=10))
    )
    assert any(r.startswith("reach: 200 likes/reposts/replies in 1 h") for r in fresh.reasons)
    assert not any(r.startswith("reach") for r in old.reasons)


def test_history_raises_a_repeated_complaint_and_names_a_first_post() -> None:
    third = Context(WHEN, history=AuthorHistory(posts=3, complaints=2))
    assert (
        "history: third complaint this month +10"
        in score_post(post("de bieb is waardeloos"), None, third).reasons
    )
    first = Context(WHEN, history=AuthorHistory())
    assert (
        "history: first post about us: praise +0"
        in score_post(post("wat een fijne bieb"), None, first).reasons
    )


def test_a_question_while_open_waits_less_than_one_at_night() -> None:
    text = "Weet iemand of de bieb printers heeft?"
    open_ = score_post(post(text), None, Context(WHEN, open_now=True))
    closed = score_post(post(text), None, Context(WHEN, open_now=False, holiday="Tweede Kerstdag"))
    assert "time: a question while the library is open +5" in open_.reasons
    assert "time: a question while the library is closed (Tweede Kerstdag) −5" in closed.reasons
    assert open_.score - closed.score == 10


def test_closed_while_the_library_is_closed_anyway_is_no_outage_to_speak_of() -> None:
    urgency = score_post(post("de bieb is dicht"), None, Context(WHEN, open_now=False))
    assert "time: 'closed' while the library is closed anyway −25" in urgency.reasons
    assert urgency.level == "normal"


def test_an_old_post_found_late_gets_points_off() -> None:
    late = Context(WHEN + timedelta(days=3))
    urgency = score_post(post("de bieb is weer dicht"), None, late)
    assert "freshness: found 3 days after it was posted −20" in urgency.reasons
    assert score_post(post("de bieb is weer dicht"), None, Context(WHEN)).score == 55


def test_a_threat_found_late_stays_critical() -> None:
    urgency = score_post(
        post("iemand bedreigd in de bieb"), None, Context(WHEN + timedelta(days=3))
    )
    assert urgency.reasons == ["safety: 'bedreigd' +70"]
    assert urgency.level == "critical"


def test_user_settings_are_merged_over_the_defaults() -> None:
    settings = settings_from(
        {
            "levels": {"high": 50},
            "labels": {
                "complaint": {"points": 35, "extra_phrases": ["bagger"]},
                "praise": {"phrases": ["subliem"]},
            },
        }
    )
    assert settings.levels.critical == 70 and settings.levels.high == 50
    assert "bagger" in settings.labels.complaint.phrases
    assert "slecht" in settings.labels.complaint.phrases  # extra_ adds
    assert settings.labels.praise.phrases == ["subliem"]  # a list replaces
    urgency = score_post(post("de bieb is bagger"), settings)
    assert urgency.reasons == ["complaint: 'bagger' +35"]
    assert score_post(post("wat een fijne bieb"), settings).labels == []


def config_with_urgency(tmp_path: Path, urgency: str) -> Path:
    config = write_setup(tmp_path)
    config.write_text('urgency = "urgency.toml"\n' + config.read_text(), encoding="utf-8")
    (tmp_path / "urgency.toml").write_text(urgency, encoding="utf-8")
    return config


def test_the_config_loads_urgency_toml(tmp_path: Path) -> None:
    text = "[labels.outage]\npoints = 60\n\n[holidays]\nclosed = false\n"
    config = load_config(config_with_urgency(tmp_path, text))
    assert isinstance(config.urgency, UrgencySettings)
    assert config.urgency.labels.outage.points == 60
    assert config.urgency.holidays.closed is False
    decision = Classifier(config).decide(post("de bieb in Leusden is dicht"))
    assert decision.reasons == ["outage: 'dicht' +60"]
    assert decision.urgency == "high"


def test_without_urgency_toml_the_defaults_count(tmp_path: Path) -> None:
    assert load_config(write_setup(tmp_path)).urgency == default_settings()


def test_a_broken_urgency_toml_names_file_line_and_field(tmp_path: Path) -> None:
    text = (
        "[levels]\ncritical = 70\n\n[labels.complaint]\npionts = 35\n\n"
        "[reach]\nfollowers_from = -3\n"
    )
    config = config_with_urgency(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = [str(p) for p in caught.value.problems]
    urgency = tmp_path / "urgency.toml"
    assert f"{urgency}:5: labels.complaint.pionts: unknown key" in problems
    assert any(p.startswith(f"{urgency}:8: reach.followers_from: ") for p in problems)


def test_levels_must_be_in_order(tmp_path: Path) -> None:
    config = config_with_urgency(tmp_path, "[levels]\nhigh = 80\n")
    with pytest.raises(ConfigError, match=r"urgency.toml:1: levels: .*critical > high > normal"):
        load_config(config)


def test_decide_passes_the_author_history_to_the_score(tmp_path: Path) -> None:
    classifier = Classifier(load_config(write_setup(tmp_path)))
    asked: list[tuple[str, str, datetime]] = []

    def history(handle: str, org: str, before: datetime) -> AuthorHistory:
        asked.append((handle, org, before))
        return AuthorHistory(posts=2, complaints=2)

    complaint = Post(
        "p", "x", "de bieb in Leusden is waardeloos", WHEN, author=Author(handle="anna")
    )
    decision = classifier.decide(complaint, now=WHEN + timedelta(minutes=5), history=history)
    assert asked == [("anna", "eemland", WHEN + timedelta(minutes=5))]
    assert "history: third complaint this month +10" in decision.reasons
