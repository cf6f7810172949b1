"""Build the gazetteer shipped inside the package: listener/geo/data/places.tsv.gz.

Reads ../shared/data/nl-be-places.tsv (relative to the repo root), keeps the columns that
`listener.geo.gazetteer` reads and writes them as a gzip whose bytes depend only on the input
(gzip mtime 0, no file name in the header), so running it twice gives the same file.

The CBS municipality rows (feature code ADM2) have no GeoNames id; they get minus their CBS
number instead (GM0307 → -307), so every row has a unique integer id.

Usage: python scripts/build_gazetteer.py [SOURCE_TSV] [OUTPUT_GZ]
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "data" / "nl-be-places.tsv"
OUTPUT = REPO / "listener" / "geo" / "data" / "places.tsv.gz"
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
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode("utf-8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(buffer.getvalue())
    return count


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else SOURCE
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    count = build(source, output)
    print(f"wrote {count} places to {output} ({output.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
