"""The invalid-geometry catalogue, sent to every endpoint that takes a geometry.

Each bad input gets a 4xx whose body names the problem (the words it must contain are
listed per case), and nothing is written: a refused case or plan leaves the store as it was.

Endpoints, by the geometry they take:
  polygon: POST /residents/search (GeoJSON geometry), POST /plans (a FeatureCollection of grids)
  line:    POST /plans with a split edit
  point:   GET /locate, POST /locate (pairs and GeoJSON Points), POST /incidents, GET /map/search
  bbox:    GET /incidents, GET /incidents/export.csv, GET /ogc/collections/{id}/items
  tile:    GET /ogc/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}
"""
from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, Y0, bearer, make_toy_store

LIMITS = dict(max_polygon_vertices=20, max_batch_points=3)
COMMUNITY = "370402001001"


def ring(*pts):
    """A ring in toy coordinates from points on a 0..4 lattice (0.004 degrees apart)."""
    return [[X0 + 0.004 * x, Y0 + 0.004 * y] for x, y in pts]


SQUARE = ring((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))


def poly(*rings):
    return {"type": "Polygon", "coordinates": list(rings)}


def many_vertices(n: int) -> dict:
    pts = [[117.505 + 0.003 * math.cos(2 * math.pi * i / n), 34.815 + 0.003 * math.sin(2 * math.pi * i / n)]
           for i in range(n)]
    return poly(pts + [pts[0]])


# name: (geometry as JSON text, status, words of which at least one must be in the answer)
POLYGONS = {
    "bowtie": (poly(ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))), 422, ["Self-intersection"]),
    "spike": (poly(ring((0, 0), (2, 0), (2, 2), (1, 2), (1, 3), (1, 2), (0, 2), (0, 0))), 422,
              ["Self-intersection", "Ring Self-intersection"]),
    "self-touching ring": (poly(ring((0, 0), (2, 0), (1, 1), (2, 2), (0, 2), (1, 1), (0, 0))), 422,
                           ["Self-intersection"]),
    "hole outside shell": (poly(SQUARE, ring((2, 2), (3, 2), (3, 3), (2, 3), (2, 2))), 422,
                           ["Hole lies outside shell"]),
    "unclosed ring": (poly(SQUARE[:-1]), 422, ["closed"]),
    "too few points": (poly(ring((0, 0), (1, 1))), 422, ["closed", "LinearRing", "points"]),
    "NaN vertex": ('{"type": "Polygon", "coordinates": [[[117.5, 34.8], [117.504, NaN], [117.504, 34.804], '
                   '[117.5, 34.8]]]}', 422, ["NaN"]),
    "Infinity vertex": ('{"type": "Polygon", "coordinates": [[[117.5, 34.8], [Infinity, 34.8], '
                        '[117.504, 34.804], [117.5, 34.8]]]}', 422, ["NaN or infinite"]),
    "out of range": (poly([[200.0, 34.8], [201.0, 34.8], [201.0, 34.9], [200.0, 34.8]]), 422, ["out of range"]),
    "swapped lat/lon": (poly([[y, x] for x, y in SQUARE]), 422, ["swapped"]),
    "empty": (poly(), 422, ["empty"]),
    "wrong type": ({"type": "Point", "coordinates": [117.505, 34.815]}, 422, ["Point"]),
    "GeometryCollection": ({"type": "GeometryCollection", "geometries": [poly(SQUARE)]}, 422,
                           ["GeometryCollection"]),
    "3D coordinates": (poly([p + [10.0] for p in SQUARE]), 422, ["3D"]),
    "excessive vertices": (many_vertices(LIMITS["max_polygon_vertices"] + 5), 413,
                           [f"limit is {LIMITS['max_polygon_vertices']}"]),
    "malformed JSON": ('{"type": "Polygon", "coordinates": [[[117.5, 34.8]', 400, ["JSON"]),
}


def _text(g) -> str:
    return g if isinstance(g, str) else json.dumps(g)


def search_request(g: str):
    return "POST", "/residents/search", {}, g


def plan_request(g: str):
    # the geometry goes into the grids of a plan for the west community, as raw text (NaN survives)
    body = f'{{"community": "{COMMUNITY}", "grids": {{"type": "FeatureCollection", "features": ' \
           f'[{{"type": "Feature", "properties": {{}}, "geometry": {g}}}]}}}}'
    if g.startswith('{"type": "Polygon", "coordinates": [[[117.5, 34.8]') and not g.endswith("}"):
        body = g  # malformed JSON stays malformed
    return "POST", "/plans", {}, body


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    path = tmp_path_factory.mktemp("badgeom") / "toy.gpkg"
    store = make_toy_store(path)
    heads = {"centre": bearer(store, "command_center", "370402"), "planner": bearer(store, "planner", "370402")}
    with TestClient(create_app(Settings(db=store.url, **LIMITS))) as client:
        yield client, store, heads


