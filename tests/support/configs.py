"""Write a small, valid listener setup into a folder; tests then break one file at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MAIN = """\
database = "sqlite:///listener.db"
queries_dir = "queries"
alerts_dir = "alerts"

[sources.replay]
path = "posts.jsonl"
interval = "10s"
{extra_main}
"""

QUERIES = """\
[[organisations]]
id = "eemland"
name = "Bibliotheek Eemland"
aliases = ["Bieb Eemland"]
handles = ["@bibliotheekeemland"]
branches = [
  { id = "amersfoort", name = "Eemhuis", town = "Amersfoort", lat = 52.1550, lon = 5.3875, radius_km = 5 },
  { id = "leusden", name = "Bibliotheek Leusden", town = "Leusden", lat = 52.1325, lon = 5.43194, radius_km = 2.5 },
]

[[searches]]
id = "eemland-brand"
org = "eemland"
kind = "brand"
interval = "5m"

[[searches]]
id = "de-bieb"
kind = "local"
terms = ["de bieb", "bibliotheek"]
"""

ALERTS = """\
[[receivers]]
id = "console"
type = "console"
{extra_receivers}
[[routes]]
min_level = "low"
receivers = [{route_receivers}]
"""


def write_setup(
    folder: Path,
    *,
    extra_main: str = "",
    queries: str = QUERIES,
    extra_receivers: str = "",
    route_receivers: str = '"console"',
    posts: Path | None = None,
) -> Path:
    """A config in `folder`; returns the config file's path."""
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    (folder / "alerts" / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(MAIN.format(extra_main=extra_main), encoding="utf-8")
    (folder / "queries" / "eemland.toml").write_text(queries, encoding="utf-8")
    (folder / "alerts" / "routes.toml").write_text(
        ALERTS.format(extra_receivers=extra_receivers, route_receivers=route_receivers),
        encoding="utf-8",
    )
    for template in (ROOT / "alerts" / "templates").glob("*.j2"):
        shutil.copy(template, folder / "alerts" / "templates" / template.name)
    if posts is not None:
        shutil.copy(posts, folder / "posts.jsonl")
    else:
        (folder / "posts.jsonl").touch()
    return folder / "config.toml"
