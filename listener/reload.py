"""Tuning while it runs: edits to the configuration are picked up without a restart.

`ConfigWatcher.check()` (the daemon calls it every `Daemon.reload_every`, two seconds) hashes
the configuration's files: `config.toml`, the urgency file, every `*.toml`, CSV and GeoJSON file
of the queries folder, the alerts files and their templates. When one changed, appeared or went,
the whole configuration is loaded again (`load_config`, the same checks as `listener check`).
A broken one is not applied: each problem is logged as `file:line: field: what is wrong` and the
daemon keeps running the last good configuration; the same broken files are not reported again,
the next edit is. A good one is handed to `Daemon.apply`, which swaps in the new searches,
organisations, routes, receivers, dispatcher, grouper and classifier and reschedules the source
polls, and the watcher logs what changed (`Changes.summary`).

Polling file hashes instead of watching with inotify (watchfiles): the set of files is small
(a config, a few queries and alerts files), so reading them every two seconds costs nothing; it
works the same on every platform, on network file systems and in Docker bind mounts of single
files, where editors that save by renaming leave an inotify watch on the old file; a touch that
changes nothing reloads nothing; the check is a plain method tests call directly; and it needs
no new dependency or thread.

`SwapLock` is the lock around the swap: polls hold it shared for their whole run, the swap holds
it alone, so a poll decides every post with one configuration, never half of each. A waiting swap
goes before polls that have not started yet.

A changed search does not alert again on posts already stored: posts the store has are not
decided again (only their counts are snapshotted), and an alert's `(post, org)` key is unique.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from listener.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from listener.daemon import Daemon
    from listener.sources import Source

log = logging.getLogger(__name__)

#: Settings of config.toml that `Daemon.apply` cannot change in a running daemon.
NEEDS_RESTART = (
    "database",
    "timezone",
    "log_level",
    "http",
    "slack",
    "sources.webhook",
    "outbox.every",
    "retention.every",
    "report.weekly",
)
_SEARCH_KEY = re.compile(r":search:([^:]+)")


class SwapLock:
    """Many holders at once (polls), or one alone (the swap); a waiting swap goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._alone or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._alone or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class Diff:
    """What was added, removed and changed, by id."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        parts = [f"+{name}" for name in self.added]
        parts += [f"-{name}" for name in self.removed]
        parts += [f"~{name}" for name in self.changed]
        return " ".join(parts)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Diff:
    """Compare two {id: model} mappings (equal models: unchanged)."""
    return Diff(
        added=[key for key in new if key not in old],
        removed=[key for key in old if key not in new],
        changed=[key for key in new if key in old and new[key] != old[key]],
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """What a reload changed (`Daemon.apply` returns it)."""

    searches: Diff
    organisations: Diff
    routes: Diff
    receivers: Diff
    sources: Diff
    default_receiver: bool = False
    urgency: bool = False
    needs_restart: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """'searches ~de-bieb; sources ~rss:search:de-bieb', or 'nothing that matters'."""
        parts = [
            f"{name} {found}"
            for name, found in (
                ("searches", self.searches),
                ("organisations", self.organisations),
                ("routes", self.routes),
                ("receivers", self.receivers),
                ("sources", self.sources),
            )
            if found
        ]
        if self.default_receiver:
            parts.append("default receiver changed")
        if self.urgency:
            parts.append("urgency settings changed")
        return "; ".join(parts) or "nothing that matters"


def compare(
    old: Config, new: Config, old_sources: Sequence[Source], new_keys: Sequence[str]
) -> Changes:
    """The changes from `old` to `new`; a source changed when its settings, or the search it
    polls for (with that search's organisations), changed."""
    before = {source.key: source_fingerprint(old, source.key) for source in old_sources}
    after = {key: source_fingerprint(new, key) for key in new_keys}
    restart = [name for name in NEEDS_RESTART if _setting(old, name) != _setting(new, name)]
    return Changes(
        searches=diff({s.id: s for s in old.searches}, {s.id: s for s in new.searches}),
        organisations=diff(old.organisations, new.organisations),
        routes=diff({r.id or "": r for r in old.routes}, {r.id or "": r for r in new.routes}),
        receivers=diff(old.receivers, new.receivers),
        sources=diff(before, after),
        default_receiver=old.default_receiver != new.default_receiver,
        urgency=old.urgency != new.urgency,
        needs_restart=restart,
    )


def source_fingerprint(config: Config, key: str) -> str:
    """What a source is built from: its kind's `[sources.*]` settings and folder, and for a
    source of one search (`rss:search:de-bieb`) that search and the organisations it is about.
    Equal fingerprints: the running source object is kept (connections, state)."""
    kind = key.split(":", 1)[0]
    settings = getattr(config.main.sources, kind, None)
    parts = [kind, str(config.base_dir), settings.model_dump_json() if settings else ""]
    found = _SEARCH_KEY.search(key)
    if found is not None:
        search = next((s for s in config.searches if s.id == found.group(1)), None)
        parts.append(search.model_dump_json() if search else "")
        if search is not None:
            orgs = (
                [config.organisations[search.org]]
                if search.org in config.organisations
                else list(config.organisations.values())
            )
            parts += [org.model_dump_json() for org in orgs]
    return "\n".join(parts)


def _setting(config: Config, dotted: str) -> Any:
    value: Any = config.main
    for name in dotted.split("."):
        value = getattr(value, name, None)
    return value


class ConfigWatcher:
    """Reload the daemon's configuration when its files change; see the module docstring."""

    def __init__(self, daemon: Daemon, env: Mapping[str, str] | None = None) -> None:
        self.daemon = daemon
        self.env = env
        self._seen = self.snapshot()

    def files(self) -> list[Path]:
        """The files the configuration is read from, and any new one in its folders."""
        config = self.daemon.config
        found = {config.path, *config.files}
        for folder, patterns in (
            (config.queries_dir, ("*.toml", "*.csv", "*.geojson", "*.json")),
            (config.alerts_dir, ("*.toml",)),
            (config.templates_dir, ("*.j2",)),
        ):
            if folder.is_dir():
                for pattern in patterns:
                    found.update(folder.glob(pattern))
        return sorted(found)

    def snapshot(self) -> dict[Path, str | None]:
        """Each file's content hash (None: missing or unreadable)."""
        hashes: dict[Path, str | None] = {}
        for path in self.files():
            try:
                hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                hashes[path] = None
        return hashes

    def check(self) -> Changes | None:
        """Reload when a file changed since the last check: the changes applied, or None when
        nothing changed or the new configuration is broken (its problems are logged)."""
        now = self.snapshot()
        if now == self._seen:
            return None
        edited = sorted(
            str(p) for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p)
        )
        self._seen = now
        log.info("configuration files changed (%s): reloading", ", ".join(edited))
        try:
            config = load_config(self.daemon.config.path)
            changes = self.daemon.apply(config, env=self.env)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error(
                "configuration not reloaded: %d problem(s); still running the last good one",
                len(exc.problems),
            )
            return None
        except ValueError as exc:  # what `build_sources` refuses (two sources with one key)
            log.error("configuration not reloaded: %s; still running the last good one", exc)
            return None
        fresh = self.snapshot()  # the new configuration may read more files
        fresh.update({path: digest for path, digest in now.items() if path in fresh})
        self._seen = fresh
        log.info("configuration reloaded: %s", changes.summary())
        if changes.needs_restart:
            log.warning(
                "config.toml: %s changed; these take effect when listener restarts",
                ", ".join(changes.needs_restart),
            )
        return changes
