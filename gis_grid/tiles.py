"""Mapbox vector tiles (MVT) of the atlas collections on the WebMercatorQuad grid.

* Tile matrix set: OGC WebMercatorQuad (morecantile), zoom 0..MAXZOOM.
* One layer per tile, named after the collection; feature properties as in
  :mod:`gis_grid.features`; feature id = the numeric grid code / building id.
* Geometries are clipped to the tile plus a BUFFER-unit margin (of EXTENT) and
  simplified by about half a tile unit, so a tile never carries more detail
  than it can show.
* Buildings (~60k) are only drawn from street zoom: at z < BUILDINGS_MINZOOM a
  buildings tile is empty. Every empty tile is the same thing: a valid MVT
  holding the collection's layer with no features (never a 0-byte body, which
  GDAL's MVT driver cannot open). Streets, communities and grids are served at
  every zoom, simplified per zoom.
* Coordinates are snapped to the tile's integer grid here (GEOS snap rounding),
  not by the encoder's rounding, so every polygon in a tile is valid.
* Per atlas object, each collection's geometries are projected to Web Mercator
  once and indexed in an STRtree; a tile is an STRtree query + clip + encode.
* Encoded tiles live in a bounded LRU keyed by (atlas version, collection, z,
  x, y); a new atlas version drops the old entries.
"""
from __future__ import annotations

import functools
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
           "check_tile", "render_tile", "CACHE", "get_tile", "etag", "tilejson", "SUFFIX",
           "tile_matrix_sets_doc", "tile_matrix_set_doc", "tilesets_doc", "tileset_doc", "CONFORMANCE"]

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
#: a second tile matrix set, for OGC API - Tiles clients: GDAL's OGCAPI driver (up to at least 3.12)
#: computes a vector tileset's tile range from the collection's CRS84 extent without reprojecting it,
#: so it reads the right tiles only from a tileset in CRS84 (and picks WorldCRS84Quad when offered)
CRS84_TMS_ID = "WorldCRS84Quad"
TILE_MATRIX_SETS = {TMS_ID: TMS, CRS84_TMS_ID: morecantile.tms.get(CRS84_TMS_ID)}
MINZOOM = 0
MAXZOOM = 22
EXTENT = 4096
BUFFER = 64
BUILDINGS_MINZOOM = 14
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
#: the file suffix tile URLs are published with (TileJSON, tilesets): GDAL picks its MVT driver by it
SUFFIX = ".pbf"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
_WKSS = {TMS_ID: "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
         "WorldCRS84Quad": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleCRS84Quad"}
#: OGC API - Tiles Part 1 classes the /ogc tiles resources implement
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]

_TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)  # CGCS2000 == WGS84 to cm


def minzoom_of(cid: str) -> int:
    return BUILDINGS_MINZOOM if cid == "buildings" else MINZOOM


def tile_matrix_set(tms_id: str):
    try:
        return TILE_MATRIX_SETS[tms_id]
    except KeyError:
        raise NotFoundError(f"tile matrix set {tms_id!r} is not offered; use {' or '.join(TILE_MATRIX_SETS)}") \
            from None


def check_tile(z: int, x: int, y: int, tms_id: str = TMS_ID) -> None:
    tms = tile_matrix_set(tms_id)
    if not MINZOOM <= z <= MAXZOOM:
        raise NotFoundError(f"zoom {z} is outside the served tile matrices {MINZOOM}..{MAXZOOM} of {tms_id}")
    m = tms.matrix(z)
    if not (0 <= x < m.matrixWidth and 0 <= y < m.matrixHeight):
        raise NotFoundError(f"tile {z}/{x}/{y} is outside tile matrix {z} of {tms_id} "
                            f"(x must be in 0..{m.matrixWidth - 1}, y in 0..{m.matrixHeight - 1})")


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


def _build_layer(atlas, cid: str, tms_id: str = TMS_ID) -> _MercLayer:
    coll = feat.collection(atlas, cid)
    if tms_id == CRS84_TMS_ID:  # the atlas lon/lat (EPSG:4490 == CRS84 to cm, see gis_grid.crs)
        geoms = coll.geometry if len(coll) else np.empty(0, dtype=object)
    else:
        geoms = shapely.transform(coll.geometry, _to_3857) if len(coll) else np.empty(0, dtype=object)
    # the properties a map styles and filters on (the queryables); the encoder's per-attribute cost is
    # most of a tile's, so boundary version, dates and areas stay in the features API and the exports
    columns = {k: coll.columns[k] for k in feat.queryables(cid)}
    props = [{k: v for k, v in ((k, col[i]) for k, col in columns.items()) if v is not None}
             for i in range(len(coll))]
    ids = [int(i) for i in coll.ids]  # grid codes are all digits: fit an MVT uint64 id
    return _MercLayer(geoms, shapely.STRtree(geoms), coll, props, ids)


