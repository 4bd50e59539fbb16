"""The atlas layers as feature collections: streets, communities, grids, buildings.

Framework-free support for the OGC API - Features endpoints (and anything else
that wants pages of GeoJSON): a bbox filter given in any accepted CRS, offset
paging and output in CRS84, EPSG:4490 or EPSG:4548.

Axis order (OGC API - Features Part 2): coordinates are written in the axis
order the CRS authority defines.

* CRS84 (the default): lon, lat.
* EPSG:4490 (CGCS2000 geographic): the EPSG definition is **lat, lon**
  (``pyproj.CRS.from_epsg(4490).axis_info`` -> Lat/north, Lon/east), so a
  ``crs=EPSG:4490`` response writes [lat, lon]. This differs from GeoJSON's
  usual lon/lat on purpose; Part 2 requires the authority order.
* EPSG:4548 (CGCS2000 / 3-degree GK CM 117E): the EPSG definition is
  **northing, easting** (axis_info -> X/north, Y/east), so responses write
  [northing, easting] metres.

The same rule applies to a ``bbox`` given with ``bbox-crs``: "axis 1, axis 2"
of that CRS, i.e. minlat,minlon,maxlat,maxlon for EPSG:4490 and
minN,minE,maxN,maxE for EPSG:4548.

Reads use an :class:`~gis_grid.atlas.Atlas` snapshot; per-atlas data (sorted
frames, STRtrees) is built once and dropped with the atlas.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from . import crs as crs_mod
from .crs import InputCRS
from .errors import InvalidInputError, NotFoundError
from .hierarchy import Level, is_within

__all__ = ["COLLECTIONS", "OUTPUT_CRS", "Collection", "Page", "layers_of", "collection",
           "parse_bbox", "output_crs", "axis_swapped", "items", "feature", "crs_uris", "queryables",
           "properties_of", "PROPERTY_SCHEMA"]

COLLECTIONS = {
    "streets": ("Streets (街道)", "The streets/towns of Shizhong District (9-digit codes).", Level.STREET),
    "communities": ("Communities (社区/村)", "Communities and villages (12-digit codes).", Level.COMMUNITY),
    "grids": ("Base grids (网格)", "The base management grids (15-digit codes); feature id = grid code.", Level.GRID),
    "buildings": ("Buildings (建筑)", "Building footprints; feature id = numeric building id.", None),
}
#: the properties a ``?name=value`` query parameter filters on
DIVISION_PROPS = ("code", "name", "level", "parent_code", "kind")
BUILDING_PROPS = ("id", "kind", "name", "floors", "units", "grid_code")
#: every property a division feature carries: the same attributes as the exports (gis_grid.export)
DIVISION_COLUMNS = ("code", "name", "level", "parent_code", "kind", "version", "valid_from", "area_m2")
#: counts a division feature carries beside its columns (gis_grid.stats.level_counts): totals, never people
FEATURE_COUNTS = ("households", "residents", "buildings", "workers", "open_cases")
#: JSON Schema of each property (queryables, schema, TileJSON fields)
PROPERTY_SCHEMA = {
    "code": {"type": "string", "title": "division code"},
    "name": {"type": "string", "title": "name"},
    "level": {"type": "string", "title": "level", "enum": ["street", "community", "grid"]},
    "parent_code": {"type": "string", "title": "code of the parent division"},
    "kind": {"type": "string", "title": "kind"},
    "version": {"type": "integer", "title": "boundary version"},
    "valid_from": {"type": "string", "format": "date-time", "title": "boundary valid from"},
    "area_m2": {"type": "number", "title": "area (square metres)"},
    "id": {"type": "integer", "title": "building id"},
    "floors": {"type": "integer", "title": "floors"},
    "units": {"type": "integer", "title": "units"},
    "grid_code": {"type": "string", "title": "base grid code"},
    **{c: {"type": "integer", "minimum": 0, "title": c.replace("_", " ")} for c in FEATURE_COUNTS},
}

# CRSs a response can be written in (offset systems gcj02/bd09 have no URI)
OUTPUT_CRS = (InputCRS.CRS84, InputCRS.CGCS2000, InputCRS.GK117)


def crs_uris() -> list[str]:
    return [crs_mod.crs_uri(c) for c in OUTPUT_CRS]


def output_crs(name) -> InputCRS:
    """Parse a ``crs``/``bbox-crs`` value; only CRS84, EPSG:4490 and EPSG:4548 are served.

    EPSG:4326 is refused, not read as CRS84: its authority axis order is lat,lon (Part 2), and
    answering lon,lat under its name would silently swap a client's coordinates.
    """
    if name is not None and "4326" in str(name):
        raise InvalidInputError(f"crs {name!r} (EPSG:4326, lat,lon) is not offered; use CRS84 "
                                f"({crs_mod.crs_uri('CRS84')}) for lon,lat or one of {', '.join(crs_uris())}")
    c = crs_mod.parse_crs(name)
    if c not in OUTPUT_CRS:
        raise InvalidInputError(f"crs {name!r} is not supported here; use one of {', '.join(crs_uris())}")
    return c


def axis_swapped(c: InputCRS) -> bool:
    """True when the authority axis order is (north, east): EPSG:4490 and EPSG:4548."""
    return c in (InputCRS.CGCS2000, InputCRS.GK117)


# --------------------------------------------------------------------- per-atlas layers
@dataclass
class Collection:
    id: str
    title: str
    description: str
    frame: pd.DataFrame          # properties, sorted by feature id (no geometry column)
    geometry: np.ndarray         # shapely geometries in EPSG:4490, aligned with frame
    ids: list                    # feature ids (str codes or int building ids)
    _tree: shapely.STRtree | None = field(default=None, repr=False)
    _rows: dict | None = field(default=None, repr=False)
    _columns: dict | None = field(default=None, repr=False)
    _extent: list | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tree(self) -> shapely.STRtree:
        with self._lock:
            if self._tree is None:
                self._tree = shapely.STRtree(self.geometry)
            return self._tree

    @property
    def columns(self) -> dict[str, list]:
        """Property columns as lists of plain Python values (converted once per atlas)."""
        with self._lock:
            if self._columns is None:
                self._columns = {k: [_py(v) for v in self.frame[k].to_numpy()] for k in self.frame.columns}
            return self._columns

    def row_of(self, fid: str) -> int:
        with self._lock:
            if self._rows is None:
                self._rows = {str(v): i for i, v in enumerate(self.ids)}
        try:
            return self._rows[str(fid).strip()]
        except KeyError:
            raise NotFoundError(f"no feature {fid!r} in collection {self.id!r}") from None

    def extent_crs84(self) -> list[float]:
        if self._extent is None:
            if not len(self):
                self._extent = [0.0, 0.0, 0.0, 0.0]
            else:
                b = shapely.total_bounds(self.geometry)  # 4490 lon/lat == CRS84 to cm, see gis_grid.crs
                self._extent = [round(float(v), 7) for v in b]
        return list(self._extent)

    def properties(self, row: int) -> dict:
        out = {}
        for k, v in self.frame.iloc[row].items():
            out[k] = _py(v)
        return out


def _py(v):
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v if isinstance(v, (int, str, bool)) else str(v)


def _build(atlas) -> dict[str, Collection]:
    out: dict[str, Collection] = {}
    d = atlas.divisions
    for cid, (title, desc, level) in COLLECTIONS.items():
        if level is not None:
            sub = d[d["level"] == level.value].sort_values("code").reset_index(drop=True)
            frame = sub[list(DIVISION_COLUMNS)].copy()
            frame["parent_code"] = frame["parent_code"].where(frame["parent_code"].notna(), None)
            out[cid] = Collection(cid, title, desc, frame, _ccw(sub["geometry"].to_numpy()),
                                  [str(c) for c in sub["code"]])
        else:
            b = atlas.buildings  # sorted by id (Atlas guarantees it)
            frame = b[["id", "kind", "name", "floors", "units"]].copy()
            # the atlas decides where a building stands (as-of atlases, boundary edits)
            bg = np.asarray(atlas.building_grid)
            codes = np.asarray(atlas.grid_codes, dtype=object)
            frame["grid_code"] = np.where(bg >= 0, codes[np.clip(bg, 0, None)] if len(codes) else None, None)
            out[cid] = Collection(cid, title, desc, frame.reset_index(drop=True), _ccw(b["geometry"].to_numpy()),
                                  [int(i) for i in b["id"]])
    return out


def _ccw(geoms: np.ndarray) -> np.ndarray:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946 3.1.6), once per atlas."""
    return shapely.orient_polygons(geoms, exterior_cw=False) if len(geoms) else geoms


