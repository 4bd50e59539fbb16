"""OGC API - Features Part 1 (core, GeoJSON, HTML, OpenAPI 3.0) and Part 2 (CRS): the documents.

Framework-free, as in pygeoapi: each endpoint is a function of plain values (the ``/ogc``
base URL, the query parameters, the caller, the atlas and store) that returns an
:class:`Answer` for any web framework to send; ``api/routers/ogc.py`` only adapts HTTP.

Reads come from the atlas snapshot; the ``incidents`` collection comes from the cached case
table and is scoped to the caller's key like ``GET /incidents`` (see
:mod:`gis_grid.incidents.features`). Axis order follows Part 2: CRS84 is lon/lat, EPSG:4490
is lat/lon and EPSG:4548 is northing/easting (the EPSG authority orders); see
:mod:`gis_grid.features`.
"""
from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

from . import crs as crs_mod
from . import features as feat
from . import gml_schema, stats, tiles
from .atlas import Atlas
from .errors import InvalidInputError, PermissionDeniedError
from .incidents import aggregate
from .incidents import features as inc_feat
from .security.roles import Principal
from .store import Store

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
GEOJSON = "application/geo+json"
HTML = "text/html"
SCHEMA_JSON = "application/schema+json"
#: the OpenAPI 3.0 document the landing page's service-desc points at (see gis_grid.openapi30)
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    *tiles.CONFORMANCE,
]
STORAGE_CRS_URI = crs_mod.crs_uri("EPSG:4490")
ITEMS_PARAMS = {"bbox", "bbox-crs", "crs", "limit", "offset", "f"}

#: query parameters as a web framework hands them over: every value of every name
Params = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Answer:
    """One answer: a dict is sent as JSON, text as it is with ``media_type``."""

    body: dict | str
    media_type: str = "application/json"
    headers: dict = field(default_factory=dict)


# ---------------------------------------------------------------- request checks
def check_params(given: Iterable[str], allowed: set[str]) -> None:
    """Unknown query parameters are refused, not ignored: a misspelt filter would match everything."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"this endpoint accepts {', '.join(sorted(allowed)) or 'none'}",
            detail={"unknown": unknown, "allowed": sorted(allowed)})


def html_wanted(f: str | None, accept: str = "") -> bool:
    """``f`` decides; without it a browser's Accept header (HTML and no JSON) does."""
    if f is not None:
        if f not in ("json", "geojson", "html"):
            raise InvalidInputError(f"f={f!r} is not offered; use f=json (or f=geojson) or f=html")
        return f == "html"
    return "text/html" in accept and "json" not in accept


def url(base: str, path: str, **params) -> str:
    q = {k: v for k, v in params.items() if v is not None}
    return f"{base}{path}" + (f"?{urlencode(q)}" if q else "")


def case_scope(who: Principal) -> str | None:
    """The division the caller's cases are confined to (None: all); refused without case access."""
    if not who.permission.cases_read:
        raise PermissionDeniedError(f"the {who.role} role may not read cases (the incidents collection)")
    return who.scope if who.permission.subtree_only else None


# ---------------------------------------------------------------- documents
def landing_doc(base: str, root: str) -> dict:
    """The landing page; ``root`` is the service root that serves the API definition."""
    return {
        "title": "gis_grid: Shizhong District (370402) grids",
        "description": "Streets, communities, base grids and buildings of Shizhong District, Zaozhuang, "
                       "as OGC API - Features (Parts 1 and 2) and Mapbox vector tiles.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}?f=html", "rel": "alternate", "type": HTML, "title": "this document as HTML"},
            {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI_30,
             "title": "the API definition (OpenAPI 3.0)"},
            {"href": f"{root}/docs", "rel": "service-doc", "type": HTML, "title": "the API documentation"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
             "title": "conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "the collections"},
            {"href": f"{base}/tileMatrixSets", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
             "type": "application/json", "title": "the tile matrix sets of the vector tiles"},
        ],
    }


def conformance_doc(base: str) -> dict:
    return {"conformsTo": CONFORMANCE,
            "links": [{"href": f"{base}/conformance", "rel": "self", "type": "application/json"}]}


def collection_links(cb: str) -> list[dict]:
    """The self/alternate/items links every collection document carries."""
    return [
        {"href": cb, "rel": "self", "type": "application/json", "title": "this collection"},
        {"href": f"{cb}?f=html", "rel": "alternate", "type": HTML, "title": "this collection as HTML"},
        {"href": f"{cb}/items", "rel": "items", "type": GEOJSON, "title": "the features"},
        {"href": f"{cb}/items?f=html", "rel": "items", "type": HTML, "title": "the features as HTML"},
        {"href": f"{cb}/queryables", "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
         "type": SCHEMA_JSON, "title": "the properties ?name=value filters on"},
        {"href": f"{cb}/schema", "rel": "describedby", "type": SCHEMA_JSON,
         "title": "JSON Schema of the feature properties"},
    ]


