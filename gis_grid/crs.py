"""Coordinate reference systems: parsing, transforms and coordinate checks.

* Storage CRS is CGCS2000 geographic, EPSG:4490. CGCS2000 and WGS84 agree
  to within a few centimetres, far below the accuracy of the input data, so
  EPSG:4326/CRS84 <-> EPSG:4490 is deliberately a no-op (no datum shift).
* Metric work (areas, buffers, distances) uses EPSG:4548, CGCS2000 /
  3-degree Gauss-Kruger CM 117E, false easting 500000 m and *no* zone
  prefix. (EPSG:4527 is the same zone with the "39" prefix; we do not use it.)
* Everything is (lon, lat) / (x=easting, y=northing) order; pyproj is always
  called with ``always_xy=True`` so EPSG:4326's official lat/lon axis order
  never leaks in.
* Chinese web maps use offset systems PROJ cannot do: GCJ-02 (AMap, Tencent)
  and BD-09 (Baidu). They are implemented here with the public algorithm.

All transforms accept scalars or array-likes and return float64 ndarrays
(0-d for scalar input).
"""
from __future__ import annotations

import enum
import math
from functools import lru_cache

import numpy as np
import shapely

from gis_grid.errors import InvalidCoordinatesError, InvalidInputError, UnknownCRSError

__all__ = [
    "STORAGE_EPSG", "METRIC_EPSG", "WEB_MERCATOR_EPSG", "InputCRS", "parse_crs",
    "crs_uri", "wgs84_to_gcj02", "gcj02_to_wgs84", "gcj02_to_bd09",
    "bd09_to_gcj02", "wgs84_to_bd09", "bd09_to_wgs84", "to_storage",
    "from_storage", "to_metric", "from_metric", "transform",
    "check_coordinates", "validate_coordinates",
]

STORAGE_EPSG = 4490
METRIC_EPSG = 4548
WEB_MERCATOR_EPSG = 3857


class InputCRS(str, enum.Enum):
    """The CRSs a caller may send coordinates in."""

    CRS84 = "EPSG:4326"  # handled as lon/lat (CRS84 axis order)
    CGCS2000 = "EPSG:4490"
    GK117 = "EPSG:4548"
    GCJ02 = "gcj02"
    BD09 = "bd09"

    def __str__(self) -> str:  # str(InputCRS.GK117) == "EPSG:4548", not the member name
        return self.value

    @property
    def is_projected(self) -> bool:
        return self is InputCRS.GK117

    @property
    def is_offset(self) -> bool:
        return self in (InputCRS.GCJ02, InputCRS.BD09)


_OGC = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"


def _aliases() -> dict[str, InputCRS]:
    names = {
        InputCRS.CRS84: ["EPSG:4326", "4326", "CRS84", "OGC:CRS84", "WGS84", "WGS-84",
                         _OGC, _EPSG_URI + "4326", "urn:ogc:def:crs:OGC:1.3:CRS84",
                         "urn:ogc:def:crs:EPSG::4326"],
        InputCRS.CGCS2000: ["EPSG:4490", "4490", "CGCS2000", _EPSG_URI + "4490",
                            "urn:ogc:def:crs:EPSG::4490"],
        InputCRS.GK117: ["EPSG:4548", "4548", _EPSG_URI + "4548", "urn:ogc:def:crs:EPSG::4548"],
        InputCRS.GCJ02: ["gcj02", "gcj-02"],
        InputCRS.BD09: ["bd09", "bd-09"],
    }
    out = {}
    for crs, keys in names.items():
        for k in keys:
            out[_norm(k)] = crs
            if k.startswith("http://"):  # accept https too; people copy either
                out[_norm("https://" + k[7:])] = crs
    return out


def _norm(name: str) -> str:
    return "".join(name.split()).lower()


_ALIASES = _aliases()
_ACCEPTED = ("EPSG:4326 (= 4326, CRS84, OGC:CRS84, WGS84, its OGC/EPSG URI), "
             "EPSG:4490 (= 4490, CGCS2000, its URI), EPSG:4548 (= 4548, its URI), "
             "gcj02 (gcj-02), bd09 (bd-09)")