def layers_of(atlas) -> dict[str, Collection]:
    """The four collections of an atlas, built once per snapshot."""
    return atlas.memo.get("features.collections", lambda: _build(atlas))


def collection(atlas, cid: str) -> Collection:
    layers = layers_of(atlas)
    try:
        return layers[cid]
    except KeyError:
        raise NotFoundError(f"no collection {cid!r}; collections: {', '.join(COLLECTIONS)}") from None


# --------------------------------------------------------------------- bbox
def parse_bbox(text: str | None, bbox_crs=None) -> shapely.Geometry | None:
    """``minx,miny,maxx,maxy`` (axis order of ``bbox_crs``) -> a polygon in EPSG:4490 lon/lat."""
    if text is None:
        return None
    c = output_crs(bbox_crs)
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (4, 6):
        raise InvalidInputError(f"bbox needs 4 numbers (or 6 with heights), got {len(parts)}: {text!r}")
    try:
        v = [float(p) for p in parts]
    except ValueError:
        raise InvalidInputError(f"bbox values must be numbers: {text!r}") from None
    if not all(math.isfinite(x) for x in v):
        raise InvalidInputError(f"bbox values must be finite numbers: {text!r}")
    if len(v) == 6:
        v = [v[0], v[1], v[3], v[4]]
    a1, a2, b1, b2 = v
    if a1 > b1 or a2 > b2:
        raise InvalidInputError(f"bbox lower corner must not exceed the upper corner: {text!r} "
                                "(order: min axis 1, min axis 2, max axis 1, max axis 2)")
    if axis_swapped(c):
        # authority order is (north, east): axis 1 is lat/northing
        x0, y0, x1, y1 = a2, a1, b2, b1
    else:
        x0, y0, x1, y1 = a1, a2, b1, b2
    if c is InputCRS.CGCS2000 and (abs(y0) > 90 or abs(y1) > 90):
        raise InvalidInputError("bbox with bbox-crs EPSG:4490 is in the EPSG axis order lat,lon: "
                                "minlat,minlon,maxlat,maxlon (got a latitude beyond 90)")
    if c is InputCRS.CRS84 and (abs(y0) > 90 or abs(y1) > 90):
        raise InvalidInputError("bbox in CRS84 is minlon,minlat,maxlon,maxlat (got a latitude beyond 90)")
    if c in (InputCRS.CRS84, InputCRS.CGCS2000) and (abs(x0) > 180 or abs(x1) > 180):
        raise InvalidInputError(f"bbox {text!r}: a longitude beyond 180 (lon -180..180, lat -90..90)")
    box = shapely.box(x0, y0, x1, y1)
    if c is InputCRS.GK117:
        box = shapely.segmentize(box, max((x1 - x0), (y1 - y0)) / 16 or 1.0)
        box = crs_mod.transform_geoms(box, InputCRS.GK117, InputCRS.CGCS2000)
    return box


