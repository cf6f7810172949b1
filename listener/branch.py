"""Which branch: the last step after a post is tied to an organisation.

The geometry (`listener.geo`) says which branch area holds the post's location. A careful
webcare employee refines that, and so does `BranchResolver`:

1. The text names a branch or its building ('het Eemhuis', 'OBA Oosterdok', 'dok Zuid'):
   that branch, whatever else; the strongest evidence there is.
2. A place that only says the town, where the organisation has several branches ('de bieb in
   Amersfoort', a profile in Utrecht): branch unknown. A village or district in that
   municipality takes its own branch when one stands there, else the branch is unknown too
   ('Hoograven' has none of its own, even if Lunetten's radius reaches it).
3. A post placed by the author's profile only, about something of the whole organisation (the
   app, the website, fines, an account): branch unknown; the profile says where the author
   lives, not which branch they mean.
4. Coordinates about halfway between two branches: branch unknown.

Every decision adds a line of evidence saying why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from shapely import STRtree
from shapely.geometry import Point, shape

from listener.config.model import Organisation
from listener.geo.areas import AreaIndex, municipalities
from listener.geo.areas import distance_km as geodesic_km
from listener.geo.gazetteer import Gazetteer, Place
from listener.geo.locate import Located
from listener.match import Text
from listener.text import fold

#: Words in a branch's name that are not part of what tells it apart.
GENERIC_NAME_WORDS = frozenset(
    ["bibliotheek", "bieb", "library", "openbare", "vestiging", "filiaal"]
)
#: Branch names that are ordinary words: they point at a branch once a post is tied to the
#: organisation ('de bieb in het centrum'), but are never searched for on their own.
ORDINARY_NAMES = frozenset(["centrum", "centrale", "zuid", "noord", "oost", "west", "stad", "dorp"])
#: A one-word branch name this common in Dutch or English text (wordfreq's Zipf scale, as the
#: lint's drowning terms: once in 100,000 words) is a word of its own ('haven', 'buiten',
#: 'forum'), never searched for on its own; 'eemhuis' (2.1) and 'neude' (2.4) are names.
COMMON_NAME_ZIPF = 4.0
#: A village or district has a branch of its own when one stands this close to its centre.
OWN_BRANCH_KM = 1.5
#: Coordinates are 'about halfway' when the nearest branch is not clearly nearer than the next.
HALFWAY_RATIO = 0.7
#: Things of the whole organisation, not of one branch.
ORGANISATION_TOPICS = (
    "app", "website", "site", "boete", "boetes", "abonnement", "lidmaatschap", "account",
    "contributie", "nieuwsbrief", "ebook", "ebooks", "e book", "e books", "luisterboek",
    "luisterboeken", "wachtwoord", "inloggen", "verlengen", "online",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BranchChoice:
    branch: str | None
    distance_km: float | None
    evidence: tuple[str, ...] = ()


def branch_names(org: Organisation) -> dict[str, str]:
    """Folded words that name one branch ('eemhuis', 'dok zuid', 'centrum') → branch id.

    A branch's name without generic words and the organisation's name; the aliases' words go
    too unless nothing would be left ('Bibliotheek Neude' is an alias and a branch).
    """
    name_words = set(fold(org.name).split())
    alias_words = {w for alias in org.aliases for w in fold(alias).split()}
    names: dict[str, str] = {}
    for branch in org.branches:
        words = [w for w in fold(branch.name).split() if w not in GENERIC_NAME_WORDS | name_words]
        distinct = [w for w in words if w not in alias_words] or words
        if distinct and any(len(w) > 3 for w in distinct):
            names.setdefault(" ".join(distinct), branch.id)
    return names


def searchable(name: str) -> bool:
    """A branch name distinctive enough to be searched for by itself ('eemhuis', 'dok zuid'):
    five letters or more, no article first, and not one everyday word ('haven', 'buiten',
    `common_word`). A name of several words is searched as that phrase, so its words may be
    everyday ones ('dok zuid')."""
    words = name.split()
    return (
        len(name) >= 5
        and name not in ORDINARY_NAMES
        and words[0] not in ("de", "het", "t")
        and (len(words) > 1 or not common_word(name))
    )


@lru_cache(maxsize=4096)
def common_word(word: str) -> bool:
    """A folded word at least COMMON_NAME_ZIPF in Dutch or English (wordfreq's small lists)."""
    from wordfreq import zipf_frequency  # on first use: a fifth of a second to import

    return any(
        zipf_frequency(word, lang, wordlist="small") >= COMMON_NAME_ZIPF for lang in ("nl", "en")
    )


class BranchResolver:
    def __init__(
        self,
        organisations: Mapping[str, Organisation],
        indexes: Mapping[str, AreaIndex],
        gazetteer: Gazetteer,
    ) -> None:
        self.indexes = indexes
        self.gazetteer = gazetteer
        self.names = {org_id: branch_names(org) for org_id, org in organisations.items()}
        self.branch_point: dict[tuple[str, str], tuple[float, float]] = {}
        # organisation → folded town or municipality code → its branches there, in order
        self.in_town: dict[str, dict[str, list[str]]] = {}
        self.in_municipality: dict[str, dict[str, list[str]]] = {}
        found = _MunicipalityFinder()
        for org in organisations.values():
            for branch in org.branches:
                self.branch_point[org.id, branch.id] = (branch.lat, branch.lon)
                if branch.town:
                    towns = self.in_town.setdefault(org.id, {})
                    towns.setdefault(fold(branch.town), []).append(branch.id)
                municipality = found.at(branch.lat, branch.lon)
                if municipality is not None:
                    there = self.in_municipality.setdefault(org.id, {})
                    there.setdefault(municipality, []).append(branch.id)

    def choose(
        self,
        org: str,
        text: Text,
        located: Located,
        branch: str | None,
        distance_km: float | None,
        profile: str | None = None,
    ) -> BranchChoice:
        """The branch for a post tied to `org`, starting from the geometry's answer."""
        named = self._named_branch(org, text)
        if named is not None:
            branch_id, name = named
            if branch_id == branch:  # the places said so already
                return BranchChoice(branch, distance_km)
            return BranchChoice(branch_id, None, (f"text names branch {branch_id} ('{name}')",))
        location = located.location
        if branch is None or location is None:
            return BranchChoice(branch, distance_km)
        if location.how == "coordinates":
            return self._coordinates(org, location.lat, location.lon, branch, distance_km)
        if location.how == "profile":
            topic = next((t for t in ORGANISATION_TOPICS if text.has(t)), None)
            if topic is not None:
                why = f"about the whole organisation ('{topic}'), placed by the profile only"
                return BranchChoice(None, None, (f"{why}: branch unknown",))
            if profile and self._an_area(profile):
                why = f"the profile location '{profile.strip()}' covers an area"
                return BranchChoice(None, None, (f"{why}: branch unknown",))
        if location.mention is None:
            return BranchChoice(branch, distance_km)
        return self._place(org, location.mention.place, branch, distance_km)

    def _an_area(self, profile: str) -> bool:
        """'Leusden/Amersfoort', 'Amsterdam | Berlin', 'Alkmaar e.o.': not one town. 'Berg en
        Dal' and 'Leusden · zij/haar' name one."""
        if _AREA_WORDS.search(profile):
            return True
        scan = self.gazetteer.scan(profile)
        places = {m.place.geonameid for m in scan.places if m.negation is None}
        abroad = [r for r in scan.regions if r.kind == "abroad"]
        return len(places) + len(abroad) >= 2

    def _named_branch(self, org: str, text: Text) -> tuple[str, str] | None:
        """The one branch the text names. A name that is also a place counts only where the
        gazetteer finds the place, not negated: 'nergens meer bergen' names no Bergen."""
        candidates = {n: bid for n, bid in self.names.get(org, {}).items() if text.has(n)}
        if not candidates:
            return None
        index = self.indexes.get(org)
        found = [
            m
            for m in self.gazetteer.find_in_text(text.raw)
            if m.negation is None and index is not None and index.inside(m.place.lat, m.place.lon)
        ]  # read as a place where this organisation is: 'Bergen' as Bergen op Zoom names no
        # branch in Bergen (NH)
        places = {fold(m.place.name) for m in found} | {fold(m.written) for m in found}
        named = {
            bid: name
            for name, bid in candidates.items()
            if name in ORDINARY_NAMES or not self.gazetteer.candidates(name) or name in places
        }
        if len(named) == 1:
            branch_id, name = next(iter(named.items()))
            return branch_id, name
        return None  # none, or several: let the places decide

    def _place(
        self, org: str, place: Place, branch: str, distance_km: float | None
    ) -> BranchChoice:
        """A town names its branch when it has one; several, and the branch is unknown. A
        village or district without a branch town of its own takes the branch that stands in
        it, in a municipality where the organisation has several."""
        in_town = self.in_town.get(org, {}).get(fold(place.name), [])
        if len(in_town) == 1:
            return BranchChoice(in_town[0], distance_km if in_town[0] == branch else None)
        if len(in_town) > 1:
            why = f"{place.name} has {len(in_town)} branches of {org} and nothing tells which"
            return BranchChoice(None, None, (f"{why}: branch unknown",))
        there = self.in_municipality.get(org, {}).get(place.gemeente, [])
        if len(there) < 2:
            return BranchChoice(branch, distance_km)
        distances = sorted(
            (geodesic_km(place.lat, place.lon, *self.branch_point[org, b]), b) for b in there
        )
        km, nearest = distances[0]
        if km <= OWN_BRANCH_KM:
            return BranchChoice(nearest, round(km, 2))
        town = _plain(place.gemeente)
        why = f"{place.name} in {town} has no branch of its own ({nearest} is {km:.1f} km away)"
        return BranchChoice(None, None, (f"{why}: branch unknown",))

    def _coordinates(
        self, org: str, lat: float, lon: float, branch: str, distance_km: float | None
    ) -> BranchChoice:
        index = self.indexes.get(org)
        hits = index.containing(lat, lon) if index is not None else []
        if len(hits) >= 2 and hits[0].distance_km > HALFWAY_RATIO * hits[1].distance_km:
            a, b = hits[0].area.branch_id, hits[1].area.branch_id
            why = f"the post's coordinates are about halfway between {a} and {b}"
            return BranchChoice(None, None, (f"{why}: branch unknown",))
        return BranchChoice(branch, distance_km)


#: Words that make a profile location an area: 'Alkmaar e.o.', 'regio Utrecht'.
_AREA_WORDS = re.compile(r"\b(e\.?o\.?|omstreken|omgeving|regio|area)(\W|$)", re.IGNORECASE)


def _plain(cbs_name: str) -> str:
    """'Utrecht (gemeente)' → 'Utrecht', 'Hengelo (O.)' → 'Hengelo'."""
    return cbs_name.split(" (", 1)[0]


class _MunicipalityFinder:
    """Which municipality (CBS name) holds a point: the shipped 2024 boundaries in an STRtree."""

    def __init__(self) -> None:
        self.known = list(municipalities())
        self.shapes = [shape(m.geometry) for m in self.known]
        self.tree = STRtree(self.shapes)

    def at(self, lat: float, lon: float) -> str | None:
        point = Point(lon, lat)
        for i in self.tree.query(point, predicate="intersects"):
            return self.known[int(i)].cbs_name
        return None
