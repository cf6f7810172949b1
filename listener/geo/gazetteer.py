"""An offline gazetteer of Dutch and Belgian places, and the place finder built on it.

The data is `listener/geo/data/places.tsv.gz` (GeoNames and CBS; see LICENCE.md beside it, made by
`scripts/build_gazetteer.py`), with `listener/geo/data/abbreviations.tsv`, our own table of
spellings people use that the data lacks ('A'foort', 'R'dam', 'Utreg'). `Gazetteer.find_in_text`
finds the places a post names; `Gazetteer.lookup` reads a free-text profile location such as
'Utrecht, NL'; `Gazetteer.scan` and `Gazetteer.region` also report regions.

How a name is found:

* Every name and alternate name is folded with `listener.text.fold` and kept in a dict from folded
  name to the places that carry it. The text is folded the same way and its word n-grams (4 words
  down to 1) are looked up left to right; the longest match wins and matches never overlap.
  Folding splits 'A'foort' into 'a foort'; the abbreviations are folded too, so they are found
  as two-word names.
* An abbreviation says what it needs from the context in its table: `always` nothing ('R'dam'),
  `context` what a common word needs (below), `cue` a place preposition or library word right
  before it ('Adam' is a first name too: only 'in Adam', 'naar Adam' count).
* A municipality row (ADM2) that has a town of the same name in the same municipality is the same
  place as that town: it is folded into the town, which then ranks as a municipality.
* Some names need support from the context. A name of 3 letters or fewer, or one that is also a
  common Dutch or English word (`COMMON_WORDS`: 'best', 'made', 'echt', 'heel', 'leest', ...),
  counts only when it is capitalised but not at the start of a sentence, or when it follows a
  place preposition (`PLACE_PREPOSITIONS`: 'in', 'uit', 'te', 'bij', 'naar', 'van', ...) or, if
  it is not a common word, a library word ('bieb', 'bibliotheek', 'filiaal'). A name carried only
  by minor places (no administrative role and fewer than 1,000 known inhabitants: hamlets,
  districts, and the many villages whose population GeoNames lacks) needs a capital anywhere or
  such a word before it. After an article ('in de hoek') only a capital counts ('De Hoek'), and a
  capital followed by another capital is taken for a person ('Mark Rutte').
* Names of countries, provinces and regions ('Holland', 'Zeeland', 'Engeland', 'Veluwe') are no
  places unless a town or municipality carries them (Utrecht, Groningen). `scan` reports them as
  `RegionMention`s (kind province, region, country or abroad) so that the locate stage can say
  that 'Twente' is too coarse for a branch; in running text a region needs a capital or a place
  preposition before it ('ik gooi' is no Gooi).
* Words inside a URL, an e-mail address or an @handle are never part of a name.
* A single word of 6 letters or more that names no place may be a misspelling: it is compared with
  rapidfuzz against the notable place names (those needing no support, 6 letters or more) that
  start with the same letter and are at most 2 letters longer or shorter; a score of 88 or more
  is a match. In running text the word must be capitalised (not opening a sentence) or follow a
  place preposition or library word, and a common word is never fuzzy-matched.
* When several places share a name, a qualifier right after it decides ('Hengelo (Gld)',
  'Bergen NH', 'Utrecht, NL', 'Hengelo in de Achterhoek': a region that lies in one province
  qualifies as that province); otherwise the reading is: Dutch before Belgian, main name before
  alternate name, then feature rank (PPLC > PPLA > PPLA2 > ADM2 > PPL > PPLX), then population.
  Every reading stays in `PlaceMention.readings`, so that other evidence (another place named,
  the profile, the post's coordinates) can choose among them: `listener.geo.locate` does.
* A place right after a negation in the same clause is marked `negated` ('niet in Leusden',
  'niet die in Leusden', 'not the one in Leusden', 'geen Leusden'): between the negation and the
  name there may be up to 3 small words (articles, 'die'/'dat'/'one', place prepositions), and
  no punctuation or 'maar'/'but' ('niet in Leusden maar in Amersfoort' negates only Leusden).
  Other words in between end it: 'geen bieb in Leusden' is about Leusden. No parsing beyond that.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from rapidfuzz import fuzz, process

from listener.text import fold


def _wordset(text: str) -> frozenset[str]:
    """The white-space separated words of a literal, as a set."""
    return frozenset(text.split())


MAX_WORDS = 4
PROFILES_REMEMBERED = 20_000  # profile locations whose reading `Gazetteer.lookup` keeps
FUZZY_MIN_LETTERS = 6
FUZZY_LENGTH_SLACK = 2
FUZZY_THRESHOLD = 88.0
MINOR_POPULATION = 1000

# What a name needs from the context before it counts (see the module doc).
SUPPORT_NONE = 0  # 'Leusden', 'Den Bosch'
SUPPORT_CAPITAL = 1  # minor places: a capital anywhere, or a cue word before it
SUPPORT_CONTEXT = 2  # common words, short names: a capital not opening a sentence, or a cue word

FEATURE_RANK = {
    "PPLC": 0,
    "PPLG": 1,
    "PPLA": 1,
    "PPLA2": 2,
    "ADM2": 3,
    "PPL": 4,
    "": 4,  # Belgian rows (GeoNames cities500) carry no feature code
    "PPLL": 5,
    "PPLS": 5,
    "PPLX": 6,
}

PLACE_PREPOSITIONS = _wordset("in uit te bij naar van vanuit nabij from near")
# What an abbreviation in abbreviations.tsv needs from the context (see the module doc).
SUPPORT_CUE = 3
ABBREVIATION_SUPPORT = {"always": SUPPORT_NONE, "context": SUPPORT_CONTEXT, "cue": SUPPORT_CUE}
LIBRARY_WORDS = _wordset("bieb bibliotheek filiaal vestiging")
CUE_WORDS = PLACE_PREPOSITIONS | LIBRARY_WORDS
# 'te worden', 'van gisteren': too weak to support a misspelt name.
FUZZY_CUE_WORDS = CUE_WORDS - {"te", "van"}
# 'in de hoek' is no place 'De Hoek': after an article only a capital supports a name.
ARTICLES = _wordset("de het t den der ter ten")
# Words that stay lower-case inside a place name ('Bergen op Zoom', 'Wijk bij Duurstede').
PARTICLES = ARTICLES | _wordset("s op aan bij in van en onder over a d")

# Common Dutch and English words that are also place names (or near misses of one, for the fuzzy
# look-up). Such a name needs a supporting context, and such a word is never fuzzy-matched.
#: Words so common after a preposition ('in een', 'in één') that only a capital makes them a place.
CAPITAL_ONLY = frozenset({"een"})
COMMON_WORDS = _wordset(
    """
    alle anderen appels baal balen balk ballast beek berg bergen best bevel bever binnenstad boom
    brand broek buren burcht centrum dalen dieren dingen dorp dorst duffel duiven echt een eigen
    eindje eten geel gieten glimmen goor gouda gracht grave groep haar halen halfweg handel
    hapert haren haven heel heer hees heffen heide helden herten hier hoek hoeven hoorn houten
    huizen kampen keer klimmen komen kozen landen leek leende leest leeuwen leiden lens lent lessen
    leunen leut lier linden lint loon losser lot loven made markt meer menen monster muizen naast
    namen noord oost opende paal park partij peer perk petten plein raam raar recht reet rijen rijp
    schoten sluis stad straat tellen veen vorst vrij vries vuren waar waarde warm weelde west wie
    wijk winkel woord wortel zand zetten ziek zolder zuid
    acht amen appel beest blauw boer boren brug bus dam dijk drie duur eind einde eng engel fort
    gauw graven groet halte heen helder heuvel hof honderd kade kapel kerkhof komen kruis kwartier
    lek luik molen neer noorden nut oever onder oordeel oranje paradijs plaat slot sloot steil
    strand streek telen top veld vellen vierden wacht wiel
    bath bears belt bent hell hill holy jet nude run
    alter barn beers born bras bray burst champion else emblem ever fall forest goes grave grins
    hall heist heron hole hops horn look manage mark mill most name one outer proven silly thorn
    tent tilt torn twin verve wave waver ways well
    author bereik begraven banden bladen champions contra course dachten deelden dineren drogen
    druiven dwongen forests geladen gelaten geleden gelegen gelezen gemerkt gieren gisteren gissen
    haringen heldere hengel hielden hiermee hingen houden kerken kleren kringen legende leidden
    leidende lerende levende lieden mailen managed managen manager mandje meteen monsters ochtend
    oosten overeen passende proeven schelen schild schilder schoen schrik schulden smeren spieren
    standen steken strijden strijken telling verdien vierde vieren voerden vormden vreemde waarden
    werden westen wilder winkels woeden woeste worden zomerse zovelen
    """
)

# Negation (see the module doc): the words that negate, the small words that may stand between
# a negation and the place, and the words that open a new clause.
NEGATIONS = _wordset("niet geen nooit behalve ipv not no never except")
NEGATION_REACH = 3  # small words at most between the negation and the name
NEGATION_FILLERS = (
    PLACE_PREPOSITIONS
    | ARTICLES
    | _wordset("die dat deze daar op aan the one that this a an at to")
) - NEGATIONS
CLAUSE_WORDS = _wordset("maar wel want omdat doch echter toch dus but because")
_CLAUSE_BREAK = frozenset(",;:.!?()[]{}\n–—|")

# Words right after a name that say which of the same-named places is meant.
_PROVINCES = {
    "Groningen": "gr gn groningen",
    "Friesland": "fr frl friesland fryslan",
    "Drenthe": "dr drenthe",
    "Overijssel": "o ov overijssel",
    "Flevoland": "fl flevoland",
    "Gelderland": "g gld gelderland",
    "Utrecht": "u ut utr utrecht",
    "Noord-Holland": "nh noord_holland",
    "Zuid-Holland": "zh zuid_holland",
    "Zeeland": "z zl zld zeeland",
    "Noord-Brabant": "nb brabant noord_brabant",
    "Limburg": "l lb limburg",
    "Vlaanderen": "vl vlaanderen",
    "Wallonie": "wallonie",
    "Brussel": "brussel",
}
_COUNTRIES = {
    "NL": "nl nederland netherlands the_netherlands holland",
    "BE": "be belgie belgium belgique",
}
# Regions that lie in one province: a region, and a qualifier for that province.
_PROVINCE_REGIONS = {
    "Groningen": "ommelanden oost_groningen",
    "Overijssel": "twente salland",
    "Gelderland": "achterhoek betuwe veluwe liemers de_liemers bommelerwaard rivierenland",
    "Utrecht": "eemland",
    "Noord-Holland": "gooi het_gooi kennemerland west_friesland westfriesland zaanstreek",
    "Zuid-Holland": "bollenstreek drechtsteden alblasserwaard haaglanden voorne_putten",
    "Zeeland": "walcheren zeeuws_vlaanderen",
    "Noord-Brabant": "meierij",
    "Limburg": "zuid_limburg heuvelland",
}
_OTHER_REGIONS = (
    "kempen randstad peel de_peel waddeneilanden hageland pajottenland waasland meetjesland"
)
_ABROAD = """
    afrika amerika azie brazilie canada denemarken duitsland egypte engeland europa frankrijk
    indie italie malta noorwegen oostenrijk polen rome rusland siberie spanje turkije zweden
    zwitserland portugal ierland griekenland
    norway germany france spain england ireland italy sweden denmark poland austria switzerland
    greece usa berlijn berlin londen london parijs paris barcelona madrid lissabon lisbon
