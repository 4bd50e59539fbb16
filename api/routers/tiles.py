"""Mapbox vector tiles of the OGC collections on WebMercatorQuad, plus TileJSON 3.0.

GET /ogc/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}   (y may end in .mvt or .pbf)
GET /ogc/collections/{id}/tiles/WebMercatorQuad/tilejson.json
GET /ogc/collections/{id}/tiles, /ogc/collections/{id}/tiles/WebMercatorQuad, /ogc/tileMatrixSets[/{id}]
    (OGC API - Tiles discovery, built in gis_grid.tiles)

Buildings are drawn from zoom 14 (gis_grid.tiles.BUILDINGS_MINZOOM); below it a buildings
tile is a valid empty MVT. Tiles are cached per atlas version; ETag = "{version}-{z}-{x}-{y}".
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from gis_grid import tiles as tl
from gis_grid.atlas.memo import ResponseCache
from gis_grid.errors import InvalidInputError, NotFoundError

from ..deps import public_base
from ..security import require

router = APIRouter(prefix="/ogc/collections/{collectionId}/tiles", tags=["tiles"],
                   dependencies=[Depends(require("maps"))])
tms_router = APIRouter(prefix="/ogc/tileMatrixSets", tags=["tiles"], dependencies=[Depends(require("maps"))])


def _ogc_base(request: Request) -> str:
    return public_base(request) + "/ogc"  # the configured public URL, never the Host header


@tms_router.get("", summary="The tile matrix sets tiles are served in")
def tile_matrix_sets(request: Request):
    _no_params(request)
    return tl.tile_matrix_sets_doc(_ogc_base(request))


@tms_router.get("/{tileMatrixSetId}", summary="A tile matrix set definition (OGC TMS 2.0)")
def tile_matrix_set(request: Request, tileMatrixSetId: str):
    _no_params(request)
    return tl.tile_matrix_set_doc(tileMatrixSetId)


def _cache(request: Request) -> ResponseCache:
    """One tile cache per app (two apps in a process may both serve an atlas version 1)."""
    cache = getattr(request.app.state, "tile_cache", None)
    if cache is None:
        cache = request.app.state.tile_cache = ResponseCache()
    return cache


def _check_tms(tms: str) -> None:
    tl.tile_matrix_set(tms)  # 404 for a set not offered


def _no_params(request: Request) -> None:
    if request.query_params:
        unknown = sorted(request.query_params.keys())
        raise InvalidInputError(f"unknown query parameter(s): {', '.join(unknown)}; tiles take none",
                                detail={"unknown": unknown, "allowed": []})


@router.get("", summary="The tilesets of a collection")
def tilesets(request: Request, collectionId: str):
    _no_params(request)
    return tl.tilesets_doc(request.app.state.holder.atlas, _ogc_base(request), collectionId)


@router.get("/{tileMatrixSetId}", summary="One tileset of a collection (OGC API - Tiles)")
def tileset(request: Request, collectionId: str, tileMatrixSetId: str):
    _no_params(request)
    return tl.tileset_doc(request.app.state.holder.atlas, _ogc_base(request), collectionId, tileMatrixSetId)


@router.get("/{tileMatrixSetId}/tilejson.json", summary="TileJSON 3.0 of a collection's vector tiles")
def tilejson(request: Request, collectionId: str, tileMatrixSetId: str):
    _no_params(request)
    if tileMatrixSetId != tl.TMS_ID:  # TileJSON's xyz scheme is WebMercatorQuad
        raise NotFoundError(f"TileJSON is offered for {tl.TMS_ID} only, not {tileMatrixSetId!r}")
    atlas = request.app.state.holder.atlas
    url = (public_base(request)
           + f"/ogc/collections/{collectionId}/tiles/{tl.TMS_ID}" + "/{z}/{x}/{y}" + tl.SUFFIX)
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
    scope = request.state.principal.confined_to  # set by the router's require("maps")
    data = tl.get_tile(atlas, collectionId, z, x, yi, cache=_cache(request), tms_id=tileMatrixSetId, scope=scope)
    tag = f'"{tl.etag(atlas, z, x, yi, tileMatrixSetId, scope)}"'
    # a confined key's tile is its own: no shared cache may hand it to another key
    headers = {"ETag": tag, "Cache-Control": "private, max-age=300" if scope else "public, max-age=300"}
    inm = request.headers.get("if-none-match")
    if inm and tag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=tl.MEDIA_TYPE, headers=headers)
