"""The replay source: a JSONL file of canonical posts, read from where the last run stopped."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.sources import SourceError
from listener.sources.replay import ReplaySource


def post_line(n: int, source: str = "bluesky") -> str:
    return json.dumps(
        {
            "id": f"{source}:{n}",
            "source": source,
            "text": f"post {n} over de bieb",
            "created_at": "2026-09-25T12:00:00Z",
        }
    )


def write(path: Path, *lines: str, newline_at_end: bool = True) -> None:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    path.write_text(text, encoding="utf-8")


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def ids(batch) -> list[str]:
    return [post.id for post in batch.posts]


def test_it_reads_every_post_and_keeps_the_original_source_names(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    write(path, post_line(1, "bluesky"), post_line(2, "mastodon"))

    batch = ReplaySource(path).fetch(None)

    assert ids(batch) == ["bluesky:1", "mastodon:2"]
    assert [post.source for post in batch.posts] == ["bluesky", "mastodon"]
    assert batch.skipped == 0
    assert batch.more is False
    assert json.loads(batch.cursor) == {"offset": path.stat().st_size, "line": 2}


def test_a_new_instance_resumes_from_the_stored_cursor(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    write(path, post_line(1), post_line(2))
    first = ReplaySource(path).fetch(None)
    append(path, post_line(3) + "\n")

    second = ReplaySource(path).fetch(first.cursor)

    assert ids(second) == ["bluesky:3"]
    assert json.loads(second.cursor)["line"] == 3


def test_nothing_new_gives_no_posts_and_keeps_the_cursor(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    write(path, post_line(1))
    source = ReplaySource(path)
    first = source.fetch(None)

    again = source.fetch(first.cursor)

    assert again.posts == []
    assert again.cursor is None


def test_it_reads_at_most_batch_lines_and_says_there_is_more(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    write(path, *(post_line(n) for n in range(1, 6)))
    source = ReplaySource(path, batch=2)

    first = source.fetch(None)
    second = source.fetch(first.cursor)
    third = source.fetch(second.cursor)

    assert (ids(first), first.more) == (["bluesky:1", "bluesky:2"], True)
    assert (ids(second), second.more) == (["bluesky:3", "bluesky:4"], True)
    assert (ids(third), third.more) == (["bluesky:5"], False)


def test_malformed_lines_are_logged_with_their_line_number_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "posts.jsonl"
    missing_text = json.dumps({"id": "x:9", "source": "x", "created_at": "2026-09-25T12:00:00Z"})
    write(path, post_line(1), "{not json", "", missing_text, post_line(5))

    with caplog.at_level(logging.WARNING, logger="listener.sources.replay"):
        batch = ReplaySource(path).fetch(None)

    assert ids(batch) == ["bluesky:1", "bluesky:5"]
    assert batch.skipped == 2  # the blank line is not malformed
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"{path}:2: not JSON" in message for message in messages)
    assert any(f"{path}:4: " in m and "text: required field missing" in m for m in messages)
    assert len(messages) == 2


def test_a_final_line_without_newline_is_not_consumed_until_it_is_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "posts.jsonl"
    line = post_line(2)
    write(path, post_line(1), line[:20], newline_at_end=False)
    source = ReplaySource(path)

    first = source.fetch(None)
    append(path, line[20:] + "\n")
    second = source.fetch(first.cursor)

    assert ids(first) == ["bluesky:1"]
    assert first.skipped == 0
    assert ids(second) == ["bluesky:2"]
    assert json.loads(second.cursor) == {"offset": path.stat().st_size, "line": 2}


def test_a_file_shorter_than_the_cursor_is_read_again_from_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "posts.jsonl"
    write(path, post_line(1), post_line(2), post_line(3))
    source = ReplaySource(path)
    first = source.fetch(None)
    write(path, post_line(7))  # rotated: a new, shorter file

    with caplog.at_level(logging.INFO, logger="listener.sources.replay"):
        second = source.fetch(first.cursor)

    assert ids(second) == ["bluesky:7"]
    assert json.loads(second.cursor) == {"offset": path.stat().st_size, "line": 1}
    assert "reading it from the start" in caplog.text


def test_a_missing_file_is_a_transient_source_error(tmp_path: Path) -> None:
    source = ReplaySource(tmp_path / "nowhere.jsonl")

    with pytest.raises(SourceError) as caught:
        source.fetch(None)

    assert caught.value.transient is True
    assert "nowhere.jsonl" in str(caught.value)


def test_as_new_shifts_every_post_so_the_newest_is_now_keeping_the_spacing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "posts.jsonl"
    lines = [json.loads(post_line(n)) for n in (1, 2, 3)]
    lines[0]["created_at"] = "2026-09-25T10:00:00Z"
    lines[1]["created_at"] = "2026-09-25T12:00:00Z"  # the newest
    lines[2]["created_at"] = "2026-09-25T11:30:00Z"
    write(path, *(json.dumps(line) for line in lines), "not json")
    now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    source = ReplaySource(path, batch=2, as_new=True, clock=lambda: now)
    first = source.fetch(None)
    second = source.fetch(first.cursor)

    times = [p.created_at for p in first.posts + second.posts]
    assert times == [now - timedelta(hours=2), now, now - timedelta(minutes=30)]
    plain = ReplaySource(path).fetch(None)
    assert plain.posts[0].created_at == datetime(2026, 9, 25, 10, 0, tzinfo=UTC)


def test_a_wildcard_path_makes_one_source_per_file_each_with_its_own_cursor(
    tmp_path: Path,
) -> None:
    from listener.config.model import ReplaySource as ReplaySettings
    from listener.sources import SourceUnavailable
    from listener.sources.replay import build

    (tmp_path / "posts").mkdir()
    write(tmp_path / "posts" / "b.jsonl", post_line(2))
    write(tmp_path / "posts" / "a.jsonl", post_line(1))
    (tmp_path / "posts" / "notes.txt").write_text("not a replay file")
    sources = build(
        ReplaySettings(path="posts/*.jsonl"),
        searches=[],
        organisations={},
        base_dir=tmp_path,
        client=None,
    )
    assert [s.key for s in sources] == ["replay:posts/a.jsonl", "replay:posts/b.jsonl"]
    assert [ids(s.fetch(None)) for s in sources] == [["bluesky:1"], ["bluesky:2"]]

    with pytest.raises(SourceUnavailable, match=r"no file matches 'nothing/\*\.jsonl'"):
        build(
            ReplaySettings(path="nothing/*.jsonl"),
            searches=[],
            organisations={},
            base_dir=tmp_path,
            client=None,
        )