# --------------------------------------------------------------------- output
def _transform_fn(c: InputCRS):
    if c is InputCRS.CRS84:
        return None
    if c is InputCRS.CGCS2000:
        return lambda xy: xy[:, ::-1]  # lat, lon (EPSG authority order)
    def fn(xy):
        e, n = crs_mod.to_metric(xy[:, 0], xy[:, 1])
        return np.column_stack([n, e])  # northing, easting (EPSG authority order)
    return fn


def geometries_in(geoms: np.ndarray, c: InputCRS) -> np.ndarray:
    fn = _transform_fn(c)
    if fn is None or not len(geoms):
        return geoms
    # writing (north, east) mirrors the plane and turns every ring round: orient again so the
    # written exteriors stay counter-clockwise (RFC 7946) in every output CRS
    return shapely.orient_polygons(shapely.transform(geoms, fn), exterior_cw=False)


@dataclass
class Page:
    collection: str
    number_matched: int
    offset: int
    limit: int
    rows: np.ndarray
    crs: InputCRS

    @property
    def number_returned(self) -> int:
        return len(self.rows)

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.number_matched


def _feature_json(coll: Collection, rows: np.ndarray, c: InputCRS, extra: pd.DataFrame | None = None) -> list[str]:
    geoms = geometries_in(coll.geometry[rows], c)
    gj = shapely.to_geojson(geoms) if len(rows) else []
    columns = dict(coll.columns)
    if extra is not None:
        # per-request columns (counts that move with case writes), aligned to the collection by id
        aligned = extra.reindex([str(i) for i in coll.ids])
        columns.update({k: [_py(v) for v in aligned[k].to_numpy()] for k in aligned.columns})
    out = []
    for i, r in enumerate(rows):
        r = int(r)
        props = {k: v[r] for k, v in columns.items()}
        fid = coll.ids[r]
        out.append('{"type":"Feature","id":%s,"geometry":%s,"properties":%s}'
                   % (json.dumps(fid), gj[i], json.dumps(props, ensure_ascii=False)))
    return out