"""
QUALIFIERS: dict[str, tuple[str, str]] = {
    **{
        q.replace("_", " "): ("admin1", province)
        for province, words in _PROVINCES.items()
        for q in words.split()
    },
    **{
        q.replace("_", " "): ("country", country)
        for country, words in _COUNTRIES.items()
        for q in words.split()
    },
    **{
        q.replace("_", " "): ("admin1", province)
        for province, words in _PROVINCE_REGIONS.items()
        for q in words.split()
    },
}
# Countries, provinces and regions are not points: their names count as places only when a town
# or municipality carries them (Utrecht, Groningen), not for a hamlet (Holland, Zeeland, Veluwe).
# Each has a kind, for the evidence: province, region, country or abroad.
REGION_KINDS: dict[str, str] = {
    **{q: "province" for q, (field, _) in QUALIFIERS.items() if field == "admin1" and len(q) > 3},
    **{
        q.replace("_", " "): "region"
        for q in (
            "vlaanderen wallonie brussel "
            + _OTHER_REGIONS
            + " "
            + " ".join(_PROVINCE_REGIONS.values())
        ).split()
    },
    **{q: "country" for q, (field, _) in QUALIFIERS.items() if field == "country" and len(q) > 3},
    **{q: "abroad" for q in _ABROAD.split()},
}
REGION_NAMES = frozenset(REGION_KINDS)
_REGION_FIRST = frozenset(name.split(" ")[0] for name in REGION_KINDS)
# Before a region in running text, besides a place preposition: 'op de Veluwe'.
_REGION_CUES = PLACE_PREPOSITIONS | {"op"}
# A profile location made only of a place, the words before it from this set and qualifiers
# after it is about that place: 'wonend in Best', 'Best, NL'.
_PROFILE_LEAD = CUE_WORDS | _wordset(
    "wonend woonachtig woont living based live lives regio omgeving area gemeente"
)
_QUALIFIER_WORDS = frozenset(w for q in QUALIFIERS for w in q.split())

_LINK = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|@[\w.-]+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:nl|be|com|org|net|eu|info|nu|io|social|frl)\b(?:/\S*)?",
    re.IGNORECASE,
)
# What every link above holds: most texts have none, and this is found far faster.
_LINK_HINT = re.compile(
    r"@|://|www\.|\.(?:nl|be|com|org|net|eu|info|nu|io|social|frl)\b", re.IGNORECASE
)
# A stretch between ASCII characters that are no letter or digit: the only places a word can
# start or end besides inside a run of non-ASCII characters.
_RUN = re.compile(r"[0-9A-Za-z\x80-\U0010ffff]+")
_SENTENCE_END = frozenset(".!?…:;\n")
_OPENERS = frozenset(" \t\"'“”‘’«»([{#*_-")
_DATA = "places.tsv.gz"
_ABBREVIATIONS = "abbreviations.tsv"


@dataclass(frozen=True, slots=True)
class Place:
    geonameid: int  # GeoNames id; a CBS municipality row has minus its CBS number (GM0307 → -307)
    name: str
    lat: float
    lon: float
    country: str  # NL or BE
    admin1: str  # province, or Belgian region
    gemeente: str  # CBS municipality name (2024), '' when unknown
    population: int  # 0 when unknown
    feature_code: str  # GeoNames feature code, ADM2 for a CBS municipality, '' for Belgium

    def label(self) -> str:
        """The name with its province or region: 'Bergen (Noord-Holland)'."""
        return f"{self.name} ({self.admin1})" if self.admin1 else self.name


@dataclass(frozen=True, slots=True)
class PlaceMention:
    place: Place
    written: str  # the words as they appeared in the text
    score: float  # 100 for an exact name, else the rapidfuzz score
    ambiguous: bool  # other places share that name
    alternatives: int  # how many other places share that name
    start: int  # index of the first word in the folded text (`listener.text.words`)
    qualifier: str | None = None  # the qualifier that chose the place, as written ('Gld')
    readings: tuple[Place, ...] = ()  # every place of that name, best reading first
    negation: str | None = None  # the negation before it, as written ('niet'): not evidence


@dataclass(frozen=True, slots=True)
class RegionMention:
    """A province, region or country named: no point, too coarse for a branch."""

    written: str  # as it appeared ('Twente')
    kind: str  # province, region, country or abroad
    start: int  # index of the first word in the folded text


@dataclass(frozen=True, slots=True)
class Scan:
    places: list[PlaceMention]  # in order of appearance, negated ones too
    regions: list[RegionMention]


@dataclass(frozen=True, slots=True)
class Abbreviation:
    """A row of abbreviations.tsv: a spelling people use for a place, and what it needs."""

    written: str  # 'A'foort'
    place: str  # the place's name in the gazetteer: 'Amersfoort'
    geonameid: int
    support: str  # always, context or cue


@dataclass(frozen=True, slots=True)
class _Candidate:
    place: Place
    via_alt: bool  # the name is only one of the place's alternate names
    rank: int


@dataclass(frozen=True, slots=True)
class _Entry:
    candidates: tuple[_Candidate, ...]  # best reading first
    needs: int  # SUPPORT_NONE, SUPPORT_CAPITAL or SUPPORT_CONTEXT


class _Word(NamedTuple):
    """A word of a text (a named tuple: a text has dozens, made per scan)."""

    text: str  # folded
    start: int  # character offsets in the original text
    end: int
    upper: bool  # first letter is a capital
    capitalised: bool  # first letter a capital and the word not all capitals
    in_link: bool
    source: str  # the original text
    previous_end: int  # where the word before it ends

    @property
    def sentence_start(self) -> bool:
        """The word opens the text, a sentence or a line (read when asked: seldom)."""
        return _starts_sentence(self.source, self.start)

    @property
    def plain_gap(self) -> bool:
        """Only white space (or a '#') between the previous word and this one."""
        return not self.source[self.previous_end : self.start].strip().strip("#")


class Gazetteer:
    """Places by folded name, with the exact and fuzzy look-ups described in the module doc."""

    def __init__(
        self,
        places: Iterable[tuple[Place, Sequence[str]]],
        abbreviations: Iterable[Abbreviation] = (),
    ) -> None:
        """Index places given with their alternate names, and abbreviations of some of them."""
        rows = list(places)
        towns = {
            (fold(p.name), p.gemeente): p
            for p, _ in rows
            if p.feature_code != "ADM2" and p.gemeente
        }
        ranks: dict[Place, int] = {}
        names: dict[str, dict[Place, bool]] = {}
        for place, alt_names in rows:
            rank = FEATURE_RANK.get(place.feature_code, FEATURE_RANK["PPL"])
            if place.feature_code == "ADM2":
                place = towns.get((fold(place.name), place.gemeente), place)
            ranks[place] = min(rank, ranks.get(place, rank))
            for name, via_alt in [(place.name, False), *((alt, True) for alt in alt_names)]:
                key = fold(name)
                if key and key.count(" ") < MAX_WORDS:
                    seen = names.setdefault(key, {})
                    seen[place] = seen.get(place, True) and via_alt
        by_id = {place.geonameid: place for place in ranks}
        curated: dict[str, int] = {}
        for abbreviation in abbreviations:
            target = by_id.get(abbreviation.geonameid)
            if target is None or target.name != abbreviation.place:
                raise ValueError(
                    f"abbreviation {abbreviation.written!r}: no place {abbreviation.place!r} "
                    f"with id {abbreviation.geonameid}"
                )
            if abbreviation.support not in ABBREVIATION_SUPPORT:
                raise ValueError(
                    f"abbreviation {abbreviation.written!r}: support must be one of "
                    f"{', '.join(ABBREVIATION_SUPPORT)}, not {abbreviation.support!r}"
                )
            key = fold(abbreviation.written)
            names.setdefault(key, {})[target] = True
            curated[key] = ABBREVIATION_SUPPORT[abbreviation.support]
        self._entries: dict[str, _Entry] = {}
        self._fuzzy: dict[str, dict[int, list[str]]] = {}
        for key, found in names.items():
            if key in REGION_NAMES and all(ranks[p] > FEATURE_RANK["ADM2"] for p in found):
                continue
            candidates = tuple(
                sorted(
                    (_Candidate(p, via_alt, ranks[p]) for p, via_alt in found.items()),
                    key=_reading_order,
                )
            )
            needs = curated.get(key, _support_needed(key, candidates))
            entry = _Entry(candidates, needs)
            self._entries[key] = entry
            if (
                needs == SUPPORT_NONE
                and key not in curated
                and " " not in key
                and len(key) >= FUZZY_MIN_LETTERS
            ):
                self._fuzzy.setdefault(key[0], {}).setdefault(len(key), []).append(key)
        self.places = tuple(ranks)
        # The most words a place or region name starting with a given word has: a span of
        # several words is looked up only where one can start.
        self._longest: dict[str, int] = {}
        self._pairs: set[str] = set()  # the first two words of the names of several words
        for key in [*self._entries, *REGION_KINDS]:
            first, *rest = key.split(" ")
            self._longest[first] = min(MAX_WORDS, max(self._longest.get(first, 0), 1 + len(rest)))
            if rest:
                self._pairs.add(f"{first} {rest[0]}")
        self._last_scan: tuple[str, Scan] | None = None
        self._profiles: dict[str, Scan] = {}
        self._profiles_lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, abbreviations: Path | None = None) -> Gazetteer:
        """Load the gazetteer from a places.tsv.gz and an abbreviations.tsv (default: packaged)."""
        if path is None:
            raw = resources.files("listener.geo").joinpath("data", _DATA).read_bytes()
        else:
            raw = Path(path).read_bytes()
        text = gzip.decompress(raw).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
        places = (
            (
                Place(
                    geonameid=int(row["geonameid"]),
                    name=row["name"],
                    lat=float(row["lat"]),
                    lon=float(row["lon"]),
                    country=row["country"],
                    admin1=row["admin1"],
                    gemeente=row["gemeente"],
                    population=int(row["population"] or 0),
                    feature_code=row["feature_code"],
                ),
                row["alt_names"].split("|") if row["alt_names"] else [],
            )
            for row in reader
        )
        return cls(places, load_abbreviations(abbreviations))

    def candidates(self, name: str) -> list[Place]:
        """Every place with this (folded) name, best reading first."""
        entry = self._entries.get(fold(name))
        return [c.place for c in entry.candidates] if entry else []

    def find_in_text(self, text: str) -> list[PlaceMention]:
        """The places a text names, in order of appearance, without overlaps (negated too)."""
        return list(self.scan(text).places)

    def scan(self, text: str) -> Scan:
        """The places and the regions a text names, in order of appearance. The last text's
        scan is kept: locating a post and choosing its branch read the same text."""
        last = self._last_scan
        if last is not None and last[0] == text:
            return last[1]
        found = self._scan(text, profile=False)
        self._last_scan = (text, found)
        return found

    def lookup(self, location: str) -> PlaceMention | None:
        """The place a free-text profile location names ('Utrecht, NL'), or None."""
        found = self._profile(location).places
        return next((m for m in found if m.negation is None), None)

    def region(self, location: str) -> RegionMention | None:
        """The province, region or country a profile location names ('Twente'), or None."""
        found = self._profile(location).regions
        return found[0] if found else None

    def _profile(self, location: str) -> Scan:
        """A profile location's scan, remembered (PROFILES_REMEMBERED, the oldest forgotten
        first): an author writes the same one on every post."""
        found = self._profiles.get(location)
        if found is None:
            found = self._scan(location, profile=True)
            with self._profiles_lock:  # the daemon's polls decide in several threads
                if len(self._profiles) >= PROFILES_REMEMBERED:
                    del self._profiles[next(iter(self._profiles))]
                self._profiles[location] = found
        return found

    # -- matching ------------------------------------------------------------------------------

    def _scan(self, text: str, *, profile: bool) -> Scan:
        words = _tokens(text)
        found: list[PlaceMention] = []
        regions: list[RegionMention] = []
        i = 0
        longest = self._longest
        while i < len(words):
            word = words[i]
            if word.text not in longest and (
                len(word.text) < FUZZY_MIN_LETTERS
                or not (
                    profile or word.capitalised or (i > 0 and words[i - 1].text in FUZZY_CUE_WORDS)
                )
            ):  # no name starts with it, and `_fuzzy_match` would not try it
                i += 1
                continue
            match = self._exact(text, words, i, profile) or self._fuzzy_match(
                text, words, i, profile
            )
            region = self._region(text, words, i, profile)
            # A longer region wins over a place inside it: 'Noord-Holland' is no hamlet 'Noord'.
            if region is not None and (match is None or region[1] > _word_count(match[0])):
                regions.append(region[0])
                i += region[1]
            elif match is not None:
                mention, after = match
                negation = _negation(text, words, i)
                if negation is not None:
                    mention = replace(mention, negation=negation)
                found.append(mention)
                i = after
            else:
                i += 1
        return Scan(_contrasted(text, words, found), regions)

    def _widest(self, words: list[_Word], i: int) -> int:
        """The most words a name starting at words[i] can have here: one when no name of
        several words starts with words[i] and words[i + 1] ('de bieb' is no 'De Bilt')."""
        first = words[i].text
        most = min(self._longest.get(first, 0), len(words) - i)
        if most > 1 and f"{first} {words[i + 1].text}" not in self._pairs:
            return 1
        return most

    def _region(
        self, text: str, words: list[_Word], i: int, profile: bool
    ) -> tuple[RegionMention, int] | None:
        """The region named at words[i], with its number of words."""
        if words[i].text not in _REGION_FIRST:
            return None
        for n in range(self._widest(words, i), 0, -1):
            span = words[i : i + n]
            key = " ".join(w.text for w in span)
            if key not in REGION_KINDS or key in self._entries or any(w.in_link for w in span):
                continue
            if not profile and not _region_supported(words, i, n):
                continue
            written = text[span[0].start : span[-1].end]
            return RegionMention(written, REGION_KINDS[key], i), n
        return None

    def _exact(
        self, text: str, words: list[_Word], i: int, profile: bool
    ) -> tuple[PlaceMention, int] | None:
        for n in range(self._widest(words, i), 0, -1):
            span = words[i : i + n]
            if any(w.in_link for w in span):
                continue
            key = words[i].text if n == 1 else " ".join(w.text for w in span)
            entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.needs and not _supported(words, i, n, entry.needs, profile):
                continue
            return self._mention(text, words, i, i + n, entry, 100.0)
        return None

    def _fuzzy_match(
        self, text: str, words: list[_Word], i: int, profile: bool
    ) -> tuple[PlaceMention, int] | None:
        word = words[i]
        key = word.text
        if (
            word.in_link
            or len(key) < FUZZY_MIN_LETTERS
            or not key.isalpha()
            or key in COMMON_WORDS
            or key in REGION_NAMES
            or key in self._entries
        ):
            return None
        if not profile:
            cued = i > 0 and words[i - 1].text in FUZZY_CUE_WORDS and _is_cue(words[i - 1], word)
            if not cued and not (word.capitalised and not word.sentence_start):
                return None
        by_length = self._fuzzy.get(key[0], {})
        choices = [
            name
            for length in range(len(key) - FUZZY_LENGTH_SLACK, len(key) + FUZZY_LENGTH_SLACK + 1)
            for name in by_length.get(length, ())
        ]
        best = process.extractOne(key, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_THRESHOLD)
        if best is None:
            return None
        return self._mention(text, words, i, i + 1, self._entries[best[0]], round(best[1], 1))

    def _mention(
        self, text: str, words: list[_Word], i: int, end: int, entry: _Entry, score: float
    ) -> tuple[PlaceMention, int]:
        candidates = entry.candidates
        chosen = candidates[0].place
        qualifier = None
        after = end
        for skip, k in _qualifier_spans(words, end, several=len(candidates) > 1):
            span = words[end + skip : end + skip + k]
            phrase = " ".join(w.text for w in span)
            if len(span) < k or phrase not in QUALIFIERS or any(w.in_link for w in span):
                continue
            if len(phrase) <= 3 and not (
                span[0].upper or text[span[0].start - 1 : span[0].start] == "("
            ):
                continue
            field, value = QUALIFIERS[phrase]
            fitting = [c.place for c in candidates if getattr(c.place, field) == value]
            if fitting and (len(candidates) > 1 or phrase not in self._entries):
                chosen = fitting[0]
                qualifier = text[span[0].start : span[-1].end]
                after = end + skip + k
            break
        mention = PlaceMention(
            place=chosen,
            written=_closed(text, words[i].start, words[end - 1].end),
            score=score,
            ambiguous=len(candidates) > 1,
            alternatives=len(candidates) - 1,
            start=i,
            qualifier=qualifier,
            readings=tuple(c.place for c in candidates),
        )
        return mention, after


@cache
def default_gazetteer() -> Gazetteer:
    """The packaged gazetteer, loaded once per process."""
    return Gazetteer.load()


def load_abbreviations(path: Path | None = None) -> list[Abbreviation]:
    """The rows of an abbreviations.tsv (default: the packaged one); '#' starts a comment line."""
    if path is None:
        raw = resources.files("listener.geo").joinpath("data", _ABBREVIATIONS).read_text("utf-8")
    else:
        raw = Path(path).read_text(encoding="utf-8")
    lines = [line for line in raw.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    return [
        Abbreviation(row["written"], row["place"], int(row["geonameid"]), row["support"])
        for row in reader
    ]


def _word_count(mention: PlaceMention) -> int:
    """How many words the name (without its qualifier) has in the folded text."""
    return len(fold(mention.written).split())


def _qualifier_spans(words: list[_Word], end: int, *, several: bool) -> list[tuple[int, int]]:
    """Where a qualifier may stand after a name, as (words skipped, words in the qualifier).

    Right after the name (2 words, then 1); for a name that several places share also after 'in'
    or 'in de'/'in het': 'Hengelo in de Achterhoek', 'Bergen in Limburg'.
    """
    spans = [(0, 2), (0, 1)]
    if several and end < len(words) and words[end].text == "in" and words[end].plain_gap:
        skip = 2 if end + 1 < len(words) and words[end + 1].text in ("de", "het") else 1
        spans += [(skip, 2), (skip, 1)]
    return spans


CONTRAST_REACH = 8  # words back from the place to 'niet' in 'niet de bieb in X maar Y'
_SENTENCE_BREAK = frozenset(".!?\n")
_TURNS = ("maar", "but", "ik bedoel", "i mean")
_POINTING = ("die", "dat", "the one")


def _negation(text: str, words: list[_Word], i: int) -> str | None:
    """The negation before words[i] in the same clause, as written, or None (see the module doc)."""
    return _close_negation(text, words, i)


def _contrastive_negation(
    text: str, words: list[_Word], i: int, later_places: Sequence[int]
) -> str | None:
    """'Niet de bieb in Leusden maar die in Amersfoort', 'not the OBA in Osdorp, the one in …':
    a negation earlier in the sentence, and the sentence then turns to another place (one of
    `later_places`, character offsets of the places named after words[i]). 'Ik snap niet
    waarom de bieb in Leusden dicht is, maar goed' turns to no place: Leusden stands."""
    negation = None
    for j in range(i - 1, max(-1, i - 1 - CONTRAST_REACH), -1):
        if _SENTENCE_BREAK.intersection(text[words[j].end : words[j + 1].start]):
            break
        if words[j].text in CLAUSE_WORDS:
            break
        if words[j].text in NEGATIONS:
            negation = text[words[j].start : words[j].end]
            break
    if negation is None:
        return None
    begin = words[i].end
    sentence = re.split(r"[.!?\n]", text[begin:], maxsplit=1)[0].casefold()
    turns = [
        found.end()
        for t in _TURNS
        if (found := re.search(rf"(^|\W){re.escape(t)}(\W|$)", sentence)) is not None
    ]
    if (pointed := re.search(r",\s*(" + "|".join(_POINTING) + r")\b", sentence)) is not None:
        turns.append(pointed.end())
    if not turns:
        return None
    turn, end = begin + min(turns), begin + len(sentence)
    return negation if any(turn <= at < end for at in later_places) else None


