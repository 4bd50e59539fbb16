"""Who may call what: roles x endpoints x objects in and out of scope, on the toy district.

The toy district: grids 370402001001001/002 (west community 370402001001) and
370402002001001/002 (east, community 370402002001); building 1 holds households
Ha1 and Hb2 in grid 370402001001001, building 3 holds Hd4 in 370402002001001.
"""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, X1, Y0, Y1, bearer, make_toy_store
from stores import location

G1, G1B, G_EAST = "370402001001001", "370402001001002", "370402002001001"
WHOLE = {"type": "Polygon", "coordinates": [[[X0, Y0], [X1, Y0], [X1, Y1], [X0, Y1], [X0, Y0]]]}


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    path = location(tmp_path_factory.mktemp("access") / "toy.gpkg")
    store = make_toy_store(path)
    heads = {name: bearer(store, role, scope) for name, role, scope in [
        ("worker", "grid_worker", G1), ("community", "community_admin", "370402001001"),
        ("street", "street_admin", "370402002"), ("centre", "command_center", "370402"),
        ("planner", "planner", "370402"), ("external", "external_system", "370402"),
        ("auditor", "auditor", "370402"), ("admin", "admin", "370402"), ("hotline", "hotline", "370402"),
        ("department", "department", "370402:justice"), ("supervisor", "supervisor", "370402")]}
    with TestClient(create_app(Settings(db=str(path)))) as client:
        yield client, store, heads


def call(client, method, url, head, **kw):
    return client.request(method, url, headers=head, **kw).status_code


ENDPOINTS = {  # name: (method, url, body) for an object inside grid G1 / outside the west community
    "locate": ("GET", "/locate?lon=117.505&lat=34.815", None),
    "card_in": ("GET", f"/grids/{G1}", None),
    "card_out": ("GET", f"/grids/{G_EAST}", None),
    "residents_in": ("GET", f"/grids/{G1}/residents", None),
    "residents_out": ("GET", f"/grids/{G_EAST}/residents", None),
    "building_in": ("GET", "/buildings/1/residents", None),
    "building_out": ("GET", "/buildings/3/residents", None),
    "ogc": ("GET", "/ogc/collections/grids/items", None),
    "layer": ("GET", "/map/layers/grid.geojson", None),
    "capabilities": ("GET", "/capabilities", None),
    "audit": ("GET", "/audit", None),
}

EXPECTED = {  # role: the status per endpoint above, in order
    "worker":    [200, 200, 404, 200, 404, 200, 404, 200, 200, 200, 403],
    "community": [200, 200, 404, 200, 404, 200, 404, 200, 200, 200, 403],
    "street":    [200, 404, 200, 404, 200, 404, 200, 200, 200, 200, 403],
    "centre":    [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403],
    "planner":   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403],
    "external":  [200, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
    "auditor":   [403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 200],
    "admin":     [403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
    # the case-workflow offices: cases and maps as their work needs, never who lives where
    "hotline":   [200, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403],
    "department": [200, 200, 200, 403, 403, 403, 403, 200, 200, 200, 403],
    "supervisor": [403, 200, 200, 403, 403, 403, 403, 200, 200, 200, 403],
}
#: the key role behind each name above (the matrix must cover every role in the table)
ROLE_OF = {"worker": "grid_worker", "community": "community_admin", "street": "street_admin",
           "centre": "command_center", "planner": "planner", "external": "external_system", "auditor": "auditor",
           "admin": "admin", "hotline": "hotline", "department": "department", "supervisor": "supervisor"}


def test_the_matrix_covers_every_role():
    from gis_grid.security.roles import ROLES
    assert set(ROLE_OF) == set(EXPECTED) and set(ROLE_OF.values()) == set(ROLES)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_role_matrix(env, role):
    client, _, heads = env
    got = [call(client, m, u, heads[role], json=b) for m, u, b in ENDPOINTS.values()]
    assert dict(zip(ENDPOINTS, got)) == dict(zip(ENDPOINTS, EXPECTED[role]))


def test_no_key_is_refused_everywhere_but_sign_in(env):
    client, _, _ = env
    for method, url, body in ENDPOINTS.values():
        assert call(client, method, url, {}, json=body) == 401, url
    assert client.post("/residents/search", json=WHOLE).status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/map", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/map/static/viewer/viewer.css").status_code == 200


def test_polygon_search_returns_only_the_callers_scope(env):
    client, _, heads = env
    everything = client.post("/residents/search", json=WHOLE, headers=heads["centre"]).json()
    mine = client.post("/residents/search", json=WHOLE, headers=heads["worker"]).json()
    assert everything["numberMatched"] == 5
    assert [h["id"] for h in mine["households"]] == ["Ha1", "Hb2"]
    assert {h["grid_code"] for h in mine["households"]} == {G1}


def test_planner_gets_counts_not_records(env):
    client, _, heads = env
    body = client.get(f"/grids/{G1}/residents", headers=heads["planner"]).json()
    assert body["households"] is None and body["numberMatched"] == 2 and body["residentsMatched"] == 3


def test_every_people_read_is_audited(env):
    client, store, heads = env
    before = len(store.audit_records())
    ok = 0
    for head in (heads["worker"], heads["centre"], heads["planner"]):
        for url in (f"/grids/{G1}/residents", "/buildings/1/residents"):
            ok += client.get(url, headers=head).status_code == 200
        ok += client.post("/residents/search", json=WHOLE, headers=head).status_code == 200
    new = store.audit_records()[before:]
    people = [r for r in new if r["action"] in ("residents.read", "residents.count")]
    assert ok == 9 and len(people) == 9
    assert {r["role"] for r in people} == {"grid_worker", "command_center", "planner"}
    assert all(r["masked"] for r in people)


def test_incidents_are_scoped(env):
    from datetime import datetime, timedelta, timezone
    client, _, heads = env
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    made = {}
    for name, lon, lat in (("west", 117.505, 34.815), ("east", 117.515, 34.815)):
        r = client.post("/incidents", headers=heads["centre"], json=dict(
            lon=lon, lat=lat, category="dispute", reporter="12345", role="command_centre", at=past))
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]
    mine = client.get("/incidents", headers=heads["worker"]).json()
    assert [i["id"] for i in mine["items"]] == [made["west"]]
    assert client.get(f"/incidents/{made['east']}", headers=heads["worker"]).status_code == 404
    assert client.get(f"/incidents/{made['west']}", headers=heads["worker"]).status_code == 200
    assert client.get("/incidents", params={"grid": G_EAST}, headers=heads["worker"]).status_code == 404
    # a worker logs cases in their own grid only
    out = client.post("/incidents", headers=heads["worker"], json=dict(
        lon=117.515, lat=34.815, category="dispute", reporter="W1", role="grid_worker", at=past))
    assert out.status_code == 403
    assert client.get("/incidents", headers=heads["external"]).status_code == 403
    assert client.get("/incidents").status_code == 401
    assert client.get("/stats/summary").status_code == 401
