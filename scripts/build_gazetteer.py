"""Build the geographic data shipped inside the package, in listener/geo/data/.

* `places.tsv.gz`, the gazetteer: from ../shared/data/nl-be-places.tsv (relative to the repo
  root), the columns that `listener.geo.gazetteer` reads. The CBS municipality rows (feature code
  ADM2) have no GeoNames id; they get minus their CBS number instead (GM0307 → -307), so every
  row has a unique integer id.
* `gemeenten.geojson.gz`, the municipality polygons that `listener.geo.areas.load_area` reads for
  a branch area "gemeente:GM0307" or "gemeente:Amersfoort": from
  ../shared/data/nl-gemeenten-2024.geojson, one feature per municipality sorted by CBS code, with
  the properties `statcode` (GM0307), `statnaam` (the CBS name without CBS's suffix: "Bergen"),
  `statnaam_cbs` (the full CBS name: "Bergen (NH.)") and `provincie`; coordinates rounded to 6
  decimals (about 0.1 m, far below the 100 m simplification of the source).

Both are gzip files whose bytes depend only on the input (gzip mtime 0, no file name in the
header, JSON with sorted keys), so running the script twice gives the same files.

Usage: python scripts/build_gazetteer.py [SOURCE_TSV] [OUTPUT_GZ] [SOURCE_GEOJSON] [OUTPUT_GZ]
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "data" / "nl-be-places.tsv"
OUTPUT = REPO / "listener" / "geo" / "data" / "places.tsv.gz"
GEMEENTEN_SOURCE = REPO.parent / "shared" / "data" / "nl-gemeenten-2024.geojson"
GEMEENTEN_OUTPUT = REPO / "listener" / "geo" / "data" / "gemeenten.geojson.gz"
COORDINATE_DECIMALS = 6
# CBS adds a suffix to a name that two municipalities or a municipality and a province share:
# "Groningen (gemeente)", "Bergen (NH.)", "Hengelo (O.)".
CBS_SUFFIX = re.compile(r"\s*\([^()]*\)$")
COLUMNS = (
    "geonameid",
    "name",
    "alt_names",
    "lat",
    "lon",
    "country",
    "feature_code",
    "admin1",
    "gemeente",
    "population",
)


def place_id(row: dict[str, str]) -> str:
    """The GeoNames id, or minus the CBS number for a municipality row."""
    if row["geonameid"]:
        return row["geonameid"]
    code = row["gemeente_code"]
    if row["feature_code"] != "ADM2" or not code.startswith("GM"):
        raise ValueError(f"row without an id: {row['name']!r}")
    return str(-int(code[2:]))


def build(source: Path = SOURCE, output: Path = OUTPUT) -> int:
    """Write the packaged gazetteer; return the number of places written."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE)
    writer.writerow(COLUMNS)
    count = 0
    with source.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            row = {**row, "geonameid": place_id(row), "population": row["population"] or "0"}
            writer.writerow([row[column] for column in COLUMNS])
            count += 1
    _write_gzip(output, text.getvalue().encode("utf-8"))
    return count


def short_name(cbs_name: str) -> str:
    """The CBS name without its suffix: 'Bergen (NH.)' → 'Bergen'."""
    return CBS_SUFFIX.sub("", cbs_name)


def _rounded(coordinates: Any) -> Any:
    if isinstance(coordinates, list):
        return [_rounded(c) for c in coordinates]
    return round(float(coordinates), COORDINATE_DECIMALS)


def build_gemeenten(source: Path = GEMEENTEN_SOURCE, output: Path = GEMEENTEN_OUTPUT) -> int:
    """Write the packaged municipality polygons; return the number of municipalities written."""
    collection = json.loads(source.read_text(encoding="utf-8"))
    features = []
    for feature in sorted(collection["features"], key=lambda f: f["properties"]["statcode"]):
        props = feature["properties"]
        geometry = feature["geometry"]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "statcode": props["statcode"],
                    "statnaam": short_name(props["statnaam"]),
                    "statnaam_cbs": props["statnaam"],
                    "provincie": props["provincie"],
                },
                "geometry": {
                    "type": geometry["type"],
                    "coordinates": _rounded(geometry["coordinates"]),
                },
            }
        )
    out = {
        "type": "FeatureCollection",
        "name": "gemeenten-2024",
        "attribution": "Gemeentegrenzen: Kadaster / Centraal Bureau voor de Statistiek, 2024",
        "features": features,
    }
    data = json.dumps(out, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    _write_gzip(output, data.encode("utf-8"))
    return len(features)


def _write_gzip(output: Path, data: bytes) -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(buffer.getvalue())


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else SOURCE
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    count = build(source, output)
    print(f"wrote {count} places to {output} ({output.stat().st_size:,} bytes)")
    polygons = Path(argv[2]) if len(argv) > 2 else GEMEENTEN_SOURCE
    polygons_out = Path(argv[3]) if len(argv) > 3 else GEMEENTEN_OUTPUT
    count = build_gemeenten(polygons, polygons_out)
    print(f"wrote {count} municipalities to {polygons_out} ({polygons_out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