def _contrasted(text: str, words: list[_Word], found: list[PlaceMention]) -> list[PlaceMention]:
    """Mark the places negated by a contrast with a place named after them (a second pass,
    because the place turned to is only known once the whole text is scanned)."""
    out = []
    for k, mention in enumerate(found):
        later = [words[m.start].start for m in found[k + 1 :] if m.start < len(words)]
        if mention.negation is None and later and mention.start < len(words):
            negation = _contrastive_negation(text, words, mention.start, later)
            if negation is not None:
                mention = replace(mention, negation=negation)
        out.append(mention)
    return out


def _close_negation(text: str, words: list[_Word], i: int) -> str | None:
    """A negation right before words[i] ('niet in Leusden', 'geen Leusden')."""
    for j in range(i - 1, max(-1, i - 2 - NEGATION_REACH), -1):
        if _CLAUSE_BREAK.intersection(text[words[j].end : words[j + 1].start]):
            return None
        word = words[j]
        if word.text in NEGATIONS:
            return text[word.start : word.end]
        if word.text in CLAUSE_WORDS or word.text not in NEGATION_FILLERS:
            return None
    return None


def _region_supported(words: list[_Word], i: int, n: int) -> bool:
    """A region in running text: capitalised, or after a place preposition ('op de veluwe')."""
    main = [w for w in words[i : i + n] if w.text not in PARTICLES]
    if main and all(w.capitalised for w in main):
        return True
    j = i - 1
    if j >= 0 and words[j].text in ARTICLES:
        j -= 1
    return j >= 0 and words[j].text in _REGION_CUES


