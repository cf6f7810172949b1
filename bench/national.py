"""A deterministic national-scale workload: a listener setup for the Dutch and Flemish public
libraries, and a firehose of everyday posts to run through it (issue 9).

    from bench import national

    config_path = national.write_setup(folder)                   # 170 organisations, 1,000 branches
    config_path = national.write_setup(folder, branches=10, organisations=10, terms=500)
    sample = national.posts(config_path, 20_000)                  # the same posts for the same seed
    for post in national.iter_posts(config_path, 200_000): ...    # the same, one at a time

Nothing happens at import; no network, no downloads. Everything comes from listener's own
offline gazetteer (GeoNames and CBS, CC BY 4.0: see /work/shared/data/SOURCES.md and
listener/geo/data/LICENCE.md) and wordfreq's packaged word lists (MIT; the word frequencies are
CC BY-SA 4.0).

**The setup** (`write_setup`): `config.toml` (SQLite database inside the folder, no source
enabled: a replay source is written but off), `alerts/console.toml` (one console receiver, one
route) and one `queries/<org>.toml` per organisation. The organisations are three quarters
Dutch and one quarter Flemish. A Dutch organisation is seated in one of the most populous
municipalities and serves the municipalities nearest to it (its territory); a Flemish one is
seated in one of the larger Flemish towns (at least 6 km apart, so no Antwerp districts) and
serves the Flemish places nearest to it. Names are built from the seat: 'Bibliotheek
Súdwest-Fryslân', 'de Bibliotheek Utrecht', 'Bib Hasselt', 'Openbare Bibliotheek Brugge', with
a few well-known ones as they are ('OBA', 'CODA Apeldoorn', 'Bibliotheek Eemland', 'DOK
Delft'); aliases ('Bieb Utrecht', 'Bibliotheek Utrecht') and two handles each
('@bibliotheekutrecht', 'biebutrecht.bsky.social'). Branches stand in the territory's towns,
villages and districts, largest first, at the gazetteer's coordinates (town centres, as the
example setup does; not real branch addresses), with a radius from the town's size (5 km for a
city down to 1.5 km for a village or district); the branches are shared out over the
organisations by territory population (D'Hondt), at least one each while there are enough.

Every organisation has two searches, as a real installation would configure them: `<org>-brand`
(kind brand, fuzzy 88: its name, aliases and handles, anywhere) and `<org>-lokaal` (kind local,
org set: 'de bieb', 'de bibliotheek', 'bieb', 'bibliotheek' — 'bib' in Flanders — plus
'library' in the big cities; it counts only when the post is placed inside one of that
organisation's branch areas). With `terms`, the total number of search terms (a brand search's
name, aliases, handles and `terms`, plus a local search's `terms`) is made exactly that: below
the natural count, aliases, second handles and the phrase forms of the local terms go first
(the least is two an organisation: its name and 'bieb'); above it, extra terms are added round
the organisations, to the brand search ('bibliotheek Leusden', 'Taalhuis Leusden', 'Makerspace
Hoogland', … for the seat, the branch towns and the territory) and every fifth to the local
search ('bibliotheekpas', 'uitleenbalie', …).

**The posts** (`posts`, `iter_posts`): canonical `listener.post.Post`s from bluesky, mastodon,
x and reddit, a quarter of a second apart, 78% Dutch (a fifth of it Flemish), 12% English and
the rest German, French, Spanish, Turkish, Polish and Arabic (a tenth carry no `lang`). Each is
one to five pieces: everyday sentences from templates (the weather, trains, football, the
market, a town named in a fifth of them) and runs of words drawn by frequency from wordfreq's
list for the language (Zipf's law by rank), cut to the source's length limit (300 characters,
280 on X, 500 on Mastodon). About 2% name a search term: an organisation's name, alias or
@handle, an extra term, or 'de bieb'/'de bib'/'the library', half of these with 'in <branch
town>'; one in ten of those has a typo in a longer word, one in ten is another sense of the word
('mijn Steam bibliotheek'). Independently, 1% carry coordinates (near a populated place, or
in one of a setup's branch areas) and 10% an author profile location (mostly a place name
weighted by population, as 'Utrecht', 'Gent, België', '📍 Amersfoort'; some 'he/him 🌈',
'Nederland', 'Berlin'). The filler words never include the local search words, so the 2% is the
share that mentions a term on purpose.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import re
import string
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from listener.post import Author, Engagement, Geo, Post
from listener.text import fold

if TYPE_CHECKING:
    from listener.config import Config
    from listener.geo.gazetteer import Gazetteer, Place

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday morning
FLEMISH_SHARE = 0.25
SEAT_SPACING_KM = 6.0  # Flemish seats: no two closer than this (Antwerp's districts)
BRANCH_FEATURES = frozenset({"PPL", "PPLA", "PPLA2", "PPLC", "PPLG", "PPLX", ""})
# GeoNames' cities500 gives a few Flemish towns their English names.
DUTCH_NAMES = {"Antwerp": "Antwerpen", "Ostend": "Oostende", "Brussels": "Brussel"}

# Well-known organisations, by seat: (name, aliases).
KNOWN = {
    "Amsterdam": ("OBA", ["Openbare Bibliotheek Amsterdam", "OBA Amsterdam"]),
    "Apeldoorn": ("CODA Apeldoorn", ["CODA bibliotheek", "bieb CODA"]),
    "Amersfoort": ("Bibliotheek Eemland", ["Bieb Eemland", "Bibliotheek Amersfoort"]),
    "Delft": ("DOK Delft", ["Bibliotheek Delft", "DOK bibliotheek"]),
    "Rotterdam": ("Bibliotheek Rotterdam", ["Centrale Bibliotheek Rotterdam", "Bieb Rotterdam"]),
    "Utrecht": ("de Bibliotheek Utrecht", ["Bieb Utrecht", "Bibliotheek Neude"]),
    "Gent": ("Bibliotheek Gent", ["De Krook", "Bib Gent"]),
    "Antwerpen": ("Bibliotheek Antwerpen", ["Permeke", "Bib Antwerpen"]),
    "Leuven": ("Bib Leuven", ["Bibliotheek Leuven", "Bib Tweebronnen"]),
}
BIG_CITIES = frozenset({"Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Gent", "Antwerpen"})

LOCAL_NL = ["bieb", "bibliotheek", "de bieb", "de bibliotheek"]
LOCAL_FL = ["bib", "bibliotheek", "de bib", "de bibliotheek"]
LOCAL_EXTRA_NL = [
    "bibliotheekpas", "bieb-pas", "bibliotheekkaart", "uitleenbalie", "inleverbus", "leeszaal",
    "boeken lenen", "e-books lenen", "luisterboeken lenen", "bieb-app", "bibliotheek app",
    "voorleesuurtje", "studieplek in de bieb", "leesclub in de bieb", "boete van de bieb",
    "de bieb is dicht", "bieb open", "jeugdbieb", "kinderbieb", "bibliotheekabonnement",
]  # fmt: skip
LOCAL_EXTRA_FL = [
    "bibkaart", "bib-kaart", "bib-app", "uitleenbalie", "leeszaal", "boeken uitlenen",
    "e-boeken", "jeugdbib", "bib open", "bib gesloten", "studeren in de bib", "boete van de bib",
    "voorleesuurtje", "inleverbus", "bibliotheekpas", "uitleenpunt",
]  # fmt: skip
BRAND_EXTRA_NL = [
    "bibliotheek {p}", "bieb {p}", "Taalhuis {p}", "Makerspace {p}", "Voorleesdagen {p}",
    "BoekStart {p}", "Digicafé {p}", "Leesclub {p}", "Schrijfcafé {p}", "Taalcafé {p}",
    "Kinderboekenweek {p}", "Informatiepunt Digitale Overheid {p}",
]  # fmt: skip
BRAND_EXTRA_FL = [
    "bib {p}", "bibliotheek {p}", "Taalpunt {p}", "Fablab {p}", "Voorleesweek {p}",
    "Boekstart {p}", "Digitaal Café {p}", "Leesclub {p}", "Jeugdboekenweek {p}",
    "Taalcafé {p}", "Uitleenpost {p}", "Schrijversavond {p}",
]  # fmt: skip


# --- the setup ---------------------------------------------------------------------------------


@dataclass
class _Branch:
    id: str
    name: str
    town: str
    lat: float
    lon: float
    radius_km: float


@dataclass
class _Org:
    id: str
    seat: str
    flemish: bool
    name: str
    aliases: list[str]
    handles: list[str]
    local: list[str]
    brand_terms: list[str]
    territory: list[Place]  # branch candidates, best first
    population: int
    branches: list[_Branch]

    def term_count(self) -> int:
        return 1 + len(self.aliases) + len(self.handles) + len(self.brand_terms) + len(self.local)


def slug(text: str) -> str:
    """'Súdwest-Fryslân' → 'sudwest-fryslan'; "'s-Hertogenbosch" → 's-hertogenbosch'."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance: plenty for choosing the nearest seat."""
    x = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2)) * 111.32
    y = (b[0] - a[0]) * 110.57
    return math.hypot(x, y)


