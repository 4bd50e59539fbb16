"""OGC API - Features Part 1 (core, GeoJSON, HTML, OpenAPI 3.0) and Part 2 (CRS) under /ogc.

Reads come from the atlas snapshot (``request.app.state.holder.atlas``), never the store; the
``incidents`` collection comes from the cached case table and is scoped to the caller's key
like ``GET /incidents`` (see :mod:`gis_grid.incidents.features`).
Axis order follows Part 2: CRS84 is lon/lat, EPSG:4490 is lat/lon and EPSG:4548 is
northing/easting (the EPSG authority orders); see :mod:`gis_grid.features`.
"""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gis_grid import crs as crs_mod
from gis_grid import features as feat
from gis_grid.errors import InvalidInputError, PermissionDeniedError
from gis_grid.incidents import aggregate
from gis_grid.incidents import features as inc_feat
from gis_grid.security.roles import Principal

from ..security import require

router = APIRouter(prefix="/ogc", tags=["ogc"], dependencies=[Depends(require("maps"))])

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
_STORAGE_URI = crs_mod.crs_uri("EPSG:4490")


# ---------------------------------------------------------------- helpers
def _check_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"this endpoint accepts {', '.join(sorted(allowed)) or 'none'}",
            detail={"unknown": unknown, "allowed": sorted(allowed)})


def _html_wanted(request: Request, f: str | None) -> bool:
    if f is not None:
        if f not in ("json", "geojson", "html"):
            raise InvalidInputError(f"f={f!r} is not offered; use f=json (or f=geojson) or f=html")
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _url(base: str, path: str, **params) -> str:
    q = {k: v for k, v in params.items() if v is not None}
    return f"{base}{path}" + (f"?{urlencode(q)}" if q else "")


def _atlas(request: Request):
    return request.app.state.holder.atlas


def _who(request: Request) -> Principal:
    return request.state.principal  # set by the router's require("maps") dependency


def _case_scope(request: Request) -> str | None:
    """The division the caller's cases are confined to (None: all); 403 without case access."""
    who = _who(request)
    if not who.permission.cases_read:
        raise PermissionDeniedError(f"the {who.role} role may not read cases (the incidents collection)")
    return who.scope if who.permission.subtree_only else None


def _cases(request: Request):
    h = request.app.state.holder
    atlas = h.atlas
    return aggregate.case_table(h.store, atlas), atlas


def _collection_links(cb: str) -> list[dict]:
    """The self/alternate/items links every collection document carries."""
    return [
        {"href": cb, "rel": "self", "type": "application/json", "title": "this collection"},
        {"href": f"{cb}?f=html", "rel": "alternate", "type": "text/html", "title": "this collection as HTML"},
        {"href": f"{cb}/items", "rel": "items", "type": GEOJSON, "title": "the features"},
        {"href": f"{cb}/items?f=html", "rel": "items", "type": "text/html", "title": "the features as HTML"},
    ]