def _reading_order(candidate: _Candidate) -> tuple[bool, bool, int, int, int]:
    place = candidate.place
    return (
        place.country != "NL",
        candidate.via_alt,
        candidate.rank,
        -place.population,
        place.geonameid,
    )


def _support_needed(key: str, candidates: Sequence[_Candidate]) -> int:
    """What a name needs from the context before it counts (see the module doc)."""
    if len(key.replace(" ", "")) <= 3 or key in COMMON_WORDS:
        return SUPPORT_CONTEXT
    main = [word for word in key.split() if word not in PARTICLES]
    if all(word in COMMON_WORDS for word in main):  # 'het eind', 'de wijk'
        return SUPPORT_CONTEXT
    if all(
        c.rank > FEATURE_RANK["ADM2"] and c.place.population < MINOR_POPULATION for c in candidates
    ):
        return SUPPORT_CAPITAL
    return SUPPORT_NONE


def _supported(words: list[_Word], i: int, n: int, needs: int, profile: bool) -> bool:
    """Whether the context supports reading words[i:i+n] as a place name."""
    span = words[i : i + n]
    key = " ".join(w.text for w in span)
    before = words[i - 1] if i > 0 else None
    if key in CAPITAL_ONLY and not all(w.capitalised for w in span):
        return False  # 'in één gebouw', 'in een volle zaal': not the village Een
    if before is not None and before.text == "te" and not span[0].capitalised:
        return False  # 'te melden', 'te lenen': an infinitive, not 'te Leusden'
    if (
        before is not None
        and span[0].text not in ARTICLES
        and _is_cue(before, span[0])
        # 'bieb Hoevelaken', but not 'de bieb best vaak dicht'
        and (before.text in PLACE_PREPOSITIONS or key not in COMMON_WORDS)
    ):
        return True
    main = [w for w in span if w.text not in PARTICLES]
    capitalised = bool(main) and all(w.capitalised for w in main)  # 'Nummer Een', not 'Nummer een'
    if i + n < len(words) and words[i + n].capitalised and not words[i + n].sentence_start:
        capitalised = False  # a person rather: 'Mark Rutte'
    if profile:
        lead, tail = words[:i], words[i + n :]
        if all(w.text in _PROFILE_LEAD for w in lead) and all(
            w.text in _QUALIFIER_WORDS for w in tail
        ):
            return True
        return capitalised and key not in COMMON_WORDS
    if needs == SUPPORT_CAPITAL:
        return capitalised
    if needs == SUPPORT_CUE:
        return False
    return capitalised and not span[0].sentence_start