def parse_crs(name: str | InputCRS | int | None) -> InputCRS:
    """Map a user-supplied CRS name to an InputCRS; None/"" means CRS84."""
    if isinstance(name, InputCRS):
        return name
    if name is None:
        return InputCRS.CRS84
    key = _norm(str(name))
    if key == "":
        return InputCRS.CRS84
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnknownCRSError(f"unknown CRS {name!r}; accepted: {_ACCEPTED}") from None


def crs_uri(crs: str | InputCRS | None) -> str:
    """The OGC URI of a CRS (for GeoJSON/OGC API responses)."""
    crs = parse_crs(crs)
    if crs is InputCRS.CRS84:
        return _OGC
    if crs.is_offset:
        raise InvalidInputError(f"{crs.value} is a web-map offset system and has no CRS URI; "
                                "request output in EPSG:4326, EPSG:4490 or EPSG:4548")
    return _EPSG_URI + crs.value.split(":")[1]


def _xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinatesError(f"coordinates must be numbers: {exc}") from None
    try:
        x, y = np.broadcast_arrays(x, y)
    except ValueError:
        raise InvalidInputError(f"x and y differ in length ({x.shape} vs {y.shape})") from None
    return x, y


# ---------------------------------------------------------------- GCJ-02 / BD-09
# Public GCJ-02 algorithm: Krasovsky 1940 ellipsoid constants, as every
# implementation (and the offsets actually served by AMap/Tencent) uses.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _in_china(lon, lat):
    # The standard rough bounding box; outside it GCJ-02 == WGS84.
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _gcj_delta(lon, lat):
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + common
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + common
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):
    lon, lat = _xy(lon, lat)
    dlon, dlat = _gcj_delta(lon, lat)
    inside = _in_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84(lon, lat, *, tol: float = 1e-9, max_iter: int = 10):
    """Exact-ish inverse by fixed-point iteration.

    The common one-step formula (subtract the offset computed at the GCJ
    point) is off by up to ~6 m; the offset varies slowly, so iterating
    w <- w - (gcj(w) - g) converges to < 1e-9 deg in about 4 steps.
    """
    g_lon, g_lat = _xy(lon, lat)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        c_lon, c_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = c_lon - g_lon, c_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        # NaN errors count as converged (NaN in, NaN out).
        if not (np.any(np.abs(e_lon) >= tol) or np.any(np.abs(e_lat) >= tol)):
            break
    inside = _in_china(g_lon, g_lat)
    return np.where(inside, w_lon, g_lon), np.where(inside, w_lat, g_lat)


def _arrays(a, b):
    # numpy arithmetic on 0-d arrays yields scalars; keep the array promise.
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)


def gcj02_to_bd09(lon, lat):
    # Baidu's formula has no out-of-China rule; Baidu maps only serve China.
    x, y = _xy(lon, lat)
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _arrays(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006)


def _bd09_to_gcj02_once(bx, by):
    x, y = bx - 0.0065, by - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_gcj02(lon, lat, *, tol: float = 1e-10, max_iter: int = 10):
    """Inverse of gcj02_to_bd09.

    The widely copied inverse formula is one step and off by up to ~0.2 m;
    we refine it so that gcj02 -> bd09 -> gcj02 round-trips exactly.
    """
    b_lon, b_lat = _xy(lon, lat)
    g_lon, g_lat = _bd09_to_gcj02_once(b_lon, b_lat)
    for _ in range(max_iter):
        c_lon, c_lat = gcj02_to_bd09(g_lon, g_lat)
        e_lon, e_lat = c_lon - b_lon, c_lat - b_lat
        g_lon, g_lat = g_lon - e_lon, g_lat - e_lat
        if not (np.any(np.abs(e_lon) >= tol) or np.any(np.abs(e_lat) >= tol)):
            break
    return _arrays(g_lon, g_lat)


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


# ---------------------------------------------------------------- PROJ transforms
@lru_cache(maxsize=None)
def _transformer(src: int, dst: int) -> Transformer:
    # Building a Transformer costs milliseconds; pyproj >= 3.1 makes a cached
    # one safe to share between threads. Imported here: lon/lat work needs no PROJ.
    from pyproj import Transformer
    return Transformer.from_crs(src, dst, always_xy=True)


def _proj(x, y, src: int, dst: int):
    x, y = _xy(x, y)
    return _arrays(*_transformer(src, dst).transform(x, y))


