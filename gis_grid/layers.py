"""The grid levels as map data: GeoJSON features of a level, simplified and in display
coordinates, and search by code, name or point. The pages that draw them are in ``web``.

Display coordinates: the store holds EPSG:4490 (CGCS2000), treated as WGS84 for
display (they differ by well under a metre). With the ``amap`` basemap the tiles
are GCJ-02, so every overlay coordinate is shifted with :func:`crs.wgs84_to_gcj02`.
"""
from __future__ import annotations

import json
import re
from typing import Literal

import numpy as np
import shapely

from . import crs as crs_mod
from .atlas import Atlas
from .errors import InvalidCoordinatesError, InvalidInputError
from .hierarchy import Level

Basemap = Literal["none", "tianditu", "amap", "mbtiles", "mbtiles-gcj02"]
BASEMAPS = ("none", "tianditu", "amap", "mbtiles", "mbtiles-gcj02")
GCJ02_BASEMAPS = ("amap", "mbtiles-gcj02")  # drawn in GCJ-02: every overlay is shifted to match

# simplification tolerance per level, in degrees (~1e-5 deg = 1 m); coverage-aware so neighbours share edges
SIMPLIFY_DEG = {Level.DISTRICT: 2e-4, Level.STREET: 1e-4, Level.COMMUNITY: 5e-5, Level.GRID: 2e-5}
COORD_DECIMALS = 6

_COORD_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[,，\s]\s*(-?\d+(?:\.\d+)?)\s*$")


def check_basemap(basemap: str) -> str:
    if basemap not in BASEMAPS:
        raise InvalidInputError(f"unknown basemap {basemap!r}; use one of {', '.join(BASEMAPS)}")
    return basemap


def to_display(lon, lat, basemap: str = "none"):
    """Storage lon/lat -> the basemap's display lon/lat (GCJ-02 for amap)."""
    if check_basemap(basemap) in GCJ02_BASEMAPS:
        return crs_mod.wgs84_to_gcj02(lon, lat)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _display_geoms(geoms: np.ndarray, basemap: str) -> np.ndarray:
    if basemap not in GCJ02_BASEMAPS:
        return geoms
    return crs_mod.transform_geoms(geoms, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GCJ02)


def simplify_level(geoms: np.ndarray, level: Level) -> np.ndarray:
    """Simplify one level's polygons; shared edges stay shared (coverage simplification)."""
    tol = SIMPLIFY_DEG[level]
    geoms = np.asarray(geoms, dtype=object)
    try:
        out = shapely.coverage_simplify(geoms, tol)
    except Exception:  # GEOS < 3.12, or an input that is not a clean coverage
        out = shapely.simplify(geoms, tol, preserve_topology=True)
    bad = shapely.is_empty(out) | ~shapely.is_valid(out)
    if bad.any():
        out = np.where(bad, shapely.make_valid(out), out)
    return out


def _round(geoms: np.ndarray) -> np.ndarray:
    """Coordinates to COORD_DECIMALS (~0.1 m); where rounding breaks validity, snap with GEOS instead."""
    grid = 10 ** -COORD_DECIMALS
    out = shapely.set_precision(geoms, grid, mode="pointwise")
    bad = ~shapely.is_valid(out)
    if bad.any():
        out[bad] = shapely.set_precision(geoms[bad], grid, mode="valid_output")
    return out