def written(store) -> tuple[int, int, int]:
    """What a refused request must not change: plans, cases, audit records of people reads."""
    people = [r for r in store.audit_records() if r["action"].startswith("residents.")]
    return len(store.plans(None)), len(store.incidents(columns=["id"])), len(people)


def check(env, method, url, params, body, status, words, head="centre"):
    client, store, heads = env
    before = written(store)
    kw = {"content": body, "headers": {**heads[head], "content-type": "application/json"}} if body is not None \
        else {"headers": heads[head]}
    r = client.request(method, url, params=params, **kw)
    assert r.status_code == status, (url, r.status_code, r.text[:400])
    text = r.text
    assert any(w in text for w in words), f"{url}: none of {words} in {text[:400]}"
    assert written(store) == before, "a refused request changed the store"
    return r


@pytest.mark.parametrize("name", list(POLYGONS))
@pytest.mark.parametrize("endpoint", ["search", "plan"])
def test_polygon_catalogue(env, endpoint, name):
    g, status, words = POLYGONS[name]
    if endpoint == "plan" and name == "spike":
        # a plan's zero-width spike is within the snapping tolerance: it is repaired (the planner
        # tools' own rule) and the plan is refused for what is really wrong with it, a gap
        words = ["gap"]
    make = search_request if endpoint == "search" else plan_request
    method, url, params, body = make(_text(g))
    check(env, method, url, params, body, status, words, "centre" if endpoint == "search" else "planner")


@pytest.mark.parametrize("endpoint", ["search", "plan"])
def test_unknown_crs(env, endpoint):
    if endpoint == "search":
        check(env, "POST", "/residents/search", {"crs": "EPSG:12345"}, json.dumps(poly(SQUARE)), 400,
              ["unknown CRS"])
    else:
        body = json.dumps({"community": COMMUNITY, "crs": "EPSG:12345", "grids": {
            "type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": poly(SQUARE)}]}})
        check(env, "POST", "/plans", {}, body, 400, ["unknown CRS"], "planner")


def test_wrong_winding_is_not_an_error(env):
    """GeoJSON winding is advisory (RFC 7946 says parsers must not reject it): normalised, same answer."""
    client, _, heads = env
    cw = poly(SQUARE[::-1])
    a = client.post("/residents/search", json=poly(SQUARE), headers=heads["centre"])
    b = client.post("/residents/search", json=cw, headers=heads["centre"])
    assert a.status_code == b.status_code == 200
    assert a.json()["numberMatched"] == b.json()["numberMatched"]


LINES = {
    "not numbers": ({"type": "LineString", "coordinates": [[117.5, "x"], [117.52, 34.81]]}, 422, ["readable"]),
    "NaN": ('{"type": "LineString", "coordinates": [[NaN, 34.81], [117.52, 34.81]]}', 422, ["readable", "NaN"]),
    "wrong type": ({"type": "Polygon", "coordinates": [SQUARE]}, 422, ["LineString"]),
    "empty": ({"type": "LineString", "coordinates": []}, 422, ["LineString"]),
    "GeometryCollection": ({"type": "GeometryCollection", "geometries": []}, 422, ["LineString"]),
}


@pytest.mark.parametrize("name", list(LINES))
def test_split_line_catalogue(env, name):
    line, status, words = LINES[name]
    body = f'{{"edit": {{"op": "split", "grid": "370402001001001", "line": {_text(line)}}}}}'
    check(env, "POST", "/plans", {}, body, status, words, "planner")


# ------------------------------------------------------------------ points
POINTS = {  # name: ((lon, lat) as JSON number text, status, words)
    "NaN": (("NaN", "34.815"), 422, ["NaN"]),
    "Infinity": (("Infinity", "34.815"), 422, ["NaN or infinite", "infinite"]),
    "out of range": (("200", "34.815"), 422, ["out of range"]),
    # (34.815, 117.505) is in the Indian Ocean read as (lon, lat), in Shizhong read the other way
    "swapped lat/lon": (("34.815", "117.505"), 422, ["swapped"]),
}


def point_requests(lon: str, lat: str):
    yield "GET /locate", "GET", "/locate", {"lon": lon, "lat": lat}, None
    yield "POST /locate pairs", "POST", "/locate", {}, f"[[{lon}, {lat}]]"
    yield "POST /locate GeoJSON", "POST", "/locate", {}, \
        f'{{"type": "FeatureCollection", "features": [{{"type": "Feature", "properties": {{}}, ' \
        f'"geometry": {{"type": "Point", "coordinates": [{lon}, {lat}]}}}}]}}'
    yield "POST /incidents", "POST", "/incidents", {}, f'{{"lon": {lon}, "lat": {lat}, "category": "dispute"}}'


@pytest.mark.parametrize("name", list(POINTS))
def test_point_catalogue(env, name):
    (lon, lat), status, words = POINTS[name]
    for label, method, url, params, body in point_requests(lon, lat):
        if body is not None and name in ("NaN", "Infinity") and url == "/locate":
            # orjson refuses NaN/Infinity, which JSON does not have: a 400 that says the body is not JSON
            check(env, method, url, params, body, 400, ["not valid JSON"])
            continue
        check(env, method, url, params, body, status, words)
    if name in ("out of range", "swapped lat/lon"):
        check(env, "GET", "/map/search", {"q": f"{lon},{lat}"}, None, status, words)