def collection_doc(base: str, c: feat.Collection) -> dict:
    cb = f"{base}/collections/{c.id}"
    return {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "links": collection_links(cb) + [
            {"href": f"{cb}/tiles", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
             "type": "application/json", "title": "the vector tilesets (OGC API - Tiles)"},
            {"href": f"{cb}/tiles/WebMercatorQuad/tilejson.json", "rel": "describedby",
             "type": "application/json", "title": "TileJSON of the vector tiles"},
            # GDAL looks for exactly this spelling (relation names are case-insensitive, RFC 8288)
            {"href": f"{cb}/schema.xsd", "rel": "describedBy", "type": gml_schema.MEDIA_TYPE,
             "title": "GML application schema of the features (the fields GDAL's tile and items readers use)"}],
        "extent": {"spatial": {"bbox": [c.extent_crs84()], "crs": crs_mod.crs_uri("CRS84")}},
        "crs": feat.crs_uris(),
        "storageCrs": STORAGE_CRS_URI,
        "itemCount": len(c),
    }


def incidents_doc(base: str, table: aggregate.CaseTable, atlas: Atlas, scope: str | None) -> dict:
    """The incidents collection as the caller sees it: extent and count of its cases only."""
    ext = inc_feat.extent(table, atlas, scope)
    cb = f"{base}/collections/{inc_feat.COLLECTION_ID}"
    return {
        "id": inc_feat.COLLECTION_ID,
        "title": inc_feat.TITLE,
        "description": inc_feat.DESCRIPTION,
        "itemType": "feature",
        "links": collection_links(cb),
        "extent": {"spatial": {"bbox": [ext["bbox"]], "crs": crs_mod.crs_uri("CRS84")},
                   "temporal": {"interval": [ext["interval"]],
                                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        "crs": feat.crs_uris(),
        "storageCrs": STORAGE_CRS_URI,
        "itemCount": ext["count"],
        "queryables": list(inc_feat.QUERYABLES),
    }


def collections_doc(base: str, atlas: Atlas, store: Store, who: Principal) -> dict:
    body = {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"},
                  {"href": f"{base}/collections?f=html", "rel": "alternate", "type": HTML}],
        "collections": [collection_doc(base, c) for c in feat.layers_of(atlas).values()],
        "crs": feat.crs_uris(),
    }
    if who.permission.cases_read:  # listed only to callers who may read it
        scope = case_scope(who)
        body["collections"].append(incidents_doc(base, aggregate.for_key(store, atlas, who), atlas, scope))
    return body


# ---------------------------------------------------------------- JSON Schema of the properties
#: the incidents' properties (gis_grid.incidents.features.feature_json) as JSON Schema
INCIDENT_SCHEMA = {
    "id": {"type": "string"}, "category": {"type": "string"}, "category_name": {"type": "string"},
    "department": {"type": "string"}, "department_name": {"type": "string"},
    "priority": {"type": "string", "enum": ["routine", "urgent", "critical"]}, "status": {"type": "string"},
    "colour": {"type": "string"}, "grid_code": {"type": "string"}, "community_code": {"type": "string"},
    "street_code": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
    "dispatched": {"type": "string", "format": "date-time"}, "closed": {"type": "string", "format": "date-time"},
    "deadline": {"type": "string", "format": "date-time"}, "satisfaction": {"type": "integer"},
    "reworked": {"type": "boolean"},
}


def _schema_doc(base: str, cid: str, which: str, names: Iterable[str], types: Mapping[str, dict],
                title: str) -> dict:
    """A JSON Schema (2020-12) object with one property per name (OGC API - Features Part 3 / Part 5)."""
    props = {n: dict(types[n]) for n in names}
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$id": f"{base}/collections/{cid}/{which}", "type": "object", "title": title,
           "properties": props}
    if which == "queryables":
        doc["additionalProperties"] = False  # any other property name in a query is refused
    else:
        doc["properties"] = {"geometry": {"x-ogc-role": "primary-geometry",
                                          "format": "geometry-point" if cid == inc_feat.COLLECTION_ID
                                          else "geometry-polygon"}, **props}
    return doc


def properties_schema(base: str, cid: str, which: str, params: Params, *, atlas: Atlas, store: Store,
                      who: Principal, f: str | None = None, accept: str = "") -> Answer:
    """``/collections/{cid}/queryables`` (``which="queryables"``) or ``/schema`` as JSON Schema."""
    check_params(params, {"f"})
    if f not in (None, "json"):
        raise InvalidInputError(f"f={f!r} is not offered for the {which}; use f=json")
    if cid == inc_feat.COLLECTION_ID:
        case_scope(who)
        names = inc_feat.QUERYABLES if which == "queryables" else tuple(INCIDENT_SCHEMA)
        doc = _schema_doc(base, cid, which, names, INCIDENT_SCHEMA, inc_feat.TITLE)
    else:
        c = feat.collection(atlas, cid)
        names = feat.queryables(cid) if which == "queryables" else feat.properties_of(cid)
        doc = _schema_doc(base, cid, which, names, feat.PROPERTY_SCHEMA, c.title)
    return Answer(doc, SCHEMA_JSON)