def _dutch(place: Place) -> str:
    return DUTCH_NAMES.get(place.name, place.name)


def _branch_candidate(place: Place) -> bool:
    return place.feature_code in BRANCH_FEATURES and (
        place.country == "NL" or place.admin1 == "Vlaanderen"
    )


def _organisations(gazetteer: Gazetteer, count: int, rng: random.Random) -> list[_Org]:
    """`count` organisations, three quarters Dutch, with their territories (no branches yet)."""
    flemish_count = round(count * FLEMISH_SHARE) if count > 1 else 0
    dutch_count = count - flemish_count
    # Dutch municipalities: the largest place in each is its centre.
    by_gemeente: dict[str, list[Place]] = {}
    for place in gazetteer.places:
        if place.country == "NL" and place.gemeente and _branch_candidate(place):
            by_gemeente.setdefault(place.gemeente, []).append(place)
    ranked = sorted(by_gemeente.items(), key=lambda kv: (-sum(p.population for p in kv[1]), kv[0]))
    centre = {g: max(ps, key=lambda p: (p.population, p.name)) for g, ps in ranked}
    seats = [g for g, _ in ranked[:dutch_count]]
    territory: dict[str, list[Place]] = {g: [] for g in seats}
    for gemeente, places in ranked:
        point = (centre[gemeente].lat, centre[gemeente].lon)
        if not seats:
            break
        nearest = min(seats, key=lambda s: _km(point, (centre[s].lat, centre[s].lon)))
        territory[nearest] += places
    orgs: list[_Org] = []
    for gemeente in seats:
        seat = re.sub(r"\s*\(.*\)$", "", gemeente)  # CBS's 'Utrecht (gemeente)', 'Rijswijk (ZH.)'
        seat = "Den Haag" if seat == "'s-Gravenhage" else seat
        orgs.append(_org(seat, False, centre[gemeente], territory[gemeente], rng))
    # Flemish towns: the largest, spaced apart; every Flemish place goes to its nearest seat.
    flemish = sorted(
        (p for p in gazetteer.places if p.country == "BE" and p.admin1 == "Vlaanderen"),
        key=lambda p: (-p.population, p.name),
    )
    fl_seats: list[Place] = []
    for place in flemish:
        if len(fl_seats) >= flemish_count:
            break
        if all(_km((place.lat, place.lon), (s.lat, s.lon)) >= SEAT_SPACING_KM for s in fl_seats):
            fl_seats.append(place)
    fl_territory: dict[int, list[Place]] = {s.geonameid: [] for s in fl_seats}
    for place in flemish if fl_seats else ():
        nearest_seat = min(fl_seats, key=lambda s: _km((place.lat, place.lon), (s.lat, s.lon)))
        fl_territory[nearest_seat.geonameid].append(place)
    for seat_place in fl_seats:
        orgs.append(
            _org(_dutch(seat_place), True, seat_place, fl_territory[seat_place.geonameid], rng)
        )
    used: set[str] = set()
    for org in orgs:  # unique ids ('bergen' twice: 'bergen-2')
        base, n = org.id, 1
        while org.id in used:
            n += 1
            org.id = f"{base}-{n}"
        used.add(org.id)
    return orgs


