"""Which library branch a post is about: the geographic stage.

A post is placed by the strongest evidence it has:

1. its own coordinates;
2. the places named in its text (the first that lies in some branch area, else the first);
   a negated place ('niet die in Leusden') is no evidence;
3. the author's free-text profile location, read by the gazetteer or, when the gazetteer does not
   know it, by the optional `geocode` callable (an online geocoder; it is never asked about a
   region the gazetteer knows, nor when the text or the coordinates already place the post).

The text wins over the profile: someone from Amersfoort who writes about 'de bieb in Zwolle' is
placed in Zwolle. A region or province ('Twente', 'Gelderland') is no point: it is reported as
too coarse for a branch and places nothing.

A name in the text that several places share and that no qualifier decides ('Bergen') takes the
reading nearest to the other evidence: the unambiguous places named in the same text, then the
post's coordinates, then the profile location, if one of them lies within `CONTEXT_KM` of a
reading; otherwise the gazetteer's choice (Dutch before Belgian, then rank and size) stands.
Readings within `SAME_PLACE_KM` of the gazetteer's choice count as that place (a name that is
also an alternate name of a hamlet next to it), so context only ever moves a name far.
Either way the evidence says which reading was taken, why, and that the name was ambiguous.

The point is then looked up in an `AreaIndex` (`listener.geo.areas`): the nearest branch whose
area holds it is the branch, the nearest branch of all is kept too, and areas just outside are
near misses, so a place just outside every area can still be explained. Every step leaves a
human-readable line in `Located.evidence`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

from listener.geo.areas import NEAR_MISS_FACTOR, Area, AreaIndex, BranchHit, distance_km
from listener.geo.gazetteer import Gazetteer, Place, PlaceMention, RegionMention
from listener.post import Post
from listener.text import fold

__all__ = [
    "CONTEXT_KM",
    "NEAR_MISS_FACTOR",
    "Area",
    "AreaIndex",
    "BranchHit",
    "Geocode",
    "Located",
    "Location",
    "Prepared",
    "locate",
    "place",
    "prepare",
]

# Other evidence decides between same-named places only when it lies this close to a reading.
CONTEXT_KM = 50.0
# Readings this close to the gazetteer's choice are the same place for this purpose ('Leusden' is
# also an alternate name of Leusden-Zuid): other evidence never moves a name to one of them.
SAME_PLACE_KM = 15.0

Geocode = Callable[[str], PlaceMention | None]


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    how: Literal["coordinates", "text", "profile"]
    mention: PlaceMention | None
    description: str  # 'text names Leusden (exact)'


@dataclass(slots=True)
class Located:
    location: Location | None
    branch: BranchHit | None  # the nearest branch whose area holds the location
    evidence: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)
    index: AreaIndex | None = field(default=None, repr=False, compare=False)

    @property
    def nearest(self) -> BranchHit | None:
        """The nearest branch, inside its area or not (looked up when asked: the evidence
        needs it only when no area holds the location)."""
        if self.location is None or self.index is None:
            return None
        return self.index.nearest(self.location.lat, self.location.lon)


@dataclass(frozen=True, slots=True)
class _Reference:
    """Other evidence a same-named place can be read near: 'Alkmaar named in the text'."""

    lat: float
    lon: float
    label: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """What `locate` learns of a post before looking at any branch area: its coordinates, the
    places its text names (each same-named place read), its profile location, and the notes
    on them. The same for every set of areas, so a post checked against several organisations'
    branches is scanned once (`prepare`), then placed in each (`place`)."""

    coordinates: Location | None
    read: tuple[PlaceMention, ...]  # the usable places the text names, each one read
    after_library: PlaceMention | None  # the one right after a library word, if any
    regions: tuple[RegionMention, ...]
    abroad: bool  # the text names a town abroad
    profile: Location | None
    profile_notes: tuple[str, ...]
    notes: tuple[str, ...]  # negated and foreign places, readings


def prepare(post: Post, gazetteer: Gazetteer, geocode: Geocode | None = None) -> Prepared:
    """The part of `locate` that needs no branch areas."""
    notes: list[str] = []
    coordinates = _from_coordinates(post)
    scan = gazetteer.scan(post.text)
    usable = [m for m in scan.places if m.negation is None]
    notes += [f"'{m.written}' is negated: not used" for m in scan.places if m.negation]
    abroad = [m for m in usable if _qualified_abroad(m, scan.regions)]
    usable = [m for m in usable if m not in abroad]
    notes += [f"'{m.written}' is abroad here: not used" for m in abroad]
    need_profile = coordinates is None and not usable
    profile, profile_notes = _from_profile(post, gazetteer, geocode if need_profile else None)
    read: list[PlaceMention] = []
    for mention in usable:
        chosen, why = _read(mention, usable, coordinates, profile)
        read.append(chosen)
        if _worth_a_reading(mention):
            notes.append(_reading(chosen, why))
    after_library = _after_library_word(read, _clause_words(post.text)) if read else None
    return Prepared(
        coordinates,
        tuple(read),
        after_library,
        tuple(scan.regions),
        bool(abroad),
        profile,
        tuple(profile_notes),
        tuple(notes),
    )


def locate(
    post: Post,
    index: AreaIndex,
    gazetteer: Gazetteer,
    geocode: Geocode | None = None,
) -> Located:
    """Place a post and find the branch whose area holds it, with the evidence for both."""
    return place(prepare(post, gazetteer, geocode), index)


def place(
    prepared: Prepared, index: AreaIndex, near_misses: bool = True, nearest: bool = True
) -> Located:
    """`locate` for a prepared post: the branch areas of `index` decide. Without
    `near_misses`, the areas the place lies just outside are not looked for; without
    `nearest`, nor the nearest branch of a place in no area (the evidence then only says so)."""
    notes = list(prepared.notes)
    coordinates, profile = prepared.coordinates, prepared.profile
    text = _from_text(prepared, index, notes)
    if text is None:
        notes += [_region_note("text names", region) for region in prepared.regions]
    if text is None and prepared.abroad:
        profile = None  # the text speaks of a town abroad: where the author lives says nothing
    sources = (coordinates, text, profile)
    location = next((found for found in sources if found is not None), None)
    if location is None:
        evidence = ["no coordinates, no place named in the text, no usable profile location"]
        return Located(None, None, evidence + notes + list(prepared.profile_notes), [])

    inside = index.containing(location.lat, location.lon)
    branch = inside[0] if inside else None
    outside = index.nearest(location.lat, location.lon) if branch is None and nearest else None
    if branch is not None:
        evidence = [f"{location.description}, {_distance(branch, 'branch')}"]
        evidence += [
            f"also inside branch {other.area.branch_id} ({other.distance_km:.1f} km away): "
            "the nearest branch wins"
            for other in inside[1:]
        ]
    elif outside is not None:
        evidence = [f"{location.description}, {_outside(outside)}"]
    elif len(index):
        evidence = [f"{location.description}, in none of the {len(index)} branch areas"]
    else:
        evidence = [f"{location.description}; no branch areas to compare with"]
    mention = location.mention
    if location.how == "profile" and mention is not None and _worth_a_reading(mention):
        evidence.append(_reading(mention, None))
    evidence += notes
    winner = "post coordinates win" if location.how == "coordinates" else "text wins"
    evidence += [
        f"{found.description}: not used, the {winner}"
        for found in sources
        if found is not None and found is not location
    ]
    misses = index.near_misses(location.lat, location.lon) if near_misses else []
    return Located(location, branch, evidence, [_near_miss(hit) for hit in misses], index)


def _from_coordinates(post: Post) -> Location | None:
    if post.geo is None:
        return None
    lat, lon = post.geo.lat, post.geo.lon
    return Location(lat, lon, "coordinates", None, f"post coordinates {lat:g},{lon:g}")


def _from_text(prepared: Prepared, index: AreaIndex, notes: list[str]) -> Location | None:
    """The place the text names: the one right after a library word ('de bieb in het Forum in
    Groningen, sorry Amsterdam' is about Groningen), else the first in a branch area, else the
    first."""
    read = prepared.read
    if not read:
        return None
    after_library = prepared.after_library
    in_area = (
        None
        if after_library is not None
        else next((m for m in read if index.inside(m.place.lat, m.place.lon)), None)
    )
    chosen = after_library or in_area or read[0]
    if len(read) > 1:
        named = ", ".join(m.place.name for m in read)
        why = (
            "the one after the library word"
            if after_library
            else "the first in a branch area"
            if in_area
            else "the first"
        )
        notes.insert(0, f"text names {len(read)} places ({named}); took {chosen.place.name}, {why}")
    return Location(
        chosen.place.lat, chosen.place.lon, "text", chosen, "text names " + _named(chosen)
    )


def _qualified_abroad(mention: PlaceMention, regions: Sequence[RegionMention]) -> bool:
    """'Bergen (Noorwegen)', 'Bergen in Norway': the same-named town abroad."""
    return any(
        r.kind == "abroad" and 0 < r.start - mention.start <= 2 + len(mention.written.split())
        for r in regions
    )


LIBRARY_WORDS = frozenset(["bieb", "bibliotheek", "library", "filiaal", "vestiging"])
LIBRARY_REACH = 5  # words at most from the library word to the place ('de bieb in het Forum in X')


_CLAUSE_END = re.compile(r"[,;:.!?()\[\]\n]")


def _clause_words(raw: str) -> list[tuple[str, int]]:
    """The folded words of a text (as `fold` splits them), each with the number of its clause."""
    return [
        (word, clause)
        for clause, part in enumerate(_CLAUSE_END.split(raw))
        for word in fold(part).split()
    ]


def _after_library_word(
    mentions: Sequence[PlaceMention], words: Sequence[tuple[str, int]]
) -> PlaceMention | None:
    """The place named closest after a library word in the same clause, within LIBRARY_REACH."""
    at = [(i, clause) for i, (word, clause) in enumerate(words) if word in LIBRARY_WORDS]
    best: tuple[int, PlaceMention] | None = None
    for mention in mentions:
        if mention.start >= len(words):
            continue
        clause_of_place = words[mention.start][1]
        gaps = [
            mention.start - i
            for i, clause in at
            if 0 < mention.start - i <= LIBRARY_REACH and clause == clause_of_place
        ]
        if gaps and (best is None or min(gaps) < best[0]):
            best = (min(gaps), mention)
    return best[1] if best else None


def _read(
    mention: PlaceMention,
    mentions: Sequence[PlaceMention],
    coordinates: Location | None,
    profile: Location | None,
) -> tuple[PlaceMention, str | None]:
    """The reading of a same-named place nearest to the other evidence, and what that was."""
    readings = _distinct_readings(mention)
    if mention.qualifier is not None or len(readings) < 2:
        return mention, None
    groups: list[list[_Reference]] = []
    named = [
        _Reference(m.place.lat, m.place.lon, f"{m.place.name} named in the text")
        for m in mentions
        if m is not mention and (not m.ambiguous or m.qualifier is not None)
    ]
    if named:
        groups.append(named)
    if coordinates is not None:
        groups.append([_Reference(coordinates.lat, coordinates.lon, "the post coordinates")])
    if profile is not None and profile.mention is not None and not profile.mention.ambiguous:
        label = f"the profile location {profile.mention.place.name}".rstrip()
        groups.append([_Reference(profile.lat, profile.lon, label)])
    for group in groups:
        distances = [
            (distance_km(ref.lat, ref.lon, place.lat, place.lon), order, place, ref)
            for order, place in enumerate(readings)
            for ref in group
        ]
        km, _, place, ref = min(distances, key=lambda d: (d[0], d[1]))
        if km <= CONTEXT_KM:
            return replace(mention, place=place), f"nearest to {ref.label}"
    return mention, None


def _worth_a_reading(mention: PlaceMention) -> bool:
    """Whether the evidence should say which reading was taken: a qualifier chose, or far apart."""
    return mention.ambiguous and (
        mention.qualifier is not None or len(_distinct_readings(mention)) > 1
    )


def _distinct_readings(mention: PlaceMention) -> tuple[Place, ...]:
    """The gazetteer's reading, then the other readings more than SAME_PLACE_KM away from it."""
    return _distinct(mention.place, mention.readings)


@lru_cache(maxsize=4096)
def _distinct(default: Place, readings: tuple[Place, ...]) -> tuple[Place, ...]:
    far = (
        p
        for p in readings
        if p != default and distance_km(p.lat, p.lon, default.lat, default.lon) > SAME_PLACE_KM
    )
    return (default, *far)


def _from_profile(
    post: Post, gazetteer: Gazetteer, geocode: Geocode | None
) -> tuple[Location | None, list[str]]:
    """The profile location as a point, or the reason it is none (a region, unknown)."""
    written = post.author.location if post.author is not None else None
    if not written or not written.strip():
        return None, []
    shown = written.strip()
    mention = gazetteer.lookup(written)
    if mention is not None:
        how = "" if mention.score >= 100 else f" (fuzzy {mention.score:g})"
        description = f"profile location '{shown}' → {mention.place.name}{how}"
        return Location(mention.place.lat, mention.place.lon, "profile", mention, description), []
    region = gazetteer.region(written)
    if region is not None:
        if fold(region.written) == fold(shown):
            return None, [_region_note(f"profile location '{shown}' is", region, named=False)]
        return None, [_region_note(f"profile location '{shown}' names", region)]
    if geocode is None:
        return None, []
    found = geocode(shown)
    if found is None:
        return None, [f"profile location '{shown}': not found by the geocoder either"]
    description = f"profile location '{shown}' → {found.place.name or 'a point'} (geocoder)"
    return Location(found.place.lat, found.place.lon, "profile", found, description), []


def _region_note(prefix: str, region: RegionMention, *, named: bool = True) -> str:
    """'profile location 'Twente' is a region, too coarse for a branch' and the like."""
    if region.kind == "abroad":
        subject = f"{prefix} '{region.written}'," if named else prefix
        return f"{subject} abroad: no branch there"
    if named:
        return f"{prefix} the {region.kind} '{region.written}', too coarse for a branch"
    return f"{prefix} a {region.kind}, too coarse for a branch"


def _named(mention: PlaceMention) -> str:
    """'Leusden (exact)' or "'Amersfort' → Amersfoort (fuzzy 94)"."""
    how = "exact" if mention.score >= 100 else f"fuzzy {mention.score:g}"
    if fold(mention.written) == fold(mention.place.name):
        return f"{mention.place.name} ({how})"
    return f"'{mention.written}' → {mention.place.name} ({how})"


def _reading(mention: PlaceMention, why: str | None) -> str:
    """Which of the same-named places was taken, and why."""
    others = mention.alternatives
    share = f"{others} other place{'s' if others != 1 else ''} share{'s' if others == 1 else ''}"
    if mention.qualifier:
        why = f"by the qualifier '{mention.qualifier}'"
    elif why is None:
        why = _by_size(mention.place, mention.readings)
    return f"{mention.written}: took {mention.place.label()}, {why}; {share} the name"


def _by_size(place: Place, readings: Sequence[Place]) -> str:
    """Why the gazetteer's own choice stands: nothing else pointed to a reading."""
    if any(p.country != "NL" for p in readings) and place.country == "NL":
        return "nothing else named nearby, so the Dutch reading of the highest rank and size"
    return "nothing else named nearby, so the reading of the highest rank and size"


def _distance(hit: BranchHit, what: str) -> str:
    return f"{hit.distance_km:.1f} km from {what} {hit.area.branch_id} ({hit.area.describe()})"


def _outside(hit: BranchHit) -> str:
    if hit.area.polygon is None:
        return f"{_distance(hit, 'nearest branch')}: outside"
    return (
        f"{hit.distance_km:.1f} km from nearest branch {hit.area.branch_id}: "
        f"{hit.outside_km:.1f} km outside its polygon area"
    )


def _near_miss(hit: BranchHit) -> str:
    if hit.area.polygon is None:
        return (
            f"{hit.distance_km:.1f} km from branch {hit.area.branch_id}: "
            f"{hit.outside_km:.1f} km outside its {hit.area.radius_km:g} km radius"
        )
    return (
        f"{hit.distance_km:.1f} km from branch {hit.area.branch_id}: "
        f"{hit.outside_km:.1f} km outside its polygon area"
    )
