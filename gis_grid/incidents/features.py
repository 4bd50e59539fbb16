"""Cases as the OGC API - Features collection ``incidents``: scoped, paged, no personal data.

Framework-free, like :mod:`gis_grid.features` (whose bbox parsing, output CRSs and
:class:`~gis_grid.features.Page` it shares). Features are built from the cached
:class:`~gis_grid.incidents.aggregate.CaseTable`, so a page of 10,000 costs no store read.

- **Scope**: a caller confined to a division (``scope``) sees only the cases located in it,
  exactly like ``GET /incidents``; a ``grid_code`` filter narrows that, one outside it is a
  404 like any out-of-scope object.
- **No personal data**: the reporter and the free-text description are never written (the
  description is what a resident said and may name people); what remains is where, what,
  who is responsible and how the case went.
- **datetime** (OGC API - Features Part 1) applies to the creation time: an instant, a date
  (that whole day, China Standard Time like every bare date in this API), or an interval
  ``start/end`` with ``..`` for an open end; both ends are inclusive.
- **Property filters**: ``category``, ``status``, ``department``, ``priority``, ``colour`` (the
  supervision colour now), each one value or a comma-separated list, and ``grid_code`` (a
  division code of any level).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely

from .. import crs as crs_mod
from .. import features as feat
from ..atlas import Atlas
from ..crs import InputCRS
from ..errors import InvalidInputError, NotFoundError
from ..hierarchy import is_within, level_of
from . import aggregate, model

COLLECTION_ID = "incidents"
TITLE = "Cases (社情民意事件)"
DESCRIPTION = ("Cases logged in the district: category, responsible department, priority, workflow status, "
               "supervision colour (四色单) and step times; located points, no personal data. "
               "Filter by datetime (creation time) and by the properties category, status, department, "
               "priority, colour and grid_code.")
#: query parameters that filter on a property; values may be comma-separated lists
QUERYABLES = ("category", "status", "department", "priority", "colour", "grid_code")
PROPERTIES = ("id", "category", "category_name", "department", "department_name", "priority", "status",
              "colour", "grid_code", "community_code", "street_code", "created", "dispatched", "closed",
              "deadline", "satisfaction", "reworked")


def _values(v) -> list[str]:
    vals = [v] if isinstance(v, str) else list(v or [])
    return [x.strip() for s in vals for x in str(s).split(",") if x.strip()]


def _bound(text: str, *, end: bool):
    """One end of a datetime interval -> what aggregate.select accepts (None: open)."""
    text = text.strip()
    if text in ("", ".."):
        return None
    if len(text) == 10:  # a bare date: select() reads it as that day (inclusive at the end)
        aggregate.parse_time(text)  # 400 for a malformed date
        return text
    t = model.to_aware(text, "datetime")
    # creation times are stored to the second; +1 s makes the interval's end inclusive
    return t + timedelta(seconds=1) if end else t


def parse_datetime(value: str | None) -> tuple:
    """OGC ``datetime`` -> (start, end) for :func:`aggregate.select`; both ends inclusive."""
    if value is None or not str(value).strip():
        return None, None
    value = str(value).strip()
    if "/" in value:
        parts = value.split("/")
        if len(parts) != 2 or all(p.strip() in ("", "..") for p in parts):
            raise InvalidInputError(f"datetime {value!r}: an interval is start/end with at most one open end "
                                    "('..'), e.g. 2016-01-01/2016-03-31 or 2016-06-01T00:00:00Z/..")
        start, end = _bound(parts[0], end=False), _bound(parts[1], end=True)
    else:
        start, end = _bound(value, end=False), _bound(value, end=True)
    lo, hi = aggregate.parse_time(start), aggregate.parse_time(end, end=True)
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidInputError(f"datetime {value!r} ends before it starts; write start/end")
    return start, end


def visible_code(scope: str | None, grid_code: str | None) -> str | None:
    """The division to restrict to: the caller's scope, narrowed by a ``grid_code`` filter.

    A filter wider than the scope is cut down to the scope; one beside it is a 404 (as for
    an object out of scope), so nothing about other divisions leaks.
    """
    if grid_code:
        level_of(grid_code)  # 400 for a malformed code
    if scope is None:
        return grid_code or None
    if not grid_code or is_within(scope, grid_code):
        return scope
    if is_within(grid_code, scope):
        return grid_code
    raise NotFoundError(f"no division {grid_code!r}")


def select(t: aggregate.CaseTable, atlas: Atlas, *, scope: str | None = None, bbox=None, bbox_crs=None,
           datetime_=None, filters: dict | None = None, now: datetime | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Matching rows of the case table (newest first) and every case's colour index now."""
    f = {k: _values(v) for k, v in (filters or {}).items() if k in QUERYABLES and _values(v)}
    unknown = sorted(set(filters or {}) - set(QUERYABLES))
    if unknown:
        raise InvalidInputError(f"cannot filter incidents on {', '.join(unknown)}; "
                                f"queryable properties: {', '.join(QUERYABLES)}")
    codes = f.pop("grid_code", [])
    if len(codes) > 1:
        raise InvalidInputError("grid_code takes one division code (any level)")
    code = visible_code(scope, codes[0] if codes else None)
    start, end = parse_datetime(datetime_)
    box = feat.parse_bbox(bbox, bbox_crs)
    rows, col = aggregate.select(t, atlas, code=code, bbox=None if box is None else box.bounds,
                                 start=start, end=end, at=now or datetime.now(timezone.utc),
                                 category=f.get("category"), status=f.get("status"),
                                 department=f.get("department"), priority=f.get("priority"),
                                 colour=f.get("colour"))
    if box is not None and len(rows) and not shapely.equals(box, shapely.box(*box.bounds)):
        # a box given in EPSG:4548 is a curved quadrilateral in lon/lat: test the points exactly
        rows = rows[shapely.intersects_xy(box, t.lon[rows], t.lat[rows])]
    return rows, col