@pytest.mark.parametrize("label,method,url,body,status,words", [
    ("empty point", "POST", "/locate", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
     '"geometry": {"type": "Point", "coordinates": []}}]}', 400, ["[lon, lat]"]),
    ("wrong type", "POST", "/locate", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
     f'"geometry": {json.dumps(poly(SQUARE))}}}]}}', 400, ["Point"]),
    ("GeometryCollection", "POST", "/locate", '{"type": "GeometryCollection", "geometries": []}', 400,
     ["FeatureCollection of Points"]),
    ("3D pair", "POST", "/locate", "[[117.505, 34.815, 10]]", 400, ["[lon, lat] pairs"]),
    ("too many points", "POST", "/locate", json.dumps([[117.505, 34.815]] * 4), 413, ["batch limit of 3"]),
    ("malformed JSON", "POST", "/locate", "[[117.505, 34.8", 400, ["not valid JSON"]),
    ("incident not a point", "POST", "/incidents", '{"type": "Point", "coordinates": [117.505, 34.815], '
     '"category": "dispute"}', 400, ["lon", "lat"]),
    ("incident outside the district", "POST", "/incidents", '{"lon": 117.6, "lat": 34.81, "category": "dispute"}',
     422, ["outside the district"]),
    ("incident malformed JSON", "POST", "/incidents", '{"lon": 117.505,', 400, ["JSON"]),
])
def test_point_shapes(env, label, method, url, body, status, words):
    check(env, method, url, {}, body, status, words)


@pytest.mark.parametrize("url,params", [("/locate", {"lon": "117.505", "lat": "34.815", "crs": "EPSG:12345"}),
                                        ("/locate", {"crs": "nope"})])
def test_point_unknown_crs(env, url, params):
    body = None if "lon" in params else "[[117.505, 34.815]]"
    check(env, "GET" if body is None else "POST", url, params, body, 400, ["unknown CRS"])
    check(env, "POST", "/incidents", {}, '{"lon": 117.505, "lat": 34.815, "crs": "EPSG:12345", '
                                         '"category": "dispute"}', 400, ["unknown CRS"])


# ------------------------------------------------------------------ bounding boxes
BBOXES = {  # name: (bbox text, words for the incident lists, words for OGC)
    "NaN": ("NaN,34.8,117.52,34.82", ["NaN"], ["finite"]),
    "Infinity": ("inf,34.8,117.52,34.82", ["infinite"], ["finite"]),
    "out of range": ("-500,34.8,117.52,34.82", ["out of range"], ["beyond 180"]),
    "swapped lat/lon": ("34.8,117.5,34.82,117.52", ["swapped"], ["latitude beyond 90", "minlon,minlat"]),
    "inverted corners": ("117.52,34.82,117.5,34.8", ["min <= max"], ["must not exceed"]),
    "three numbers": ("117.5,34.8,117.52", ["four numbers"], ["4 numbers"]),
    "not numbers": ("a,b,c,d", ["four numbers"], ["numbers"]),
}


@pytest.mark.parametrize("name", list(BBOXES))
def test_bbox_catalogue(env, name):
    text, words, ogc_words = BBOXES[name]
    for url in ("/incidents", "/incidents/export.csv"):
        r = check(env, "GET", url, {"bbox": text}, None, 422 if name in ("NaN", "Infinity", "out of range",
                                                                      "swapped lat/lon") else 400, words)
        assert r.headers["content-type"].startswith("application/problem+json")
    check(env, "GET", "/ogc/collections/buildings/items", {"bbox": text}, None, 400, ogc_words)


def test_ogc_bbox_unknown_crs(env):
    check(env, "GET", "/ogc/collections/buildings/items",
          {"bbox": "117.5,34.8,117.52,34.82", "bbox-crs": "EPSG:12345"}, None, 400, ["unknown CRS"])


# ------------------------------------------------------------------ tiles
@pytest.mark.parametrize("zxy,status,words", [
    ("-1/0/0", 404, ["zoom -1 is outside"]),
    ("23/0/0", 404, ["zoom 23 is outside"]),
    ("99999999999999999999/0/0", 404, ["outside the served tile matrices"]),
    ("3/8/0", 404, ["outside tile matrix 3"]),
    ("3/0/8", 404, ["outside tile matrix 3"]),
    ("3/-1/0", 404, ["outside tile matrix 3"]),
    ("3/0/1.5", 400, ["not an integer"]),
    ("3/x/0", 400, ["x"]),
])
def test_tile_catalogue(env, zxy, status, words):
    check(env, "GET", f"/ogc/collections/grids/tiles/WebMercatorQuad/{zxy}", {}, None, status, words)
