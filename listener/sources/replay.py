"""Replay: a JSONL file of canonical posts, read from where the last run stopped.

One post per line, as `Post.to_dict` writes it. The cursor is JSON
`{"offset": <byte offset>, "line": <lines consumed>}`, so a restart (or the next poll) picks up
exactly after the last complete line. A final line without a newline is never consumed: the file
may be being appended to, and the rest of that line will come. Posts keep the `source` they carry
(e.g. "bluesky"), so searches that filter on sources see where a post originally came from.

With `as_new` (for demos) the posts' times are shifted so that the newest post in the file was
written when the source first reads it, the spacing kept: a demo feed then reads as fresh news
on any day, instead of as posts found late.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from listener.post import Post, PostError
from listener.sources import Batch, SourceError, SourceUnavailable

if TYPE_CHECKING:
    import httpx

    from listener.config.model import Organisation, Search
    from listener.config.model import ReplaySource as ReplaySettings

log = logging.getLogger(__name__)


class ReplaySource:
    """Reads at most `batch` lines of a JSONL file per fetch."""

    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        key: str | None = None,
        batch: int = 500,
        interval: timedelta = timedelta(seconds=30),
        as_new: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = path
        self.key = key or f"replay:{path}"
        self.batch = batch
        self.interval = interval
        self.as_new = as_new
        self.clock = clock
        self._shift: timedelta | None = None

    def fetch(self, cursor: str | None) -> Batch:
        """Read the complete lines after `cursor`; raise `SourceError` if the file is missing."""
        offset, line_no = self._position(cursor)
        start = (offset, line_no)
        restarted = False
        try:
            size = self.path.stat().st_size
            if size < offset:
                log.info(
                    "%s: file is shorter than the stored offset (%d < %d), reading it from the "
                    "start",
                    self.path,
                    size,
                    offset,
                )
                offset, line_no, restarted = 0, 0, True
            posts: list[Post] = []
            skipped = 0
            read = 0
            with self.path.open("rb") as handle:
                handle.seek(offset)
                while read < self.batch:
                    raw = handle.readline()
                    if not raw.endswith(b"\n"):
                        break  # end of file, or a line still being written
                    offset += len(raw)
                    line_no += 1
                    read += 1
                    post = self._parse(raw, line_no)
                    if post is not None and self.as_new:
                        post = replace(post, created_at=post.created_at + self._offset())
                    if post is not None:
                        posts.append(post)
                    elif raw.strip():
                        skipped += 1
                more = read == self.batch and handle.tell() < self.path.stat().st_size
        except FileNotFoundError as exc:
            raise SourceError(f"{self.path}: replay file not found") from exc
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read replay file: {exc}") from exc
        moved = restarted or (offset, line_no) != start
        new_cursor = json.dumps({"offset": offset, "line": line_no}) if moved else None
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped, more=more)

    def _offset(self) -> timedelta:
        """How far `as_new` moves every post: from the newest post in the file to now."""
        if self._shift is None:
            newest: datetime | None = None
            with self.path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    post = self._parse(raw, number, quiet=True)
                    if post is not None and (newest is None or post.created_at > newest):
                        newest = post.created_at
            self._shift = self.clock() - newest if newest is not None else timedelta(0)
        return self._shift

    def _position(self, cursor: str | None) -> tuple[int, int]:
        """The (byte offset, line number) a cursor points at; (0, 0) for none or a bad one."""
        if cursor is None:
            return 0, 0
        try:
            data = json.loads(cursor)
            offset, line_no = data["offset"], data["line"]
            if not (isinstance(offset, int) and isinstance(line_no, int)) or offset < 0:
                raise ValueError(cursor)
        except (ValueError, KeyError, TypeError):
            log.warning(
                "%s: ignoring unreadable cursor %r, reading from the start", self.path, cursor
            )
            return 0, 0
        return offset, line_no

    def _parse(self, raw: bytes, line_no: int, quiet: bool = False) -> Post | None:
        """The post on one line, or None (logged unless `quiet`) for a blank or malformed line."""
        post = _post_or_error(raw)
        if isinstance(post, str):
            if not quiet:
                log.warning("%s:%d: %s", self.path, line_no, post)
            return None
        return post


def _post_or_error(raw: bytes) -> Post | str | None:
    """The post on one line, what is wrong with it, or None for a blank line."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return f"not UTF-8: {exc}"
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    try:
        return Post.from_dict(data)
    except PostError as exc:
        return f"not a valid post: {exc}"


def build(
    settings: ReplaySettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[ReplaySource]:
    """The replay source `[sources.replay]` describes; its path is relative to `base_dir`. A
    path with a wildcard (`posts/*.jsonl`) gives one source per matching file, each with its own
    cursor, so several instances on one database can replay them side by side."""
    if not any(char in settings.path for char in "*?["):
        paths = [settings.path]
    else:
        found = (Path(name) for name in glob.glob(str(base_dir / settings.path)))
        paths = sorted(
            path.relative_to(base_dir).as_posix() if path.is_relative_to(base_dir) else str(path)
            for path in found
            if path.is_file()
        )
        if not paths:
            raise SourceUnavailable(f"replay: no file matches {settings.path!r} in {base_dir}")
    return [
        ReplaySource(
            base_dir / path,
            key=f"replay:{path}",
            batch=settings.batch,
            interval=settings.interval,
            as_new=settings.as_new,
        )
        for path in paths
    ]
