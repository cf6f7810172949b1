"""Branch areas: circles and polygons in one STRtree index, and `Branch.area` specs.

Municipality names and codes used here are in the packaged gemeenten.geojson.gz (built from
shared/data/nl-gemeenten-2024.geojson); the first tests check that.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
from geopy.distance import ELLIPSOIDS, geodesic
from shapely.geometry import Point

import listener.geo.areas as areas_module
from listener.config import ConfigError, load_config
from listener.geo import locate as locate_module
from listener.geo.areas import (
    POLYGON_NEAR_MISS_KM,
    Area,
    AreaIndex,
    BranchHit,
    grown_box,
    load_area,
    municipalities,
    municipality,
)
from listener.geo.gazetteer import PlaceMention, default_gazetteer
from listener.pipeline import Classifier
from listener.post import Author, Post
from tests.support.configs import QUERIES, write_setup

REPO = Path(__file__).resolve().parent.parent
SHARED_GEOJSON = REPO.parent / "shared" / "data" / "nl-gemeenten-2024.geojson"
PACKAGED = REPO / "listener" / "geo" / "data" / "gemeenten.geojson.gz"
LICENCE = REPO / "listener" / "geo" / "data" / "LICENCE.md"
BUILD_SCRIPT = REPO / "scripts" / "build_gazetteer.py"

AMERSFOORT = (52.1561, 5.3878)  # the branch point used in tests/test_locate.py
LEUSDEN = (52.1290, 5.4300)


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(geodesic(a, b).km)


def circle(branch_id: str, point: tuple[float, float], radius_km: float) -> Area:
    return Area("org", branch_id, branch_id, point[0], point[1], radius_km)


def random_areas(count: int, seed: int = 7) -> list[Area]:
    """Circles of 1-10 km spread over the Netherlands and Belgium."""
    rng = random.Random(seed)
    return [
        circle(f"b{i:04d}", (rng.uniform(49.5, 53.6), rng.uniform(2.5, 7.2)), rng.uniform(1, 10))
        for i in range(count)
    ]


def random_points(count: int, seed: int = 11) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(49.3, 53.8), rng.uniform(2.3, 7.4)) for _ in range(count)]


# -- Area and BranchHit live here; locate re-exports them --------------------------------------


def test_area_and_branch_hit_are_still_importable_from_locate() -> None:
    assert locate_module.Area is Area
    assert locate_module.BranchHit is BranchHit


# -- circles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("lat", "radius_km"), [(52.0, 3.0), (52.0, 200.0), (70.0, 200.0)])
def test_a_circles_box_holds_every_point_of_the_geodesic_circle(
    lat: float, radius_km: float
) -> None:
    south, west, north, east = grown_box(lat, 5.0, lat, 5.0, radius_km)
    step = geodesic(kilometers=radius_km)
    for bearing in range(0, 360, 2):
        edge = step.destination((lat, 5.0), bearing)
        assert south <= edge.latitude <= north
        assert west <= edge.longitude <= east


def test_a_circles_box_is_not_a_radius_over_111_box() -> None:
    # At 52° a degree of longitude is about 68.7 km: 'radius / 111' would be far too narrow.
    _, _, north, east = grown_box(52.0, 5.0, 52.0, 5.0, 10.0)
    assert (east - 5.0) > 10.0 / 111 * 1.5
    assert km((52.0, 5.0), (52.0, east)) == pytest.approx(10.0, rel=0.01)
    assert km((52.0, 5.0), (north, 5.0)) == pytest.approx(10.0, rel=1e-6)


def test_a_point_in_a_circle_is_found_and_one_outside_is_not() -> None:
    index = AreaIndex([circle("amersfoort", AMERSFOORT, 5)])
    inside = geodesic(kilometers=4.9).destination(AMERSFOORT, 90)
    outside = geodesic(kilometers=5.1).destination(AMERSFOORT, 90)
    [hit] = index.containing(inside.latitude, inside.longitude)
    assert hit.distance_km == pytest.approx(4.9, abs=1e-6)
    assert hit.outside_km == 0
    assert index.containing(outside.latitude, outside.longitude) == []


def test_a_point_in_two_areas_lists_the_nearest_branch_first() -> None:
    index = AreaIndex([circle("amersfoort", AMERSFOORT, 5), circle("leusden", LEUSDEN, 3)])
    hits = index.containing(52.1300, 5.4310)
    assert [h.area.branch_id for h in hits] == ["leusden", "amersfoort"]
    assert hits[0].distance_km < hits[1].distance_km


def test_the_index_agrees_with_a_loop_over_every_area() -> None:
    areas = random_areas(150)
    index = AreaIndex(areas)
    for lat, lon in random_points(100):
        distances = sorted((km((lat, lon), (a.lat, a.lon)), a.branch_id, a) for a in areas)
        inside = [b for d, b, a in distances if d <= a.radius_km]
        misses = [b for d, b, a in distances if a.radius_km < d <= 2 * a.radius_km]
        assert [h.area.branch_id for h in index.containing(lat, lon)] == inside
        assert [h.area.branch_id for h in index.near_misses(lat, lon)] == misses
        hit = index.nearest(lat, lon)
        assert hit is not None
        assert hit.area.branch_id == distances[0][1]
        assert hit.distance_km == pytest.approx(distances[0][0])


def test_nearest_is_geodesic_where_the_nearest_in_degrees_is_another_branch() -> None:
    # 0.1° east is about 6.9 km at 52°N; 0.08° north is about 8.9 km: degrees say north wins.
    east = circle("east", (52.0, 5.1), 1)
    north = circle("north", (52.08, 5.0), 1)
    hit = AreaIndex([north, east]).nearest(52.0, 5.0)
    assert hit is not None and hit.area.branch_id == "east"
    assert hit.outside_km == pytest.approx(hit.distance_km - 1)


def test_an_empty_index_answers_nothing() -> None:
    index = AreaIndex(())
    assert index.containing(52.0, 5.0) == []
    assert index.nearest(52.0, 5.0) is None
    assert index.near_misses(52.0, 5.0) == []


def test_a_point_just_outside_a_radius_is_a_near_miss_and_one_far_outside_is_not() -> None:
    index = AreaIndex([circle("amersfoort", AMERSFOORT, 5)])
    near = geodesic(kilometers=7).destination(AMERSFOORT, 200)
    far = geodesic(kilometers=11).destination(AMERSFOORT, 200)
    [miss] = index.near_misses(near.latitude, near.longitude)
    assert miss.distance_km == pytest.approx(7, abs=1e-6)
    assert miss.outside_km == pytest.approx(2, abs=1e-6)
    assert index.near_misses(far.latitude, far.longitude) == []
    assert index.near_misses(far.latitude, far.longitude, factor=2.5) != []
    assert index.near_misses(AMERSFOORT[0], AMERSFOORT[1]) == []  # inside is no miss


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per geodesic distance the index measures from now on."""
    found: list[int] = []
    real_km = areas_module._km

    def counting_km(point: tuple[float, float], area: Area) -> float:
        found.append(1)
        return real_km(point, area)

    monkeypatch.setattr(areas_module, "_km", counting_km)
    return found


