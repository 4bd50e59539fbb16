"""Mapbox vector tiles (MVT) of the atlas collections on the WebMercatorQuad grid.

* Tile matrix set: OGC WebMercatorQuad (morecantile), zoom 0..MAXZOOM.
* One layer per tile, named after the collection; feature properties as in
  :mod:`gis_grid.features`; feature id = the numeric grid code / building id.
* Geometries are clipped to the tile plus a BUFFER-unit margin (of EXTENT) and
  simplified by about half a tile unit, so a tile never carries more detail
  than it can show.
* Buildings (~60k) are only drawn from street zoom: at z < BUILDINGS_MINZOOM a
  buildings tile is empty (a valid zero-feature MVT). Streets, communities and
  grids are served at every zoom, simplified per zoom.
* Per atlas object, each collection's geometries are projected to Web Mercator
  once and indexed in an STRtree; a tile is an STRtree query + clip + encode.
* Encoded tiles live in a bounded LRU keyed by (atlas version, collection, z,
  x, y); a new atlas version drops the old entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import mapbox_vector_tile
import morecantile
import numpy as np
import shapely
from pyproj import Transformer

from . import features as feat
from .atlas.memo import ResponseCache
from .errors import InvalidInputError, NotFoundError

__all__ = ["TMS_ID", "MINZOOM", "MAXZOOM", "EXTENT", "BUFFER", "BUILDINGS_MINZOOM", "minzoom_of",
           "check_tile", "render_tile", "CACHE", "get_tile", "etag", "tilejson"]

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
MINZOOM = 0
MAXZOOM = 22
EXTENT = 4096
BUFFER = 64
BUILDINGS_MINZOOM = 14
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

_TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)  # CGCS2000 == WGS84 to cm


def minzoom_of(cid: str) -> int:
    return BUILDINGS_MINZOOM if cid == "buildings" else MINZOOM


def check_tile(z: int, x: int, y: int) -> None:
    if not MINZOOM <= z <= MAXZOOM:
        raise NotFoundError(f"zoom {z} is outside the served tile matrices {MINZOOM}..{MAXZOOM} of {TMS_ID}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise NotFoundError(f"tile {z}/{x}/{y} is outside tile matrix {z} of {TMS_ID} "
                            f"(x and y must be in 0..{n - 1})")


# ---------------------------------------------------------------- per-atlas mercator index
@dataclass
class _MercLayer:
    geoms: np.ndarray            # EPSG:3857
    tree: shapely.STRtree
    coll: feat.Collection
    props: list[dict]
    ids: list[int]


def _to_3857(xy):
    x, y = _TO_3857.transform(xy[:, 0], np.clip(xy[:, 1], -85.06, 85.06))
    return np.column_stack([x, y])


def _build_layer(atlas, cid: str) -> _MercLayer:
    coll = feat.collection(atlas, cid)
    geoms = shapely.transform(coll.geometry, _to_3857) if len(coll) else np.empty(0, dtype=object)
    columns = coll.columns
    props = [{k: v for k, v in ((k, col[i]) for k, col in columns.items()) if v is not None}
             for i in range(len(coll))]
    ids = [int(i) for i in coll.ids]  # grid codes are all digits: fit an MVT uint64 id
    return _MercLayer(geoms, shapely.STRtree(geoms), coll, props, ids)


def _layer(atlas, cid: str) -> _MercLayer:
    feat.collection(atlas, cid)  # 404 for unknown collections
    return atlas.memo.get(("tiles.layer", cid), lambda: _build_layer(atlas, cid))


def warm(atlas, cids=tuple(feat.COLLECTIONS)) -> None:
    """Build the mercator indexes ahead of the first tile request."""
    for cid in cids:
        _layer(atlas, cid)


# ---------------------------------------------------------------- rendering
def render_tile(atlas, cid: str, z: int, x: int, y: int) -> bytes:
    """Encode one tile (no cache)."""
    check_tile(z, x, y)
    layer = _layer(atlas, cid)
    if z < minzoom_of(cid):
        return b""  # a valid, empty MVT: buildings start at street zoom
    b = TMS.xy_bounds(x, y, z)
    w = b.right - b.left
    h = b.top - b.bottom
    margin = w * BUFFER / EXTENT
    rows = layer.tree.query(shapely.box(b.left - margin, b.bottom - margin, b.right + margin, b.top + margin),
                            predicate="intersects")
    if not len(rows):
        return b""
    rows = np.sort(rows)
    geoms = shapely.clip_by_rect(layer.geoms[rows], b.left - margin, b.bottom - margin,
                                 b.right + margin, b.top + margin)
    sx, sy = EXTENT / w, EXTENT / h

    def to_tile(xy):
        return np.column_stack([(xy[:, 0] - b.left) * sx, (b.top - xy[:, 1]) * sy])

    geoms = shapely.transform(geoms, to_tile)
    # half a tile unit: below what the encoder's integer grid can show anyway
    geoms = shapely.simplify(geoms, 0.5, preserve_topology=True)
    # MVT exteriors have positive surveyor area in (y-down) tile coordinates, which is
    # shapely's counter-clockwise; orienting here (vectorised) spares the encoder's
    # per-ring Python check, about half the encoding time
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    out = []
    for r, g in zip(rows, geoms):
        if g is None or g.is_empty:
            continue
        if g.geom_type == "GeometryCollection":
            polys = [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
            if not polys:
                continue
            g = shapely.union_all(polys)
        out.append({"geometry": g, "properties": layer.props[r], "id": layer.ids[r]})
    if not out:
        return b""
    return mapbox_vector_tile.encode([{"name": cid, "features": out}],
                                     default_options={"extents": EXTENT, "y_coord_down": True,
                                                      "check_winding_order": False,
                                                      "on_invalid_geometry": None})


# ---------------------------------------------------------------- cache
CACHE = ResponseCache()  # the default cache; the API keeps one per app


def get_tile(atlas, cid: str, z: int, x: int, y: int, cache: ResponseCache | None = CACHE) -> bytes:
    """A tile through the cache (render on a miss)."""
    check_tile(z, x, y)
    if cid not in feat.COLLECTIONS:
        feat.collection(atlas, cid)  # raises NotFoundError
    if cache is None:
        return render_tile(atlas, cid, z, x, y)
    return cache.get_or_build((atlas.version, cid, z, x, y), lambda: render_tile(atlas, cid, z, x, y))


def etag(atlas, z: int, x: int, y: int) -> str:
    return f"{atlas.version}-{z}-{x}-{y}"


def tilejson(atlas, cid: str, tiles_url: str) -> dict:
    """TileJSON 3.0.0 for one collection; ``tiles_url`` holds {z}/{x}/{y}."""
    coll = feat.collection(atlas, cid)
    if "{z}" not in tiles_url or "{x}" not in tiles_url or "{y}" not in tiles_url:
        raise InvalidInputError("the tiles URL template needs {z}, {x} and {y}")
    bounds = coll.extent_crs84()
    fields = {"id": "Number", "kind": "String", "name": "String", "floors": "Number", "units": "Number",
              "grid_code": "String"} if cid == "buildings" else \
        {"code": "String", "name": "String", "level": "String", "parent_code": "String"}
    return {
        "tilejson": "3.0.0",
        "name": coll.title,
        "description": coll.description + (f" Buildings are drawn from zoom {BUILDINGS_MINZOOM}."
                                           if cid == "buildings" else ""),
        "version": str(atlas.version),
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": minzoom_of(cid),
        "maxzoom": MAXZOOM,
        "bounds": bounds,
        "center": [round((bounds[0] + bounds[2]) / 2, 6), round((bounds[1] + bounds[3]) / 2, 6),
                   max(minzoom_of(cid), 12)],
        "vector_layers": [{"id": cid, "description": coll.description, "fields": fields,
                           "minzoom": minzoom_of(cid), "maxzoom": MAXZOOM}],
    }
