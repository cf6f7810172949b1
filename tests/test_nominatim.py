"""The online profile geocoder, against a local Nominatim (tests/support/nominatim_server.py).

Real geopy, real HTTP on 127.0.0.1, real SQLite files; only time is faked, so the pacing is
checked exactly and no test waits a second.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from listener.config.model import GeoSettings
from listener.geo.nominatim import GeocodeRow, ProfileGeocoder, normalise
from listener.store import Store, make_engine
from tests.support.nominatim_server import NominatimServer, Reply

USER_AGENT = "listener-tests/0.1 (webcare@bibliotheek.example)"


class FakeClock:
    """A monotonic clock that only moves when told to, or when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[NominatimServer]:
    with NominatimServer() as running:
        yield running


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "listener.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{db_path}")
    yield made
    made.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings_for(server: NominatimServer, **changes: object) -> GeoSettings:
    values: dict[str, object] = {
        "nominatim": True,
        "nominatim_domain": server.domain,
        "nominatim_scheme": "http",
        "user_agent": USER_AGENT,
        "timeout": "5s",
        "min_interval": "1s",
    }
    values.update(changes)
    return GeoSettings.model_validate(values)


def geocoder_for(
    server: NominatimServer, engine: Engine, clock: FakeClock, **changes: object
) -> ProfileGeocoder:
    online = bool(changes.pop("online", True))
    return ProfileGeocoder(
        settings_for(server, **changes), engine, online=online, clock=clock, sleep=clock.sleep
    )


def test_a_known_location_is_looked_up_once_and_then_answered_from_the_cache(
    server: NominatimServer, engine: Engine, clock: FakeClock, db_path: Path
) -> None:
    geocode = geocoder_for(server, engine, clock)

    first = geocode("Soest")
    again = geocode("  SOEST ")

    assert first is not None and again is not None
    assert first.place == again.place
    assert len(server.requests) == 1


def test_a_new_geocoder_on_the_same_database_file_answers_from_the_cache(
    server: NominatimServer, engine: Engine, clock: FakeClock, db_path: Path
) -> None:
    assert geocoder_for(server, engine, clock)("Soest") is not None
    engine.dispose()

    later = make_engine(f"sqlite:///{db_path}")
    try:
        mention = geocoder_for(server, later, FakeClock())("soest")
    finally:
        later.dispose()

    assert mention is not None and mention.place.name == "Soest"
    assert len(server.requests) == 1