def test_the_work_per_point_does_not_grow_with_the_number_of_areas(measured: list[int]) -> None:
    counts = {}
    for size in (10, 100, 1000):
        index = AreaIndex(random_areas(size))
        measured.clear()
        for lat, lon in random_points(200):
            index.containing(lat, lon)
            index.nearest(lat, lon)
            index.near_misses(lat, lon)
        counts[size] = len(measured) / 200
    # A loop would measure every area (1,000 a point); the index measures a handful.
    assert counts[1000] < 25
    assert counts[1000] < 3 * max(counts[10], 1) + 20


def test_an_index_measures_a_point_once_and_remembers_a_bounded_number(
    measured: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(areas_module, "MEMO_POINTS", 50)
    index = AreaIndex(random_areas(100))
    points = random_points(40)
    first = [(index.containing(*p), index.nearest(*p), index.near_misses(*p)) for p in points]
    assert measured
    measured.clear()
    again = [(index.containing(*p), index.nearest(*p), index.near_misses(*p)) for p in points]
    assert again == first and measured == []  # the same answers, nothing measured again
    again[0][0].clear()  # an answer is the caller's own list
    assert index.containing(*points[0]) == first[0][0]
    for p in random_points(100, seed=7):
        index.nearest(*p)
    assert len(index._memo) <= 50  # the oldest answers are forgotten
    measured.clear()
    assert index.nearest(*points[0]) == first[0][1] and measured  # measured anew, the same


def test_distances_and_destinations_are_geopys_to_a_micrometre() -> None:
    geopys = ELLIPSOIDS["WGS-84"]
    assert (geopys[0], geopys[2]) == areas_module.WGS84_KM
    pairs = zip(random_points(300), random_points(300, seed=3), strict=True)
    for (lat1, lon1), (lat2, lon2) in pairs:
        expected = geodesic((lat1, lon1), (lat2, lon2)).km
        assert areas_module.distance_km(lat1, lon1, lat2, lon2) == pytest.approx(expected, abs=1e-9)
    for bearing in range(0, 360, 15):
        there = geodesic(kilometers=12.5).destination(AMERSFOORT, bearing)
        lat, lon = areas_module._destination(AMERSFOORT[0], AMERSFOORT[1], bearing, 12.5)
        assert (lat, lon) == pytest.approx((there.latitude, there.longitude), abs=1e-11)


# -- polygons ----------------------------------------------------------------------------------


def test_the_packaged_file_holds_the_342_municipalities_with_short_and_cbs_names() -> None:
    found = municipalities()
    assert len(found) == 342
    bergen = [m for m in found if m.name == "Bergen"]
    assert sorted(m.cbs_name for m in bergen) == ["Bergen (L.)", "Bergen (NH.)"]
    groningen = municipality("GM0014")
    assert (groningen.name, groningen.cbs_name) == ("Groningen", "Groningen (gemeente)")
    assert municipality("Amersfoort").province == "Utrecht"


def test_the_packaged_polygons_are_what_the_build_script_writes(tmp_path: Path) -> None:
    if not SHARED_GEOJSON.exists():
        pytest.skip("shared/data is not beside the repo")
    spec = importlib.util.spec_from_file_location("build_gazetteer", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.build_gemeenten(SHARED_GEOJSON, tmp_path / "g.gz") == 342
    assert (tmp_path / "g.gz").read_bytes() == PACKAGED.read_bytes()
    data = json.loads(gzip.decompress(PACKAGED.read_bytes()))
    assert set(data["features"][0]["properties"]) == {
        "statcode",
        "statnaam",
        "statnaam_cbs",
        "provincie",
    }


def test_the_licence_file_credits_kadaster_and_cbs_for_the_boundaries() -> None:
    text = LICENCE.read_text(encoding="utf-8")
    assert "Gemeentegrenzen: Kadaster / Centraal Bureau voor de Statistiek, 2024" in text
    assert "gemeenten.geojson.gz" in text
    assert "abbreviations.tsv" in text


@pytest.mark.parametrize(
    "spec",
    [
        "gemeente:GM0307",
        "gemeente:gm307",
        "gemeente:Amersfoort",
        "Gemeente: amersfoort ",
    ],
)
def test_a_municipality_is_named_by_code_or_name(spec: str, tmp_path: Path) -> None:
    polygon = load_area(spec, tmp_path)
    assert polygon.equals(load_area("gemeente:GM0307", tmp_path))
    assert polygon.covers(Point(AMERSFOORT[1], AMERSFOORT[0]))


def test_a_cbs_name_with_its_suffix_or_a_common_alias_is_understood(tmp_path: Path) -> None:
    assert municipality("Bergen (NH.)").code == "GM0373"
    assert municipality("Bergen (L.)").code == "GM0893"
    assert municipality("Den Haag").cbs_name == "'s-Gravenhage (gemeente)"
    assert municipality("Den Bosch").name == "'s-Hertogenbosch"
    assert load_area("gemeente:Groningen (gemeente)", tmp_path).equals(
        load_area("gemeente:GM0014", tmp_path)
    )


def test_an_unknown_municipality_names_the_closest_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as error:
        load_area("gemeente:Amersfort", tmp_path)
    assert str(error.value) == "unknown municipality 'Amersfort' (did you mean Amersfoort?)"


def test_an_unknown_municipality_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown municipality code 'GM9999'"):
        load_area("gemeente:GM9999", tmp_path)


def test_a_name_two_municipalities_share_asks_for_the_full_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as error:
        load_area("gemeente:Bergen", tmp_path)
    message = str(error.value)
    assert message.startswith("municipality 'Bergen' is ambiguous: use ")
    assert "'gemeente:Bergen (NH.)' (GM0373)" in message
    assert "'gemeente:Bergen (L.)' (GM0893)" in message


def test_a_point_in_a_municipality_area_is_found_and_one_outside_is_not(tmp_path: Path) -> None:
    leusden = Area(
        "org", "leusden", "Leusden", *LEUSDEN, 3, load_area("gemeente:Leusden", tmp_path)
    )
    index = AreaIndex([leusden])
    gazetteer = default_gazetteer()
    achterveld = gazetteer.candidates("Achterveld")[0]
    assert achterveld.gemeente == "Leusden"
    [hit] = index.containing(achterveld.lat, achterveld.lon)
    assert hit.distance_km == pytest.approx(km(LEUSDEN, (achterveld.lat, achterveld.lon)))
    assert hit.distance_km > leusden.radius_km  # the radius does not count for a polygon
    utrecht = gazetteer.candidates("Utrecht")[0]
    assert index.containing(utrecht.lat, utrecht.lon) == []


def test_polygon_and_circle_areas_share_one_index_and_the_nearest_branch_wins(
    tmp_path: Path,
) -> None:
    polygon = load_area("gemeente:Amersfoort", tmp_path)
    areas = [Area("org", "whole-town", "Town", 52.1561, 5.3878, 3, polygon)]
    areas.append(circle("vathorst-ish", (52.19, 5.41), 2))
    index = AreaIndex(areas)
    hits = index.containing(52.185, 5.405)
    assert [h.area.branch_id for h in hits] == ["vathorst-ish", "whole-town"]


def test_a_point_just_outside_a_polygon_is_a_near_miss(tmp_path: Path) -> None:
    polygon = load_area("gemeente:Leusden", tmp_path)
    index = AreaIndex([Area("org", "leusden", "Leusden", *LEUSDEN, 3, polygon)])
    lon_top, lat_top = max(shapely.get_coordinates(polygon), key=lambda c: float(c[1]))
    near = geodesic(kilometers=1).destination((lat_top, lon_top), 0)
    far = geodesic(kilometers=POLYGON_NEAR_MISS_KM + 2).destination((lat_top, lon_top), 0)
    [miss] = index.near_misses(near.latitude, near.longitude)
    assert miss.outside_km == pytest.approx(1, abs=0.05)
    assert miss.distance_km == pytest.approx(km(LEUSDEN, (near.latitude, near.longitude)))
    assert index.near_misses(far.latitude, far.longitude) == []
    hit = index.nearest(near.latitude, near.longitude)
    assert hit is not None and hit.outside_km == pytest.approx(1, abs=0.05)


# -- GeoJSON files -----------------------------------------------------------------------------

SQUARE = [[5.0, 52.0], [5.1, 52.0], [5.1, 52.1], [5.0, 52.1], [5.0, 52.0]]


def write(folder: Path, name: str, data: object) -> str:
    (folder / name).write_text(json.dumps(data), encoding="utf-8")
    return name


@pytest.mark.parametrize(
    "data",
    [
        {"type": "Polygon", "coordinates": [SQUARE]},
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        },
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                }
            ],
        },
        {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
    ],
)
def test_a_geojson_polygon_file_is_read_relative_to_the_queries_folder(
    tmp_path: Path, data: object
) -> None:
    polygon = load_area(write(tmp_path, "area.geojson", data), tmp_path)
    assert polygon.covers(Point(5.05, 52.05))
    assert not polygon.covers(Point(5.15, 52.05))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("{not json", "not readable GeoJSON"),
        ({"type": "Point", "coordinates": [5.0, 52.0]}, "a Point is not an area"),
        ({"type": "FeatureCollection", "features": []}, "holds no polygon"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[5, 52], [5.1, 52.1], [5.1, 52], [5, 52.1], [5, 52]]],
            },
            "the polygon is not valid",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [
                    [[155000, 463000], [156000, 463000], [156000, 464000], [155000, 463000]]
                ],
            },
            "coordinates must be WGS84 longitude, latitude",
        ),
        (
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::28992"}},
                "features": [],
            },
            "coordinates must be WGS84 longitude, latitude",
        ),
        ({"features": []}, "not a GeoJSON polygon"),
    ],
)
def test_a_bad_geojson_file_is_an_error_that_names_the_file(
    tmp_path: Path, content: object, problem: str
) -> None:
    path = tmp_path / "bad.geojson"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_area("bad.geojson", tmp_path)
    assert str(error.value).startswith(f"area file {path}: ")
    assert problem in str(error.value)


