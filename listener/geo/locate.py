"""Which library branch a post is about: the geographic stage.

A post is placed by the strongest evidence it has:

1. its own coordinates;
2. the places named in its text (the first that lies in some branch area, else the first);
3. the author's free-text profile location.

The text wins over the profile: someone from Amersfoort who writes about 'de bieb in Zwolle' is
placed in Zwolle. The point is then compared with every branch area (a centre and a radius for
now) by geodesic distance: the nearest area that contains it is the branch, and the nearest area
of all is kept too, so a place just outside every radius can still be explained. Every step
leaves a human-readable line in `Located.evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from geopy.distance import geodesic

from listener.geo.gazetteer import Gazetteer, PlaceMention
from listener.post import Post
from listener.text import fold

NEAR_MISS_FACTOR = 2.0  # a location within this many radii of a branch is a near miss


@dataclass(frozen=True, slots=True)
class Area:
    """The area a branch serves: a circle around its location, for now."""

    org_id: str
    branch_id: str
    name: str
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    how: Literal["coordinates", "text", "profile"]
    mention: PlaceMention | None
    description: str  # 'text names Leusden (exact)'


@dataclass(frozen=True, slots=True)
class BranchHit:
    area: Area
    distance_km: float


@dataclass(slots=True)
class Located:
    location: Location | None
    branch: BranchHit | None  # the nearest area that contains the location
    nearest: BranchHit | None  # the nearest area, inside its radius or not
    evidence: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)


def locate(post: Post, areas: Sequence[Area], gazetteer: Gazetteer) -> Located:
    """Place a post and find the branch whose area holds it, with the evidence for both."""
    notes: list[str] = []
    distances = _Distances(areas)
    sources = (
        _from_coordinates(post),
        _from_text(post, distances, gazetteer, notes),
        _from_profile(post, gazetteer),
    )
    location = next((found for found in sources if found is not None), None)
    if location is None:
        evidence = ["no coordinates, no place named in the text, no usable profile location"]
        return Located(None, None, None, evidence, [])

    hits = distances.hits(location.lat, location.lon)
    inside = [hit for hit in hits if hit.distance_km <= hit.area.radius_km]
    branch = inside[0] if inside else None
    nearest = hits[0] if hits else None
    if branch is not None:
        evidence = [f"{location.description}, {_distance(branch, 'branch')}"]
        evidence += [
            f"also inside branch {other.area.branch_id} ({other.distance_km:.1f} km away): "
            "the nearest branch wins"
            for other in inside[1:]
        ]
    elif nearest is not None:
        evidence = [f"{location.description}, {_distance(nearest, 'nearest branch')}: outside"]
    else:
        evidence = [f"{location.description}; no branch areas to compare with"]
    if location.mention is not None and location.mention.ambiguous:
        evidence.append(_reading(location.mention))
    if location.how == "text":
        evidence += notes
    winner = "post coordinates win" if location.how == "coordinates" else "text wins"
    evidence += [
        f"{found.description}: not used, the {winner}"
        for found in sources
        if found is not None and found is not location
    ]
    near_misses = [
        f"{hit.distance_km:.1f} km from branch {hit.area.branch_id}: "
        f"{hit.distance_km - hit.area.radius_km:.1f} km outside its "
        f"{hit.area.radius_km:g} km radius"
        for hit in hits
        if hit.area.radius_km < hit.distance_km <= NEAR_MISS_FACTOR * hit.area.radius_km
    ]
    return Located(location, branch, nearest, evidence, near_misses)


def _from_coordinates(post: Post) -> Location | None:
    if post.geo is None:
        return None
    lat, lon = post.geo.lat, post.geo.lon
    return Location(lat, lon, "coordinates", None, f"post coordinates {lat:g},{lon:g}")


def _from_text(
    post: Post, distances: _Distances, gazetteer: Gazetteer, evidence: list[str]
) -> Location | None:
    mentions = gazetteer.find_in_text(post.text)
    if not mentions:
        return None
    in_area = next((m for m in mentions if distances.inside(m.place.lat, m.place.lon)), None)
    chosen = in_area or mentions[0]
    if len(mentions) > 1:
        named = ", ".join(m.place.name for m in mentions)
        why = "the first in a branch area" if in_area else "the first"
        evidence.append(
            f"text names {len(mentions)} places ({named}); took {chosen.place.name}, {why}"
        )
    return Location(
        chosen.place.lat, chosen.place.lon, "text", chosen, "text names " + _named(chosen)
    )


def _from_profile(post: Post, gazetteer: Gazetteer) -> Location | None:
    written = post.author.location if post.author is not None else None
    if not written or not written.strip():
        return None
    mention = gazetteer.lookup(written)
    if mention is None:
        return None
    how = "" if mention.score >= 100 else f" (fuzzy {mention.score:g})"
    description = f"profile location '{written.strip()}' → {mention.place.name}{how}"
    return Location(mention.place.lat, mention.place.lon, "profile", mention, description)


def _named(mention: PlaceMention) -> str:
    """'Leusden (exact)' or "'Amersfort' → Amersfoort (fuzzy 94)"."""
    how = "exact" if mention.score >= 100 else f"fuzzy {mention.score:g}"
    if fold(mention.written) == fold(mention.place.name):
        return f"{mention.place.name} ({how})"
    return f"'{mention.written}' → {mention.place.name} ({how})"


def _reading(mention: PlaceMention) -> str:
    """Which of the same-named places was taken, and why."""
    others = mention.alternatives
    share = f"{others} other place{'s' if others != 1 else ''} share{'s' if others == 1 else ''}"
    by = f" by the qualifier '{mention.qualifier}'" if mention.qualifier else ""
    return f"{mention.written}: took {mention.place.label()}{by}, {share} the name"


class _Distances:
    """Geodesic distances from points to every area, each point measured once per post."""

    def __init__(self, areas: Sequence[Area]) -> None:
        self.areas = areas
        self._hits: dict[tuple[float, float], list[BranchHit]] = {}

    def hits(self, lat: float, lon: float) -> list[BranchHit]:
        """Every area with its distance to the point, nearest first."""
        point = (lat, lon)
        if point not in self._hits:
            hits = [BranchHit(a, geodesic(point, (a.lat, a.lon)).km) for a in self.areas]
            hits.sort(key=lambda hit: (hit.distance_km, hit.area.org_id, hit.area.branch_id))
            self._hits[point] = hits
        return self._hits[point]

    def inside(self, lat: float, lon: float) -> bool:
        """Whether the point lies in some area."""
        return any(hit.distance_km <= hit.area.radius_km for hit in self.hits(lat, lon))


def _distance(hit: BranchHit, what: str) -> str:
    return (
        f"{hit.distance_km:.1f} km from {what} {hit.area.branch_id} "
        f"(radius {hit.area.radius_km:g} km)"
    )
