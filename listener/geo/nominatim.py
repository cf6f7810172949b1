"""The online fallback for author profile locations: OpenStreetMap's Nominatim, through geopy.

The offline gazetteer (`listener.geo.gazetteer`) reads a profile location first; what it cannot
place may be given to a `ProfileGeocoder`, which asks Nominatim only when `[geo] nominatim = true`
and keeps Nominatim's usage policy (https://operations.osmfoundation.org/policies/nominatim/):

* at most one request a second: one request at a time across threads, and never two closer
  together than `min_interval` (measured from the end of the previous request);
* a real user agent that says who we are, with a contact address (the config insists on one);
* every answer cached, a miss too, in the `geocode_cache` table, so a location is looked up once
  in the life of the database, also across restarts and processes.

The text is normalised first (casefolded, pronouns such as 'he/him' and symbols such as emoji
dropped, white space collapsed); that is the cache key and the query. Text with fewer than 3
letters left is no location and is never looked up. Searches are limited to the Netherlands and
Belgium, in Dutch.

Failures are no answer: a timeout, a 5xx or an unreachable server gives None, is not cached (the
next call tries again) and is logged once per location. A 429 gives None and stops all requests
until its Retry-After has passed (60 seconds when it names none). With `online=False` (offline
commands such as `listener classify`) the cache is all there is.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from geopy.exc import GeocoderRateLimited, GeocoderServiceError
from geopy.geocoders import Nominatim
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from listener.config.model import GeoSettings
from listener.geo.gazetteer import Place, PlaceMention

log = logging.getLogger(__name__)

COUNTRY_CODES = ["nl", "be"]
LANGUAGE = "nl"
MIN_LETTERS = 3
DEFAULT_RETRY_AFTER = 60.0  # seconds to hold back after a 429 without Retry-After
FEATURE_CODE = "NOMINATIM"

# Pronoun sets in a profile location ('he/him', 'zij/haar') are no part of the place.
PRONOUNS = frozenset(
    {"he", "him", "his", "she", "her", "hers", "they", "them", "their", "theirs", "it", "its"}
    | {"xe", "xem", "ze", "zir", "hij", "hem", "zijn", "zij", "haar", "hen", "hun", "die", "diens"}
)
_KEEP = frozenset(",.-'()/&")


class GeocodeRow(SQLModel, table=True):
    """One answer from Nominatim for one normalised location text; `found` is False for a miss."""

    __tablename__ = "geocode_cache"
    query: str = Field(primary_key=True)
    found: bool
    lat: float | None = None
    lon: float | None = None
    name: str | None = None  # the first component of the display name: 'Soest'
    country: str | None = None  # ISO code, upper-case: 'NL'
    looked_up_at: datetime


def normalise(location: str) -> str:
    """Casefold, drop pronoun sets ('he/him') and symbols (emoji), collapse white space."""
    text = unicodedata.normalize("NFC", location).casefold()
    text = "".join(ch if ch.isalnum() or ch.isspace() or ch in _KEEP else " " for ch in text)
    kept = [word for word in text.split() if not _is_pronouns(word)]
    return " ".join(kept)


def _is_pronouns(word: str) -> bool:
    parts = [part.strip(",.()") for part in word.split("/")]
    return len(parts) > 1 and all(part in PRONOUNS for part in parts)


def _worth_looking_up(query: str) -> bool:
    return sum(ch.isalpha() for ch in query) >= MIN_LETTERS


class ProfileGeocoder:
    """Profile location → `PlaceMention` via the cache, then Nominatim; see the module doc.

    Thread-safe. `clock` and `sleep` pace the requests (tests pass fakes); `geocoder` replaces
    geopy's `Nominatim` built from the settings.
    """

    def __init__(
        self,
        settings: GeoSettings,
        engine: Engine,
        *,
        online: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        geocoder: Any | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.online = online and settings.nominatim
        self._clock = clock
        self._sleep = sleep
        self._interval = settings.min_interval.total_seconds()
        self._geocoder: Any = geocoder
        if self._geocoder is None and self.online:
            self._geocoder = Nominatim(
                user_agent=settings.user_agent,
                domain=settings.nominatim_domain,
                scheme=settings.nominatim_scheme,
                timeout=settings.timeout.total_seconds(),
            )
        self._lock = threading.Lock()
        self._last_request_end = -math.inf
        self._resume_at = -math.inf  # after a 429: no request before this clock reading
        self._warned: set[str] = set()
        GeocodeRow.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        mode = "online" if self.online else "cache only"
        return f"ProfileGeocoder({self.settings.nominatim_domain!r}, {mode})"

    def __call__(self, location: str) -> PlaceMention | None:
        query = normalise(location)
        if not _worth_looking_up(query):
            return None
        row = self._cached(query)
        if row is None and self.online:
            with self._lock:  # another thread may have looked it up while we waited
                row = self._cached(query)
                if row is None:
                    row = self._look_up(query)
        return _mention(row, location) if row is not None else None

    def _cached(self, query: str) -> GeocodeRow | None:
        with Session(self.engine) as session, session.begin():
            row = session.get(GeocodeRow, query)
            if row is not None:
                session.expunge(row)
            return row

    def _look_up(self, query: str) -> GeocodeRow | None:
        """Ask Nominatim (holding the lock) and cache the answer; None when there is none."""
        if self._clock() < self._resume_at:
            return None
        wait = self._last_request_end + self._interval - self._clock()
        if wait > 0:
            self._sleep(wait)
        try:
            result = self._geocoder.geocode(
                query,
                exactly_one=True,
                country_codes=COUNTRY_CODES,
                language=LANGUAGE,
                addressdetails=True,
            )
        except GeocoderRateLimited as exc:
            pause = DEFAULT_RETRY_AFTER if exc.retry_after is None else float(exc.retry_after)
            self._resume_at = self._clock() + pause
            log.warning("nominatim: rate limited (429); no lookups for %.0f s", pause)
            return None
        except GeocoderServiceError as exc:  # timeouts, 5xx, unreachable, unparsable answers
            if query not in self._warned:
                self._warned.add(query)
                log.warning("nominatim: no answer for %r: %s", query, exc)
            return None
        finally:
            self._last_request_end = self._clock()
        return self._store(query, result)

    def _store(self, query: str, result: Any) -> GeocodeRow:
        if result is None:
            row = GeocodeRow(query=query, found=False, looked_up_at=datetime.now(UTC))
        else:
            raw: dict[str, Any] = result.raw
            address: dict[str, Any] = raw.get("address") or {}
            row = GeocodeRow(
                query=query,
                found=True,
                lat=float(result.latitude),
                lon=float(result.longitude),
                name=str(raw.get("display_name") or query).split(",")[0].strip(),
                country=str(address.get("country_code", "")).upper(),
                looked_up_at=datetime.now(UTC),
            )
        values = row.model_dump()
        with Session(self.engine) as session, session.begin():
            # An upsert, not a merge: another instance may cache the same text at the same time.
            postgres = session.get_bind().dialect.name == "postgresql"
            insert = (postgresql.insert if postgres else sqlite.insert)(GeocodeRow).values(**values)
            session.exec(
                insert.on_conflict_do_update(
                    index_elements=["query"],
                    set_={name: insert.excluded[name] for name in values if name != "query"},
                )
            )
        return row


def _mention(row: GeocodeRow, written: str) -> PlaceMention | None:
    if not row.found or row.lat is None or row.lon is None:
        return None
    place = Place(
        geonameid=0,
        name=row.name or "",
        lat=row.lat,
        lon=row.lon,
        country=row.country or "",
        admin1="",
        gemeente="",
        population=0,
        feature_code=FEATURE_CODE,
    )
    return PlaceMention(
        place=place, written=written, score=100.0, ambiguous=False, alternatives=0, start=0
    )