def test_the_returned_mention_has_the_coordinates_name_and_country(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    mention = geocoder_for(server, engine, clock)("Gent 🌷")

    assert mention is not None
    place = mention.place
    assert (place.lat, place.lon) == (51.0538, 3.725)
    assert place.name == "Gent"
    assert place.country == "BE"
    assert (place.population, place.feature_code, place.geonameid) == (0, "NOMINATIM", 0)
    assert mention.written == "Gent 🌷"
    assert (mention.score, mention.ambiguous) == (100, False)


def test_a_miss_is_cached_too(server: NominatimServer, engine: Engine, clock: FakeClock) -> None:
    geocode = geocoder_for(server, engine, clock)

    assert geocode("Nergenshuizen") is None
    assert geocode("nergenshuizen") is None

    assert len(server.requests) == 1
    with Session(engine) as session:
        row = session.get(GeocodeRow, "nergenshuizen")
    assert row is not None and row.found is False
    assert row.looked_up_at.tzinfo is not None
    assert row.looked_up_at.utcoffset() == timedelta(0)


def test_a_place_outside_the_netherlands_and_belgium_is_not_found(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    assert geocoder_for(server, engine, clock)("Parijs") is None
    assert server.requests[0].params["countrycodes"] == "nl,be"


@pytest.mark.parametrize("location", ["he/him 🌈", "", "   ", "🇳🇱", "NL", "12345", "zij/haar ✨"])
def test_text_without_a_place_name_makes_no_request(
    server: NominatimServer, engine: Engine, clock: FakeClock, location: str
) -> None:
    assert geocoder_for(server, engine, clock)(location) is None
    assert server.requests == []


def test_pronouns_and_emoji_are_left_out_of_the_query() -> None:
    assert normalise("  Soest   she/her 🌈 ") == "soest"
    assert normalise("Den  Haag,\tNL") == "den haag, nl"


def test_the_user_agent_from_settings_is_sent_with_a_dutch_search_in_nl_and_be(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocoder_for(server, engine, clock)("Zoetermeer")

    [request] = server.requests
    assert request.path == "/search"
    assert request.user_agent == USER_AGENT
    assert request.params == {
        "q": "zoetermeer",
        "format": "json",
        "limit": "1",
        "countrycodes": "nl,be",
        "addressdetails": "1",
        "accept-language": "nl",
    }


def test_two_lookups_are_spaced_by_min_interval(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock, min_interval="1s")

    geocode("Soest")
    clock.now += 0.25
    geocode("Gent")
    geocode("Soest")  # from the cache: no request, so no wait
    clock.now += 5
    geocode("Zoetermeer")

    assert len(server.requests) == 3
    assert clock.sleeps == [pytest.approx(0.75)]


def test_the_interval_comes_from_the_settings(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock, min_interval="3s")

    geocode("Soest")
    geocode("Gent")

    assert clock.sleeps == [pytest.approx(3.0)]


def test_a_server_error_is_not_cached_and_the_next_call_tries_again(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock)
    server.script(Reply(status=500))

    assert geocode("Soest") is None
    assert geocode("Soest") is not None
    assert len(server.requests) == 2


def test_repeated_failures_for_one_location_are_logged_once(
    server: NominatimServer, engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    geocode = geocoder_for(server, engine, clock)
    server.script(Reply(status=500), Reply(status=502), Reply(status=500))

    with caplog.at_level(logging.WARNING, logger="listener.geo.nominatim"):
        geocode("Soest")
        geocode("Soest")
        geocode("Gent")

    warnings = [r.getMessage() for r in caplog.records if r.name == "listener.geo.nominatim"]
    assert len(warnings) == 2
    assert "'soest'" in warnings[0] and "'gent'" in warnings[1]


def test_a_timeout_is_no_answer_and_is_not_cached(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock, timeout=0.2)
    server.script(Reply(delay=3))

    assert geocode("Soest") is None
    assert geocode("Soest") is not None
    assert len(server.requests) == 2


def test_an_unreachable_server_is_no_answer(engine: Engine, clock: FakeClock) -> None:
    with NominatimServer() as gone:
        settings = settings_for(gone)
    geocode = ProfileGeocoder(settings, engine, clock=clock, sleep=clock.sleep)

    assert geocode("Soest") is None
    with Session(engine) as session:
        assert session.exec(select(GeocodeRow)).all() == []


def test_a_429_stops_requests_until_retry_after_has_passed(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock)
    server.script(Reply(status=429, headers={"Retry-After": "30"}))

    assert geocode("Soest") is None
    clock.now += 29
    assert geocode("Gent") is None
    assert geocode("Soest") is None
    assert len(server.requests) == 1

    clock.now += 2
    assert geocode("Soest") is not None
    assert len(server.requests) == 2


def test_a_429_without_retry_after_stops_requests_for_a_minute(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock)
    server.script(Reply(status=429))

    assert geocode("Soest") is None
    clock.now += 59
    assert geocode("Soest") is None
    clock.now += 2
    assert geocode("Soest") is not None
    assert len(server.requests) == 2


def test_offline_never_makes_a_request_but_reads_the_cache(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    offline = geocoder_for(server, engine, clock, online=False)
    assert offline("Soest") is None
    assert server.requests == []

    assert geocoder_for(server, engine, clock)("Soest") is not None
    mention = offline("Soest")

    assert mention is not None and mention.place.name == "Soest"
    assert len(server.requests) == 1


def test_nominatim_switched_off_in_config_makes_no_request(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    geocode = geocoder_for(server, engine, clock, nominatim=False)

    assert geocode("Soest") is None
    assert server.requests == []
    assert "cache only" in repr(geocode)


def test_the_repr_shows_the_domain_and_whether_it_is_online(
    server: NominatimServer, engine: Engine, clock: FakeClock
) -> None:
    text = repr(geocoder_for(server, engine, clock))

    assert server.domain in text and "online" in text


def test_threads_asking_for_the_same_location_make_one_request(
    server: NominatimServer, engine: Engine
) -> None:
    geocode = ProfileGeocoder(settings_for(server, min_interval=0.01), engine)
    answers: list[object] = []

    def ask() -> None:
        answers.append(geocode("Lelystad"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(answers) == 8 and all(answer is not None for answer in answers)
    assert len(server.requests) == 1


def test_it_works_on_a_database_the_store_made_first(
    server: NominatimServer, db_path: Path, clock: FakeClock
) -> None:
    store = Store(f"sqlite:///{db_path}")
    try:
        first = ProfileGeocoder(settings_for(server), store.engine, clock=clock, sleep=clock.sleep)
        second = ProfileGeocoder(settings_for(server), store.engine, clock=clock, sleep=clock.sleep)
        assert first("Soest") is not None
        assert second("Soest") is not None
    finally:
        store.close()
    assert len(server.requests) == 1
