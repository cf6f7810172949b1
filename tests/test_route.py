"""Route: first matching route wins, `continue` falls through, inactive receivers drop out."""

from __future__ import annotations

from listener.config.model import Route
from listener.route import level_at_least, route

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
