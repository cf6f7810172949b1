"""Branch areas, and the index that tells which of them hold a point.

A branch serves an `Area`: a circle of `radius_km` around the branch, or a polygon (the
municipality it serves, or any GeoJSON polygon) when `polygon` is set. The branch's own point
(`lat`, `lon`) stays in both cases: distances are measured to it and, when a point lies in two
areas, the nearest branch point wins.

`AreaIndex` is built once from all areas and answers per point without a loop over them:

* every area has an envelope, a longitude/latitude box that certainly holds it, in a
  `shapely.STRtree`. For a circle the box comes from the geodesic direct problem at 0°, 90°,
  180° and 270° (never "radius / 111"): north and south from the centre, east and west from the
  poleward edge of the box, because away from the equator a geodesic circle bulges poleward and
  reaches slightly further east than the point due east of its centre; a degree of longitude is
  shortest on the poleward edge, so the box from there holds the whole circle (a test checks
  points all round 200 km circles). A polygon's envelope is its bounding box.
* a query asks the tree for the envelopes that hold the point, then checks only those exactly:
  geodesic distance ≤ radius, or `polygon.covers(point)`. The cost per point is the tree query
  plus a few exact checks, whatever the number of areas.
* `nearest` uses `STRtree.nearest` on the branch points (planar, in degrees) and then measures
  geodesically every branch point that could still be nearer (see `AreaIndex.nearest`).
* answers are remembered per point (`MEMO_POINTS` points an index, the oldest forgotten
  first): posts are placed at the coordinates of the places they name, and the same towns come
  back all day, so most points are measured once.
* `near_misses` are areas the point is just outside: for a circle, within `factor` × its radius
  of the branch; for a polygon, within `POLYGON_NEAR_MISS_KM` (2 km) of its edge, whatever the
  factor: a municipality is not round, so "twice its radius" has no meaning there, and 2 km is the
  distance at which someone still says "just outside town".

`load_area` reads `Branch.area`: "gemeente:GM0307" or "gemeente:Amersfoort" (the municipality
polygons shipped in `data/gemeenten.geojson.gz`: Kadaster / CBS 2024, see data/LICENCE.md) or a
GeoJSON file relative to the queries folder.

Coordinates are WGS84 throughout; shapely points are (lon, lat). Nothing here is meant for areas
across the poles or the date line.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy
import shapely
from pyproj import Geod
from rapidfuzz import fuzz, process
from shapely import affinity
from shapely.errors import ShapelyError
from shapely.geometry import Point, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from listener.text import fold

POLYGON_NEAR_MISS_KM = 2.0  # a point this close to a polygon's edge is a near miss
NEAR_MISS_FACTOR = 2.0  # a point within this many radii of a branch is a near miss
# A degree of latitude is at least this long anywhere (WGS84, at the equator); a degree of
# longitude at latitude φ is at least this × cos φ. Used only to bound a search, never as a size.
MIN_KM_PER_DEGREE = 110.57
_BOX_PAD = 1.001  # a thousandth more, against rounding in the destination arithmetic
# A great-circle distance on a sphere of the mean earth radius is within 0.57% of the geodesic
# one (the ellipsoid's radii of curvature lie between 6,335 and 6,400 km); with this margin it
# safely rules out candidates before the (slower) geodesic.
MEAN_EARTH_RADIUS_KM = 6371.0088
_FEW = 16  # up to this many candidates are estimated one by one, faster than numpy's overhead
_ROUGH_MARGIN = 1.006
_POINT = ("point", 0.0)  # where a point's answers keep its shapely Point
MEMO_POINTS = 2048  # answers an index remembers (see the module doc)
_GEMEENTEN = "gemeenten.geojson.gz"
_GM_CODE = re.compile(r"^gm\s*(\d{1,4})$")
# Names people use for a municipality that CBS spells otherwise.
MUNICIPALITY_ALIASES = {"den haag": "GM0518", "the hague": "GM0518", "den bosch": "GM0796"}


@dataclass(frozen=True, slots=True)
class Area:
    """The area a branch serves: a circle of `radius_km` around it, or `polygon` when set."""

    org_id: str
    branch_id: str
    name: str
    lat: float  # the branch's own point: distances, and the nearest branch wins
    lon: float
    radius_km: float  # not used for containment when there is a polygon
    polygon: BaseGeometry | None = field(default=None, compare=False)

    def describe(self) -> str:
        """'radius 3 km' or 'its polygon area'."""
        return f"radius {self.radius_km:g} km" if self.polygon is None else "its polygon area"


@dataclass(frozen=True, slots=True)
class BranchHit:
    area: Area
    distance_km: float  # geodesic, from the point to the branch's own point
    outside_km: float = 0.0  # how far outside the area the point lies (0 inside)


class AreaIndex:
    """Many branch areas, indexed once; see the module doc."""

    def __init__(self, areas: Iterable[Area]) -> None:
        self.areas: tuple[Area, ...] = tuple(areas)
        self._tree = shapely.STRtree([_envelope(a, 1.0, 0.0) for a in self.areas])
        self._points = shapely.STRtree([Point(a.lon, a.lat) for a in self.areas])
        self._max_abs_lat = max((abs(a.lat) for a in self.areas), default=0.0)
        self._lats = numpy.radians([a.lat for a in self.areas])  # for estimates in bulk
        self._lons = numpy.radians([a.lon for a in self.areas])
        self._near_trees: dict[float, Any] = {}
        self._memo: dict[tuple[float, float], dict[tuple[str, float], Any]] = {}
        self._memo_lock = threading.Lock()  # the daemon's polls decide in several threads
        for area in self.areas:
            if area.polygon is not None:
                shapely.prepare(area.polygon)

    def __len__(self) -> int:
        return len(self.areas)

    def containing(self, lat: float, lon: float) -> list[BranchHit]:
        """Every area that holds the point, the nearest branch point first."""
        return list(self._remember("containing", lat, lon, 0.0))

    def inside(self, lat: float, lon: float) -> bool:
        """Whether some area holds the point: `containing`, remembered, as a post asked about
        a place is then placed there."""
        return bool(self._remember("inside", lat, lon, 0.0))

    def nearest(self, lat: float, lon: float) -> BranchHit | None:
        """The area whose branch point is nearest, inside it or not; None without areas."""
        found: BranchHit | None = self._remember("nearest", lat, lon, 0.0)
        return found

    def near_misses(
        self, lat: float, lon: float, factor: float = NEAR_MISS_FACTOR
    ) -> list[BranchHit]:
        """Areas the point lies just outside (see the module doc), nearest branch point first."""
        return list(self._remember("near_misses", lat, lon, factor))

    def _remember(self, question: str, lat: float, lon: float, factor: float) -> Any:
        """The answer to a question about a point, measured once (see the module doc)."""
        key = (question, factor)
        with self._memo_lock:
            answers = self._memo.get((lat, lon))
            if answers is None:
                if len(self._memo) >= MEMO_POINTS:
                    del self._memo[next(iter(self._memo))]  # the oldest point
                answers = self._memo[lat, lon] = {}
            elif key in answers:
                return answers[key]
        if question == "inside":  # asked of the place a post is then placed at: one query
            answer: Any = bool(self._remember("containing", lat, lon, 0.0))
        else:
            point = answers.get(_POINT)
            if point is None:
                point = answers[_POINT] = Point(lon, lat)
            if question == "containing":
                answer = tuple(self._containing(lat, lon, point))
            elif question == "nearest":
                answer = self._nearest(lat, lon, point)
            else:
                answer = tuple(self._near_misses(lat, lon, factor, point))
        answers[key] = answer
        return answer

    def _containing(self, lat: float, lon: float, point: Point) -> list[BranchHit]:
        hits = []
        for i in self._tree.query(point):
            area = self.areas[int(i)]
            if area.polygon is not None:
                if area.polygon.covers(point):
                    hits.append(BranchHit(area, _km((lat, lon), area)))
            elif _rough_km(lat, lon, area) <= area.radius_km * _ROUGH_MARGIN:
                km = _km((lat, lon), area)
                if km <= area.radius_km:
                    hits.append(BranchHit(area, km))
        return sorted(hits, key=_order)

    def _nearest(self, lat: float, lon: float, point: Point) -> BranchHit | None:
        """The tree's nearest point in degrees is not always the geodesically nearest (a degree of
        longitude is shorter than one of latitude), so it only sets a bound: a point nearer than
        its distance g lies within g / (MIN_KM_PER_DEGREE × cos φ) degrees, φ being the highest
        latitude such a point can reach. Those candidates are measured geodesically nearest
        first by a great-circle estimate, until the estimate rules out all the rest.
        """
        if not self.areas:
            return None
        first = self.areas[int(self._points.nearest(point))]
        bound_km = _rough_km(lat, lon, first) * _ROUGH_MARGIN
        highest = min(89.0, max(abs(lat), self._max_abs_lat) + bound_km / MIN_KM_PER_DEGREE)
        degrees = bound_km / (MIN_KM_PER_DEGREE * math.cos(math.radians(highest)))
        found = self._points.query(point, predicate="dwithin", distance=degrees * _BOX_PAD)
        if len(found) > _FEW:  # many: estimated in one numpy pass
            estimates = _rough_km_many(lat, lon, self._lats[found], self._lons[found]).tolist()
        else:
            estimates = [_rough_km(lat, lon, self.areas[i]) for i in found.tolist()]
        best: BranchHit | None = None
        for at in sorted(range(len(estimates)), key=estimates.__getitem__):
            if best is not None and estimates[at] / _ROUGH_MARGIN > best.distance_km:
                break  # this one and all after it are further than the best
            area = self.areas[int(found[at])]
            hit = BranchHit(area, _km((lat, lon), area))
            if best is None or _order(hit) < _order(best):
                best = hit
        if best is None:
            best = BranchHit(first, _km((lat, lon), first))
        return BranchHit(best.area, best.distance_km, self._outside(point, best))

    def _near_misses(self, lat: float, lon: float, factor: float, point: Point) -> list[BranchHit]:
        tree = self._near_trees.get(factor)
        if tree is None:
            envelopes = [_envelope(a, factor, POLYGON_NEAR_MISS_KM) for a in self.areas]
            tree = self._near_trees[factor] = shapely.STRtree(envelopes)
        hits = []
        for i in tree.query(point):
            area = self.areas[int(i)]
            if area.polygon is not None:
                if area.polygon.covers(point):
                    continue
                outside = _km_to_polygon(point, area.polygon)
                if outside <= POLYGON_NEAR_MISS_KM:
                    hits.append(BranchHit(area, _km((lat, lon), area), outside))
            else:
                rough = _rough_km(lat, lon, area)
                if not (
                    area.radius_km / _ROUGH_MARGIN
                    < rough
                    <= factor * area.radius_km * _ROUGH_MARGIN
                ):
                    continue
                km = _km((lat, lon), area)
                if area.radius_km < km <= factor * area.radius_km:
                    hits.append(BranchHit(area, km, km - area.radius_km))
        return sorted(hits, key=_order)

    def _outside(self, point: Point, hit: BranchHit) -> float:
        polygon = hit.area.polygon
        if polygon is None:
            return max(0.0, hit.distance_km - hit.area.radius_km)
        return 0.0 if polygon.covers(point) else _km_to_polygon(point, polygon)


#: The WGS-84 ellipsoid in km (major axis, flattening) as geopy's `ELLIPSOIDS` has it. geopy's
#: `geodesic` solves Karney's geodesic problems with it in geographiclib (pure Python, ~40 µs a
#: distance); PROJ's C implementation of the same algorithm (pyproj's `Geod`, under 1 µs) agrees
#: with it to a few nanometres.
WGS84_KM = (6378.137, 1 / 298.257223563)
_GEOD = Geod(a=WGS84_KM[0] * 1000, f=WGS84_KM[1])


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic km between two points: geopy's `geodesic((lat1, lon1), (lat2, lon2)).km`."""
    return float(_GEOD.inv(lon1, lat1, lon2, lat2)[2]) / 1000


