"""GeoJSON request bodies -> checked coordinates and shapes in the storage CRS (EPSG:4490).

The one reader behind every endpoint that takes GeoJSON: points to locate (``POST /locate``),
a drawn area (``POST /residents/search``) and a plan's new grids (``POST /plans``). The
checks are shared; each entry point keeps the words its endpoint has always answered with,
because clients and tests match on them. Errors are :mod:`gis_grid.errors` classes.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely

from . import crs as crs_mod
from .atlas import check_polygon
from .errors import InvalidCoordinatesError, InvalidGeometryError, InvalidInputError

POLYGONAL = ("Polygon", "MultiPolygon")


# ---------------------------------------------------------------- shared pieces
def is_collection(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "FeatureCollection"


def feature_geometry(feature: Any) -> dict | None:
    """The geometry object of a Feature in a collection, None when it has none."""
    g = feature.get("geometry") if isinstance(feature, dict) else None
    return g if isinstance(g, dict) else None


def count_vertices(value: Any) -> int:
    """Coordinate pairs anywhere in a JSON value (a geometry, feature, collection or edit).

    Cheap enough to run before any geometry is built, so an oversized body is refused first.
    """
    if isinstance(value, dict):
        return sum(count_vertices(v) for k, v in value.items() if k in ("coordinates", "geometry", "geometries",
                                                                        "features", "line"))
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) for v in value):
            return 1
        return sum(count_vertices(v) for v in value)
    return 0


def check_vertices(geom, crs=None, *, feature: int | None = None) -> None:
    """Name NaN, out-of-range, swapped or foreign-CRS vertices instead of letting them match nothing.

    ``feature``: the index of the geometry in a collection, named in the message and details.
    """
    xy = shapely.get_coordinates(geom)
    reasons = crs_mod.check_coordinates(xy[:, 0], xy[:, 1], crs)
    bad = np.flatnonzero(reasons != "")
    if not bad.size:
        return
    first = f"vertex {int(bad[0])}: {reasons[bad[0]]}"
    if feature is None:
        raise InvalidCoordinatesError(f"{bad.size} of {len(xy)} vertices have invalid coordinates: {first}",
                                      detail=[{"vertex": int(i), "reason": str(reasons[i])} for i in bad[:100]])
    raise InvalidCoordinatesError(f"feature {feature}: {first}",
                                  detail=[{"feature": feature, "vertex": int(v), "reason": str(reasons[v])}
                                          for v in bad[:100]])


def to_storage(geom, crs=None):
    """``geom`` from ``crs`` into the storage CRS, vertex by vertex (lon/lat input is already there)."""
    if crs_mod.parse_crs(crs) in (crs_mod.InputCRS.CRS84, crs_mod.InputCRS.CGCS2000):
        return geom
    return crs_mod.transform_geoms(geom, crs, crs_mod.InputCRS.CGCS2000)


# ---------------------------------------------------------------- points (POST /locate)
def points(body: Any) -> tuple[np.ndarray, np.ndarray]:
    """A JSON array of [lon, lat] pairs, or a FeatureCollection of Points -> (x, y) in input order.

    The coordinates themselves are checked by the locator, which names every bad row.
    """
    x, y, _, _ = point_rows(body)
    return x, y


def point_rows(body: Any, *, mark: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, list | None]:
    """(x, y, reasons, features) of a batch; ``features`` is None for an array of pairs.

    With ``mark`` a feature without a usable Point is a row with a reason (x, y NaN)
    instead of rejecting the whole batch; the coordinates are checked by the caller.
    """
    if isinstance(body, list):
        try:
            arr = np.array(body, dtype=float)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
            if len(body) == 0:
                return np.empty(0), np.empty(0), np.empty(0, dtype=object), None
            if not mark:
                if arr is None:
                    raise InvalidInputError("a batch is a JSON array of [lon, lat] pairs of numbers")
                raise InvalidInputError("a batch is a JSON array of [lon, lat] pairs, e.g. [[117.55, 34.86]]")
            xy = [_pair(v) for v in body]
            reasons = np.array(["" if p else "not a [lon, lat] pair of numbers" for p in xy], dtype=object)
            arr = np.array([p or (np.nan, np.nan) for p in xy], dtype=float).reshape(-1, 2)
            return arr[:, 0], arr[:, 1], reasons, None
        return arr[:, 0], arr[:, 1], np.full(len(arr), "", dtype=object), None
    if is_collection(body):
        feats = body.get("features")
        if not isinstance(feats, list):
            raise InvalidInputError("FeatureCollection.features must be an array")
        xs, ys, reasons = [], [], []
        for i, f in enumerate(feats):
            g = feature_geometry(f)
            c = g.get("coordinates") if g is not None else None
            if g is None or g.get("type") != "Point":
                reason = "every feature must have a Point geometry"
            elif not (isinstance(c, list) and len(c) >= 2 and all(_number(v) for v in c[:2])):
                reason = "Point coordinates must be [lon, lat] numbers"
            else:
                reason = ""
            if reason and not mark:
                raise InvalidInputError(f"feature {i}: {reason}")
            xs.append(c[0] if not reason else np.nan)
            ys.append(c[1] if not reason else np.nan)
            reasons.append(reason)
        return (np.array(xs, dtype=float), np.array(ys, dtype=float), np.array(reasons, dtype=object),
                [f if isinstance(f, dict) else {} for f in feats])
    raise InvalidInputError("send a JSON array of [lon, lat] pairs or a GeoJSON FeatureCollection of Points")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v):
    return (float(v[0]), float(v[1])) if isinstance(v, list) and len(v) == 2 and all(map(_number, v)) else None


# ---------------------------------------------------------------- one drawn area (POST /residents/search)
def polygon(body: Any, crs: str | None, max_vertices: int):
    """A GeoJSON Polygon/MultiPolygon (or a Feature with one) in ``crs`` -> valid storage-CRS polygon."""
    geom = feature_geometry(body) if isinstance(body, dict) and body.get("type") == "Feature" else body
    if not isinstance(geom, dict) or "type" not in geom:
        raise InvalidInputError("send a GeoJSON Polygon or MultiPolygon geometry, or a Feature with one "
                                "(coordinates [lon, lat] in CRS84 unless ?crs= says otherwise)")
    gtype = geom.get("type")
    if gtype not in POLYGONAL:
        raise InvalidGeometryError(f"expected a Polygon or MultiPolygon, got {gtype}",
                                   detail={"reason": f"geometry type {gtype} is not accepted"})
    coords = geom.get("coordinates")
    if not isinstance(coords, list):
        raise InvalidGeometryError(f"{gtype}.coordinates must be an array of rings")
    check_rings(coords, gtype)
    try:
        shape = shapely.geometry.shape(geom)
    except Exception as exc:  # shapely raises a zoo of types for malformed coordinates
        raise InvalidGeometryError(f"malformed {gtype} coordinates: {exc}",
                                   detail={"reason": f"malformed coordinates: {exc}"}) from None
    area = check_polygon(shape, max_vertices)  # type, empty, vertex limit, 3D, NaN, validity
    check_vertices(area, crs)
    moved = to_storage(area, crs)
    if moved is not area:  # a transform can make a valid polygon invalid
        area = check_polygon(moved, max_vertices)
    # winding is not an error in GeoJSON input: normalise to RFC 7946 (exterior CCW)
    return shapely.orient_polygons(area, exterior_cw=False)


def check_rings(coords: list, gtype: str) -> None:
    """GeoJSON rings are closed by repeating the first position; shapely would close them silently."""
    polygons = coords if gtype == "MultiPolygon" else [coords]
    for p, rings in enumerate(polygons):
        for r, ring in enumerate(rings if isinstance(rings, list) else []):
            if not isinstance(ring, list):
                continue
            where = f"polygon {p} ring {r}" if gtype == "MultiPolygon" else f"ring {r}"
            if len(ring) < 4:
                raise InvalidGeometryError(
                    f"malformed {where}: {len(ring)} points; a ring needs at least 4 (three corners, then the "
                    "first repeated to close it)", detail={"reason": f"{where}: too few points"})
            if ring[0] != ring[-1]:
                raise InvalidGeometryError(
                    f"malformed {where}: not closed, its last point must repeat the first ({ring[0]})",
                    detail={"reason": f"{where}: the LinearRing is not closed"})


# ---------------------------------------------------------------- a plan: its new grids or a cut line (POST /plans)
def polygon_features(collection: Any, max_features: int) -> list:
    """The features of a plan's FeatureCollection of new grids (their geometries are read one by one)."""
    if not is_collection(collection):
        raise InvalidInputError('"grids" must be a GeoJSON FeatureCollection of Polygon features')
    feats = collection.get("features")
    if not isinstance(feats, list) or not feats:
        raise InvalidInputError("the FeatureCollection has no features: a plan needs at least one new grid")
    if len(feats) > max_features:
        raise InvalidInputError(f"a plan may hold at most {max_features} grids, got {len(feats)}")
    return feats


