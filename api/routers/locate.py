"""Point location for other systems: GET one point, POST a batch."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gis_grid import crs as crs_mod
from gis_grid import locate_batch as locate_batch_mod
from gis_grid.atlas import Atlas
from gis_grid.errors import InvalidInputError, LimitExceededError
from gis_grid.security.roles import Principal

from ..asof import AT_DESCRIPTION, atlas_at_dep
from ..deps import crs_query, settings_dep
from ..security import require
from ..settings import Settings

router = APIRouter(tags=["locate"])


_GET_PARAMS = {"parameters": [
    {"name": "lon", "in": "query", "required": True, "schema": {"type": "number"},
     "description": "longitude (or easting for EPSG:4548)"},
    {"name": "lat", "in": "query", "required": True, "schema": {"type": "number"},
     "description": "latitude (or northing for EPSG:4548)"},
    {"name": "crs", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "EPSG:4326 (= CRS84, default), EPSG:4490, EPSG:4548, gcj02, bd09"},
    {"name": "at", "in": "query", "required": False, "schema": {"type": "string"},
     "description": AT_DESCRIPTION}]}


def _number(query, name: str) -> float:
    raw = query.get(name)
    if raw is None:
        raise InvalidInputError(f"query parameter {name!r} is required, e.g. /locate?lon=117.558&lat=34.862")
    try:
        return float(raw)
    except ValueError:
        raise InvalidInputError(f"query parameter {name!r} must be a number, got {raw!r}") from None


_locate_role = require("locate")


@router.get("/locate", summary="Which grid is this point in?", openapi_extra=_GET_PARAMS)
async def locate_one(request: Request) -> Response:
    # the hot path for other systems: parameters are read by hand because FastAPI's
    # generic dependency solving costs more than validating and locating the point
    await _locate_role(request)
    q = request.query_params
    lon, lat, crs = _number(q, "lon"), _number(q, "lat"), q.get("crs")
    atlas = await atlas_at_dep(request, q.get("at"))
    x, y = crs_mod.validate_coordinates(lon, lat, crs)
    slon, slat = crs_mod.to_storage(x, y, crs)
    out = atlas.locate_one(float(slon), float(slat)).to_dict()
    out["atlas_version"] = atlas.version
    return Response(orjson.dumps(out), media_type="application/json")


_BATCH_SCHEMA = {
    # crs and at come from their dependencies (crs_query, atlas_at_dep); these two are read from the query
    "parameters": [
        {"name": "names", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
         "description": "add district_name, street_name, community_name and grid_name to every answer"},
        {"name": "on_invalid", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["fail", "mark"], "default": "fail"},
         "description": "fail: any bad row rejects the batch (422 naming the rows); mark: bad rows are "
                        "answered with an error and the rest are located"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}},
        {"type": "object", "description": "GeoJSON FeatureCollection of Points; answered by a FeatureCollection "
                                          "with each feature's id and properties echoed and the codes added",
         "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}},
         "required": ["type", "features"]}]},
        "example": [[117.558, 34.862], [117.60, 34.80]]}}}}


def _flag(query, name: str) -> bool:
    raw = query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidInputError(f"query parameter {name!r} must be true or false, got {raw!r}")
    return raw in ("true", "1")


@router.post("/locate", summary="Locate a batch of points, answers in input order", openapi_extra=_BATCH_SCHEMA,
             responses={200: {"content": {"application/json": {}, "application/geo+json": {}},
                              "description": "a result list for a points body; a FeatureCollection for one"}})
async def locate_batch(request: Request, who: Principal = Depends(_locate_role),
                       crs: str | None = Depends(crs_query), atlas: Atlas = Depends(atlas_at_dep),
                       settings: Settings = Depends(settings_dep)) -> Response:
    raw = await request.body()
    if len(raw) > settings.max_body_bytes:
        raise LimitExceededError(f"the body has {len(raw)} bytes, over the limit of {settings.max_body_bytes}; "
                                 "split the batch or use the bulk CLI `gis-grid locate IN.csv -o OUT.csv`")
    try:
        body = orjson.loads(raw)  # generic request validation of 10k nested lists costs more than locating them
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from None
    q = request.query_params
    out = locate_batch_mod.answer(atlas, body, crs, names=_flag(q, "names"), on_invalid=q.get("on_invalid", "fail"),
                                  max_points=settings.max_batch_points)
    # orjson straight to bytes: FastAPI's generic encoder costs more than locating 10k points
    media = "application/geo+json" if out.get("type") == "FeatureCollection" else "application/json"
    return Response(orjson.dumps(out), media_type=media)


_NAMES_PARAMS = {"parameters": [
    {"name": "codes", "in": "query", "required": True, "schema": {"type": "string"},
     "description": "comma-separated division codes of any level (at most 1000)"},
    {"name": "at", "in": "query", "required": False, "schema": {"type": "string"}, "description": AT_DESCRIPTION}]}
MAX_NAME_CODES = 1000


@router.get("/locate/names", summary="Names of division codes (any level), for systems that store codes",
            openapi_extra=_NAMES_PARAMS)
async def division_names(request: Request, who: Principal = Depends(_locate_role)) -> Response:
    q = request.query_params
    codes = [c.strip() for c in q.get("codes", "").split(",") if c.strip()]
    if not codes:
        raise InvalidInputError("give codes=CODE[,CODE...], e.g. /locate/names?codes=370402,370402001")
    if len(codes) > MAX_NAME_CODES:
        raise LimitExceededError(f"{len(codes)} codes exceed the limit of {MAX_NAME_CODES} per request")
    atlas = await atlas_at_dep(request, q.get("at"))
    return Response(orjson.dumps({"atlas_version": atlas.version, "names": atlas.division_names(codes)}),
                    media_type="application/json")