def to_metric(lon, lat):
    """EPSG:4490 lon/lat -> EPSG:4548 (easting, northing) metres."""
    return _proj(lon, lat, STORAGE_EPSG, METRIC_EPSG)


def from_metric(x, y):
    """EPSG:4548 (easting, northing) -> EPSG:4490 lon/lat."""
    return _proj(x, y, METRIC_EPSG, STORAGE_EPSG)


# (to storage, from storage) for every CRS that is not lon/lat CGCS2000/WGS84 already
_CONVERTERS = {
    InputCRS.GK117: (from_metric, to_metric),
    InputCRS.GCJ02: (gcj02_to_wgs84, wgs84_to_gcj02),
    InputCRS.BD09: (bd09_to_wgs84, wgs84_to_bd09),
}


def to_storage(x, y, crs=None):
    """Coordinates in ``crs`` -> EPSG:4490 (lon, lat)."""
    conv = _CONVERTERS.get(parse_crs(crs))
    if conv:
        return conv[0](x, y)
    x, y = _xy(x, y)  # 4326 and 4490: no-op, see module docstring
    return x.copy(), y.copy()


def from_storage(lon, lat, crs=None):
    """EPSG:4490 (lon, lat) -> coordinates in ``crs``."""
    conv = _CONVERTERS.get(parse_crs(crs))
    if conv:
        return conv[1](lon, lat)
    lon, lat = _xy(lon, lat)
    return lon.copy(), lat.copy()


def transform(x, y, src, dst):
    """Between any two InputCRS, via storage lon/lat."""
    src, dst = parse_crs(src), parse_crs(dst)
    if src is dst:
        x, y = _xy(x, y)
        return x.copy(), y.copy()
    return from_storage(*to_storage(x, y, src), dst)


def transform_geoms(geoms, src, dst):
    """Shapely geometries between two CRSs, vertex by vertex (shared vertices stay shared)."""
    src, dst = parse_crs(src), parse_crs(dst)
    if src is dst:
        return geoms
    return shapely.transform(geoms, lambda xy: np.column_stack(transform(xy[:, 0], xy[:, 1], src, dst)))


def area_m2(geom) -> float:
    """Planar area in EPSG:4548 of a storage-CRS (EPSG:4490) geometry; 0 for None/empty."""
    if geom is None or shapely.is_empty(geom):
        return 0.0
    return float(shapely.area(transform_geoms(geom, InputCRS.CGCS2000, InputCRS.GK117)))


_JACOBIAN_STEP_DEG = 1e-4


def overlay_area_m2(geom) -> float:
    """Area in EPSG:4548 of an overlay's result (a gap, overlap or difference of lon/lat polygons).

    Each part's lon/lat area times the projection's area scale at its centroid. Projecting the
    vertices instead measures another polygon: a straight lon/lat edge is a slight curve in
    EPSG:4548 (2 cm off its chord over 1 km), so a T-junction sliver of zero lon/lat area (a
    vertex on an edge its neighbour lacks) would count as ~10 m2 per km. The scale varies
    linearly across a part, so the centroid's value is exact to first order.
    """
    if geom is None or shapely.is_empty(geom):
        return 0.0
    parts = shapely.get_parts(geom)
    parts = parts[shapely.get_type_id(parts) == 3]  # polygons only: lines and points have no area
    if not len(parts):
        return 0.0
    c = shapely.centroid(parts)
    lon, lat, h = shapely.get_x(c), shapely.get_y(c), _JACOBIAN_STEP_DEG
    # the four neighbours of every centroid in one PROJ call (a call costs more than its points)
    x, y = to_metric(np.concatenate([lon + h, lon - h, lon, lon]), np.concatenate([lat, lat, lat + h, lat - h]))
    (xe, xw, xn, xs), (ye, yw, yn, ys) = np.split(x, 4), np.split(y, 4)
    scale = np.abs((xe - xw) * (yn - ys) - (xn - xs) * (ye - yw)) / (4 * h * h)
    return float(np.sum(shapely.area(parts) * scale))


# ---------------------------------------------------------------- validation
_ZONE_X = (200_000.0, 800_000.0)
_ZONE_Y = (0.0, 6_000_000.0)


