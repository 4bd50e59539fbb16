"""OGC API - Features Part 1 and Part 2 under /ogc: HTTP in, :mod:`gis_grid.ogc` answers out.

The documents, their links and paging, the scope of the ``incidents`` collection and the HTML
pages are built in the library; this module only declares the operations (for the OpenAPI
document) and hands each request's plain values over.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gis_grid import ogc
from gis_grid.ogc import DEFAULT_LIMIT, GEOJSON, MAX_LIMIT

from ..deps import public_base
from ..security import require

router = APIRouter(prefix="/ogc", tags=["ogc"], dependencies=[Depends(require("maps"))])


def _base(request: Request) -> str:
    return public_base(request) + "/ogc"


def _query(request: Request) -> dict:
    qp = request.query_params
    return {"params": {k: qp.getlist(k) for k in qp.keys()}, "accept": request.headers.get("accept", "")}


def _context(request: Request) -> dict:
    """What the data documents are built from: the query, the caller, the atlas snapshot and the store."""
    h = request.app.state.holder
    # the principal is set by the router's require("maps") dependency
    return {**_query(request), "who": request.state.principal, "atlas": h.atlas, "store": h.store}


def _send(answer: ogc.Answer) -> Response:
    if isinstance(answer.body, dict):
        return JSONResponse(answer.body, media_type=answer.media_type, headers=answer.headers)
    if answer.media_type == ogc.HTML:
        return HTMLResponse(answer.body)
    return Response(answer.body.encode("utf-8"), media_type=answer.media_type, headers=answer.headers)


# ---------------------------------------------------------------- endpoints
_F = Query(None, description="json or html", json_schema_extra={"enum": ["json", "html"]})
_DOC = {200: {"content": {"application/json": {}, "text/html": {}}}}


@router.get("", summary="OGC API landing page", responses=_DOC)
@router.get("/", include_in_schema=False)
def landing(request: Request, f: str | None = _F):
    root = public_base(request)
    return _send(ogc.landing(_base(request), root, f=f, **_query(request)))


@router.get("/api", summary="The OGC API definition as OpenAPI 3.0 (the landing page's service-desc)",
            response_class=Response, responses={200: {"content": {ogc.OPENAPI_30: {}}}})
def api_definition(request: Request):
    return _send(ogc.api_definition(request.app.openapi(), _base(request), _query(request)["params"]))


@router.get("/conformance", summary="Conformance classes", responses=_DOC)
def conformance(request: Request, f: str | None = _F):
    return _send(ogc.conformance(_base(request), f=f, **_query(request)))


@router.get("/collections", summary="The feature collections", responses=_DOC)
def collections(request: Request, f: str | None = _F):
    return _send(ogc.collections(_base(request), f=f, **_context(request)))


@router.get("/collections/{collectionId}", summary="One feature collection", responses=_DOC)
def collection(request: Request, collectionId: str, f: str | None = _F):
    return _send(ogc.collection(_base(request), collectionId, f=f, **_context(request)))


_SCHEMA = {200: {"content": {ogc.SCHEMA_JSON: {}}}}


@router.get("/collections/{collectionId}/queryables", summary="The properties the items filter on, as JSON Schema",
            response_class=Response, responses=_SCHEMA)
def queryables(request: Request, collectionId: str, f: str | None = Query(None, description="json")):
    return _send(ogc.properties_schema(_base(request), collectionId, "queryables", f=f, **_context(request)))


@router.get("/collections/{collectionId}/schema.xsd", summary="The features as a GML application schema (XSD)",
            response_class=Response, responses={200: {"content": {"text/xml": {}}}})
def xml_schema(request: Request, collectionId: str):
    return _send(ogc.xml_schema(_base(request), collectionId, _query(request)["params"]))


@router.get("/collections/{collectionId}/schema", summary="The feature properties, as JSON Schema",
            response_class=Response, responses=_SCHEMA)
def schema(request: Request, collectionId: str, f: str | None = Query(None, description="json")):
    return _send(ogc.properties_schema(_base(request), collectionId, "schema", f=f, **_context(request)))


@router.get("/collections/{collectionId}/items", summary="Features of a collection, paged",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
def items(request: Request, collectionId: str,
          bbox: str | None = Query(None, description="minx,miny,maxx,maxy in the axis order of bbox-crs "
                                                     "(CRS84: lon,lat; EPSG:4490: lat,lon; EPSG:4548: N,E)"),
          bbox_crs: str | None = Query(None, alias="bbox-crs", description="CRS of bbox (default CRS84)"),
          crs: str | None = Query(None, description="output CRS: CRS84 (default), EPSG:4490, EPSG:4548 URIs"),
          limit: int = Query(DEFAULT_LIMIT, ge=1, description=f"page size; values above {MAX_LIMIT} are clamped",
                             json_schema_extra={"maximum": MAX_LIMIT}),
          offset: int = Query(0, ge=0, description="features to skip"),
          datetime_: str | None = Query(None, alias="datetime",
                                        description="incidents only: creation time, an instant, a date or an "
                                                    "interval start/end ('..' open)"),
          f: str | None = Query(None, description="json (or geojson) or html"),
          # the incidents' queryables, declared so that the OpenAPI document lists them (they are read
          # from the query string below, like the grid collections' queryables: code, name, level,
          # parent_code; id, kind, name, floors, units, grid_code)
          category: list[str] | None = Query(None, description="incidents: category code(s)"),
          status: list[str] | None = Query(None, description="incidents: workflow status(es)"),
          department: list[str] | None = Query(None, description="incidents: responsible department(s)"),
          priority: list[str] | None = Query(None, description="incidents: routine, urgent, critical"),
          colour: list[str] | None = Query(None, description="incidents: supervision colour now"),
          grid_code: str | None = Query(None, description="incidents: a division code of any level; "
                                                          "buildings: the base grid")):
    # any other query parameter filters on a property (?category=dispute, ?parent_code=...)
    return _send(ogc.items(_base(request), collectionId, bbox=bbox, bbox_crs=bbox_crs, crs=crs, limit=limit,
                           offset=offset, datetime_=datetime_, f=f, **_context(request)))


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
def item(request: Request, collectionId: str, featureId: str,
         crs: str | None = Query(None, description="output CRS: CRS84 (default), EPSG:4490, EPSG:4548 URIs"),
         f: str | None = Query(None, description="json (or geojson) or html")):
    return _send(ogc.item(_base(request), collectionId, featureId, crs=crs, f=f, **_context(request)))