def feature_polygon(feature: Any, i: int, crs=None):
    """Feature ``i`` of a collection -> its (Multi)Polygon in the storage CRS; validity is left to the caller."""
    geometry = feature_geometry(feature)
    if geometry is None:
        raise InvalidInputError(f"feature {i}: not a GeoJSON Feature with a geometry")
    try:
        text = json.dumps(geometry, allow_nan=False)
    except ValueError:  # NaN/Infinity: accepted by Python's JSON reader, not by GeoJSON
        raise InvalidGeometryError(f"feature {i}: NaN or infinite coordinates",
                                   detail=[{"feature": i, "rule": "coordinates"}]) from None
    try:
        g = shapely.from_geojson(text)
    except Exception as exc:  # shapely raises GEOSException for malformed input
        raise InvalidGeometryError(f"feature {i}: unreadable geometry: {exc}",
                                   detail=[{"feature": i, "rule": "parse"}]) from None
    g = _polygonal(g, i)
    # out of range and (lat, lon) order are named here, not left to fail as a gap or overlap later
    check_vertices(g, crs, feature=i)
    return to_storage(g, crs)


def _polygonal(geom, i: int):
    if geom is None or geom.is_empty:
        raise InvalidGeometryError(f"feature {i}: empty geometry", detail=[{"feature": i, "rule": "empty"}])
    if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
        raise InvalidGeometryError(f"feature {i}: a new grid must be a Polygon or MultiPolygon, "
                                   f"not {geom.geom_type}", detail=[{"feature": i, "rule": "type"}])
    if shapely.has_z(geom):  # like every drawn area: heights are refused, not silently dropped
        raise InvalidGeometryError(f"feature {i}: 3D coordinates are not accepted: send 2D lon/lat polygons",
                                   detail=[{"feature": i, "rule": "3D"}])
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise InvalidGeometryError(f"feature {i}: NaN or infinite coordinates",
                                   detail=[{"feature": i, "rule": "coordinates"}])
    return geom


def cut_line(line):
    """The cut line of a plan edit, a GeoJSON LineString in lon/lat -> shapely line."""
    if isinstance(line, dict):
        try:
            line = shapely.from_geojson(json.dumps(line))
        except (shapely.errors.GEOSException, ValueError, TypeError) as exc:  # non-numbers, NaN, bad nesting
            raise InvalidGeometryError(f"the cut line is not a readable GeoJSON LineString: {exc}",
                                       detail={"reason": str(exc)}) from None
    if not isinstance(line, (shapely.LineString, shapely.MultiLineString)) or line.is_empty:
        raise InvalidGeometryError("the cut must be a GeoJSON LineString (lon/lat) crossing the grid")
    return line