def _km(point: tuple[float, float], area: Area) -> float:
    return distance_km(point[0], point[1], area.lat, area.lon)


def _destination(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point `km` from (lat, lon) at `bearing` degrees: geopy's `destination`."""
    lon2, lat2, _ = _GEOD.fwd(lon, lat, bearing, km * 1000)
    return float(lat2), float(lon2)


def _rough_km(lat: float, lon: float, area: Area) -> float:
    """Great-circle km on a sphere (haversine): only to rule candidates out, see the margin."""
    phi1, phi2 = math.radians(lat), math.radians(area.lat)
    dphi, dlmb = phi2 - phi1, math.radians(area.lon - lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * MEAN_EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _rough_km_many(lat: float, lon: float, lats: Any, lons: Any) -> Any:
    """`_rough_km` from one point to many (latitudes and longitudes in radians, numpy)."""
    phi1, lmb1 = math.radians(lat), math.radians(lon)
    h = (
        numpy.sin((lats - phi1) / 2) ** 2
        + math.cos(phi1) * numpy.cos(lats) * numpy.sin((lons - lmb1) / 2) ** 2
    )
    return 2 * MEAN_EARTH_RADIUS_KM * numpy.arcsin(numpy.minimum(1.0, numpy.sqrt(h)))


def _order(hit: BranchHit) -> tuple[float, str, str]:
    return (hit.distance_km, hit.area.org_id, hit.area.branch_id)


def _envelope(area: Area, factor: float, polygon_margin_km: float) -> BaseGeometry:
    """A box that certainly holds the area (the circle grown by `factor`, the polygon by km)."""
    if area.polygon is None:
        south, west, north, east = grown_box(
            area.lat, area.lon, area.lat, area.lon, factor * area.radius_km
        )
    else:
        lon_min, lat_min, lon_max, lat_max = area.polygon.bounds
        south, west, north, east = grown_box(lat_min, lon_min, lat_max, lon_max, polygon_margin_km)
    return box(west, south, east, north)


def grown_box(
    south: float, west: float, north: float, east: float, km: float
) -> tuple[float, float, float, float]:
    """(south, west, north, east) of a box holding every point within `km` of the given box.

    Geodesic throughout: north and south by `destination` at 0° and 180°, east and west at 90°
    and 270° from the poleward edge of the grown box (see the module doc); each edge a hair
    further out (`_BOX_PAD`; 1e-9° north and south, a tenth of a millimetre), against rounding.
    """
    if km <= 0:
        return south, west, north, east
    north = min(90.0, _destination(north, east, 0, km)[0] + 1e-9)
    south = max(-90.0, _destination(south, west, 180, km)[0] - 1e-9)
    edge = north if abs(north) >= abs(south) else south
    east_reach = (_destination(edge, east, 90, km)[1] - east) % 360
    west_reach = (west - _destination(edge, west, 270, km)[1]) % 360
    return south, west - _BOX_PAD * west_reach, north, east + _BOX_PAD * east_reach


def _km_to_polygon(point: Point, polygon: BaseGeometry) -> float:
    """Geodesic km from a point outside the polygon to the polygon's nearest point.

    The nearest point is found in a plane whose longitudes are shrunk by cos(latitude), which is
    close to true distances over the few kilometres that matter here; the distance to it is then
    measured geodesically.
    """
    shrink = math.cos(math.radians(point.y))
    flat = affinity.scale(polygon, xfact=shrink, yfact=1.0, origin=(0, 0))
    near, _ = nearest_points(flat, Point(point.x * shrink, point.y))
    return distance_km(point.y, point.x, near.y, near.x / shrink)


# -- Branch.area ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Municipality:
    code: str  # GM0307
    name: str  # Bergen
    cbs_name: str  # Bergen (NH.)
    province: str
    geometry: dict[str, Any]  # GeoJSON


def load_area(spec: str, queries_dir: Path) -> BaseGeometry:
    """The polygon a `Branch.area` names: 'gemeente:GM0307', 'gemeente:Amersfoort' or a file.

    Raises ValueError with a message for the configuration's author: an unknown municipality
    names the closest known ones, a bad GeoJSON file is named.
    """
    text = spec.strip()
    prefix, colon, rest = text.partition(":")
    if colon and fold(prefix) == "gemeente":
        return shape(municipality(rest).geometry)
    path = queries_dir / text
    return _read_geojson(path)


def municipality(name_or_code: str) -> Municipality:
    """The municipality by CBS code ('GM0307'), name ('Amersfoort') or CBS name ('Bergen (NH.)')."""
    by_code, by_name = _municipalities()
    key = fold(name_or_code)
    code = _GM_CODE.match(key.replace(" ", ""))
    if code:
        found = by_code.get(f"GM{int(code.group(1)):04d}")
        if found is None:
            raise ValueError(f"unknown municipality code {name_or_code.strip()!r}")
        return found
    if key in MUNICIPALITY_ALIASES:
        return by_code[MUNICIPALITY_ALIASES[key]]
    named = by_name.get(key, [])
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        options = " or ".join(f"'gemeente:{m.cbs_name}' ({m.code})" for m in named)
        raise ValueError(f"municipality {name_or_code.strip()!r} is ambiguous: use {options}")
    raise ValueError(f"unknown municipality {name_or_code.strip()!r}{_did_you_mean(key)}")


def _did_you_mean(key: str) -> str:
    _, by_name = _municipalities()
    found = process.extract(key, list(by_name), scorer=fuzz.ratio, limit=3, score_cutoff=70)
    if not found:
        return " (use a CBS name such as Amersfoort or a code such as GM0307)"
    best = found[0][1]
    names = dict.fromkeys(by_name[k][0].name for k, score, _ in found if score >= best - 5)
    return f" (did you mean {' or '.join(names)}?)"


@cache
def _municipalities() -> tuple[dict[str, Municipality], dict[str, list[Municipality]]]:
    """The packaged municipalities by code and by folded name (short and CBS name)."""
    raw = resources.files("listener.geo").joinpath("data", _GEMEENTEN).read_bytes()
    collection = json.loads(gzip.decompress(raw))
    by_code: dict[str, Municipality] = {}
    by_name: dict[str, list[Municipality]] = {}
    for feature in collection["features"]:
        props = feature["properties"]
        found = Municipality(
            props["statcode"],
            props["statnaam"],
            props["statnaam_cbs"],
            props["provincie"],
            feature["geometry"],
        )
        by_code[found.code] = found
        for name in dict.fromkeys((fold(found.name), fold(found.cbs_name))):
            by_name.setdefault(name, []).append(found)
    return by_code, by_name


def municipalities() -> Sequence[Municipality]:
    """Every packaged municipality, by CBS code."""
    return tuple(_municipalities()[0].values())


def _read_geojson(path: Path) -> BaseGeometry:
    """A polygon from a GeoJSON file: a Polygon or MultiPolygon geometry, Feature or collection."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"area file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"area file {path}: not readable GeoJSON ({exc})") from None
    try:
        geometries = list(_geometries(data))
        parts = [shape(g) for g in geometries]
    except (KeyError, TypeError, ValueError, AttributeError, ShapelyError) as exc:
        raise ValueError(f"area file {path}: not a GeoJSON polygon ({exc})") from None
    if not parts:
        raise ValueError(f"area file {path}: holds no polygon")
    for part in parts:
        if part.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"area file {path}: a {part.geom_type} is not an area; use a Polygon")
        if part.is_empty:
            raise ValueError(f"area file {path}: an empty polygon is not an area")
        if not part.is_valid:
            reason = shapely.is_valid_reason(part)
            raise ValueError(f"area file {path}: the polygon is not valid ({reason})")
    area = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    lon_min, lat_min, lon_max, lat_max = area.bounds
    if not (-180 <= lon_min <= lon_max <= 180 and -90 <= lat_min <= lat_max <= 90):
        raise ValueError(
            f"area file {path}: coordinates must be WGS84 longitude, latitude "
            f"(found x {lon_min:g}..{lon_max:g}, y {lat_min:g}..{lat_max:g})"
        )
    return area


def _geometries(data: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(data, dict):
        raise ValueError("expected a GeoJSON object")
    crs = data.get("crs")
    if crs is not None:
        name = str(crs.get("properties", {}).get("name", "")) if isinstance(crs, dict) else ""
        if not re.search(r"CRS84|EPSG:*4326$", name):
            raise ValueError(f"coordinates must be WGS84 longitude, latitude, not {name or crs!r}")
    kind = data.get("type")
    if kind == "FeatureCollection":
        for feature in data["features"]:
            yield from _geometries(feature)
    elif kind == "Feature":
        if data.get("geometry") is not None:
            yield data["geometry"]
    elif kind == "GeometryCollection":
        yield from data["geometries"]
    elif isinstance(kind, str):
        yield data
    else:
        raise ValueError("expected a GeoJSON object with a 'type'")