def xml_schema(base: str, cid: str, params: Params) -> Answer:
    """``/collections/{cid}/schema.xsd``: the features as a GML application schema (see gis_grid.gml_schema)."""
    check_params(params, set())
    return Answer(gml_schema.gml_schema(base, cid), gml_schema.MEDIA_TYPE)


def api_definition(openapi: dict, base: str, params: Params) -> Answer:
    """The service-desc: the OGC API part of the service's OpenAPI document as OpenAPI 3.0.3.

    ``openapi`` is the whole service's (3.1) document. Each collection's items path is also
    written out with its queryable properties as query parameters, which is where GDAL's OAPIF
    driver looks for the filters it may send to the server.
    """
    check_params(params, {"f"})
    from . import openapi30
    doc = openapi30.to_openapi30(openapi, prefix="/ogc", server=base)
    concrete = {f"/collections/{cid}/items": {n: feat.PROPERTY_SCHEMA[n] for n in feat.queryables(cid)}
                for cid in feat.COLLECTIONS}
    concrete[f"/collections/{inc_feat.COLLECTION_ID}/items"] = {n: INCIDENT_SCHEMA[n] for n in inc_feat.QUERYABLES}
    openapi30.add_query_parameters(doc, "/collections/{collectionId}/items", concrete)
    return Answer(doc, OPENAPI_30)


# ---------------------------------------------------------------- HTML
def division_counts(atlas: Atlas, store: Store, cid: str):
    """Households, residents, buildings, workers and open cases of a division collection (None for others),
    so a planner can style load in a GIS client; totals only."""
    level = feat.COLLECTIONS.get(cid, (None, None, None))[2]
    return None if level is None else stats.level_counts(atlas, store, level)


def html_page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def links_html(links: list[dict]) -> str:
    return "<ul>" + "".join(f"<li><a href='{html.escape(l['href'])}'>{html.escape(l.get('title') or l['rel'])}"
                            f"</a> ({html.escape(l['rel'])})</li>" for l in links) + "</ul>"


def document_html(body: dict, title: str) -> str:
    """A landing, conformance or collections document as a page."""
    extra = ""
    if "collections" in body:
        extra = "<ul>" + "".join(
            f"<li><a href='{html.escape(c['links'][0]['href'].split('?')[0])}?f=html'>{html.escape(c['title'])}"
            f"</a> &mdash; {html.escape(c['description'])}</li>" for c in body["collections"]) + "</ul>"
    if "conformsTo" in body:
        extra = "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in body["conformsTo"]) + "</ul>"
    return html_page(title, extra + links_html(body.get("links", [])))


def _document(body: dict, title: str, f: str | None, accept: str) -> Answer:
    return Answer(document_html(body, title), HTML) if html_wanted(f, accept) else Answer(body)


# ---------------------------------------------------------------- endpoints
def landing(base: str, root: str, params: Params, *, f: str | None = None, accept: str = "") -> Answer:
    check_params(params, {"f"})
    body = landing_doc(base, root)
    return _document(body, body["title"], f, accept)


def conformance(base: str, params: Params, *, f: str | None = None, accept: str = "") -> Answer:
    check_params(params, {"f"})
    return _document(conformance_doc(base), "Conformance", f, accept)


def collections(base: str, params: Params, *, atlas: Atlas, store: Store, who: Principal,
                f: str | None = None, accept: str = "") -> Answer:
    check_params(params, {"f"})
    return _document(collections_doc(base, atlas, store, who), "Collections", f, accept)


def collection(base: str, cid: str, params: Params, *, atlas: Atlas, store: Store, who: Principal,
               f: str | None = None, accept: str = "") -> Answer:
    check_params(params, {"f"})
    if cid == inc_feat.COLLECTION_ID:
        scope = case_scope(who)
        body = incidents_doc(base, aggregate.for_key(store, atlas, who), atlas, scope)
        title, description, count = body["title"], body["description"], body["itemCount"]
    else:
        c = feat.collection(atlas, cid)
        body = collection_doc(base, c)
        title, description, count = c.title, c.description, len(c)
    if html_wanted(f, accept):
        return Answer(html_page(title, f"<p>{html.escape(description)}</p><p>{count} features; extent (CRS84) "
                                       f"{body['extent']['spatial']['bbox'][0]}</p>" + links_html(body["links"])),
                      HTML)
    return Answer(body)