def _incidents_doc(request: Request, base: str) -> dict:
    scope = _case_scope(request)
    t, atlas = _cases(request)
    ext = inc_feat.extent(t, atlas, scope)
    cb = f"{base}/collections/{inc_feat.COLLECTION_ID}"
    return {
        "id": inc_feat.COLLECTION_ID,
        "title": inc_feat.TITLE,
        "description": inc_feat.DESCRIPTION,
        "itemType": "feature",
        "links": _collection_links(cb),
        "extent": {"spatial": {"bbox": [ext["bbox"]], "crs": crs_mod.crs_uri("CRS84")},
                   "temporal": {"interval": [ext["interval"]],
                                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        "crs": feat.crs_uris(),
        "storageCrs": _STORAGE_URI,
        "itemCount": ext["count"],
        "queryables": list(inc_feat.QUERYABLES),
    }


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
                        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head>"
                        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _links_html(links: list[dict]) -> str:
    return "<ul>" + "".join(f"<li><a href='{html.escape(l['href'])}'>{html.escape(l.get('title') or l['rel'])}"
                            f"</a> ({html.escape(l['rel'])})</li>" for l in links) + "</ul>"


def _json_or_html(request: Request, f: str | None, body: dict, title: str) -> Response:
    if _html_wanted(request, f):
        extra = ""
        if "collections" in body:
            extra = "<ul>" + "".join(
                f"<li><a href='{html.escape(c['links'][0]['href'].split('?')[0])}?f=html'>{html.escape(c['title'])}"
                f"</a> &mdash; {html.escape(c['description'])}</li>" for c in body["collections"]) + "</ul>"
        if "conformsTo" in body:
            extra = "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in body["conformsTo"]) + "</ul>"
        return _page(title, extra + _links_html(body.get("links", [])))
    return JSONResponse(body)


def _collection_doc(base: str, c: feat.Collection) -> dict:
    cb = f"{base}/collections/{c.id}"
    return {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "links": _collection_links(cb) + [
            {"href": f"{cb}/tiles/WebMercatorQuad/tilejson.json", "rel": "describedby",
             "type": "application/json", "title": "TileJSON of the vector tiles"}],
        "extent": {"spatial": {"bbox": [c.extent_crs84()], "crs": crs_mod.crs_uri("CRS84")}},
        "crs": feat.crs_uris(),
        "storageCrs": _STORAGE_URI,
        "itemCount": len(c),
    }


# ---------------------------------------------------------------- endpoints
@router.get("", summary="OGC API landing page", responses={200: {"content": {"application/json": {}, "text/html": {}}}})
@router.get("/", include_in_schema=False)
def landing(request: Request, f: str | None = Query(None, description="json or html", json_schema_extra={"enum": ["json", "html"]})):
    _check_params(request, {"f"})
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    body = {
        "title": "gis_grid: Shizhong District (370402) grids",
        "description": "Streets, communities, base grids and buildings of Shizhong District, Zaozhuang, "
                       "as OGC API - Features (Parts 1 and 2) and Mapbox vector tiles.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}?f=html", "rel": "alternate", "type": "text/html", "title": "this document as HTML"},
            {"href": f"{root}/openapi.json", "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition"},
            {"href": f"{root}/docs", "rel": "service-doc", "type": "text/html", "title": "the API documentation"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
             "title": "conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "the collections"},
        ],
    }
    return _json_or_html(request, f, body, body["title"])


@router.get("/conformance", summary="Conformance classes", responses={200: {"content": {"application/json": {}, "text/html": {}}}})
def conformance(request: Request, f: str | None = Query(None, description="json or html", json_schema_extra={"enum": ["json", "html"]})):
    _check_params(request, {"f"})
    base = _base(request)
    body = {"conformsTo": CONFORMANCE,
            "links": [{"href": f"{base}/conformance", "rel": "self", "type": "application/json"}]}
    return _json_or_html(request, f, body, "Conformance")


@router.get("/collections", summary="The feature collections", responses={200: {"content": {"application/json": {}, "text/html": {}}}})
def collections(request: Request, f: str | None = Query(None, description="json or html", json_schema_extra={"enum": ["json", "html"]})):
    _check_params(request, {"f"})
    base = _base(request)
    layers = feat.layers_of(_atlas(request))
    body = {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"},
                  {"href": f"{base}/collections?f=html", "rel": "alternate", "type": "text/html"}],
        "collections": [_collection_doc(base, c) for c in layers.values()],
        "crs": feat.crs_uris(),
    }
    if _who(request).permission.cases_read:  # listed only to callers who may read it
        body["collections"].append(_incidents_doc(request, base))
    return _json_or_html(request, f, body, "Collections")


@router.get("/collections/{collectionId}", summary="One feature collection", responses={200: {"content": {"application/json": {}, "text/html": {}}}})
def collection(request: Request, collectionId: str, f: str | None = Query(None, description="json or html", json_schema_extra={"enum": ["json", "html"]})):
    _check_params(request, {"f"})
    if collectionId == inc_feat.COLLECTION_ID:
        body = _incidents_doc(request, _base(request))
        title, description, count = body["title"], body["description"], body["itemCount"]
    else:
        c = feat.collection(_atlas(request), collectionId)
        body = _collection_doc(_base(request), c)
        title, description, count = c.title, c.description, len(c)
    if _html_wanted(request, f):
        return _page(title, f"<p>{html.escape(description)}</p><p>{count} features; extent (CRS84) "
                            f"{body['extent']['spatial']['bbox'][0]}</p>" + _links_html(body["links"]))
    return JSONResponse(body)


