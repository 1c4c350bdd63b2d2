"""Build the portal's bundled map outline (lower-48 state borders) from us-atlas TopoJSON.

The fleet map must work offline, with no tile server and no plotly CDN topojson, so the
outline ships as a small static file. Regenerate it with:

    npm pack us-atlas@3.0.1 && tar xzf us-atlas-3.0.1.tgz
    python scripts/us_outline.py package/states-10m.json app/web/static/geo/us-states.json

Source: U.S. Census Bureau cartographic boundary files (public domain) as redistributed
by us-atlas 3.0.1 (ISC licence, Michael Bostock).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# FIPS codes of states and territories off the lower-48 map (AK, HI, PR and islands).
OFF_MAP = {"02", "15", "60", "66", "69", "72", "78"}
MIN_STEP_DEG = 0.04  # drop points closer than ~4 km: invisible at fleet-map zoom


def decode_arcs(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """Decode delta-encoded, quantized TopoJSON arcs into lon/lat polylines."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def arc_ids(geometry: dict[str, Any]) -> set[int]:
    """Collect the arc indexes a (multi)polygon uses (negative means reversed)."""
    polygons = [geometry["arcs"]] if geometry["type"] == "Polygon" else geometry["arcs"]
    rings = [ring for polygon in polygons for ring in polygon]
    return {i if i >= 0 else ~i for ring in rings for i in ring}


def simplify(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Keep the ends and every point at least MIN_STEP_DEG from the last kept one."""
    kept = [points[0]]
    for lon, lat in points[1:-1]:
        if abs(lon - kept[-1][0]) + abs(lat - kept[-1][1]) >= MIN_STEP_DEG:
            kept.append((lon, lat))
    kept.append(points[-1])
    return kept


def main(source: Path, target: Path) -> None:
    """Write {"lon": [...], "lat": [...]} with null between polylines (one plotly trace)."""
    topo = json.loads(source.read_text())
    arcs = decode_arcs(topo)
    used: set[int] = set()
    for geometry in topo["objects"]["states"]["geometries"]:
        if geometry["id"] not in OFF_MAP:
            used |= arc_ids(geometry)
    lon: list[float | None] = []
    lat: list[float | None] = []
    for index in sorted(used):
        for x, y in simplify(arcs[index]):
            lon.append(round(x, 2))
            lat.append(round(y, 2))
        lon.append(None)
        lat.append(None)
    note = "U.S. Census Bureau cartographic boundaries via us-atlas 3.0.1 (ISC); lower 48"
    target.write_text(json.dumps({"source": note, "lon": lon, "lat": lat}, separators=(",", ":")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