def _org(seat: str, flemish: bool, centre: Place, places: list[Place], rng: random.Random) -> _Org:
    """One organisation seated in `seat`: its names, handles and local terms."""
    key = slug(seat).replace("-", "")
    roll = rng.random()
    if seat in KNOWN:
        name, aliases = KNOWN[seat][0], list(KNOWN[seat][1])
    elif flemish:
        name = (
            f"Bibliotheek {seat}"
            if roll < 0.6
            else f"Bib {seat}"
            if roll < 0.85
            else f"Openbare Bibliotheek {seat}"
        )
        aliases = [a for a in (f"Bib {seat}", f"Bibliotheek {seat}") if a != name]
    else:
        name = f"Bibliotheek {seat}" if roll < 0.65 else f"de Bibliotheek {seat}"
        aliases = [a for a in (f"Bieb {seat}", f"Bibliotheek {seat}") if fold(a) != fold(name)]
    word = "bib" if flemish else "bibliotheek"
    handles = [f"@{word}{key}", f"{'bib' if flemish else 'bieb'}{key}.bsky.social"]
    if seat in KNOWN:  # '@oba', 'codaapeldoorn.bsky.social'
        own = slug(name.removeprefix("de ")).replace("-", "")
        handles = [f"@{own}", f"{own}.bsky.social"]
    if not flemish and rng.random() < 0.2:
        handles[1] = f"@{word}{key}@mastodon.nl"
    local = list(LOCAL_FL if flemish else LOCAL_NL)
    if seat in BIG_CITIES:
        local.append("library")
    candidates = sorted(
        (p for p in places if _branch_candidate(p)),
        key=lambda p: (p is not centre, -p.population, p.feature_code == "PPLX", p.name),
    )
    return _Org(
        id=slug(seat),
        seat=seat,
        flemish=flemish,
        name=name,
        aliases=aliases,
        handles=handles,
        local=local,
        brand_terms=[],
        territory=candidates,
        population=sum(p.population for p in places),
        branches=[],
    )


def _share_branches(orgs: list[_Org], total: int) -> None:
    """At least one branch each while there are enough, the rest by population (D'Hondt),
    never more than an organisation's territory has places."""
    counts = [0] * len(orgs)
    for i in range(min(total, len(orgs))):
        counts[i] = 1 if orgs[i].territory else 0
    left = total - sum(counts)
    heap = [(-(o.population + 1) / (counts[i] + 1), i) for i, o in enumerate(orgs)]
    heapq.heapify(heap)
    while left > 0 and heap:
        _, i = heapq.heappop(heap)
        if counts[i] >= len(orgs[i].territory):
            continue
        counts[i] += 1
        left -= 1
        heapq.heappush(heap, (-(orgs[i].population + 1) / (counts[i] + 1), i))
    for org, n in zip(orgs, counts, strict=True):
        ids: set[str] = set()
        word = "Bib" if org.flemish else "Bibliotheek"
        for place in org.territory[:n]:
            town = _dutch(place)
            branch_id, k = slug(town) or "branch", 1
            while branch_id in ids:
                k += 1
                branch_id = f"{slug(town)}-{k}"
            ids.add(branch_id)
            pop = place.population
            radius = (
                5.0 if pop >= 100_000 else 3.0 if pop >= 20_000 else 2.0 if pop >= 5000 else 1.5
            )
            if place.feature_code == "PPLX":
                radius = 1.5
            org.branches.append(
                _Branch(branch_id, f"{word} {town}", town, place.lat, place.lon, radius)
            )