def _layer(atlas, cid: str, tms_id: str = TMS_ID) -> _MercLayer:
    feat.collection(atlas, cid)  # 404 for unknown collections
    if tms_id == TMS_ID:
        return atlas.memo.get(("tiles.layer", cid), lambda: _build_layer(atlas, cid))
    return atlas.memo.get(("tiles.layer", cid, tms_id), lambda: _build_layer(atlas, cid, tms_id))


def warm(atlas, cids=tuple(feat.COLLECTIONS)) -> None:
    """Build the mercator indexes ahead of the first tile request."""
    for cid in cids:
        _layer(atlas, cid)


# ---------------------------------------------------------------- rendering
@functools.lru_cache(maxsize=None)
def empty_tile(cid: str) -> bytes:
    """A valid MVT with the collection's layer and no features (encoded once: the encoder costs ms)."""
    return mapbox_vector_tile.encode([{"name": cid, "features": []}],
                                     default_options={"extents": EXTENT})


def render_tile(atlas, cid: str, z: int, x: int, y: int, tms_id: str = TMS_ID, scope: str | None = None) -> bytes:
    """Encode one tile (no cache); ``scope``: only the features a key confined to it sees."""
    check_tile(z, x, y, tms_id)
    layer = _layer(atlas, cid, tms_id)
    if z < minzoom_of(cid):
        return empty_tile(cid)  # buildings start at street zoom
    b = TILE_MATRIX_SETS[tms_id].xy_bounds(x, y, z)
    w = b.right - b.left
    h = b.top - b.bottom
    margin = w * BUFFER / EXTENT
    rows = layer.tree.query(shapely.box(b.left - margin, b.bottom - margin, b.right + margin, b.top + margin),
                            predicate="intersects")
    visible = feat.in_scope(atlas, cid, scope)
    if visible is not None:
        rows = rows[visible[rows]]
    if not len(rows):
        return empty_tile(cid)
    rows = np.sort(rows)
    geoms = shapely.clip_by_rect(layer.geoms[rows], b.left - margin, b.bottom - margin,
                                 b.right + margin, b.top + margin)
    sx, sy = EXTENT / w, EXTENT / h

    def to_tile(xy):
        return np.column_stack([(xy[:, 0] - b.left) * sx, (b.top - xy[:, 1]) * sy])

    geoms = shapely.transform(geoms, to_tile)
    # half a tile unit: below what the encoder's integer grid can show anyway
    geoms = shapely.simplify(geoms, 0.5, preserve_topology=True)
    # the encoder would round each vertex on its own, which can fold a thin polygon over itself:
    # round here, and snap-round (valid by construction, a sliver collapses to empty) only the few
    # that rounding broke; snap rounding every polygon costs ten times the whole tile
    rounded = shapely.set_precision(geoms, 1.0, mode="pointwise")
    broken = ~shapely.is_valid(rounded)
    if broken.any():
        rounded[broken] = shapely.set_precision(geoms[broken], 1.0)
    geoms = rounded
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
        return empty_tile(cid)
    return mapbox_vector_tile.encode([{"name": cid, "features": out}],
                                     default_options={"extents": EXTENT, "y_coord_down": True,
                                                      "check_winding_order": False,
                                                      "on_invalid_geometry": None})


# ---------------------------------------------------------------- cache
CACHE = ResponseCache()  # the default cache; the API keeps one per app


def get_tile(atlas, cid: str, z: int, x: int, y: int, cache: ResponseCache | None = CACHE,
             tms_id: str = TMS_ID, scope: str | None = None) -> bytes:
    """A tile through the cache (render on a miss), keyed by scope too: keys share no confined tile."""
    check_tile(z, x, y, tms_id)
    if cid not in feat.COLLECTIONS:
        feat.collection(atlas, cid)  # raises NotFoundError
    if cache is None:
        return render_tile(atlas, cid, z, x, y, tms_id, scope)
    key = (atlas.version, cid, z, x, y) + _variant(tms_id, scope)
    return cache.get_or_build(key, lambda: render_tile(atlas, cid, z, x, y, tms_id, scope))


def _variant(tms_id: str, scope: str | None) -> tuple:
    # the default tile matrix set, unconfined, is the plain (version, cid, z, x, y) key
    return ((tms_id,) if tms_id != TMS_ID else ()) + ((scope,) if scope else ())


def etag(atlas, z: int, x: int, y: int, tms_id: str = TMS_ID, scope: str | None = None) -> str:
    return "-".join(str(v) for v in (atlas.version, z, x, y, *_variant(tms_id, scope)))


def tilejson(atlas, cid: str, tiles_url: str) -> dict:
    """TileJSON 3.0.0 for one collection; ``tiles_url`` holds {z}/{x}/{y}."""
    coll = feat.collection(atlas, cid)
    if "{z}" not in tiles_url or "{x}" not in tiles_url or "{y}" not in tiles_url:
        raise InvalidInputError("the tiles URL template needs {z}, {x} and {y}")
    bounds = coll.extent_crs84()
    fields = {k: "Number" if feat.PROPERTY_SCHEMA[k]["type"] in ("integer", "number") else "String"
              for k in feat.queryables(cid)}
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


