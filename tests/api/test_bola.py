"""BOLA matrix: every role x every route that reads or writes an object x an object in and out of scope.

Every key is scoped as narrowly as its role allows around the toy grid G_IN (a street admin
gets street 370402001, a grid worker G_IN itself, district roles the district), so the east
half of the toy district (grid G_OUT, building 3, household Hd4, resident Rq5, the east case)
lies outside every confined key. Expected answers come from the role table, not a hand list:

* the role lacks the permission the route needs -> 403, for both objects;
* the object lies outside the key's scope -> 404 (exactly like a missing object: a made-up
  id in the same place gets the same answer, with no hint of where the real one is);
* otherwise the route's own success status.

A "leak" is any out-of-scope object's marker (its name, households, residents, ID number,
case text) in an answer to a confined key. The route list is read from the app: a route
that is not classified below fails ``test_every_route_is_classified``.
"""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, X1, XM, Y0, Y1, bearer, make_toy_store, scope_of
from gis_grid.security.roles import ROLES, PersonalData, Principal, split_scope

G_IN, G_OUT = "370402001001001", "370402002001001"
WEST = {"type": "Polygon", "coordinates": [[[X0, Y0], [XM, Y0], [XM, Y1], [X0, Y1], [X0, Y0]]]}
EAST = {"type": "Polygon", "coordinates": [[[XM, Y0], [X1, Y0], [X1, Y1], [XM, Y1], [XM, Y0]]]}

# what each object reveals when it is served; none of it may reach a key that does not see it
OBJECTS = {
    "in": dict(grid=G_IN, building=1, resident="Rq1", household="Ha1", polygon=WEST, point=(117.505, 34.815),
               markers=["西第1网格", "Ha1", "张*", "1号楼", "bola-west"]),
    "out": dict(grid=G_OUT, building=3, resident="Rq5", household="Hd4", polygon=EAST, point=(117.515, 34.815),
                markers=["东第1网格", "Hd4", "赵*", "3号楼", "bola-east", "370402197001010052"]),
}
# made-up ids in the out-of-scope place: their 404 must read like the real out-of-scope object's
MISSING = dict(grid="370402002001009", building=999, resident="Rzz9", incident="no-such-case")


def scope_for(role: str) -> str:
    return scope_of(role, G_IN)


def personal(p):
    return p.personal is not PersonalData.NONE