def _closed(text: str, start: int, end: int) -> str:
    """text[start:end], taking in the closing bracket of a name such as 'Hengelo (Gld)'."""
    written = text[start:end]
    if written.count("(") > written.count(")"):
        closing = re.match(r"\.?\)", text[end:])
        if closing:
            written += closing.group()
    return written


def _is_cue(word: _Word, following: _Word) -> bool:
    """A cue word right before the next one, in the same clause ('in Best', not 'bieb, best')."""
    return word.text in CUE_WORDS and following.plain_gap


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """One character folded as `fold` would: '' for a combining mark, ' ' for a separator."""
    if unicodedata.combining(ch):
        return ""
    return fold(ch) or " "


def _tokens(text: str) -> list[_Word]:
    """The words of `fold(text)`, each with where it stands in the original text.

    An ASCII letter or digit folds to itself (lower-cased) and any other ASCII character to a
    space, so only the runs holding non-ASCII characters are folded character by character."""
    links = _links(text)
    out: list[_Word] = []
    previous_end = 0
    for run in _RUN.finditer(text):
        written = run.group()
        if written.isascii():  # `_word`, inlined: most words
            start, end = run.span()
            upper = written[0].isupper()
            out.append(
                _Word(
                    written.lower(),
                    start,
                    end,
                    upper,
                    upper and not _shouted(written),
                    bool(links) and any(a <= start < b for a, b in links),
                    text,
                    previous_end,
                )
            )
            previous_end = end
            continue
        offset = run.start()
        current: list[str] = []
        start = 0
        for index, ch in enumerate([*written, " "], offset):
            for piece in _fold_char(ch):
                if piece != " ":
                    if not current:
                        start = index
                    current.append(piece)
                elif current:
                    out.append(_word(text, "".join(current), start, index, links, previous_end))
                    previous_end = index
                    current = []
    return out


def _links(text: str) -> list[tuple[int, int]]:
    """Where the links, addresses and handles of a text are (`_LINK`)."""
    if _LINK_HINT.search(text) is None:
        return []
    return [m.span() for m in _LINK.finditer(text)]


def _word(
    text: str, folded: str, start: int, end: int, links: list[tuple[int, int]], previous_end: int
) -> _Word:
    upper = text[start].isupper()
    return _Word(
        folded,
        start,
        end,
        upper,
        upper and not _shouted(text[start:end]),
        bool(links) and any(a <= start < b for a, b in links),
        text,
        previous_end,
    )


def _shouted(raw: str) -> bool:
    """Two letters or more, all capitals: 'HELP', 'OBA'."""
    letters = [ch for ch in raw if ch.isalpha()]
    return len(letters) > 1 and all(ch.isupper() for ch in letters)


def _starts_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens the text, a sentence or a line."""
    j = start - 1
    while j >= 0 and text[j] in _OPENERS:
        j -= 1
    if j < 0:
        return True
    ch = text[j]
    return ch in _SENTENCE_END or unicodedata.category(ch).startswith("S")