def properties_of(cid: str) -> tuple[str, ...]:
    """Every property a feature of the collection carries, in output order."""
    queryables(cid)
    return ("id", "kind", "name", "floors", "units", "grid_code") if COLLECTIONS[cid][2] is None \
        else DIVISION_COLUMNS + FEATURE_COUNTS


def queryables(cid: str) -> tuple[str, ...]:
    """The properties a ``?name=value`` query parameter filters on (OGC API - Features Part 1, 7.15.5)."""
    if cid not in COLLECTIONS:
        raise NotFoundError(f"no collection {cid!r}; collections: {', '.join(COLLECTIONS)}")
    return BUILDING_PROPS if COLLECTIONS[cid][2] is None else DIVISION_PROPS


def _filter_mask(coll: Collection, filters: dict) -> np.ndarray:
    """Rows whose property equals one of the given values (text comparison; comma-separated lists)."""
    m = np.ones(len(coll), dtype=bool)
    allowed = queryables(coll.id)
    for k, v in filters.items():
        if k not in allowed:
            raise InvalidInputError(f"cannot filter {coll.id} on {k!r}; queryable properties: {', '.join(allowed)}")
        vals = [x.strip() for s in ([v] if isinstance(v, str) else v) for x in str(s).split(",") if x.strip()]
        if not vals:
            continue
        col = np.array(["" if x is None else str(x) for x in coll.columns[k]], dtype=object)
        m &= np.isin(col, vals)
    return m


def in_scope(atlas, cid: str, scope: str | None) -> np.ndarray | None:
    """Rows of a collection a key confined to ``scope`` may see (None: every row).

    Divisions at or below the scope; buildings whose base grid is (one in no grid is nobody's),
    the same rule as ``/grids/{code}`` and ``/buildings/{id}``. Cached per atlas and scope.
    """
    if not scope:
        return None
    coll = collection(atlas, cid)

    def build() -> np.ndarray:
        codes = coll.columns["grid_code" if COLLECTIONS[cid][2] is None else "code"]
        return np.array([c is not None and is_within(str(c), scope) for c in codes], dtype=bool)
    return atlas.memo.get(("features.in_scope", cid, scope), build)


def items(atlas, cid: str, *, bbox=None, bbox_crs=None, crs=None, limit: int = 10,
          offset: int = 0, filters: dict | None = None, scope: str | None = None,
          extra: pd.DataFrame | None = None) -> tuple[Page, list[str]]:
    """A page of features: the Page metadata and each feature as a GeoJSON string.

    ``filters`` maps a property of :func:`queryables` to one value or a list (equality);
    ``scope``: only features a key confined to it sees (:func:`in_scope`), also in numberMatched;
    ``extra`` adds properties, one column each, indexed by feature id (the division counts).
    """
    coll = collection(atlas, cid)
    c = output_crs(crs)
    box = parse_bbox(bbox, bbox_crs) if isinstance(bbox, (str, type(None))) else bbox
    if box is None:
        matched = np.arange(len(coll))
    else:
        matched = np.sort(coll.tree.query(box, predicate="intersects"))
    if filters:
        matched = matched[_filter_mask(coll, filters)[matched]]
    visible = in_scope(atlas, cid, scope)
    if visible is not None:
        matched = matched[visible[matched]]
    rows = matched[offset: offset + limit]
    page = Page(cid, len(matched), offset, limit, rows, c)
    return page, _feature_json(coll, rows, c, extra)


def feature(atlas, cid: str, fid: str, *, crs=None, scope: str | None = None,
            extra: pd.DataFrame | None = None) -> str:
    coll = collection(atlas, cid)
    c = output_crs(crs)
    row = coll.row_of(fid)
    visible = in_scope(atlas, cid, scope)
    if visible is not None and not visible[row]:
        # the words of a missing feature: naming where it is would tell an outsider
        raise NotFoundError(f"no feature {fid!r} in collection {coll.id!r}")
    return _feature_json(coll, np.array([row]), c, extra)[0]