# (method, path) -> how the route is judged.
#   object:  (needs, url template, body template, success status or None = "anything but 403/404")
#   listing: (needs, url template, body template): the answer may only carry in-scope objects
#   open:    why the route serves no scoped object (district-wide geometry, aggregates, sign-in, ...)
OBJECT_ROUTES = {
    ("GET", "/grids/{code}"): (lambda p: p.maps, "/grids/{grid}", None, 200),
    ("GET", "/grids/{code}/residents"): (personal, "/grids/{grid}/residents", None, 200),
    ("GET", "/grids/{code}/history"): (lambda p: p.maps, "/grids/{grid}/history", None, 200),
    ("GET", "/buildings/{building_id}"): (lambda p: p.maps, "/buildings/{building}", None, 200),
    ("GET", "/buildings/{building_id}/residents"): (personal, "/buildings/{building}/residents", None, 200),
    ("GET", "/residents/{resident_id}/unmasked"): (lambda p: p.personal is PersonalData.FULL,
                                                   "/residents/{resident}/unmasked?purpose=bola+probe", None, 200),
    ("GET", "/incidents/{incident_id}"): (lambda p: p.cases_read, "/incidents/{incident}", None, 200),
    ("GET", "/incidents/{incident_id}/unmasked"): (lambda p: p.cases_read and p.personal is PersonalData.FULL,
                                                   "/incidents/{incident}/unmasked?purpose=bola+probe", None, 200),
    # an unknown action: in scope it is judged (400/403), out of scope it must be a 404 first; nothing changes
    ("POST", "/incidents/{incident_id}/transitions"): (lambda p: p.cases_write, "/incidents/{incident}/transitions",
                                                       {"action": "bola-probe"}, None),
    # plans belong to the planner role (district-wide); everyone else is refused whichever community
    ("GET", "/plans/{plan_id}"): (lambda p: p.plans, "/plans/{plan}", None, 200),
    ("GET", "/plans/{plan_id}/impact"): (lambda p: p.plans, "/plans/{plan}/impact", None, 200),
    ("GET", "/plans/{plan_id}/map"): (lambda p: p.plans, "/plans/{plan}/map", None, 200),
    ("GET", "/plans/{plan_id}/export"): (lambda p: p.plans, "/plans/{plan}/export", None, 200),
    # without If-Match the apply is refused (428) after the plan is found: nothing is committed
    ("POST", "/plans/{plan_id}/apply"): (lambda p: p.plans, "/plans/{plan}/apply", None, 428),
}
LISTING_ROUTES = {
    ("GET", "/incidents"): (lambda p: p.cases_read, "/incidents", None),
    ("GET", "/incidents/export.csv"): (lambda p: p.cases_read, "/incidents/export.csv", None),
    ("POST", "/residents/search"): (personal, "/residents/search", "{polygon}"),
    ("GET", "/plans"): (lambda p: p.plans, "/plans", None),
    # a confined key may not log a case outside its scope: nothing is written there
    ("POST", "/incidents"): (lambda p: p.cases_write, "/incidents", "{case}"),
}
OPEN_ROUTES = {
    ("GET", "/locate"): "point location: division codes only, for any system with the locate right",
    ("POST", "/locate"): "point location: division codes (and their names) only",
    ("GET", "/locate/names"): "division names of codes: public map data, no people",
    ("GET", "/capabilities"): "published limits",
    ("GET", "/me"): "the caller's own key",
    ("GET", "/audit"): "auditor only, district-wide by role",
    ("GET", "/incidents-meta"): "categories and workflow, no cases",
    ("POST", "/plans"): "drafting is planner-only and district-wide (tests/api/test_planning_api.py)",
    ("POST", "/plans/propose"): "planner-only and district-wide",
    ("DELETE", "/plans/{plan_id}"): "planner-only and district-wide (tests/api/test_planning_lifecycle.py)",
    ("GET", "/plans/compare"): "planner-only and district-wide",
    ("POST", "/plans/revert"): "planner-only and district-wide",
    ("GET", "/map"): "the viewer page; the grid geometry is district-wide public map data",
    ("GET", "/map/layers/{level}.geojson"): "grid geometry, no people",
    ("GET", "/map/basemap/{z}/{x}/{y}.{ext}"): "basemap tiles drawn from public map data, no people",
    ("GET", "/map/search"): "finds grids by code or name: public map data",
    ("GET", "/map/static/{path:path}"): "static assets",
    # aggregates of the key's own cases only: tests/api/test_scope_aggregates.py
    ("GET", "/map/incidents"): "binned heatmap and per-grid rates of the scope's cases",
    ("GET", "/map/incidents/heat.json"): "binned density of the scope's cases",
    ("GET", "/map/incidents/choropleth/{level}.json"): "rates of the scope's divisions",
    ("GET", "/map/incidents/warnings.json"): "the scope's grids' anomaly tests",
    ("GET", "/stats/summary"): "scoped aggregates", ("GET", "/stats/divisions"): "scoped aggregates",
    ("GET", "/stats/departments"): "scoped aggregates", ("GET", "/stats/categories"): "scoped aggregates",
    ("GET", "/stats/assessment"): "scoped aggregates", ("GET", "/stats/ranking"): "scoped aggregates",
    ("GET", "/warnings"): "the scope's grids' anomaly tests",
    ("GET", "/ogc"): "OGC landing", ("GET", "/ogc/"): "OGC landing", ("GET", "/ogc/conformance"): "OGC",
    ("GET", "/ogc/collections"): "division and building geometry: public map data, no people",
    ("GET", "/ogc/collections/{collectionId}"): "public map data",
    # features and tiles of the scope only (a building outside it is a 404 here as at /buildings/{id}):
    # tests/api/test_scope_aggregates.py
    ("GET", "/ogc/collections/{collectionId}/items"): "the scope's features",
    ("GET", "/ogc/collections/{collectionId}/items/{featureId}"): "404 outside the scope",
    ("GET", "/ogc/collections/{collectionId}/tiles"): "tileset description, no features",
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json"): "tileset description",
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}"): "the scope's features",
    ("GET", "/ogc/api"): "the OGC part of the OpenAPI document: no data",
    ("GET", "/ogc/collections/{collectionId}/queryables"): "a collection's property schema: no data",
    ("GET", "/ogc/collections/{collectionId}/schema"): "a collection's property schema: no data",
    ("GET", "/ogc/collections/{collectionId}/schema.xsd"): "a collection's property schema: no data",
    ("GET", "/ogc/tileMatrixSets"): "tile grid definitions: no data",
    ("GET", "/ogc/tileMatrixSets/{tileMatrixSetId}"): "tile grid definitions: no data",
    ("GET", "/ogc/collections/{collectionId}/tiles/{tileMatrixSetId}"): "a tileset's metadata: public map data",
    ("GET", "/login"): "sign-in page", ("POST", "/login"): "sign-in", ("POST", "/logout"): "sign-out",
    ("GET", "/login/once/{nonce}"): "single-use demo sign-in",
    ("GET", "/openapi.json"): "API description", ("GET", "/docs"): "API docs", ("GET", "/redoc"): "API docs",
    ("GET", "/docs/oauth2-redirect"): "API docs",
}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, including routes hidden from the OpenAPI document."""
    out: set[tuple[str, str]] = set()

    def walk(routes, prefix=""):
        for r in routes:
            inner = getattr(r, "original_router", None)  # an included router (FastAPI >= 0.16x)
            if inner is not None:
                ctx = getattr(r, "include_context", None)
                walk(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
            elif hasattr(r, "path"):
                for m in (getattr(r, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}:
                    out.add((m, prefix + r.path))
    walk(app.router.routes)
    return out


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    path = tmp_path_factory.mktemp("bola") / "toy.gpkg"
    store = make_toy_store(path)
    heads = {role: bearer(store, role, scope_for(role)) for role in ROLES}
    app = create_app(Settings(db=store.url))
    with TestClient(app) as client:
        centre, planner = heads["command_center"], heads["planner"]
        ids = {}
        for side, text in (("in", "bola-west"), ("out", "bola-east")):
            lon, lat = OBJECTS[side]["point"]
            r = client.post("/incidents", headers=centre, json=dict(lon=lon, lat=lat, category="dispute",
                                                                    description=text))
            assert r.status_code == 201, r.text
            ids[side] = {"incident": r.json()["id"]}
            grids = [G_IN, "370402001001002"] if side == "in" else [G_OUT, "370402002001002"]
            r = client.post("/plans", headers=planner, json={"edit": {"op": "merge", "grids": grids}})
            assert r.status_code == 201, r.text
            ids[side]["plan"] = r.json()["id"]
        yield app, client, store, heads, ids


def fill(template, side: str, ids: dict):
    if template is None:
        return None
    o = {**OBJECTS[side], **ids[side]}
    if template == "{polygon}":
        return o["polygon"]
    if template == "{case}":
        lon, lat = o["point"]
        return dict(lon=lon, lat=lat, category="dispute", description=f"bola-{side}-new")
    return template.format(**o)


def principal(role: str) -> Principal:
    return Principal("k", role, *split_scope(scope_for(role)))


def test_every_route_is_classified(env):
    app = env[0]
    classified = set(OBJECT_ROUTES) | set(LISTING_ROUTES) | set(OPEN_ROUTES)
    routes = app_routes(app)
    assert routes - classified == set(), "classify these routes in the BOLA matrix"
    assert classified - routes == set(), "these classified routes no longer exist"


def leaked(text: str, side: str, who: Principal, ids: dict, asked: str = "") -> list[str]:
    """The out-of-scope objects' markers found in ``text`` when the key does not see them.

    The id the caller asked for (``asked``, in the URL) may be echoed back in the 404.
    """
    if side != "out" or who.sees(G_OUT):
        return []
    return [m for m in OBJECTS["out"]["markers"] + [ids["out"]["incident"]] if m in text and m not in asked]


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("route", list(OBJECT_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_object_routes(env, role, route):
    _, client, store, heads, ids = env
    needs, url, body, ok = OBJECT_ROUTES[route]
    who = principal(role)
    for side in ("in", "out"):
        asked = fill(url, side, ids)
        r = client.request(route[0], asked, headers=heads[role], json=body)
        plan_route = "{plan_id}" in route[1]
        visible = plan_route or who.sees(OBJECTS[side]["grid"])  # plans are district-wide by role
        if not needs(who.permission):
            expected = {403}
        elif not visible:
            expected = {404}
        else:
            expected = None if ok is None else {ok}
        got = r.status_code
        if expected is None:
            assert got not in (403, 404, 500), (role, side, got, r.text[:300])
        else:
            assert got in expected, (role, side, route, got, r.text[:300])
        assert not leaked(r.text, side, who, ids, asked), (role, route, side, leaked(r.text, side, who, ids, asked))
        if expected == {404} and "{plan" not in url:
            # a made-up id in the same place answers in the same words (no existence oracle)
            fake = {**OBJECTS[side], **ids[side], **MISSING}
            m = client.request(route[0], url.format(**fake), headers=heads[role], json=body)
            real_id = str(fill("{" + _id_key(url) + "}", side, ids))
            assert m.status_code == 404
            assert r.json()["detail"] == m.json()["detail"].replace(str(MISSING[_id_key(url)]), real_id), \
                (r.json()["detail"], m.json()["detail"])


def _id_key(url: str) -> str:
    return next(k for k in ("grid", "building", "resident", "incident") if "{" + k + "}" in url)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("route", list(LISTING_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_listing_routes(env, role, route):
    _, client, store, heads, ids = env
    needs, url, body = LISTING_ROUTES[route]
    who = principal(role)
    for side in ("in", "out"):
        before = len(store.incidents(columns=["id"])) if route == ("POST", "/incidents") else None
        r = client.request(route[0], url, headers=heads[role], json=fill(body, side, ids))
        if not needs(who.permission):
            assert r.status_code == 403, (role, side, r.status_code, r.text[:300])
            continue
        assert not leaked(r.text, side, who, ids), (role, route, side, leaked(r.text, side, who, ids))
        if route == ("POST", "/incidents"):
            written = len(store.incidents(columns=["id"])) - before
            if not who.sees(OBJECTS[side]["grid"]):
                assert r.status_code in (403, 404) and written == 0, (role, side, r.status_code, r.text[:300])
            else:
                assert written == (r.status_code == 201)
        else:
            assert r.status_code == 200, (role, side, r.status_code, r.text[:300])
        if route == ("GET", "/incidents") and who.sees(G_IN):
            assert "bola-west" in json.dumps(r.json()) or ids["in"]["incident"] in r.text


@pytest.mark.parametrize("role", list(ROLES))
def test_ogc_incidents_collection_is_scoped(env, role):
    """The OGC items routes are 'public map data' above, except the incidents collection, scoped like
    GET /incidents: a confined key neither lists nor fetches another area's case."""
    _, client, _, heads, ids = env
    who = principal(role)
    p = who.permission
    listed = client.get("/ogc/collections/incidents/items", params={"limit": 100}, headers=heads[role])
    one = {side: client.get(f"/ogc/collections/incidents/items/{ids[side]['incident']}", headers=heads[role])
           for side in ("in", "out")}
    if not (p.maps and p.cases_read):
        assert listed.status_code == 403 and {r.status_code for r in one.values()} == {403}
        return
    assert listed.status_code == 200
    assert ids["in"]["incident"] in listed.text and one["in"].status_code == 200
    if who.sees(G_OUT):
        assert ids["out"]["incident"] in listed.text and one["out"].status_code == 200
    else:
        assert ids["out"]["incident"] not in listed.text
        assert one["out"].status_code == 404 and not leaked(one["out"].text, "out", who, ids,
                                                            ids["out"]["incident"])
