"""A batch of points from another system (``POST /locate``): read, checked, located, answered.

An array of [lon, lat] pairs is answered by ``results`` in input order; a GeoJSON
FeatureCollection by a FeatureCollection, each feature's ``id`` and ``properties`` echoed
with the codes added (a property of the same name as a code is replaced). The answer's
geometry is the point in EPSG:4490 (lon/lat, what RFC 7946 readers expect), never the
input coordinates of another CRS under that label. ``on_invalid='mark'`` answers bad rows
with an ``error`` instead of rejecting the batch. The API only adapts HTTP to this.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import crs as crs_mod
from . import geojson_input
from .errors import InvalidInputError, LimitExceededError

LEVEL_KEYS = ("district", "street", "community", "grid")


def answer(atlas, body: Any, crs=None, *, names: bool = False, on_invalid: str = "fail",
           max_points: int | None = None) -> dict:
    """The answer to one batch (a JSON-ready dict)."""
    if on_invalid not in ("fail", "mark"):
        raise InvalidInputError(f"on_invalid must be 'fail' or 'mark', got {on_invalid!r}")
    in_crs = crs_mod.parse_crs(crs)
    mark = on_invalid == "mark"
    x, y, reasons, features = geojson_input.point_rows(body, mark=mark)
    if max_points is not None and len(x) > max_points:
        raise LimitExceededError(
            f"{len(x)} points exceed the batch limit of {max_points}; "
            "split the batch, or use the bulk CLI `gis-grid locate IN.csv -o OUT.csv` for files")
    if not mark:
        crs_mod.validate_coordinates(x, y, in_crs)  # names every bad row (422)
    reasons = np.where(reasons == "", crs_mod.check_coordinates(x, y, in_crs), reasons)
    good = np.flatnonzero(reasons == "")
    lon, lat = crs_mod.to_storage(x[good], y[good], in_crs)
    rows: list[dict | None] = [None] * len(x)
    if len(good):
        found = atlas.locate_many(np.atleast_1d(lon), np.atleast_1d(lat))
        cols = [found[c].tolist() for c in (*LEVEL_KEYS, "building")]
        name_of = atlas.division_name if names else None
        for i, *codes in zip(good.tolist(), *cols):
            rows[i] = _row(codes, name_of)
    for i in np.flatnonzero(reasons != "").tolist():
        rows[i] = {"outside": None, "error": str(reasons[i])}
    out = {"atlas_version": atlas.version, "count": len(rows)}
    if features is None:
        return {**out, "results": rows}
    lon_all = np.full(len(x), np.nan)
    lat_all = np.full(len(x), np.nan)
    lon_all[good], lat_all[good] = lon, lat
    return {"type": "FeatureCollection", **out,
            "features": [_feature(f, r, lon_all[i], lat_all[i]) for i, (f, r) in enumerate(zip(features, rows))]}


def _row(codes, name_of) -> dict:
    *levels, building = codes
    if not levels[-1]:
        return {"outside": True}
    row: dict = {"outside": False}
    row.update(zip(LEVEL_KEYS, levels))
    row["building"] = int(building) if building else None
    if name_of is not None:
        for key, code in zip(LEVEL_KEYS, levels):
            row[f"{key}_name"] = name_of(code)
    return row


def _feature(f: dict, row: dict, lon: float, lat: float) -> dict:
    props = f.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    for key in (*LEVEL_KEYS, "building", "error"):  # a stale answer in the input must not survive
        props.pop(key, None)
    props.update(row)
    feature = {"type": "Feature"}
    if "id" in f:
        feature["id"] = f["id"]
    feature["geometry"] = None if np.isnan(lon) else {"type": "Point", "coordinates": [float(lon), float(lat)]}
    feature["properties"] = props
    return feature
