"""Route: first matching route wins, `continue` falls through, inactive receivers drop out;
the branch, label and source matchers, the default receiver, and how the loader checks them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.config import ConfigError, load_config
from listener.config.model import Route
from listener.pipeline import Classifier, Decision
from listener.post import Post
from listener.route import level_at_least, route
from tests.support.configs import write_setup

ROUTES = [
    Route(orgs=["coda"], min_level="high", receivers=["coda-mail"], **{"continue": True}),
    Route(min_level="high", receivers=["slack", "mail"]),
    Route(searches=["de-bieb"], receivers=["console"]),
    Route(min_level="normal", receivers=["slack"]),
]


def test_the_first_matching_route_wins() -> None:
    assert route(ROUTES, org="eemland", search="brand", level="critical") == ["slack", "mail"]
    assert route(ROUTES, org="eemland", search="brand", level="normal") == ["slack"]


def test_continue_falls_through_to_the_next_match() -> None:
    assert route(ROUTES, org="coda", search="brand", level="high") == ["coda-mail", "slack", "mail"]


def test_matchers_on_search_and_level() -> None:
    assert route(ROUTES, org="eemland", search="de-bieb", level="low") == ["console"]
    assert route(ROUTES, org="eemland", search="brand", level="low") == []


def test_inactive_receivers_are_left_out() -> None:
    got = route(ROUTES, org="eemland", search="brand", level="high", active={"mail"})
    assert got == ["mail"]


def test_level_order() -> None:
    assert level_at_least("critical", "high")
    assert not level_at_least("normal", "high")
    assert not level_at_least("none", "low")


# --- branches, labels, sources, default ---------------------------------------------------------

TREE = [
    Route(orgs=["eemland"], branches=["leusden"], receivers=["leusden-team"]),
    Route(orgs=["eemland"], branches=["-"], receivers=["eemland-desk"]),
    Route(labels=["safety", "privacy"], receivers=["security"], **{"continue": True}),
    Route(sources=["rss"], receivers=["press"]),
    Route(min_level="high", receivers=["webcare"]),
]


def test_branches_match_the_alerts_branch() -> None:
    got = route(TREE, org="eemland", branch="leusden", search="s", level="low")
    assert got == ["leusden-team"]
    assert route(TREE, org="eemland", branch="amersfoort", search="s", level="low") == []
    assert route(TREE, org="coda", branch="leusden", search="s", level="low") == []


def test_a_dash_in_branches_matches_an_alert_without_a_branch() -> None:
    assert route(TREE, org="eemland", branch=None, search="s", level="low") == ["eemland-desk"]
    assert route(TREE, org="eemland", branch="", search="s", level="low") == ["eemland-desk"]


def test_labels_match_when_the_alert_has_any_of_them() -> None:
    both = route(TREE, org="coda", search="s", level="high", labels=["privacy", "complaint"])
    assert both == ["security", "webcare"]  # continue: the level route matches too
    assert route(TREE, org="coda", search="s", level="low", labels=["safety"]) == ["security"]
    assert route(TREE, org="coda", search="s", level="low", labels=["complaint"]) == []
    assert route(TREE, org="coda", search="s", level="low") == []


def test_sources_match_the_posts_source() -> None:
    assert route(TREE, org="coda", search="s", level="low", source="rss") == ["press"]
    assert route(TREE, org="coda", search="s", level="low", source="bluesky") == []
    assert route(TREE, org="coda", search="s", level="low") == []


def test_every_matcher_of_a_route_must_match() -> None:
    narrow = [
        Route(branches=["leusden"], labels=["outage"], sources=["x"], receivers=["a"]),
        Route(receivers=["b"]),
    ]
    facts = {"org": "eemland", "search": "s", "level": "low"}
    assert route(narrow, branch="leusden", labels=["outage"], source="x", **facts) == ["a"]
    assert route(narrow, branch="leusden", labels=["outage"], source="rss", **facts) == ["b"]
    assert route(narrow, branch="leusden", labels=["praise"], source="x", **facts) == ["b"]
    assert route(narrow, branch="amersfoort", labels=["outage"], source="x", **facts) == ["b"]


def test_the_default_receiver_catches_what_no_route_matched() -> None:
    got = route(TREE, org="coda", search="s", level="low", default="catch-all")
    assert got == ["catch-all"]
    matched = route(TREE, org="coda", search="s", level="high", default="catch-all")
    assert matched == ["webcare"]
    assert route([], org="coda", search="s", level="low", default="catch-all") == ["catch-all"]
    assert route([], org="coda", search="s", level="low") == []  # no default: dropped


def test_an_inactive_default_receiver_drops_out_too() -> None:
    got = route(TREE, org="coda", search="s", level="low", default="catch-all", active={"x"})
    assert got == []


# --- the alerts files: default and the new matchers, checked with file:line ---------------------

ALERTS_TREE = """\
default = "console"

