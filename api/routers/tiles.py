"""Mapbox vector tiles of the OGC collections on WebMercatorQuad, plus TileJSON 3.0.

GET /ogc/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}   (y may end in .mvt or .pbf)
GET /ogc/collections/{id}/tiles/WebMercatorQuad/tilejson.json

Buildings are drawn from zoom 14 (gis_grid.tiles.BUILDINGS_MINZOOM); below it a buildings
tile is a valid empty MVT. Tiles are cached per atlas version; ETag = "{version}-{z}-{x}-{y}".
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from gis_grid import features as feat
from gis_grid import tiles as tl
from gis_grid.atlas.memo import ResponseCache
from gis_grid.errors import InvalidInputError, NotFoundError

from ..security import require

router = APIRouter(prefix="/ogc/collections/{collectionId}/tiles", tags=["tiles"],
                   dependencies=[Depends(require("maps"))])


def _cache(request: Request) -> ResponseCache:
    """One tile cache per app (two apps in a process may both serve an atlas version 1)."""
    cache = getattr(request.app.state, "tile_cache", None)
    if cache is None:
        cache = request.app.state.tile_cache = ResponseCache()
    return cache


def _check_tms(tms: str) -> None:
    if tms != tl.TMS_ID:
        raise NotFoundError(f"tile matrix set {tms!r} is not offered; use {tl.TMS_ID}")


def _no_params(request: Request) -> None:
    if request.query_params:
        unknown = sorted(request.query_params.keys())
        raise InvalidInputError(f"unknown query parameter(s): {', '.join(unknown)}; tiles take none",
                                detail={"unknown": unknown, "allowed": []})


@router.get("", summary="The tilesets of a collection")
def tilesets(request: Request, collectionId: str):
    _no_params(request)
    atlas = request.app.state.holder.atlas
    feat.collection(atlas, collectionId)
    base = str(request.base_url).rstrip("/") + f"/ogc/collections/{collectionId}/tiles/{tl.TMS_ID}"
    return {"tilesets": [{
        "title": f"{collectionId} vector tiles", "dataType": "vector", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
        "links": [
            {"href": base + "/{z}/{x}/{y}", "rel": "item", "type": tl.MEDIA_TYPE, "templated": True},
            {"href": base + "/tilejson.json", "rel": "describedby", "type": "application/json",
             "title": "TileJSON 3.0"},
        ]}]}


@router.get("/{tileMatrixSetId}/tilejson.json", summary="TileJSON 3.0 of a collection's vector tiles")
def tilejson(request: Request, collectionId: str, tileMatrixSetId: str):
    _no_params(request)
    _check_tms(tileMatrixSetId)
    atlas = request.app.state.holder.atlas
    url = (str(request.base_url).rstrip("/")
           + f"/ogc/collections/{collectionId}/tiles/{tl.TMS_ID}" + "/{z}/{x}/{y}")
    return JSONResponse(tl.tilejson(atlas, collectionId, url))


@router.get("/{tileMatrixSetId}/{z}/{x}/{y}", summary="One Mapbox vector tile",
            response_class=Response, responses={200: {"content": {tl.MEDIA_TYPE: {}}}})
def tile(request: Request, collectionId: str, tileMatrixSetId: str,
         z: int = Path(..., description=f"zoom {tl.MINZOOM}..{tl.MAXZOOM}"),
         x: int = Path(..., description="column"),
         y: str = Path(..., description="row, optionally with a .mvt or .pbf suffix")):
    _no_params(request)
    _check_tms(tileMatrixSetId)
    stem = y
    for suffix in (".mvt", ".pbf"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    try:
        yi = int(stem)
    except ValueError:
        raise InvalidInputError(f"tile row {y!r} is not an integer (optionally followed by .mvt or .pbf)") from None
    atlas = request.app.state.holder.atlas
    data = tl.get_tile(atlas, collectionId, z, x, yi, cache=_cache(request))
    tag = f'"{tl.etag(atlas, z, x, yi)}"'
    headers = {"ETag": tag, "Cache-Control": "public, max-age=300"}
    inm = request.headers.get("if-none-match")
    if inm and tag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=tl.MEDIA_TYPE, headers=headers)
