"""Route: which receivers get an alert, from the routes in `alerts/*.toml`.

Routes are tried in the order of the files (sorted by name) and of the routes in them. A route
matches when each of its non-empty matchers does: organisation (`orgs`), branch (`branches`:
branch ids, `"-"` for an alert that names no branch), search (`searches`), urgency label
(`labels`: any of them), the post's source (`sources`) and minimum level (`min_level`). The
first matching route wins unless it says `continue = true`, as in Prometheus Alertmanager.

An alert that no route matches goes to the `default` receiver when an alerts file names one,
and is dropped (not alerted, the decision still stored) when none does.

`routes_of` says which route sent an alert to a given receiver (the first in route order that
lists it), so `listener.dispatch` can apply that route's mode, quiet hours and escalation.

Receivers that cannot deliver (no Slack token in the environment, no SMTP settings) are left out
by the caller and reported by `listener check`; if that leaves an alert with no receiver at all
it goes to the console, so nothing routed is silently dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from listener.config.model import LEVELS, NO_BRANCH, Route


def level_at_least(level: str, minimum: str) -> bool:
    """'high' is at least 'normal'; 'none' is below everything."""
    if level not in LEVELS:
        return False
    return LEVELS.index(level) <= LEVELS.index(minimum)


def matches(
    candidate: Route,
    *,
    org: str,
    search: str,
    level: str,
    branch: str | None = None,
    labels: Collection[str] = (),
    source: str | None = None,
) -> bool:
    """Whether every non-empty matcher of `candidate` matches the alert."""
    if candidate.orgs and org not in candidate.orgs:
        return False
    if candidate.branches and (branch or NO_BRANCH) not in candidate.branches:
        return False
    if candidate.searches and search not in candidate.searches:
        return False
    if candidate.labels and not any(label in candidate.labels for label in labels):
        return False
    if candidate.sources and source not in candidate.sources:
        return False
    return level_at_least(level, candidate.min_level)


def route(
    routes: Sequence[Route],
    *,
    org: str,
    search: str,
    level: str,
    branch: str | None = None,
    labels: Collection[str] = (),
    source: str | None = None,
    default: str | None = None,
    active: Collection[str] | None = None,
) -> list[str]:
    """The receiver ids for an alert, in route order, without duplicates; `[default]` when no
    route matches and there is a default receiver, else none."""
    chosen = list(
        routes_of(
            routes,
            org=org,
            search=search,
            level=level,
            branch=branch,
            labels=labels,
            source=source,
        )
    )  # a matching route has receivers, so none chosen means none matched
    if not chosen and default is not None:
        chosen = [default]
    if active is not None:
        chosen = [r for r in chosen if r in active]
    return chosen


def routes_of(
    routes: Sequence[Route],
    *,
    org: str,
    search: str,
    level: str,
    branch: str | None = None,
    labels: Collection[str] = (),
    source: str | None = None,
) -> dict[str, Route]:
    """receiver id → the route that sends the alert there: the first matching route (following
    `continue`) that lists the receiver. A receiver the alert reaches only as the default (or
    as the console fallback) is not in it: it gets the alert at once."""
    chosen: dict[str, Route] = {}
    for candidate in routes:
        if not matches(
            candidate,
            org=org,
            search=search,
            level=level,
            branch=branch,
            labels=labels,
            source=source,
        ):
            continue
        for receiver in candidate.receivers:
            chosen.setdefault(receiver, candidate)
        if not candidate.continue_:
            break
    return chosen