[[receivers]]
id = "console"
type = "console"

[[receivers]]
id = "leusden-team"
type = "console"

[[routes]]
orgs = ["eemland"]
branches = ["leusden"]
receivers = ["leusden-team"]

[[routes]]
sources = ["rss"]
labels = ["news"]
receivers = ["console"]
"""


def setup(tmp_path: Path, alerts: str = ALERTS_TREE) -> Path:
    config = write_setup(tmp_path)
    (tmp_path / "alerts" / "routes.toml").write_text(alerts, encoding="utf-8")
    return config


def problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    return [str(p) for p in caught.value.problems]


def test_the_alerts_file_sets_the_default_receiver(tmp_path: Path) -> None:
    loaded = load_config(setup(tmp_path))
    assert loaded.default_receiver == "console"
    assert loaded.routes[0].branches == ["leusden"]
    assert loaded.routes[1].sources == ["rss"] and loaded.routes[1].labels == ["news"]
    no_default = load_config(setup(tmp_path, ALERTS_TREE.replace('default = "console"\n', "")))
    assert no_default.default_receiver is None


def test_a_second_default_is_an_error_naming_both_places(tmp_path: Path) -> None:
    config = setup(tmp_path)
    (tmp_path / "alerts" / "zz-more.toml").write_text(
        '# more\ndefault = "leusden-team"\n', encoding="utf-8"
    )
    [problem] = problems(config)
    first, second = tmp_path / "alerts" / "routes.toml", tmp_path / "alerts" / "zz-more.toml"
    assert problem.startswith(f"{second}:2: default: a second default receiver ('leusden-team'")
    assert f"'console' was set at {first}:1" in problem


def test_an_unknown_default_receiver_is_named(tmp_path: Path) -> None:
    [problem] = problems(setup(tmp_path, ALERTS_TREE.replace('"console"\n\n', '"consol"\n\n', 1)))
    assert problem.startswith(
        f"{tmp_path}/alerts/routes.toml:1: default: unknown receiver 'consol'"
    )


def test_branches_must_be_branches_of_the_routed_organisations(tmp_path: Path) -> None:
    alerts = ALERTS_TREE.replace('branches = ["leusden"]', 'branches = ["leusden", "vathorst"]')
    [problem] = problems(setup(tmp_path, alerts))
    assert problem == (
        f"{tmp_path}/alerts/routes.toml:13: routes[0].branches: unknown branch 'vathorst' of "
        "organisation(s) eemland (known: -, amersfoort, leusden; '-' is no branch)"
    )


def test_a_dash_and_branches_of_any_organisation_pass_without_orgs(tmp_path: Path) -> None:
    alerts = ALERTS_TREE.replace('orgs = ["eemland"]\n', "").replace(
        'branches = ["leusden"]', 'branches = ["-", "amersfoort"]'
    )
    loaded = load_config(setup(tmp_path, alerts))
    assert loaded.routes[0].branches == ["-", "amersfoort"]


def test_unknown_labels_and_sources_are_named_with_their_line(tmp_path: Path) -> None:
    alerts = ALERTS_TREE.replace('sources = ["rss"]', 'sources = ["rss", "tiktok"]').replace(
        'labels = ["news"]', 'labels = ["nieuws"]'
    )
    found = problems(setup(tmp_path, alerts))
    assert len(found) == 2
    assert found[0].startswith(
        f"{tmp_path}/alerts/routes.toml:18: routes[1].labels: unknown label 'nieuws' (known: "
    )
    assert found[1].startswith(
        f"{tmp_path}/alerts/routes.toml:17: routes[1].sources: unknown source 'tiktok' (known: "
    )


# --- the classifier passes the facts ------------------------------------------------------------


def test_alert_for_routes_on_branch_labels_source_and_default(tmp_path: Path) -> None:
    classifier = Classifier(load_config(setup(tmp_path)))
    post = Post("p1", "bluesky", "de bieb is dicht", datetime(2026, 1, 5, 10, tzinfo=UTC))

    def receivers(post: Post, **facts: object) -> list[str] | None:
        decision = Decision(post.id, org="eemland", query="de-bieb", urgency="low")
        for key, value in facts.items():
            setattr(decision, key, value)
        alert = classifier.alert_for(post, decision)
        return None if alert is None else list(alert.receivers)

    assert receivers(post, branch="leusden") == ["leusden-team"]
    assert receivers(post, branch="amersfoort") == ["console"]  # the default
    news = replace(post, source="rss")
    assert receivers(news, branch="amersfoort", labels=["news"]) == ["console"]
    assert receivers(news, branch="leusden", labels=["news"]) == ["leusden-team"]  # first wins
    assert receivers(news, branch=None, labels=["outage"]) == ["console"]
    assert receivers(post, org=None) is None  # about no organisation: no alert