def _extras(org: _Org) -> Iterator[tuple[str, str]]:
    """Extra terms for an organisation, ('brand' | 'local', term), every fifth a local one."""
    local = iter(LOCAL_EXTRA_FL if org.flemish else LOCAL_EXTRA_NL)
    patterns = BRAND_EXTRA_FL if org.flemish else BRAND_EXTRA_NL
    towns = list(dict.fromkeys([org.seat, *(b.town for b in org.branches)]))
    towns += [t for t in dict.fromkeys(_dutch(p) for p in org.territory) if t not in towns]
    brand = (pattern.format(p=town) for town in towns for pattern in patterns)
    k = 0
    while True:
        k += 1
        found = next(local, None) if k % 5 == 0 else None
        if found is not None:
            yield "local", found
            continue
        term = next(brand, None)
        if term is None:
            found = next(local, None)
            if found is None:
                return
            yield "local", found
        else:
            yield "brand", term


def _fit_terms(orgs: list[_Org], terms: int) -> None:
    """Make the total number of search terms exactly `terms` (see the module doc)."""
    total = sum(o.term_count() for o in orgs)
    if terms < total:
        # What goes first, per organisation; the name and the first local term stay.
        def removals(org: _Org) -> Iterator[None]:
            for _ in range(len(org.local) - 2):  # 'library', 'de bibliotheek', 'de bieb'
                org.local.pop()
                yield None
            while org.aliases:
                org.aliases.pop()
                yield None
            if len(org.handles) > 1:
                org.handles.pop()
                yield None
            if len(org.local) > 1:
                org.local.pop()
                yield None
            if org.handles:
                org.handles.pop()
                yield None

        steps = [removals(o) for o in orgs]
        while total > terms and steps:
            for step in list(steps):
                if total <= terms:
                    break
                if next(step, "done") == "done":
                    steps.remove(step)
                else:
                    total -= 1
        if total > terms:
            raise ValueError(
                f"terms={terms} is too few: {len(orgs)} organisations need at least "
                f"{total} (a name and one local term each)"
            )
    elif terms > total:
        sources = [(i, _extras(o)) for i, o in enumerate(orgs)]
        seen = [{fold(t) for t in (o.name, *o.aliases, *o.local)} for o in orgs]
        while total < terms and sources:
            for entry in list(sources):
                if total >= terms:
                    break
                owner, source = entry
                for kind, term in source:
                    if fold(term) in seen[owner]:
                        continue
                    seen[owner].add(fold(term))
                    org = orgs[owner]
                    (org.local if kind == "local" else org.brand_terms).append(term)
                    total += 1
                    break
                else:
                    sources.remove(entry)
        if total < terms:
            raise ValueError(f"terms={terms} is more than this generator can make ({total})")


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _qs(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


CONFIG_TOML = """\
# A national-scale benchmark setup written by bench/national.py (issue 9); not for production.
database = "sqlite:///listener.db"
timezone = "Europe/Amsterdam"
queries_dir = "queries"
alerts_dir = "alerts"
log_level = "warning"

# Off: write canonical posts to posts.jsonl and turn it on to replay them through the daemon.
[sources.replay]
enabled = false
path = "posts.jsonl"
"""

ALERTS_TOML = """\
[[receivers]]
id = "console"
type = "console"

[[routes]]
min_level = "low"
receivers = ["console"]
"""


def _org_toml(org: _Org) -> str:
    lines = [
        f"# {org.name}: seated in {org.seat}; branches at the gazetteer's town centres "
        "(GeoNames/CBS, CC BY 4.0), not real addresses.",
        "",
        "[[organisations]]",
        f"id = {_q(org.id)}",
        f"name = {_q(org.name)}",
        f"aliases = {_qs(org.aliases)}",
        f"handles = {_qs(org.handles)}",
    ]
    for b in org.branches:
        lines += [
            "",
            "[[organisations.branches]]",
            f"id = {_q(b.id)}",
            f"name = {_q(b.name)}",
            f"town = {_q(b.town)}",
            f"lat = {b.lat!r}",
            f"lon = {b.lon!r}",
            f"radius_km = {b.radius_km!r}",
        ]
    lines += [
        "",
        "[[searches]]",
        f'id = "{org.id}-brand"',
        f"org = {_q(org.id)}",
        'kind = "brand"',
        f"terms = {_qs(org.brand_terms)}",
        "fuzzy = 88",
        'exclude = ["vacature", "vacatures"]',
        "",
        "[[searches]]",
        f'id = "{org.id}-lokaal"',
        f"org = {_q(org.id)}",
        'kind = "local"',
        f"terms = {_qs(org.local)}",
        'exclude = ["vacature"]',
        "",
    ]
    return "\n".join(lines)


def write_setup(
    folder: Path,
    *,
    branches: int = 1000,
    organisations: int = 170,
    terms: int | None = None,
    seed: int = 0,
    gazetteer: Gazetteer | None = None,
) -> Path:
    """Write a complete listener setup into `folder` (see the module doc); the config.toml path.

    The `*.toml` files already in `folder/queries` and `folder/alerts` are removed first, so a
    folder can be reused. Raises ValueError when `terms` cannot be met."""
    if organisations < 1 or branches < 0:
        raise ValueError("organisations must be at least 1 and branches at least 0")
    if gazetteer is None:
        from listener.geo.gazetteer import default_gazetteer

        gazetteer = default_gazetteer()
    rng = random.Random(f"setup-{seed}")
    orgs = _organisations(gazetteer, organisations, rng)
    _share_branches(orgs, branches)
    if terms is not None:
        _fit_terms(orgs, terms)
    folder = Path(folder)
    queries, alerts = folder / "queries", folder / "alerts"
    for sub in (queries, alerts):
        sub.mkdir(parents=True, exist_ok=True)
        for old in sub.glob("*.toml"):
            old.unlink()
    for org in orgs:
        (queries / f"{org.id}.toml").write_text(_org_toml(org), encoding="utf-8")
    (alerts / "console.toml").write_text(ALERTS_TOML, encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(CONFIG_TOML, encoding="utf-8")
    return config


def term_count(config: Config) -> int:
    """The search terms of a loaded setup, counted as `write_setup`'s `terms` counts them."""
    total = 0
    for search in config.searches:
        total += len(search.terms)
        org = config.organisations.get(search.org) if search.org else None
        if search.kind == "brand" and org is not None:
            total += 1 + len(org.aliases) + len(org.handles)
    return total


# --- the posts ---------------------------------------------------------------------------------

LANGUAGES = [("nl", 78), ("en", 12), ("de", 3), ("fr", 3), ("es", 1), ("tr", 1), ("pl", 1)]
LANGUAGES += [("ar", 1)]
SOURCES = [("bluesky", 50), ("mastodon", 20), ("x", 20), ("reddit", 10)]
LIMITS = {"bluesky": 300, "x": 280, "mastodon": 500, "reddit": 500}
TERM_SHARE, GEO_SHARE, PROFILE_SHARE = 0.02, 0.01, 0.10
TYPO_SHARE, OTHER_SENSE_SHARE, FLEMISH_SHARE_OF_NL = 0.10, 0.10, 0.20


def _split(text: str) -> list[str]:
    return text.split()


# Never drawn as filler: the words of the local searches.
NOT_FILLER = frozenset({"bieb", "bib", "bibliotheek", "library", "bibliotheken", "libraries"})

EMOJI = _split("😅 😂 🙄 😡 ❤️ 🎉 ☀️ 🌧️ 🚲 📚 ☕ 🙏 👍 🤔 😍 🥲 🔥 💪 🌱 ⚽")
FOODS = _split("stamppot pasta soep lasagne pannenkoeken nasi frietjes curry shakshuka")
SHOPS = _split("kapper bakker fietsenmaker tandarts garage slager huisarts pizzeria")
TOPICS = [
    "de woningmarkt", "het nieuwe parkeerbeleid", "AI op school", "de energierekening",
    "thuiswerken", "de formatie", "klimaatadaptatie", "de fietsbrug", "de Elfstedentocht",
    "duurzaam wonen", "het openbaar vervoer", "de zorgpremie",
]  # fmt: skip
TEAMS = ["Ajax", "Feyenoord", "PSV", "AZ", "FC Utrecht", "Club Brugge", "AA Gent", "Anderlecht"]
NAMES = _split("""
    marieke joost sanne pieter fatima daan lotte mohamed anouk bram esther thijs yara ruben ilse
    kees noor sem femke jeroen priya wouter linda ahmed mirjam stijn eva hans iris tom lieve
    wout jana arne elke koen nele jef an sofie emre ayse kevin
""")
TEMPLATES: dict[str, list[str]] = {
    "nl": [
        "Wat een weer vandaag {emoji}", "Net terug uit {place}, wat een drukte zeg",
        "Iemand een tip voor een goede {shop} in {place}?", "Eindelijk weekend! {emoji}",
        "De trein naar {place} heeft weer {num} minuten vertraging {emoji}",
        "Vanavond {food} gemaakt, echt heerlijk", "Wie gaat er zaterdag naar de markt in {place}?",
        "File op de A{road} bij {place}, sta al {num} minuten stil", "Goedemorgen allemaal ☀️",
        "Kan iemand uitleggen waarom alles zo duur is geworden?", "Koffie ☕ en dan aan het werk",
        "Thread over {topic} 🧵 1/{small}", "Nieuwe blog online over {topic}: {url}",
        "Zo, de tuin is weer bijgewerkt 🌱", "Hoe laat is de Jumbo in {place} open op zondag?",
        "Gefeliciteerd {mention}! 🎉", "Wat vinden jullie van {topic}? Ben benieuwd",
        "Gemeenteraad van {place} praat vanavond over {topic}",
        "{num} km hardgelopen langs het water in {place} 🏃", "Haha {mention} dit is zo herkenbaar",
        "Kinderen naar school gebracht, nu eerst even bijkomen", "Stemmen niet vergeten!",
        "Weet iemand of het zwembad in {place} open is?", "Wat een wedstrijd, {team} verdiende het",
        "Mooie foto's gemaakt vanochtend bij {place} {emoji}", "{small} graden en het regent 🌧️",
        "Ik snap echt niks van de nieuwe regels over {topic}", "Lekker fietsen vandaag 🚲",
    ],
    "vl": [
        "Amai, wat een weer vandaag {emoji}", "Iemand een goeie frituur in {place}?",
        "Goeiemorgen iedereen ☀️", "De trein naar {place} heeft weeral vertraging {emoji}",
        "Nen dikke proficiat {mention}!", "Wie gaat er zondag naar de rommelmarkt in {place}?",
        "Straks nog rap naar de Colruyt", "Wat een match van {team} gisteren",
        "Da's toch zot, {topic} alweer in het nieuws", "Ik zie u graag {mention} ❤️",
    ],
    "en": [
        "Anyone know a good {shop} in {place}?", "Can't believe it's Monday again {emoji}",
        "Train to {place} delayed again, classic", "New post on my blog about {topic}: {url}",
        "Coffee first ☕", "What a game last night, {team} deserved it",
        "Happy birthday {mention}!",
        "Moved to {place} last month, loving it so far", "Rain rain rain 🌧️",
    ],
    "de": [
        "Heute in {place} gewesen, schönes Wetter {emoji}", "Guten Morgen zusammen ☀️",
        "Weiß jemand, ob der Zug nach {place} heute fährt?", "Endlich Wochenende!",
    ],
    "fr": [
        "Bonjour tout le monde ☀️", "Encore du retard sur la ligne vers {place} {emoji}",
        "Quelqu'un connaît un bon restaurant à {place} ?", "Enfin le week-end !",
    ],
    "es": ["Buenos días a todos ☀️", "Hoy en {place}, qué bonito {emoji}"],
    "tr": ["Günaydın herkese ☀️", "Bugün {place} çok güzeldi {emoji}"],
    "pl": ["Dzień dobry wszystkim ☀️", "Dziś w {place}, piękna pogoda {emoji}"],
    "ar": ["صباح الخير ☀️", "اليوم في {place} {emoji}"],
}  # fmt: skip
ABOUT_LIBRARY: dict[str, list[str]] = {
    "nl": [
        "{ref} is wéér dicht vandaag 😡", "Weet iemand hoe laat {ref} opengaat?",
        "Net mijn boeken teruggebracht bij {ref}", "Super leuke voorleesochtend bij {ref} 📚",
        "Waarom kan ik niet inloggen bij {ref}? De app doet het weer niet",
        "Lekker studeren in {ref}, heerlijk rustig", "Dank aan {ref} voor de hulp met mijn DigiD!",
        "Boete van {num} euro bij {ref} omdat ik een boek vergeten was 🙄",
        "Taalcafé bij {ref} vanavond, kom ook!", "De wifi in {ref} is echt traag vandaag",
        "Mijn dochter wil elke week naar {ref} ❤️", "Parkeren bij {ref} is een drama",
    ],
    "en": [
        "{ref} is closed again?", "Spent the afternoon at {ref}, lovely place",
        "Anyone know if {ref} has printers?", "Shoutout to {ref} for the free workshop!",
    ],
}  # fmt: skip
OTHER_SENSES = [
    "Mijn Steam bibliotheek is veel te groot geworden", "Eindelijk mijn Lightroom-bibliotheek "
    "opgeruimd", "Nieuwe Python library uitgeprobeerd, werkt prima", "The Midnight Library "
    "uitgelezen, aanrader", "Opa's bibliotheek is echt indrukwekkend",
]  # fmt: skip
PROFILE_OTHER = [
    "he/him 🌈", "Nederland", "Brabant", "Vlaanderen", "Berlin", "internet", "🌍", "NL/BE",
    "ergens in het Gooi", "London, UK", "Twente", "she/her",
]  # fmt: skip


@dataclass(frozen=True)
class _OrgRefs:
    """What posts can say about one organisation, read from a loaded setup."""

    names: tuple[str, ...]  # name and aliases
    mentions: tuple[str, ...]  # handles as written in a post: '@bibliotheekutrecht'
    extras: tuple[str, ...]  # brand `terms` and local terms beyond the plain words
    towns: tuple[str, ...]
    points: tuple[tuple[float, float, float], ...]  # branch lat, lon, radius_km
    flemish: bool


@dataclass(frozen=True)
class Workload:
    """A loaded setup, as `posts` needs it: every organisation's names, handles and branches."""

    orgs: tuple[_OrgRefs, ...]

    @classmethod
    def of(cls, config: Config) -> Workload:
        orgs = []
        for org in config.organisations.values():
            searches = [s for s in config.searches if s.org == org.id]
            local = [t for s in searches if s.kind == "local" for t in s.terms]
            plain = set(LOCAL_NL + LOCAL_FL + ["library"])
            extras = [t for s in searches if s.kind == "brand" for t in s.terms]
            extras += [t for t in local if t not in plain]
            orgs.append(
                _OrgRefs(
                    names=(org.name, *org.aliases),
                    mentions=tuple(h if h.startswith("@") else "@" + h for h in org.handles),
                    extras=tuple(extras),
                    towns=tuple(b.town or b.name for b in org.branches),
                    points=tuple((b.lat, b.lon, b.radius_km) for b in org.branches),
                    flemish="bib" in local,
                )
            )
        return cls(tuple(orgs))


@cache
def _filler(lang: str) -> tuple[list[str], list[float]]:
    """wordfreq's 8,000 most frequent words of a language (its small list: a few MB), with
    Zipf's-law weights by rank."""
    import wordfreq

    words = [w for w in wordfreq.top_n_list(lang, 8000, "small") if w not in NOT_FILLER]
    cumulative, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 2.7)
        cumulative.append(total)
    return words, cumulative


@cache
def _places() -> tuple[list[str], list[float], list[tuple[float, float]]]:
    """Dutch and Flemish place names, weighted by population (villages count a little)."""
    from listener.geo.gazetteer import default_gazetteer

    chosen = sorted(
        (
            p
            for p in default_gazetteer().places
            if _branch_candidate(p) and p.feature_code != "PPLX" and p.population >= 500
        ),
        key=lambda p: p.geonameid,
    )
    cumulative, total = [], 0.0
    for place in chosen:
        total += place.population**0.8
        cumulative.append(total)
    return [_dutch(p) for p in chosen], cumulative, [(p.lat, p.lon) for p in chosen]


@cache
def _slots(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _typo(text: str, rng: random.Random) -> str:
    """One slip in a word of five letters or more ('Bibliotheek' → 'Biblioteek')."""
    spans = [m.span() for m in re.finditer(r"[^\W\d_]{5,}", text)]
    if not spans:
        return text
    start, end = rng.choice(spans)
    i = rng.randrange(start + 1, end - 1)
    kind = rng.randrange(3)
    if kind == 0:  # two letters swapped
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:  # a letter left out
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]  # a letter doubled


class _Writer:
    """Post texts for one workload and seed."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        self.workload = workload
        self.rng = rng
        self.place_names, self.place_weights, self.place_points = _places()

    def place(self) -> str:
        return self.rng.choices(self.place_names, cum_weights=self.place_weights)[0]

    def fill(self, template: str) -> str:
        """A template with its slots filled (only the slots it has: this runs per post)."""
        rng = self.rng
        makers: dict[str, Callable[[], str]] = {
            "emoji": lambda: rng.choice(EMOJI),
            "place": self.place,
            "shop": lambda: rng.choice(SHOPS),
            "food": lambda: rng.choice(FOODS),
            "topic": lambda: rng.choice(TOPICS),
            "team": lambda: rng.choice(TEAMS),
            "num": lambda: str(rng.randint(5, 95)),
            "small": lambda: str(rng.randint(2, 19)),
            "road": lambda: str(rng.choice((1, 2, 4, 12, 27, 28, 50, 58, 67))),
            "mention": lambda: f"@{rng.choice(NAMES)}{rng.randint(1, 999)}",
            "url": lambda: f"https://example.nl/{rng.choice(NAMES)}/{rng.randint(10**5, 10**6)}",
        }
        return template.format(**{slot: makers[slot]() for slot in _slots(template)})

    def salad(self, lang: str) -> str:
        """A run of words drawn by frequency: the token statistics of the language."""
        words, weights = _filler(lang)
        drawn = self.rng.choices(words, cum_weights=weights, k=self.rng.randint(4, 18))
        text = " ".join(drawn)
        return text[:1].upper() + text[1:] + self.rng.choice((".", ".", "!", "?", "", " 😅"))

    def everyday(self, lang: str) -> str:
        rng = self.rng
        templates = TEMPLATES["vl" if lang == "vl" else lang]
        lang = "nl" if lang == "vl" else lang
        pieces = []
        for _ in range(rng.choices((1, 2, 3, 4, 5), (35, 30, 18, 10, 7))[0]):
            if rng.random() < 0.55:
                pieces.append(self.fill(rng.choice(templates)))
            else:
                pieces.append(self.salad(lang))
        return " ".join(pieces)

    def about(self, lang: str) -> str:
        """A post that names a search term: the organisation's name, an alias, a handle, an extra
        term, or the plain word with or without a branch town."""
        rng = self.rng
        if rng.random() < OTHER_SENSE_SHARE:
            return rng.choice(OTHER_SENSES)
        org = rng.choice(self.workload.orgs)
        english = lang == "en"
        roll = rng.random()
        town = rng.choice(org.towns) if org.towns else self.place()
        if roll < 0.25:
            ref = rng.choice(org.names)
        elif roll < 0.35:
            ref = rng.choice(org.mentions)
        elif roll < 0.42 and org.extras:
            ref = rng.choice(org.extras)
        else:
            word = "the library" if english else "de bib" if org.flemish else "de bieb"
            if not english and rng.random() < 0.3:
                word = "de bibliotheek"
            if rng.random() < 0.5:
                ref = f"{word} {'in' if rng.random() < 0.7 else 'van'} {town}"
            else:
                ref = word
        if rng.random() < TYPO_SHARE:
            ref = _typo(ref, rng)
        template = rng.choice(ABOUT_LIBRARY["en" if english else "nl"])
        text = template.format(ref=ref, num=rng.randint(1, 20))
        if template.startswith("{ref}"):
            text = text[:1].upper() + text[1:]
        if rng.random() < 0.4:
            extra = self.everyday(lang if lang in TEMPLATES else "nl")
            text = f"{extra} {text}" if rng.random() < 0.5 else f"{text} {extra}"
        return text

    def profile(self) -> str:
        rng = self.rng
        if rng.random() < 0.2:
            return rng.choice(PROFILE_OTHER)
        name = self.place()
        return rng.choice((name, name, name, f"{name}, NL", f"📍 {name}", f"{name} e.o."))

    def point(self) -> tuple[float, float]:
        rng = self.rng
        if rng.random() < 0.5:
            org = rng.choice(self.workload.orgs)
            if org.points:
                lat, lon, radius = rng.choice(org.points)
                return _jitter(lat, lon, radius, rng)
        i = rng.choices(range(len(self.place_points)), cum_weights=self.place_weights)[0]
        return _jitter(*self.place_points[i], 3.0, rng)


def _jitter(lat: float, lon: float, km: float, rng: random.Random) -> tuple[float, float]:
    distance, angle = km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    dlat = distance * math.cos(angle) / 110.57
    dlon = distance * math.sin(angle) / (111.32 * math.cos(math.radians(lat)))
    return round(lat + dlat, 5), round(lon + dlon, 5)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _workload(setup: Path | str | Config | Workload) -> Workload:
    if isinstance(setup, Workload):
        return setup
    if isinstance(setup, str | Path):
        from listener.config import load_config

        setup = load_config(Path(setup))
    return Workload.of(setup)


def iter_posts(setup: Path | str | Config | Workload, count: int, seed: int = 0) -> Iterator[Post]:
    """`count` posts for a setup (its config.toml, its loaded `Config`, or a `Workload`), one at
    a time; the same ones for the same setup and seed (see the module doc)."""
    workload = _workload(setup)
    if not workload.orgs:
        raise ValueError("the setup has no organisations")
    rng = random.Random(f"posts-{seed}")
    writer = _Writer(workload, rng)
    langs = [lang for lang, _ in LANGUAGES]
    lang_weights = [w for _, w in LANGUAGES]
    sources = [s for s, _ in SOURCES]
    source_weights = [w for _, w in SOURCES]
    for i in range(count):
        lang = rng.choices(langs, lang_weights)[0]
        flavour = "vl" if lang == "nl" and rng.random() < FLEMISH_SHARE_OF_NL else lang
        source = rng.choices(sources, source_weights)[0]
        about = rng.random() < TERM_SHARE
        text = writer.about(flavour) if about else writer.everyday(flavour)
        text = _cut(text, LIMITS[source])
        first = rng.choice(NAMES)
        handle = {
            "bluesky": f"{first}{rng.randint(1, 9999)}.bsky.social",
            "mastodon": f"{first}{rng.randint(1, 9999)}@mastodon.social",
            "x": f"{first}_{rng.randint(1, 9999)}",
            "reddit": f"u_{first}{rng.randint(1, 9999)}",
        }[source]
        location = writer.profile() if rng.random() < PROFILE_SHARE else None
        point = writer.point() if rng.random() < GEO_SHARE else None
        post_id = f"national-{seed}-{i:07d}"
        yield Post(
            id=post_id,
            source=source,
            text=text,
            created_at=START + timedelta(milliseconds=250 * i),
            url=f"https://social.example/{source}/{post_id}",
            lang=None if rng.random() < 0.1 else lang,
            author=Author(
                handle=handle,
                name=first.capitalize(),
                location=location,
                followers=int(rng.lognormvariate(5, 1.6)),
            ),
            geo=Geo(*point) if point else None,
            engagement=Engagement(likes=rng.randint(0, 40), reposts=rng.randint(0, 5)),
        )


def posts(setup: Path | str | Config | Workload, count: int, seed: int = 0) -> list[Post]:
    """`count` posts for a setup, as a list (see `iter_posts`)."""
    return list(iter_posts(setup, count, seed))