def level_features(atlas: Atlas, level: Level | str, basemap: str = "none") -> dict:
    """GeoJSON FeatureCollection of one level, simplified, in display coordinates.

    Properties: code, name, level, parent (code), label ([lon, lat] of a point inside
    the polygon, for the map label).
    """
    level = Level.parse(level) if not isinstance(level, Level) else level
    check_basemap(basemap)
    d = atlas.divisions[atlas.divisions["level"] == level.value]
    geoms = simplify_level(d["geometry"].to_numpy(), level)
    geoms = _display_geoms(geoms, basemap)
    geoms = shapely.orient_polygons(_round(geoms), exterior_cw=False)  # RFC 7946: exteriors CCW
    labels = shapely.point_on_surface(geoms)
    lx, ly = np.round(shapely.get_x(labels), COORD_DECIMALS), np.round(shapely.get_y(labels), COORD_DECIMALS)
    features = []
    parents = d["parent_code"].to_numpy() if "parent_code" in d else [None] * len(d)
    for i, (code, name, parent, g) in enumerate(zip(d["code"], d["name"], parents, geoms)):
        features.append({
            "type": "Feature",
            "id": str(code),
            "geometry": json.loads(shapely.to_geojson(g)),
            "properties": {"code": str(code), "name": str(name), "level": level.value,
                           "parent": None if parent is None or parent != parent else str(parent),
                           "label": [float(lx[i]), float(ly[i])]},
        })
    return {"type": "FeatureCollection", "name": level.value, "basemap": basemap,
            "atlas_version": int(atlas.version), "features": features}


def level_geojson_bytes(atlas: Atlas, level: Level | str, basemap: str = "none") -> bytes:
    return json.dumps(level_features(atlas, level, basemap), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


# -- search ------------------------------------------------------------------------
def _division_hit(atlas: Atlas, row, basemap: str) -> dict:
    g = row["geometry"]
    minx, miny, maxx, maxy = shapely.bounds(g)
    bx, by = to_display(np.array([minx, maxx]), np.array([miny, maxy]), basemap)
    p = shapely.point_on_surface(g)
    cx, cy = to_display(p.x, p.y, basemap)
    return {"kind": "division", "code": str(row["code"]), "name": str(row["name"]), "level": str(row["level"]),
            "center": [round(float(cx), COORD_DECIMALS), round(float(cy), COORD_DECIMALS)],
            "bbox": [round(float(v), COORD_DECIMALS) for v in (bx[0], by[0], bx[1], by[1])]}


def search(atlas: Atlas, q: str, basemap: str = "none", limit: int = 10) -> dict:
    """Find a grid/division by code, by name (substring), or a 'lon,lat' point (CGCS2000/WGS84).

    Answers ``{"query", "results": [...]}``; the first result is the best. A point result
    carries the display coordinate and the base grid it falls in (``code``; None outside).
    """
    check_basemap(basemap)
    q = (q or "").strip()
    results: list[dict] = []
    if not q:
        return {"query": q, "results": results}
    d = atlas.divisions
    m = _COORD_RE.match(q)
    if m:
        lon, lat = float(m.group(1)), float(m.group(2))
        reason = crs_mod.check_point(lon, lat)
        if reason:  # a point the caller got wrong (swapped, out of range) says so instead of finding nothing
            raise InvalidCoordinatesError(f"{q!r} reads as a 'lon,lat' point, but {reason}",
                                          detail=[{"row": 0, "reason": reason}])
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            loc = atlas.locate_one(lon, lat, with_building=False)
            x, y = to_display(lon, lat, basemap)
            hit = {"kind": "point", "center": [round(float(x), COORD_DECIMALS), round(float(y), COORD_DECIMALS)],
                   "code": None, "name": None, "level": None, "outside": loc.outside}
            if not loc.outside:
                hit.update(code=loc.grid[0], name=loc.grid[1], level=Level.GRID.value)
            results.append(hit)
        return {"query": q, "results": results}
    if q.isdigit():
        i = atlas.by_code.get(q)
        if i is not None:
            results.append(_division_hit(atlas, d.iloc[i], basemap))
        else:  # a code prefix: the first divisions starting with it
            for _, row in d[d["code"].str.startswith(q)].head(limit).iterrows():
                results.append(_division_hit(atlas, row, basemap))
        return {"query": q, "results": results}
    names = d["name"].astype(str)
    exact = d[names == q]
    part = d[names.str.contains(q, regex=False) & (names != q)]
    for _, row in list(exact.iterrows()) + list(part.head(limit).iterrows()):
        if len(results) >= limit:
            break
        results.append(_division_hit(atlas, row, basemap))
    return {"query": q, "results": results}
