"""What people's feedback says about the alerts: precision per search, over a period.

`build_report` reads the alerts of the period and the newest feedback on each from the store and
counts; `listener report` prints the result as a table or JSON. The counting is one function,
`tally(alerts, verdicts, key)`, so more views (per branch, label or level) are more keys, and
more formats are more printers of the same `Report`.

The figures of a group of alerts (`Counts`):

- precision: the organisation was right, (alerts − not relevant) / alerts. Unjudged alerts count
  as right: nobody said otherwise, and a webcare team mostly speaks up about the wrong ones;
- judged precision: the same among the judged alerts only, (judged − not relevant) / judged;
- branch precision: among the alerts whose organisation was right, the share whose branch (or
  'no particular branch') was right too, (org right − wrong branch) / org right; unjudged count
  as right here as well; judged branch precision is relevant / (relevant + wrong branch).

A figure without alerts to divide by is None ('-' in the table). Alerts about listener itself
(source health) are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.health import SYSTEM
from listener.store import AlertRow, Store

__all__ = ["Counts", "Report", "build_report", "tally"]


@dataclass(slots=True)
class Counts:
    """The alerts of one group (a search; later a branch, label or level) and their verdicts."""

    alerts: int = 0
    relevant: int = 0
    not_relevant: int = 0
    wrong_branch: int = 0

    def add(self, verdict: str | None) -> None:
        self.alerts += 1
        if verdict == "relevant":
            self.relevant += 1
        elif verdict == "not-relevant":
            self.not_relevant += 1
        elif verdict == "wrong-branch":
            self.wrong_branch += 1

    @property
    def judged(self) -> int:
        return self.relevant + self.not_relevant + self.wrong_branch

    @property
    def unjudged(self) -> int:
        return self.alerts - self.judged

    @property
    def precision(self) -> float | None:
        return _share(self.alerts - self.not_relevant, self.alerts)

    @property
    def judged_precision(self) -> float | None:
        return _share(self.judged - self.not_relevant, self.judged)

    @property
    def branch_precision(self) -> float | None:
        org_right = self.alerts - self.not_relevant
        return _share(org_right - self.wrong_branch, org_right)

    @property
    def judged_branch_precision(self) -> float | None:
        return _share(self.relevant, self.relevant + self.wrong_branch)

    def as_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "relevant": self.relevant,
            "not_relevant": self.not_relevant,
            "wrong_branch": self.wrong_branch,
            "unjudged": self.unjudged,
            "precision": self.precision,
            "judged_precision": self.judged_precision,
            "branch_precision": self.branch_precision,
            "judged_branch_precision": self.judged_branch_precision,
        }


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    org: str | None  # only this organisation's alerts; None: all
    searches: dict[str, Counts] = field(default_factory=dict)
    total: Counts = field(default_factory=Counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "org": self.org,
            "unjudged_count_as_right": True,
            "searches": {search: counts.as_dict() for search, counts in self.searches.items()},
            "total": self.total.as_dict(),
        }


def tally(
    alerts: Iterable[AlertRow],
    verdicts: Mapping[int, str],
    key: Callable[[AlertRow], str],
) -> dict[str, Counts]:
    """`Counts` per `key(alert)`, sorted by key; `verdicts` is the newest verdict per alert id."""
    groups: dict[str, Counts] = {}
    for alert in alerts:
        assert alert.id is not None
        groups.setdefault(key(alert), Counts()).add(verdicts.get(alert.id))
    return dict(sorted(groups.items()))


def build_report(store: Store, since: datetime, now: datetime, *, org: str | None = None) -> Report:
    """The report on the alerts created since `since`, as the feedback stands `now`."""
    alerts = [
        a for a in store.alerts_since(since) if a.org != SYSTEM and (org is None or a.org == org)
    ]
    verdicts = {row.alert_id: row.verdict for row in store.feedback(since)}
    total = Counts()
    for alert in alerts:
        assert alert.id is not None
        total.add(verdicts.get(alert.id))
    searches = tally(alerts, verdicts, key=lambda a: a.search)
    return Report(since=since, until=now, org=org, searches=searches, total=total)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
