"""An offline gazetteer of Dutch and Belgian places, and the place finder built on it.

The data is `listener/geo/data/places.tsv.gz` (GeoNames and CBS; see LICENCE.md beside it, made by
`scripts/build_gazetteer.py`). `Gazetteer.find_in_text` finds the places a post names;
`Gazetteer.lookup` reads a free-text profile location such as 'Utrecht, NL'.

How a name is found:

* Every name and alternate name is folded with `listener.text.fold` and kept in a dict from folded
  name to the places that carry it. The text is folded the same way and its word n-grams (4 words
  down to 1) are looked up left to right; the longest match wins and matches never overlap.
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
  places unless a town or municipality carries them (Utrecht, Groningen).
* Words inside a URL, an e-mail address or an @handle are never part of a name.
* A single word of 6 letters or more that names no place may be a misspelling: it is compared with
  rapidfuzz against the notable place names (those needing no support, 6 letters or more) that
  start with the same letter and are at most 2 letters longer or shorter; a score of 88 or more
  is a match. In running text the word must be capitalised (not opening a sentence) or follow a
  place preposition or library word, and a common word is never fuzzy-matched.
* When several places share a name, a qualifier right after it decides ('Hengelo (Gld)',
  'Bergen NH', 'Utrecht, NL'); otherwise the reading is: Dutch before Belgian, main name before
  alternate name, then feature rank (PPLC > PPLA > PPLA2 > ADM2 > PPL > PPLX), then population.

Meant to grow: negation, landmarks, municipality polygons and an online geocoder come later; they
can work on the `PlaceMention`s found here.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from rapidfuzz import fuzz, process

from listener.text import fold


def _wordset(text: str) -> frozenset[str]:
    """The white-space separated words of a literal, as a set."""
    return frozenset(text.split())


MAX_WORDS = 4
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
}
# Countries, provinces and regions are not points: their names count as places only when a town
# or municipality carries them (Utrecht, Groningen), not for a hamlet (Holland, Zeeland, Veluwe).
REGION_NAMES = frozenset(
    {q for q in QUALIFIERS if len(q) > 3}
    | _wordset(
        """
        achterhoek betuwe gooi kempen randstad twente veluwe
        afrika amerika azie belgie brazilie canada denemarken duitsland egypte engeland europa
        frankrijk indie italie malta noorwegen oostenrijk polen rome rusland siberie spanje
        turkije zweden zwitserland
        """
    )
)
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
_SENTENCE_END = frozenset(".!?…:;\n")
_OPENERS = frozenset(" \t\"'“”‘’«»([{#*_-")
_DATA = "places.tsv.gz"


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


@dataclass(frozen=True, slots=True)
class _Candidate:
    place: Place
    via_alt: bool  # the name is only one of the place's alternate names
    rank: int


@dataclass(frozen=True, slots=True)
class _Entry:
    candidates: tuple[_Candidate, ...]  # best reading first
    needs: int  # SUPPORT_NONE, SUPPORT_CAPITAL or SUPPORT_CONTEXT


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # folded
    start: int  # character offsets in the original text
    end: int
    upper: bool  # first letter is a capital
    capitalised: bool  # first letter a capital and the word not all capitals
    sentence_start: bool
    in_link: bool
    plain_gap: bool  # only white space (or a '#') between the previous word and this one


class Gazetteer:
    """Places by folded name, with the exact and fuzzy look-ups described in the module doc."""

    def __init__(self, places: Iterable[tuple[Place, Sequence[str]]]) -> None:
        """Index places given with their alternate names."""
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
            entry = _Entry(candidates, _support_needed(key, candidates))
            self._entries[key] = entry
            if entry.needs == SUPPORT_NONE and " " not in key and len(key) >= FUZZY_MIN_LETTERS:
                self._fuzzy.setdefault(key[0], {}).setdefault(len(key), []).append(key)
        self.places = tuple(ranks)

    @classmethod
    def load(cls, path: Path | None = None) -> Gazetteer:
        """Load the gazetteer from a places.tsv.gz (default: the one shipped in the package)."""
        if path is None:
            raw = resources.files("listener.geo").joinpath("data", _DATA).read_bytes()
        else:
            raw = Path(path).read_bytes()
        text = gzip.decompress(raw).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
        return cls(
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

    def candidates(self, name: str) -> list[Place]:
        """Every place with this (folded) name, best reading first."""
        entry = self._entries.get(fold(name))
        return [c.place for c in entry.candidates] if entry else []

    def find_in_text(self, text: str) -> list[PlaceMention]:
        """The places a text names, in order of appearance, without overlaps."""
        return self._scan(text, profile=False)

    def lookup(self, location: str) -> PlaceMention | None:
        """The place a free-text profile location names ('Utrecht, NL'), or None."""
        found = self._scan(location, profile=True)
        return found[0] if found else None

    # -- matching ------------------------------------------------------------------------------

    def _scan(self, text: str, *, profile: bool) -> list[PlaceMention]:
        words = _tokens(text)
        found: list[PlaceMention] = []
        i = 0
        while i < len(words):
            match = self._exact(text, words, i, profile) or self._fuzzy_match(
                text, words, i, profile
            )
            if match is None:
                i += 1
            else:
                mention, i = match
                found.append(mention)
        return found

    def _exact(
        self, text: str, words: list[_Word], i: int, profile: bool
    ) -> tuple[PlaceMention, int] | None:
        for n in range(min(MAX_WORDS, len(words) - i), 0, -1):
            span = words[i : i + n]
            if any(w.in_link for w in span):
                continue
            key = " ".join(w.text for w in span)
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
        for k in (2, 1):
            span = words[end : end + k]
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
                after = end + k
            break
        mention = PlaceMention(
            place=chosen,
            written=_closed(text, words[i].start, words[end - 1].end),
            score=score,
            ambiguous=len(candidates) > 1,
            alternatives=len(candidates) - 1,
            start=i,
            qualifier=qualifier,
        )
        return mention, after


@cache
def default_gazetteer() -> Gazetteer:
    """The packaged gazetteer, loaded once per process."""
    return Gazetteer.load()


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
    """The words of `fold(text)`, each with where it stands in the original text."""
    links = [m.span() for m in _LINK.finditer(text)]
    out: list[_Word] = []
    current: list[str] = []
    start = 0
    for index, ch in enumerate([*text, " "]):
        folded = _fold_char(ch)
        for piece in folded:
            if piece != " ":
                if not current:
                    start = index
                current.append(piece)
            elif current:
                previous_end = out[-1].end if out else 0
                out.append(_word(text, "".join(current), start, index, links, previous_end))
                current = []
    return out


def _word(
    text: str, folded: str, start: int, end: int, links: list[tuple[int, int]], previous_end: int
) -> _Word:
    raw = text[start:end]
    upper = raw[:1].isupper()
    letters = [ch for ch in raw if ch.isalpha()]
    shouted = len(letters) > 1 and all(ch.isupper() for ch in letters)
    return _Word(
        text=folded,
        start=start,
        end=end,
        upper=upper,
        capitalised=upper and not shouted,
        sentence_start=_starts_sentence(text, start),
        in_link=any(a <= start < b for a, b in links),
        plain_gap=not text[previous_end:start].strip().strip("#"),
    )


def _starts_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens the text, a sentence or a line."""
    j = start - 1
    while j >= 0 and text[j] in _OPENERS:
        j -= 1
    if j < 0:
        return True
    ch = text[j]
    return ch in _SENTENCE_END or unicodedata.category(ch).startswith("S")