def _rules(x, y, crs: InputCRS, finite) -> list:
    """(mask, reason) pairs, most specific first; works on arrays and on plain floats."""
    ax, ay = abs(x), abs(y)
    if crs.is_projected:
        return [
            (~finite, "x/y is NaN or infinite"),
            ((y < 1e6) & (x > 1e6), "x/y looks swapped: EPSG:4548 x is the easting "
             "(200000..800000 m), y the northing (0..6000000 m)"),
            ((x >= 39e6 + _ZONE_X[0]) & (x <= 39e6 + _ZONE_X[1]),
             "x has the zone prefix 39 (EPSG:4527); send EPSG:4548 without it"),
            ((ax <= 180) & (ay <= 90), "looks like lon/lat degrees, not EPSG:4548 metres"),
            ((x < _ZONE_X[0]) | (x > _ZONE_X[1]), "outside the EPSG:4548 zone (x 200000..800000 m)"),
            ((y < _ZONE_Y[0]) | (y > _ZONE_Y[1]), "outside the EPSG:4548 zone (y 0..6000000 m)"),
        ]
    return [
        (~finite, "lon/lat is NaN or infinite"),
        # China lies at lon 73..136, lat 3..54: a point given as (lat, lon).
        ((x >= 3) & (x <= 54) & (y >= 73) & (y <= 136),
         "lon/lat looks swapped (this is (lat, lon) of a point in China): send (lon, lat)"),
        ((ay > 90) & (ax <= 90), "lon/lat looks swapped (lat > 90): send (lon, lat)"),
        ((ax > 1000) & (ay > 1000), "looks like projected metres, not lon/lat degrees; "
         "for EPSG:4548 say so in crs"),
        ((ax > 180) | (ay > 90), "lon/lat out of range (lon -180..180, lat -90..90)"),
    ]


def check_coordinates(x, y, crs=None) -> np.ndarray:
    """Per-point reason strings ("" = fine), flattened to 1-D (row order).

    Catches the usual client mistakes: NaN/inf, out of range, (lat, lon)
    instead of (lon, lat), and metres that do not belong to EPSG:4548.
    """
    crs = parse_crs(crs)
    x, y = (a.ravel() for a in _xy(x, y))
    reasons = np.full(x.shape, "", dtype=object)
    open_ = np.ones(x.shape, dtype=bool)  # no reason yet (a bool mask: comparing objects costs 10x)
    # each rule applies only where no earlier rule fired: the first reason wins
    for mask, reason in _rules(x, y, crs, np.isfinite(x) & np.isfinite(y)):
        hit = mask & open_
        if hit.any():
            reasons[hit] = reason
            open_ &= ~hit
    return reasons


def check_point(x: float, y: float, crs=None) -> str:
    """:func:`check_coordinates` for one point, without numpy's per-call overhead."""
    x, y = float(x), float(y)
    finite = _PyBool(math.isfinite(x) and math.isfinite(y))
    for mask, reason in _rules(x, y, parse_crs(crs), finite):
        if mask:
            return reason
    return ""


class _PyBool(int):
    """A bool whose ~ is logical not, so the array rules read the same on floats."""

    def __invert__(self):
        return _PyBool(not self)


def validate_coordinates(x, y, crs=None):
    """Return (x, y) as float64 arrays, or raise InvalidCoordinatesError.

    ``detail`` lists ``{"row", "reason"}`` for the first 100 bad rows.
    """
    crs = parse_crs(crs)
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        reason = check_point(x, y, crs)  # the hot single-point path (GET /locate)
        if not reason:
            return np.float64(x), np.float64(y)
    x, y = _xy(x, y)
    reasons = check_coordinates(x, y, crs)
    bad = np.flatnonzero(reasons != "")
    if bad.size:
        detail = [{"row": int(i), "reason": str(reasons[i])} for i in bad[:100]]
        first = "; ".join(f"row {d['row']}: {d['reason']}" for d in detail[:3])
        more = f" (and {bad.size - 3} more)" if bad.size > 3 else ""
        raise InvalidCoordinatesError(
            f"{bad.size} of {reasons.size} points have invalid {crs.value} coordinates: "
            f"{first}{more}", detail=detail)
    return x.copy(), y.copy()