_ITEMS_PARAMS = {"bbox", "bbox-crs", "crs", "limit", "offset", "f"}


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
    qp = request.query_params
    if collectionId == inc_feat.COLLECTION_ID:
        scope = _case_scope(request)
        queryable = set(inc_feat.QUERYABLES)
        _check_params(request, _ITEMS_PARAMS | {"datetime"} | queryable)
    else:
        queryable = set(feat.queryables(collectionId))
        if datetime_ is not None:
            raise InvalidInputError(f"the {collectionId} collection has no time; datetime filters incidents only")
        _check_params(request, _ITEMS_PARAMS | queryable)
    filters = {k: qp.getlist(k) for k in sorted(queryable) if k in qp}
    want_html = _html_wanted(request, f)
    limit = min(limit, MAX_LIMIT)
    if collectionId == inc_feat.COLLECTION_ID:
        t, atlas = _cases(request)
        page, feats = inc_feat.items(t, atlas, scope=scope, bbox=bbox, bbox_crs=bbox_crs, crs=crs,
                                     datetime_=datetime_, filters=filters, limit=limit, offset=offset)
    else:
        page, feats = feat.items(_atlas(request), collectionId, bbox=bbox, bbox_crs=bbox_crs, crs=crs,
                                 limit=limit, offset=offset, filters=filters)
    out_uri = crs_mod.crs_uri(page.crs)
    base = _base(request)
    path = f"/collections/{collectionId}/items"
    # next/prev links carry every filter (and the format asked for) so a client can just follow them
    common = {"bbox": bbox, "bbox-crs": bbox_crs, "crs": crs, "datetime": datetime_,
              **{k: ",".join(v) for k, v in filters.items()}, "limit": limit}
    if want_html:
        rows = "".join("<tr><td>%s</td><td>%s</td></tr>" % (
            html.escape(str(d["id"])),
            html.escape(", ".join(f"{k}={v}" for k, v in d["properties"].items())))
            for d in (json.loads(x) for x in feats))
        nav = []
        if page.offset > 0:
            nav.append(f"<a href='{html.escape(_url(base, path, **common, offset=max(0, offset - limit), f='html'))}'>previous</a>")
        if page.has_next:
            nav.append(f"<a href='{html.escape(_url(base, path, **common, offset=offset + limit, f='html'))}'>next</a>")
        return _page(f"{collectionId}: features {offset + 1}-{offset + page.number_returned} "
                     f"of {page.number_matched}",
                     f"<p>{' | '.join(nav)}</p><table><tr><th>id</th><th>properties</th></tr>{rows}</table>")
    links = [
        {"href": _url(base, path, **common, offset=offset or None), "rel": "self", "type": GEOJSON,
         "title": "this page"},
        {"href": _url(base, path, **common, offset=offset or None, f="html"), "rel": "alternate",
         "type": "text/html", "title": "this page as HTML"},
        {"href": f"{base}/collections/{collectionId}", "rel": "collection", "type": "application/json"},
    ]
    if page.has_next:
        links.append({"href": _url(base, path, **common, offset=offset + limit), "rel": "next", "type": GEOJSON,
                      "title": "next page"})
    if offset > 0:
        links.append({"href": _url(base, path, **common, offset=max(0, offset - limit) or None), "rel": "prev",
                      "type": GEOJSON, "title": "previous page"})
    head = {"type": "FeatureCollection", "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "timeStamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "links": links}
    text = json.dumps(head, ensure_ascii=False)[:-1] + ',"features":[' + ",".join(feats) + "]}"
    return Response(text.encode("utf-8"), media_type=GEOJSON, headers={"Content-Crs": f"<{out_uri}>"})


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            response_class=Response, responses={200: {"content": {GEOJSON: {}, "text/html": {}}}})
def item(request: Request, collectionId: str, featureId: str,
         crs: str | None = Query(None, description="output CRS: CRS84 (default), EPSG:4490, EPSG:4548 URIs"),
         f: str | None = Query(None, description="json (or geojson) or html")):
    _check_params(request, {"crs", "f"})
    want_html = _html_wanted(request, f)
    if collectionId == inc_feat.COLLECTION_ID:
        scope = _case_scope(request)
        t, atlas = _cases(request)
        text = inc_feat.feature(t, atlas, featureId, scope=scope, crs=crs)
    else:
        text = feat.feature(_atlas(request), collectionId, featureId, crs=crs)
    c = feat.output_crs(crs)
    if want_html:
        d = json.loads(text)
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in d["properties"].items())
        return _page(f"{collectionId} {featureId}", f"<table>{rows}</table>")
    base = _base(request)
    d = json.loads(text)
    d["links"] = [
        {"href": f"{base}/collections/{collectionId}/items/{featureId}", "rel": "self", "type": GEOJSON},
        {"href": f"{base}/collections/{collectionId}/items/{featureId}?f=html", "rel": "alternate",
         "type": "text/html"},
        {"href": f"{base}/collections/{collectionId}", "rel": "collection", "type": "application/json"},
    ]
    return Response(json.dumps(d, ensure_ascii=False).encode("utf-8"), media_type=GEOJSON,
                    headers={"Content-Crs": f"<{crs_mod.crs_uri(c)}>"})
