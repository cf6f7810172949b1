"""Sources: where posts come from, and the contract every source keeps with the daemon.

A source is polled: every `interval` the daemon calls `fetch(cursor)` with the cursor it stored
for the source's `key` (None the first time) and gets back a `Batch`:

- `posts`: canonical `Post`s, in the order the source saw them;
- `cursor`: an opaque string to store once these posts are saved (None = keep the old one);
- `skipped`: how many malformed items the source logged and left out;
- `more`: the source has more waiting right now, so the daemon calls `fetch` again at once.

The daemon stores a batch's posts and its new cursor in one transaction, so a crash re-reads at
most one batch. Posts are de-duplicated by `id` in the store, so a source may return posts it
returned before (after a crash, or because a feed still lists yesterday's items); sources do not
keep their own memory of what they delivered.

A fetch that fails as a whole (network, HTTP status, a missing file, a body that is not a feed)
raises `SourceError`; the daemon keeps the old cursor and backs off (`transient=True`, honouring
`retry_after` when the source knows it) or reports a configuration problem (`transient=False`).
One bad item is never a failed fetch: it is logged, counted in `skipped` and left out.

`build_sources` turns `config.toml`'s `[sources.*]` tables into sources. Each kind lives in its
own module, imported lazily through `_REGISTRY`; each module has a
`build(settings, *, searches, organisations, base_dir, client, env) -> list[Source]`, which raises
`SourceUnavailable` when the source's credentials are not in `env`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from listener.post import Post
from listener.query.syntax import parse, seeds

if TYPE_CHECKING:
    import httpx

    from listener.config.model import Branch, MainFile, Organisation, Search

__all__ = ["Batch", "Source", "SourceError", "build_sources"]

# Source name (the field of `config.toml`'s `[sources]`) -> module that builds it.
_REGISTRY: dict[str, str] = {
    "replay": "listener.sources.replay",
    "rss": "listener.sources.rss",
    "bluesky": "listener.sources.bluesky",
    "jetstream": "listener.sources.jetstream",
    "mastodon": "listener.sources.mastodon",
    "reddit": "listener.sources.reddit",
    "x": "listener.sources.x",
    "youtube": "listener.sources.youtube",
    "webhook": "listener.sources.webhook",
}


@dataclass(slots=True)
class Batch:
    """What one `fetch` returns; see the module docstring."""

    posts: list[Post]
    cursor: str | None
    skipped: int = 0
    more: bool = False


class SourceError(Exception):
    """The fetch failed as a whole; nothing was consumed and the old cursor stays.

    `transient` errors (network, timeouts, 429, 5xx, a missing file) are retried with back-off;
    permanent ones (404, 401, a bad URL) need someone to fix the configuration. `retry_after` is
    the number of seconds the remote side asked us to wait, when it said so.
    """

    def __init__(
        self, message: str, *, transient: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class SourceUnavailable(Exception):
    """A source that is configured but cannot run: its credentials are not in the environment.
    The message says exactly what is missing ("bluesky: environment variable
    BLUESKY_APP_PASSWORD is not set"); `listener check` and `listener sources` show it."""


class Source(Protocol):
    """A polled source of posts.

    `key` is unique and stable across restarts (the cursor and the schedule are stored under it),
    e.g. "replay:demo/posts.jsonl", "rss:search:eemland-brand", "rss:feed:0123456789ab".
    `name` is the source name posts carry and searches filter on ("replay", "rss").
    """

    key: str
    name: str
    interval: timedelta

    def fetch(self, cursor: str | None) -> Batch:
        """Read what is new since `cursor`; raise `SourceError` if the fetch fails as a whole."""
        ...


def credential(env: Mapping[str, str], name: str, source: str) -> str:
    """A credential from the environment, or SourceUnavailable saying which variable is missing."""
    value = env.get(name, "").strip()
    if not value:
        state = "is empty" if name in env else "is not set"
        raise SourceUnavailable(f"{source}: environment variable {name} {state}")
    return value


def search_org(search: Search, organisations: Mapping[str, Organisation]) -> Organisation | None:
    """A search's organisation (None for a local search of every organisation)."""
    if search.org is None:
        return None
    if search.org not in organisations:
        raise ValueError(f"search {search.id!r}: unknown organisation {search.org!r}")
    return organisations[search.org]


def search_terms(search: Search) -> list[str]:
    """A search's own terms to ask a source for: its `terms` and what its `query` needs
    (`listener.query.syntax.seeds`), without repeats."""
    terms = list(search.terms)
    if search.query:
        terms += seeds(parse(search.query))
    return list(dict.fromkeys(terms))


def brand_names(search: Search, organisations: Mapping[str, Organisation]) -> list[str]:
    """What a brand search looks for: its organisation's name and aliases, and its own terms."""
    org = search_org(search, organisations)
    names = [org.name, *org.aliases] if org is not None else []
    return [*names, *search_terms(search)]


def search_branches(search: Search, organisations: Mapping[str, Organisation]) -> list[Branch]:
    """The branches a search is about: its organisation's, or every organisation's."""
    org = search_org(search, organisations)
    orgs = [org] if org is not None else list(organisations.values())
    return [branch for o in orgs for branch in o.branches]


def uses(search: Search, source: str) -> bool:
    """Whether a saved search runs on a source (no `sources` list means every source)."""
    return not search.sources or source in search.sources


def build_sources(
    main: MainFile,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None = None,
    env: Mapping[str, str] | None = None,
    unavailable: dict[str, str] | None = None,
) -> list[Source]:
    """Create every enabled source configured in `main.sources`.

    Paths are relative to `base_dir` (the folder of `config.toml`). `client` is shared by every
    source that talks HTTP; when None, such sources share one client created here, which lives
    as long as the process.
    """
    env = os.environ if env is None else env
    sources: list[Source] = []
    for name in type(main.sources).model_fields:
        settings = getattr(main.sources, name)
        if settings is None or not settings.enabled:
            continue
        if name not in _REGISTRY:
            raise ValueError(f"sources.{name}: no source of that kind is implemented")
        module = importlib.import_module(_REGISTRY[name])
        try:
            sources.extend(
                module.build(
                    settings,
                    searches=searches,
                    organisations=organisations,
                    base_dir=base_dir,
                    client=client,
                    env=env,
                )
            )
        except SourceUnavailable as exc:
            if unavailable is not None:
                unavailable[name] = str(exc)
    keys = [source.key for source in sources]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"two sources share the key(s) {', '.join(duplicates)}")
    return sources
