"""Route: which receivers get an alert, from the routes in `alerts/*.toml`.

Routes are tried in the order of the files (sorted by name) and of the routes in them. A route
matches when each of its non-empty matchers does (organisation, search, minimum level); the first
matching route wins unless it says `continue = true`, as in Prometheus Alertmanager. Receivers
that cannot deliver (no Slack token in the environment, no SMTP settings) are left out by the
caller and reported by `listener check`; if that leaves an alert with no receiver at all it goes
to the console, so nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from listener.config.model import LEVELS, Route


def level_at_least(level: str, minimum: str) -> bool:
    """'high' is at least 'normal'; 'none' is below everything."""
    if level not in LEVELS:
        return False
    return LEVELS.index(level) <= LEVELS.index(minimum)


def route(
    routes: Sequence[Route],
    *,
    org: str,
    search: str,
    level: str,
    active: Collection[str] | None = None,
) -> list[str]:
    """The receiver ids for an alert, in route order, without duplicates."""
    chosen: list[str] = []
    for candidate in routes:
        if candidate.orgs and org not in candidate.orgs:
            continue
        if candidate.searches and search not in candidate.searches:
            continue
        if not level_at_least(level, candidate.min_level):
            continue
        chosen += [r for r in candidate.receivers if r not in chosen]
        if not candidate.continue_:
            break
    if active is not None:
        chosen = [r for r in chosen if r in active]
    return chosen
