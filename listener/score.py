"""Score: how urgent is a post, and why?

Labels come from a small Dutch and English lexicon over the folded text (plus emoji and '?' in
the raw text): complaint, question, praise, outage, safety, and privacy (personal data posted in
public, found by pattern — the value itself never goes into a reason). Reach adds points for the
author's followers and the post's engagement. Every point has a reason the alert shows, e.g.
"privacy: phone number posted publicly +40". The score (0–100) gives the level:
critical ≥ 70, high ≥ 45, normal ≥ 20, else low.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from listener.post import Post
from listener.text import fold

LEVEL_FLOORS: tuple[tuple[str, float], ...] = (("critical", 70), ("high", 45), ("normal", 20))


@dataclass(frozen=True, slots=True)
class Label:
    name: str
    points: float
    phrases: tuple[str, ...]  # anywhere in the folded text
    emoji: tuple[str, ...] = ()
    openers: tuple[str, ...] = ()  # only at the start of a sentence ('kan ik', 'is er')


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("safety", 70, (
        "brand", "rook", "agressie", "agressief", "bedreigd", "bedreiging", "bedreigen",
        "ongeluk", "politie", "ambulance", "gewond", "vechtpartij", "onveilig", "geslagen",
        "fire", "smoke", "police", "injured", "threatened", "assault", "unsafe",
    ), ("🔥", "🚑", "🚓")),
    Label("outage", 25, (
        "dicht", "gesloten", "storing", "werkt niet", "werkt weer niet", "werkt gewoon niet",
        "doet het niet", "kapot", "plat", "ligt eruit", "offline", "niet inloggen",
        "inloggen lukt niet", "closed", "not working", "broken", "outage", "is down",
        "cannot log in", "can t log in",
    )),
    Label("complaint", 30, (
        "klacht", "klagen", "slecht", "waardeloos", "belachelijk", "irritant", "boos", "balen",
        "schandalig", "schande", "alweer", "weer dicht", "wederom", "niet blij",
        "niet tevreden", "teleurgesteld", "teleurstellend", "ergerlijk", "ergernis", "slechte",
        "onbeschoft", "kwaad", "terrible", "awful", "annoying", "worst", "ridiculous", "angry",
        "disappointed", "unacceptable",
    ), ("😡", "🤬", "😤", "👎", "😠", "🙄")),
    Label("question", 15, (
        "weet iemand", "weet jij", "weten jullie", "hoe laat", "does anyone", "anyone know",
    ), openers=(
        "wanneer", "waarom", "hoe", "waar", "kan ik", "mag ik", "kun je", "kunnen jullie",
        "is er", "zijn jullie", "how", "when", "why", "where", "can i", "is there",
    )),
    Label("praise", 5, (
        "top", "geweldig", "super", "blij", "dank", "bedankt", "dankjewel", "dankzij", "fijn",
        "prachtig", "aanrader", "heerlijk", "great", "love", "thanks", "thank you", "awesome",
    ), ("❤️", "😍", "👍", "🥰", "🙏", "💚")),
)
# fmt: on
NEGATIONS = ("niet", "geen", "nooit", "not", "no", "never")

PRIVACY_POINTS = 40
_PRIVACY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("e-mail address", re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]*[a-z]{2,}", re.IGNORECASE)),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}\s?[A-Z]{4}(?:\s?\d{2,4}){2,5}\b")),
    (
        "phone number",
        re.compile(
            r"(?<![\w/.])(?:\+31\s?|0031\s?|0)(?:6[\s-]?\d{8}|[1-9]\d{1,2}[\s-]?\d{6,7})(?!\d)"
        ),
    ),
    (
        "library card number",
        re.compile(
            r"\b(?:pas|pasnummer|lenerspas|bibliotheekpas)\D{0,12}\d{6,14}\b", re.IGNORECASE
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Urgency:
    score: float
    level: str
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def level_for(score: float) -> str:
    for level, floor in LEVEL_FLOORS:
        if score >= floor:
            return level
    return "low"


def score_post(post: Post) -> Urgency:
    """The labels, score, level and reasons for one post."""
    folded = fold(post.text)
    padded = f" {folded} "
    labels: list[str] = []
    reasons: list[str] = []
    total = 0.0
    for label in LABELS:
        cue = _first_cue(label, padded, post.text) or _opener(label, post.text)
        if label.name == "question" and cue is None and "?" in post.text:
            cue = "?"
        if cue is None:
            continue
        if label.name == "praise" and "complaint" in labels:
            continue  # 'super irritant' is not praise
        labels.append(label.name)
        total += label.points
        reasons.append(f"{label.name}: '{cue}' +{label.points:g}")
    for kind, pattern in _PRIVACY_PATTERNS:
        if pattern.search(post.text):
            labels.append("privacy")
            total += PRIVACY_POINTS
            reasons.append(f"privacy: {kind} posted publicly +{PRIVACY_POINTS}")
            break
    total += _reach(post, reasons)
    score = max(0.0, min(100.0, round(total, 1)))
    return Urgency(score=score, level=level_for(score), labels=labels, reasons=reasons)


_SENTENCE_END = re.compile(r"[.!?;:\n]+")


def _opener(label: Label, raw: str) -> str | None:
    """A phrase that opens one of the text's sentences: 'Kan ik …' but not 'Alweer kan ik …'."""
    for sentence in _SENTENCE_END.split(raw):
        folded = f"{fold(sentence)} "
        for opener in label.openers:
            if folded.startswith(f"{opener} "):
                return opener
    return None


def _first_cue(label: Label, padded: str, raw: str) -> str | None:
    for phrase in label.phrases:
        at = padded.find(f" {phrase} ")
        while at != -1:
            before = padded[:at].split()[-1:]
            if not (before and before[0] in NEGATIONS and label.name == "praise"):
                return phrase
            at = padded.find(f" {phrase} ", at + 1)
    for emoji in label.emoji:
        if emoji in raw:
            return emoji
    return None


def _reach(post: Post, reasons: list[str]) -> float:
    points = 0.0
    followers = post.author.followers if post.author else None
    if followers:
        gained = min(20.0, round(5 * math.log10(followers), 1)) if followers > 1 else 0.0
        if gained > 0:
            points += gained
            reasons.append(f"reach: {followers:,} followers +{gained:g}")
    if post.engagement:
        e = post.engagement
        weight = (e.likes or 0) + 2 * (e.reposts or 0) + (e.replies or 0)
        gained = min(10.0, round(3 * math.log10(1 + weight), 1))
        if gained > 0:
            points += gained
            reasons.append(f"engagement: {weight} likes/reposts/replies +{gained:g}")
    return points