# ---------------------------------------------------------------- OGC API - Tiles discovery
def tile_matrix_sets_doc(base: str) -> dict:
    """``/tileMatrixSets``: the tile matrix sets tiles are served in."""
    return {"tileMatrixSets": [{
        "id": tid, "title": tms.title, "uri": tms.uri,
        "links": [{"href": f"{base}/tileMatrixSets/{tid}", "rel": "self", "type": "application/json",
                   "title": "the tile matrix set definition"}]} for tid, tms in TILE_MATRIX_SETS.items()],
        "links": [{"href": f"{base}/tileMatrixSets", "rel": "self", "type": "application/json"}]}


def tile_matrix_set_doc(tms_id: str) -> dict:
    """``/tileMatrixSets/{id}``: the OGC Two Dimensional Tile Matrix Set definition.

    The TMS 2.0 members, and alongside them the TMS 1.0 ones (``type``, ``identifier``,
    ``supportedCRS``, ``tileMatrix``; no name is shared): GDAL before 3.7 reads only 1.0
    ("Cannot parse CRS" on a 2.0 document), later readers take 2.0.
    """
    doc = tile_matrix_set(tms_id).model_dump(exclude_none=True, mode="json")
    doc["tileMatrices"] = [m for m in doc["tileMatrices"] if MINZOOM <= int(m["id"]) <= MAXZOOM]
    doc.update({
        "type": "TileMatrixSetType", "identifier": doc["id"], "supportedCRS": doc["crs"],
        "wellKnownScaleSet": _WKSS[tms_id],
        "tileMatrix": [{"type": "TileMatrixType", "identifier": m["id"], "scaleDenominator": m["scaleDenominator"],
                        "topLeftCorner": m["pointOfOrigin"], "tileWidth": m["tileWidth"],
                        "tileHeight": m["tileHeight"], "matrixWidth": m["matrixWidth"],
                        "matrixHeight": m["matrixHeight"]} for m in doc["tileMatrices"]],
    })
    return doc


def _tileset_links(base: str, cid: str, tms_id: str) -> list[dict]:
    tb = f"{base}/collections/{cid}/tiles/{tms_id}"
    links = [
        {"href": tb, "rel": "self", "type": "application/json", "title": "this tileset"},
        {"href": f"{base}/tileMatrixSets/{tms_id}", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
         "type": "application/json", "title": "the tile matrix set"},
        # our tile paths are z/x/y (column before row), which the template spells out
        {"href": tb + "/{tileMatrix}/{tileCol}/{tileRow}" + SUFFIX, "rel": "item", "type": MEDIA_TYPE,
         "templated": True, "title": "Mapbox vector tiles"},
    ]
    if tms_id == TMS_ID:
        links.append({"href": tb + "/tilejson.json", "rel": "describedby", "type": "application/json",
                      "title": "TileJSON 3.0"})
    return links


def _tileset_head(coll, tms_id: str) -> dict:
    tms = TILE_MATRIX_SETS[tms_id]
    return {"title": f"{coll.title} vector tiles ({tms_id})", "dataType": "vector", "crs": str(tms.crs.root),
            "tileMatrixSetURI": tms.uri}


def tilesets_doc(atlas, base: str, cid: str) -> dict:
    """``/collections/{cid}/tiles``: the collection's tilesets, one per tile matrix set."""
    coll = feat.collection(atlas, cid)
    return {"tilesets": [{**_tileset_head(coll, tid), "links": _tileset_links(base, cid, tid)}
                         for tid in TILE_MATRIX_SETS],
            "links": [{"href": f"{base}/collections/{cid}/tiles", "rel": "self", "type": "application/json"}]}


def tileset_doc(atlas, base: str, cid: str, tms_id: str) -> dict:
    """``/collections/{cid}/tiles/{tms}``: one tileset, with the tile matrices that hold data."""
    tms = tile_matrix_set(tms_id)
    coll = feat.collection(atlas, cid)
    w, s, e, n = coll.extent_crs84()
    limits = []
    for z in range(minzoom_of(cid), MAXZOOM + 1):
        ul, lr = tms.tile(w, n, z), tms.tile(e, s, z)
        limits.append({"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y,
                       "minTileCol": ul.x, "maxTileCol": lr.x})
    return {**_tileset_head(coll, tms_id),
            "tileMatrixSetLimits": limits,
            "boundingBox": {"lowerLeft": [w, s], "upperRight": [e, n],
                            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
            "layers": [{"id": cid, "dataType": "vector", "minTileMatrix": str(minzoom_of(cid)),
                        "maxTileMatrix": str(MAXZOOM), "geometryDimension": 2,
                        "propertiesSchema": {"type": "object", "properties": {
                            k: feat.PROPERTY_SCHEMA[k] for k in feat.queryables(cid)}}}],
            "links": _tileset_links(base, cid, tms_id)}
