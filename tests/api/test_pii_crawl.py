"""The PII guard on every output channel (issue 13, point 8).

Recognisable personal data is planted in the toy district: a resident's name, ID number and
mobile, a household head's name and a household's vulnerability labels, a grid worker's name and
work phone, and a hotline case whose reporter, description and transition note name a caller with
her ID number and mobiles. Then every GET route the app has is crawled, in every format it offers
(JSON, HTML, CSV, GeoJSON, GeoPackage, vector tiles), for every role and without a key, together
with error answers, the CLI's layer exports, and everything logged meanwhile. Binary answers are
opened (tiles decoded, GeoPackages dumped) before scanning.

A planted value may appear only where the role table allows it: a resident's and a case's
originals on their purpose-bound ``/unmasked`` routes to a role with full personal data, and the
worker's work phone on the grid card to a role with ``work_phones``. Per-person vulnerability
flags never leave (a resident's record never carries a flag); the log carries none of it.
A route the crawl cannot fill fails ``test_every_get_route_is_crawled``, so new routes join.
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
from datetime import datetime, timedelta

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient

import pii_guard
from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store, scope_of, toy_people
from gis_grid.export import FORMATS, LAYERS, export_layer
from gis_grid.security.roles import ROLES, PersonalData
from gis_grid.stats import SPECIAL_GROUPS
from gis_grid.testing import find_pii, toy_workers
from test_bola import app_routes

G_IN = "370402001001001"
POINT = (117.505, 34.815)   # inside G_IN, on building 1
#: the planted values, by what they are
RESIDENT = {"name": "欧阳芃蔺", "id_number": "370402198807150027", "phone": "13955550001"}
HEAD = "诸葛芃瑶"
HOUSEHOLD_FLAGS = "低保户芃标记"
WORKER = {"name": "司马芃芃", "phone": "13766660002"}
CALLER = {"name": "端木芃华", "id_number": "370402199001011234", "phone": "18677770003"}
REPORTER = "上官芃玥 18677770004"
NOTE = {"name": "慕容芃雪", "phone": "15988880005"}
DESCRIPTION = f"来电人{CALLER['name']} 身份证{CALLER['id_number']} 电话{CALLER['phone']} 反映楼道堆物"


def planted() -> dict[str, str]:
    """value -> what it is (the key the allowance rules use)."""
    out = {v: "resident" for v in RESIDENT.values()}
    out.update({HEAD: "head", HOUSEHOLD_FLAGS: "flags", WORKER["name"]: "worker_name",
                WORKER["phone"]: "work_phone", REPORTER.split()[0]: "case", REPORTER.split()[1]: "case"})
    out.update({v: "case" for v in CALLER.values()})
    out.update({v: "case" for v in NOTE.values()})
    return out


def allowed(kind: str, path: str, role: str | None) -> bool:
    p = ROLES.get(role) if role else None
    if p is None:
        return False
    if kind == "resident":
        return re.fullmatch(r"/residents/[^/]+/unmasked", path) is not None and p.personal is PersonalData.FULL
    if kind == "case":
        return re.fullmatch(r"/incidents/[^/]+/unmasked", path) is not None and p.personal is PersonalData.FULL \
            and p.cases_read
    if kind == "work_phone":
        return re.fullmatch(r"/grids/\d+", path) is not None and p.work_phones
    return False   # head names, household labels and worker names leave masked, to everyone


def scope_for(role: str) -> str:
    return scope_of(role, G_IN, "sanitation")


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    hh, res = toy_people()
    hh.loc[hh["id"] == "Ha1", ["head_name", "flags"]] = [HEAD, HOUSEHOLD_FLAGS]
    for k, v in RESIDENT.items():
        res.loc[res["id"] == "Rq1", k] = v
    res.loc[res["id"] == "Rq1", ["disabled", "community_correction"]] = 1
    workers = toy_workers().assign(name=WORKER["name"], phone=WORKER["phone"])
    path = tmp_path_factory.mktemp("crawl") / "toy.gpkg"
    store = make_toy_store(path, households=hh, residents=res, workers=workers)
    heads = {role: bearer(store, role, scope_for(role)) for role in ROLES}
    heads[None] = {}
    app = create_app(Settings(db=store.url))
    with TestClient(app) as client:
        centre = heads["command_center"]
        r = client.post("/incidents", headers=heads["hotline"],
                        json=dict(lon=POINT[0], lat=POINT[1], category="sanitation", reporter=REPORTER,
                                  description=DESCRIPTION))
        assert r.status_code == 201, r.text
        case = r.json()["id"]
        r = client.post(f"/incidents/{case}/transitions", headers=centre,
                        json={"action": "register", "note": f"联系人{NOTE['name']} 电话{NOTE['phone']}"})
        assert r.status_code == 200, r.text
        r = client.post("/plans", headers=heads["planner"],
                        json={"edit": {"op": "merge", "grids": [G_IN, "370402001001002"]}})
        assert r.status_code == 201, r.text
        ids = {"incident_id": case, "plan_id": r.json()["id"]}
        yield app, client, store, heads, ids


def _mercator_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def fillers(ids: dict) -> dict[str, list[str]]:
    """Values for every path parameter of the app's GET routes (several where the route serves several)."""
    x14, y14 = _mercator_tile(*POINT, 14)
    return {
        "code": ["370402", "370402001", "370402001001", G_IN],
        "building_id": ["1"], "resident_id": ["Rq1"], "incident_id": [ids["incident_id"]],
        "plan_id": [str(ids["plan_id"])],
        "collectionId": ["streets", "communities", "grids", "buildings", "incidents"],
        "tileMatrixSetId": ["WebMercatorQuad"], "z": ["14"], "x": [str(x14)], "y": [str(y14)],
        "level": ["district", "street", "community", "grid"], "ext": ["png"],
        "path": ["viewer/viewer.js", "leaflet/leaflet.css"], "nonce": ["not-a-nonce"],
    }


