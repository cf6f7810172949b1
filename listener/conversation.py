"""Conversations: is a new post a follow-up of a post already alerted?

A post continues an alerted one when it replies to it (`reply_to` is the alerted post's id), or
when it is a near-duplicate of it: a repost ('RT @marieke: de bieb is dicht'), the same text
posted again, or a quote that contains the text. Such a post does not ping anyone again: it is
delivered as a follow-up of the alert it continues (in Slack, in its thread).

Pure functions over the post and the recent alerted posts of the same organisation (`Recent`,
looked up by the store in the transaction that saves the batch); no database, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from rapidfuzz import fuzz

from listener.alert import AlertMessage
from listener.post import Post
from listener.text import fold

#: Near-duplicate texts must have at least this many folded characters: 'dicht!' twice is chance.
MIN_DUPLICATE_CHARS = 16
#: ...and a quoted text at least this many words, to count when found inside a longer post.
MIN_QUOTED_WORDS = 4
#: rapidfuzz ratio (0-100) above which two texts of that length are the same text re-typed.
SIMILAR = 92.0

_REPOST = re.compile(r"^\s*(?:RT|rt|Rt)\s*:?\s*@[\w.\-@]+\s*:?\s*")
_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"(?<![\w@])@[\w.\-]+(?:@[\w.\-]+)?")


@dataclass(frozen=True, slots=True)
class Recent:
    """An alert of the organisation, as the store found it for a newer post."""

    alert_id: int
    message: AlertMessage
    root_id: int | None = None  # the alert it follows up (its thread), if it is a follow-up
    receivers: tuple[str, ...] = ()

    @property
    def post(self) -> Post:
        return self.message.post

    @property
    def thread(self) -> int:
        """The alert whose thread this one is in (itself when it is not a follow-up)."""
        return self.root_id if self.root_id is not None else self.alert_id


@dataclass(frozen=True, slots=True)
class Continues:
    """`post` continues alert `parent` (the root of its thread), as a `kind`."""

    parent: Recent
    kind: str  # reply | duplicate


def core_text(text: str) -> str:
    """The words that make a post's message: no 'RT @x:', links or @mentions; folded."""
    text = _REPOST.sub("", text)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    return fold(text)


def is_near_duplicate(a: str, b: str) -> bool:
    """The same message: equal once reposts, links and mentions are set aside; re-typed with a
    small difference; or one quoted whole inside the other."""
    ca, cb = core_text(a), core_text(b)
    if not ca or not cb:
        return False
    short, long = sorted((ca, cb), key=len)
    if len(short) < MIN_DUPLICATE_CHARS:
        return False
    if ca == cb:
        return True
    if len(short) >= 0.8 * len(long) and fuzz.ratio(ca, cb) >= SIMILAR:
        return True
    return len(short.split()) >= MIN_QUOTED_WORDS and f" {short} " in f" {long} "


def continues(post: Post, recent: Sequence[Recent], within: timedelta) -> Continues | None:
    """The alert `post` continues, or None. Only alerts whose post was made at most `within`
    before the new post count (or after it: sources deliver out of order); a reply wins over a
    near-duplicate, and among several candidates the newest counts. A post never continues
    itself."""
    since = post.created_at - within
    fresh = [r for r in recent if r.post.id != post.id and r.post.created_at >= since]
    fresh.sort(key=lambda r: (r.post.created_at, r.alert_id), reverse=True)
    if post.reply_to:
        for candidate in fresh:
            if candidate.post.id == post.reply_to:
                return Continues(candidate, "reply")
    for candidate in fresh:
        if is_near_duplicate(post.text, candidate.post.text):
            return Continues(candidate, "duplicate")
    return None