def items(base: str, cid: str, params: Params, *, atlas: Atlas, store: Store, who: Principal,
          bbox: str | None = None, bbox_crs: str | None = None, crs: str | None = None,
          limit: int = DEFAULT_LIMIT, offset: int = 0, datetime_: str | None = None,
          f: str | None = None, accept: str = "") -> Answer:
    """A page of features; any query parameter named after a queryable property filters on it."""
    if cid == inc_feat.COLLECTION_ID:
        scope = case_scope(who)
        queryable = set(inc_feat.QUERYABLES)
        check_params(params, ITEMS_PARAMS | {"datetime"} | queryable)
    else:
        queryable = set(feat.queryables(cid))
        # Part 1 (7.15.4): a collection without time has no feature a datetime could exclude, so the
        # parameter is accepted (checked, then matching everything) rather than refused
        inc_feat.parse_datetime(datetime_)
        check_params(params, ITEMS_PARAMS | {"datetime"} | queryable)
    filters = {k: list(params[k]) for k in sorted(queryable) if k in params}
    want_html = html_wanted(f, accept)
    limit = min(limit, MAX_LIMIT)
    if cid == inc_feat.COLLECTION_ID:
        page, feats = inc_feat.items(aggregate.for_key(store, atlas, who), atlas, scope=scope, bbox=bbox,
                                     bbox_crs=bbox_crs, crs=crs, datetime_=datetime_, filters=filters,
                                     limit=limit, offset=offset)
    else:
        page, feats = feat.items(atlas, cid, bbox=bbox, bbox_crs=bbox_crs, crs=crs, limit=limit, offset=offset,
                                 filters=filters, scope=who.confined_to, extra=division_counts(atlas, store, cid))
    path = f"/collections/{cid}/items"
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
            nav.append(f"<a href='{html.escape(url(base, path, **common, offset=max(0, offset - limit), f='html'))}'>"
                       "previous</a>")
        if page.has_next:
            nav.append(f"<a href='{html.escape(url(base, path, **common, offset=offset + limit, f='html'))}'>next</a>")
        return Answer(html_page(f"{cid}: features {offset + 1}-{offset + page.number_returned} "
                                f"of {page.number_matched}",
                                f"<p>{' | '.join(nav)}</p><table><tr><th>id</th><th>properties</th></tr>{rows}"
                                "</table>"), HTML)
    links = [
        {"href": url(base, path, **common, offset=offset or None), "rel": "self", "type": GEOJSON,
         "title": "this page"},
        {"href": url(base, path, **common, offset=offset or None, f="html"), "rel": "alternate",
         "type": HTML, "title": "this page as HTML"},
        {"href": f"{base}/collections/{cid}", "rel": "collection", "type": "application/json"},
    ]
    if page.has_next:
        links.append({"href": url(base, path, **common, offset=offset + limit), "rel": "next", "type": GEOJSON,
                      "title": "next page"})
    if offset > 0:
        links.append({"href": url(base, path, **common, offset=max(0, offset - limit) or None), "rel": "prev",
                      "type": GEOJSON, "title": "previous page"})
    head = {"type": "FeatureCollection", "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "timeStamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "links": links}
    # the features are already GeoJSON text: spliced in, not parsed and dumped again
    text = json.dumps(head, ensure_ascii=False)[:-1] + ',"features":[' + ",".join(feats) + "]}"
    return Answer(text, GEOJSON, {"Content-Crs": f"<{crs_mod.crs_uri(page.crs)}>"})


def item(base: str, cid: str, fid: str, params: Params, *, atlas: Atlas, store: Store, who: Principal,
         crs: str | None = None, f: str | None = None, accept: str = "") -> Answer:
    check_params(params, {"crs", "f"})
    want_html = html_wanted(f, accept)
    if cid == inc_feat.COLLECTION_ID:
        scope = case_scope(who)
        text = inc_feat.feature(aggregate.for_key(store, atlas, who), atlas, fid, scope=scope, crs=crs)
    else:
        text = feat.feature(atlas, cid, fid, crs=crs, scope=who.confined_to, extra=division_counts(atlas, store, cid))
    c = feat.output_crs(crs)
    d = json.loads(text)
    if want_html:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in d["properties"].items())
        return Answer(html_page(f"{cid} {fid}", f"<table>{rows}</table>"), HTML)
    d["links"] = [
        {"href": f"{base}/collections/{cid}/items/{fid}", "rel": "self", "type": GEOJSON},
        {"href": f"{base}/collections/{cid}/items/{fid}?f=html", "rel": "alternate", "type": HTML},
        {"href": f"{base}/collections/{cid}", "rel": "collection", "type": "application/json"},
    ]
    return Answer(json.dumps(d, ensure_ascii=False), GEOJSON, {"Content-Crs": f"<{crs_mod.crs_uri(c)}>"})