FEATURE_IDS = {"streets": "370402001", "communities": "370402001001", "grids": G_IN, "buildings": "1"}
#: query variants per route: every format it offers, and the queries that shape what it returns
QUERIES = {
    "/ogc": ["", "f=html"], "/ogc/conformance": ["", "f=html"], "/ogc/collections": ["", "f=html"],
    "/ogc/collections/{collectionId}": ["", "f=html"],
    "/ogc/collections/{collectionId}/items": ["", "f=html", "limit=1000"],
    "/ogc/collections/{collectionId}/items/{featureId}": ["", "f=html"],
    "/plans/{plan_id}/export": ["format=gpkg", "format=geojson", "format=csv"],
    "/stats/divisions": ["format=json", "format=csv", "level=grid&format=csv"],
    "/stats/departments": ["format=json", "format=csv"], "/stats/categories": ["format=json", "format=csv"],
    "/stats/assessment": ["format=json", "format=csv"], "/stats/ranking": ["format=json", "format=csv"],
    "/residents/{resident_id}/unmasked": ["purpose=crawl+check", ""],
    "/incidents/{incident_id}/unmasked": ["purpose=crawl+check", ""],
    "/incidents": ["", "status=registered"], "/map/search": ["q=西", "q=欧阳"],
    "/locate": [f"lon={POINT[0]}&lat={POINT[1]}"], "/locate/names": ["codes=370402001001001"],
    "/plans/compare": [""], "/audit": ["limit=1000"],
    "/grids/{code}/residents": ["", "limit=abc"],
    "/grids/{code}": ["", "at=9999-12-31"],
}


def urls(app, ids: dict):
    """(route path, concrete url) for every GET route x filler x query variant."""
    fill = fillers(ids)
    for method, route in sorted(app_routes(app)):
        if method != "GET":
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", route)
        combos = [{}]
        for name in names:
            if name == "featureId":
                combos = [{**c, name: FEATURE_IDS.get(c["collectionId"], ids["incident_id"])} for c in combos]
                continue
            combos = [{**c, name: v} for c in combos for v in fill[name]]
        for combo in combos:
            url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: combo[m.group(1)], route)
            for q in QUERIES.get(route, [""]):
                yield route, url + (f"?{q}" if q else "")


def readable(response, tmp_path) -> str:
    """The text of an answer, binary formats opened."""
    ctype = response.headers.get("content-type", "")
    body = response.content
    if body.startswith(b"SQLite format 3\x00"):
        f = tmp_path / "answer.gpkg"
        f.write_bytes(body)
        with sqlite3.connect(f) as con:
            return "\n".join(con.iterdump())
    if "vnd.mapbox-vector-tile" in ctype or "protobuf" in ctype:
        return json.dumps(mapbox_vector_tile.decode(body), ensure_ascii=False, default=str)
    if ctype.startswith("image/"):
        return ""   # basemap pictures, drawn from map data
    return body.decode("utf-8", errors="replace")