def _iso(seconds: np.ndarray) -> list:
    out = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype(object)
    out = np.char.add(out.astype(str), "Z").astype(object)
    out[seconds == aggregate.NONE] = None
    return out.tolist()


def _coords(t: aggregate.CaseTable, rows: np.ndarray, c: InputCRS) -> np.ndarray:
    """Point coordinates in the authority axis order of ``c`` (see gis_grid.features)."""
    # 7 decimals of a degree is about 1 cm: more is noise, and long digit runs look like phone numbers
    lon, lat = np.round(t.lon[rows], 7), np.round(t.lat[rows], 7)
    if c is InputCRS.CRS84:
        return np.column_stack([lon, lat])
    if c is InputCRS.CGCS2000:
        return np.column_stack([lat, lon])
    e, n = crs_mod.to_metric(t.lon[rows], t.lat[rows])
    return np.column_stack([np.round(n, 3), np.round(e, 3)])


def feature_json(t: aggregate.CaseTable, atlas: Atlas, rows: np.ndarray, col: np.ndarray, crs=None) -> list[str]:
    """Each row as a GeoJSON Feature string (the properties in :data:`PROPERTIES`)."""
    c = feat.output_crs(crs)
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return []
    xy = _coords(t, rows, c)
    codes = np.asarray(atlas.grid_codes, dtype=object)
    g = t.grid[rows]
    grid = np.where(g >= 0, codes[np.clip(g, 0, None)] if len(codes) else None, None)
    cats, deps, pris = t.CATEGORY_CODES, t.DEPARTMENT_CODES, t.PRIORITY_CODES
    created, disp, closed, dl = (_iso(a[rows]) for a in (t.created, t.dispatched, t.closed, t.deadline))
    out = []
    for k, r in enumerate(rows):
        cat, dep, pri = cats[t.category[r]], deps[t.department[r]], t.priority[r]
        gc = grid[k]
        props = {
            "id": t.ids[r], "category": cat, "category_name": model.CATEGORIES[cat].name_zh,
            "department": dep, "department_name": model.DEPARTMENTS[dep].name_zh,
            "priority": pris[pri] if pri >= 0 else None, "status": t.status[r],
            "colour": aggregate.COLOUR_NAMES[col[r]] if col[r] >= 0 else None,
            "grid_code": gc, "community_code": gc[:12] if gc else None, "street_code": gc[:9] if gc else None,
            "created": created[k], "dispatched": disp[k], "closed": closed[k], "deadline": dl[k],
            "satisfaction": int(t.satisfaction[r]) or None, "reworked": bool(t.rework[r]),
        }
        out.append('{"type":"Feature","id":%s,"geometry":{"type":"Point","coordinates":[%r,%r]},"properties":%s}'
                   % (json.dumps(t.ids[r]), float(xy[k, 0]), float(xy[k, 1]),
                      json.dumps(props, ensure_ascii=False)))
    return out


def items(t: aggregate.CaseTable, atlas: Atlas, *, scope: str | None = None, bbox=None, bbox_crs=None,
          crs=None, datetime_=None, filters: dict | None = None, limit: int = 10, offset: int = 0,
          now: datetime | None = None) -> tuple[feat.Page, list[str]]:
    """One page of the visible, matching cases: the Page metadata and the features as GeoJSON strings."""
    c = feat.output_crs(crs)
    rows, col = select(t, atlas, scope=scope, bbox=bbox, bbox_crs=bbox_crs, datetime_=datetime_,
                       filters=filters, now=now)
    page_rows = rows[offset:offset + limit]
    return feat.Page(COLLECTION_ID, int(len(rows)), offset, limit, page_rows, c), \
        feature_json(t, atlas, page_rows, col, crs)


def feature(t: aggregate.CaseTable, atlas: Atlas, fid: str, *, scope: str | None = None, crs=None,
            now: datetime | None = None) -> str:
    """One case as a Feature; a case outside ``scope`` is reported exactly like a missing one."""
    hit = np.flatnonzero(t.ids == str(fid).strip())
    if len(hit):
        r = int(hit[0])
        g = t.grid[r]
        code = str(atlas.grid_codes[g]) if g >= 0 else None
        if scope is None or (code is not None and is_within(code, scope)):
            at_s = int((now or datetime.now(timezone.utc)).timestamp())
            col = np.full(len(t), -1)
            col[r] = t.colours(at_s, rows=np.array([r]))[0]
            return feature_json(t, atlas, np.array([r]), col, crs)[0]
    raise NotFoundError(f"no feature {str(fid)!r} in collection {COLLECTION_ID!r}")


def extent(t: aggregate.CaseTable, atlas: Atlas, scope: str | None = None) -> dict:
    """Spatial (CRS84) and temporal extent and count of the cases visible in ``scope``."""
    if scope is None:
        m = np.ones(len(t), dtype=bool)
    else:
        lo, hi = atlas.grid_positions(scope)
        m = (t.grid >= lo) & (t.grid < hi)
    n = int(m.sum())
    if n:
        bbox = [round(float(v), 7) for v in (t.lon[m].min(), t.lat[m].min(), t.lon[m].max(), t.lat[m].max())]
        times = _iso(np.array([t.created[m].min(), t.created[m].max()]))
    else:  # nothing logged yet: the district's box, no time span
        d = atlas.divisions[atlas.divisions["level"] == "district"]["geometry"].to_numpy()
        bbox = [round(float(v), 7) for v in shapely.total_bounds(d if len(d) else atlas.grid_geometries)]
        times = [None, None]
    return {"bbox": bbox, "interval": times, "count": n}
