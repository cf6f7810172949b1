"""Per-point cost of the branch-area index at 10, 100 and 1,000 branches.

Prints figures; asserts nothing. Branch areas are random circles over the Netherlands
(deterministic seed); each size is measured twice: over the same country (more branches, so
more real hits per point) and at constant density (the country grows with the branches, as
when more organisations join), which is what "1,000 branches cost about what 10 do" means.

    .venv/bin/python bench/areas.py [--points 2000]
"""

from __future__ import annotations

import argparse
import random
import time

from listener.geo.areas import Area, AreaIndex

NL = (50.75, 53.55, 3.35, 7.25)  # south, north, west, east


def areas(count: int, box: tuple[float, float, float, float], rng: random.Random) -> list[Area]:
    south, north, west, east = box
    return [
        Area("org", f"b{i}", f"branch {i}", rng.uniform(south, north), rng.uniform(west, east),
             rng.uniform(1, 5))
        for i in range(count)
    ]  # fmt: skip


def per_point_us(index: AreaIndex, points: list[tuple[float, float]]) -> tuple[float, float]:
    started = time.perf_counter()
    for lat, lon in points:
        index.containing(lat, lon)
    containing = (time.perf_counter() - started) / len(points) * 1e6
    started = time.perf_counter()
    for lat, lon in points:
        index.nearest(lat, lon)
    nearest = (time.perf_counter() - started) / len(points) * 1e6
    return containing, nearest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'branches':>8} {'layout':<18} {'build':>8} {'containing':>12} {'nearest':>10}")
    for count in (10, 100, 1000):
        for layout in ("same country", "constant density"):
            rng = random.Random(count)
            south, north, west, east = NL
            if layout == "constant density":  # a box whose area grows with the count
                side = (count / 1000) ** 0.5
                north = south + (north - south) * side
                east = west + (east - west) * side
            box = (south, north, west, east)
            started = time.perf_counter()
            index = AreaIndex(areas(count, box, rng))
            build_ms = (time.perf_counter() - started) * 1000
            points = [
                (rng.uniform(south, north), rng.uniform(west, east)) for _ in range(args.points)
            ]
            containing, nearest = per_point_us(index, points)
            figures = f"{build_ms:>6.0f}ms {containing:>10.0f}µs {nearest:>8.0f}µs"
            print(f"{count:>8} {layout:<18} {figures}")


if __name__ == "__main__":
    main()