def violations(text: str, path: str, role: str | None) -> list[str]:
    out = [f"{kind} {value!r}" for value, kind in planted().items() if value in text and not allowed(kind, path, role)]
    # a resident's own record carrying a vulnerability flag
    if RESIDENT["name"] in text or '"Rq1"' in text:
        out += [f"flag {g!r} beside resident Rq1" for g in SPECIAL_GROUPS if f'"{g}"' in text]
    # any other unmasked ID number or mobile (the toy's own residents): the suite-wide guard's rule
    leak = pii_guard.inspect("GET", f"http://testserver{path}", {}, "text/plain", text.encode()) \
        if find_pii(text) and not any(allowed(k, path, role) for k in ("resident", "case", "work_phone")) else None
    return out + ([leak] if leak else [])


def test_every_get_route_is_crawled(env):
    app, _, _, _, ids = env
    crawled = {route for route, _ in urls(app, ids)}
    assert crawled == {r for m, r in app_routes(app) if m == "GET"}


@pytest.mark.parametrize("role", [None, *ROLES], ids=lambda r: r or "no-key")
def test_no_output_channel_carries_planted_personal_data(env, role, caplog, capfd, tmp_path):
    app, client, _, heads, ids = env
    caplog.set_level(logging.DEBUG)
    found, seen, statuses = [], 0, {}
    for route, url in urls(app, ids):
        r = client.get(url, headers=heads[role])
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (role, url, r.text[:300])
        text = readable(r, tmp_path)
        seen += sum(v in text for v in planted())
        path = url.split("?")[0]
        found += [f"GET {url}: {v}" for v in violations(text, path, role)]
    # errors about the case that holds the planted text: an unknown step, a stale version
    case = ids["incident_id"]
    for body in ({"action": "no-such-step"}, {"action": "dispatch", "expected_version": 999}):
        r = client.post(f"/incidents/{case}/transitions", headers=heads[role], json=body)
        assert r.status_code < 500, r.text
        found += [f"POST transitions {body}: {v}" for v in violations(r.text, "/error", role)]
    log = "\n".join(rec.getMessage() for rec in caplog.records) + "\n".join(capfd.readouterr())
    found += [f"log: {kind} {v!r}" for v, kind in planted().items() if v in log]
    found += [f"log: {p}" for p in find_pii(log)]
    assert not found, f"{role}: personal data where the role may not see it:\n  " + "\n  ".join(found[:20])
    if role and ROLES[role].maps:
        assert statuses.get(200, 0) > 50, statuses   # the crawl reached the data, not just refusals
    if role in ("grid_worker", "command_center"):   # unmask routes; the card's work phone
        assert seen, "the allowed channels show the planted originals: the crawl does see them"


def test_the_crawl_catches_a_masking_regression(env, monkeypatch, tmp_path):
    """Break one channel (worker names on the grid card) and the crawl names it."""
    app, client, _, heads, ids = env
    import api.routers.grids as grids
    monkeypatch.setattr(grids, "mask_names", lambda names: names)
    app.state.card_cache = None
    hits = []
    with pii_guard.expect_leaks():
        for route, url in urls(app, ids):
            if route == "/grids/{code}":
                r = client.get(url, headers=heads["planner"])
                hits += violations(readable(r, tmp_path), url.split("?")[0], "planner")
    app.state.card_cache = None
    assert hits and all("worker_name" in h for h in hits), hits


@pytest.mark.parametrize("fmt", FORMATS)
def test_layer_exports_carry_no_personal_data(env, fmt, tmp_path):
    """The CLI's downloads (gis-grid export): division and building layers never carry people;
    the households layer is the operator's own copy of the store table and is left out here."""
    _, _, store, _, _ = env
    for layer in (x for x in LAYERS if x != "households"):
        out = tmp_path / f"{layer}.{fmt}"
        export_layer(store, layer, fmt, out)
        blob = b"".join(p.read_bytes() for p in tmp_path.glob(f"{layer}*") if p.is_file())
        text = blob.decode("utf-8", errors="replace")
        assert not [v for v in planted() if v in text], (layer, fmt)
        assert not find_pii(text), (layer, fmt)