# -- the pipeline builds one index per organisation from Branch.area ---------------------------

POLYGON_QUERIES = QUERIES.replace(
    "lat = 52.1325, lon = 5.43194, radius_km = 2.5 }",
    'lat = 52.1325, lon = 5.43194, radius_km = 2.5, area = "gemeente:Leusden" }',
)


def post(text: str, location: str | None = None) -> Post:
    return Post(
        id="p",
        source="test",
        text=text,
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        author=Author(handle="someone", location=location),
    )


def test_the_classifier_uses_a_branchs_municipality_area(tmp_path: Path) -> None:
    assert POLYGON_QUERIES != QUERIES
    classifier = Classifier(load_config(write_setup(tmp_path, queries=POLYGON_QUERIES)))
    [leusden] = [a for a in classifier.areas_by_org["eemland"] if a.branch_id == "leusden"]
    assert leusden.polygon is not None
    assert len(classifier.index_by_org["eemland"]) == 2 and len(classifier.all_index) == 2
    decision = classifier.decide(post("de bieb in Achterveld is dicht"))
    assert (decision.org, decision.branch) == ("eemland", "leusden")


def test_the_config_refuses_an_unknown_municipality(tmp_path: Path) -> None:
    queries = POLYGON_QUERIES.replace("gemeente:Leusden", "gemeente:Leusdn")
    with pytest.raises(ConfigError, match=r"unknown municipality 'Leusdn' \(did you mean Leusden"):
        load_config(write_setup(tmp_path, queries=queries))


def test_the_classifier_passes_its_geocoder_to_locate(tmp_path: Path) -> None:
    asked: list[str] = []
    leusden = default_gazetteer().candidates("Leusden")[0]

    def geocode(location: str) -> PlaceMention | None:
        asked.append(location)
        return PlaceMention(leusden, location, 100.0, False, 0, 0)

    classifier = Classifier(load_config(write_setup(tmp_path)), geocode=geocode)
    decision = classifier.decide(post("de bieb is dicht", location="Qwertyville"))
    assert asked == ["Qwertyville"]
    assert (decision.org, decision.branch) == ("eemland", "leusden")
