"""The planner's workflow over HTTP on the toy district: draft -> validate -> impact -> map
-> apply (If-Match) -> history -> as-of."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, X1, XM, Y0, Y1, YM, bearer, make_toy_store
from stores import location
from gis_grid.security import keys
from gis_grid.store import open_store

WEST = "370402001001"
G1, G2, G3 = WEST + "001", WEST + "002", WEST + "003"


def fc(*geoms):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))} for g in geoms]}


MOVED = fc(shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))


def planner_client(path):
    """A client that sends a planner's API key with every request."""
    with open_store(location(path)) as store:
        token = keys.create_key(store, "planner", "370402")[1]
    c = TestClient(create_app(Settings(db=location(path))))
    c.headers["Authorization"] = f"Bearer {token}"
    return c


@pytest.fixture
def client(tmp_path):
    make_toy_store(tmp_path / "toy.gpkg").close()
    with planner_client(tmp_path / "toy.gpkg") as c:
        yield c


def test_plans_are_for_planners(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    worker = keys.create_key(store, "grid_worker", G1)[1]
    store.close()
    with TestClient(create_app(Settings(db=location(tmp_path / "toy.gpkg")))) as c:
        assert c.get("/plans").status_code == 401
        assert c.post("/plans", json={"community": WEST, "grids": MOVED}).status_code == 401
        h = {"Authorization": f"Bearer {worker}"}
        assert c.get("/plans", headers=h).status_code == 403
        assert c.post("/plans/1/apply", headers={**h, "If-Match": "1"}).status_code == 403
        assert c.get(f"/grids/{G1}/history", headers=h).status_code == 200  # a worker sees their own grid
        assert c.get(f"/grids/{G2}/history", headers=h).status_code == 404  # out of scope: not leaked


def test_draft_impact_apply_history_asof(client, no_pii, tmp_path):
    r = client.post("/plans", json={"community": WEST, "grids": MOVED, "note": "move the edge south"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert r.headers["etag"] == '"1"' and plan["validation"]["ok"] and plan["replaces"] == [G1, G2]
    r = client.get(f"/plans/{plan['id']}")
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert client.get("/plans").json()["plans"][0]["id"] == plan["id"]

    imp = client.get(f"/plans/{plan['id']}/impact", params={"target_households": 2})
    assert imp.status_code == 200
    body = imp.json()
    no_pii(imp.text)
    assert body["changes"]["buildings"] == 1 and body["changes"]["households"] == 1
    assert body["created"] == [G3] and body["retired"] == [G2]
    page = client.get(f"/plans/{plan['id']}/map")
    assert page.status_code == 200 and "leaflet" in page.text and G3 in page.text
    assert "https://cdn" not in page.text
    # Chinese first with the English toggle, like every page
    # (folium writes layer names as JSON: the Chinese is \u-escaped in the page source)
    assert "/map/static/i18n/lang.js" in page.text and "before (replaced grids)" in page.text
    assert json.dumps("调整前").strip('"') in page.text

    layer = client.get("/map/layers/grid.geojson")
    assert layer.headers["etag"] == '"1-grid-none"' and G2 in layer.text and G3 not in layer.text
    before = (datetime.now(timezone.utc) - timedelta(microseconds=1)).isoformat()
    time.sleep(0.01)
    r = client.post(f"/plans/{plan['id']}/apply")
    assert r.status_code == 428 and r.json()["errors"]["current_version"] == 1
    r = client.post(f"/plans/{plan['id']}/apply", headers={"If-Match": '"0"'})
    assert r.status_code == 412 and r.json()["errors"]["current_version"] == 1
    r = client.post(f"/plans/{plan['id']}/apply", headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["atlas_version"] == 2 and r.json()["serving_version"] == 2
    r = client.post(f"/plans/{plan['id']}/apply", headers={"If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["errors"]["current_version"] == 2
    kept = client.get(f"/plans/{plan['id']}/impact")  # drawn on version 1, read as it was when applied
    assert kept.status_code == 200 and kept.json()["applied_version"] == 2 and kept.json()["created"] == [G3]
    assert client.get(f"/plans/{plan['id']}").json()["status"] == "applied"
    store = client.app.state.holder.store
    applies = [a for a in store.audit_records() if a["action"] == "apply_plan"]
    assert [a["result"].split(":")[0] for a in applies] == ["refused", "refused", "ok", "refused"]
    assert applies[2]["role"] == "planner" and applies[2]["resource"] == f"plan:{plan['id']}"

    # readers see the new state (map caches follow the version); ?at= reproduces the old one
    layer = client.get("/map/layers/grid.geojson", headers={"If-None-Match": '"1-grid-none"'})
    assert layer.status_code == 200 and layer.headers["etag"] == '"2-grid-none"'
    assert G3 in layer.text and G2 not in layer.text
    now = client.get("/locate", params={"lon": 117.505, "lat": 34.805}).json()
    assert now["grid"]["code"] == G1 and now["atlas_version"] == 2
    old = client.get("/locate", params={"lon": 117.505, "lat": 34.805, "at": before}).json()
    assert old["grid"]["code"] == G2 and old["atlas_version"] == 1, (old, before)
    assert client.get(f"/grids/{G2}").status_code == 404
    card = client.get(f"/grids/{G2}", params={"at": before})
    assert card.status_code == 200 and card.json()["statistics"]["households"] == 1
    # a planner sees who lives there as counts only; the command centre sees the (masked) records
    counts = client.get(f"/grids/{G2}/residents", params={"at": before}).json()
    assert counts["households"] is None and counts["numberMatched"] == 1
    res = client.get(f"/grids/{G2}/residents", params={"at": before},
                     headers=bearer(tmp_path / "toy.gpkg", "command_center", "370402"))
    assert res.status_code == 200 and [h["id"] for h in res.json()["households"]] == ["Hc3"]
    # building 2 (household Hc3) stood in G2 before the apply and in G1 after, on every resident route
    centre = bearer(tmp_path / "toy.gpkg", "command_center", "370402")
    then = client.get("/buildings/2/residents", params={"at": before}, headers=centre).json()
    today = client.get("/buildings/2/residents", headers=centre).json()
    assert [h["grid_code"] for h in then["households"]] == [G2]
    assert [h["grid_code"] for h in today["households"]] == [G1]
    area = {"type": "Polygon", "coordinates": [[[X0, Y0], [XM, Y0], [XM, Y1], [X0, Y1], [X0, Y0]]]}
    found = client.post("/residents/search", params={"at": before}, json=area, headers=centre).json()
    assert {h["id"]: h["grid_code"] for h in found["households"]}["Hc3"] == G2
    batch = client.post("/locate", params={"at": before}, json=[[117.505, 34.805]]).json()
    assert batch["atlas_version"] == 1 and batch["results"][0]["grid"] == G2
    assert client.get("/locate", params={"lon": 117.505, "lat": 34.805, "at": "1999-01-01"}).status_code == 404
    assert client.get("/locate", params={"lon": 117.505, "lat": 34.805, "at": "yesterday"}).status_code == 400

    hist = client.get(f"/grids/{G1}/history").json()
    assert [v["version"] for v in hist["versions"]] == [1, 2] and hist["current"]
    assert hist["versions"][0]["valid_to"] == hist["versions"][1]["valid_from"]
    assert hist["changes"][0]["from_version"] == 1
    gone = client.get(f"/grids/{G2}/history").json()
    assert not gone["current"] and gone["versions"][0]["valid_to"] is not None
    assert client.get("/grids/370402001001999/history").status_code == 404


def test_bad_plans_are_rejected_with_locations_and_nothing_changes(client):
    overlapping = fc(shapely.box(X0, 34.809, XM, Y1), shapely.box(X0, Y0, XM, YM))
    r = client.post("/plans", json={"community": WEST, "grids": overlapping})
    assert r.status_code == 422
    errs = r.json()["errors"]
    assert errs[0]["rule"] == "overlap" and errs[0]["location"]["type"] == "Polygon"
    outside = fc(shapely.box(X0, YM, X1, Y1), shapely.box(X0, Y0, XM, YM))
    r = client.post("/plans", json={"community": WEST, "grids": outside})
    assert r.status_code == 422 and "within_parent" in {e["rule"] for e in r.json()["errors"]}
    r = client.post("/plans", json={"street": "370402001", "grids": fc(shapely.box(X0, 34.804, XM, Y1))})
    assert r.status_code == 422 and [e["rule"] for e in r.json()["errors"]] == ["gap"]
    assert client.post("/plans", json={"community": "370402", "grids": MOVED}).status_code == 400
    assert client.post("/plans", json={"community": WEST, "grids": {"type": "Point"}}).status_code == 400
    assert client.get("/plans").json()["plans"] == []
    assert client.get("/plans/99").status_code == 404


def test_edit_ops_and_concurrent_applies(client):
    split = {"op": "split", "grid": G1, "line": {"type": "LineString", "coordinates": [[117.503, 34.8], [117.503, 34.83]]}}
    a = client.post("/plans", json={"edit": split})
    assert a.status_code == 201, a.text
    b = client.post("/plans", json={"edit": {"op": "merge", "grids": [G1, G2]}})
    assert b.status_code == 201 and len(b.json()["grids"]["features"]) == 1
    assert client.post("/plans", json={"edit": {"op": "merge", "grids": [G1, "370402002001001"]}}).status_code == 400
    codes, barrier = [], threading.Barrier(2)

    def go(pid):
        barrier.wait()
        codes.append(client.post(f"/plans/{pid}/apply", headers={"If-Match": "1"}).status_code)

    ts = [threading.Thread(target=go, args=(p.json()["id"],)) for p in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(codes) == [200, 412]
    assert client.get("/capabilities").status_code == 200
    assert len(client.get("/plans").json()["plans"]) == 2
    assert sum(p["status"] == "applied" for p in client.get("/plans").json()["plans"]) == 1


def test_propose_is_an_ordinary_plan(tmp_path):
    import pandas as pd
    from planning_common import make_crowded_store
    store = make_crowded_store(tmp_path / "c.gpkg")
    with planner_client(tmp_path / "c.gpkg") as c:
        # the toy's one worker cannot staff the proposed grids: refused, nothing stored
        r = c.post("/plans/propose", json={"community": WEST, "min_households": 30, "max_households": 60})
        assert r.status_code == 400 and "worker" in r.json()["detail"] and c.get("/plans").json()["plans"] == []
    store.replace_all({"workers": pd.DataFrame({"id": [f"W{i}" for i in range(8)], "grid_code": [G1, G2] * 4,
                                                "name": "周八", "role": "网格员", "phone": "13900001111"})}, {})
    store.close()
    with planner_client(tmp_path / "c.gpkg") as c:
        r = c.post("/plans/propose", json={"community": WEST, "min_households": 30, "max_households": 60})
        assert r.status_code == 201, r.text
        p = r.json()["proposal"]
        assert p["balance_before"]["in_range"] == 0 and p["balance_after"]["in_range"] == p["balance_after"]["grids"]
        assert p["households_moved"] > 0 and r.json()["source"] == "propose"
        pid = r.json()["id"]
        imp = c.get(f"/plans/{pid}/impact")
        assert imp.status_code == 200 and imp.json()["unstaffed"] == []
        assert c.post(f"/plans/{pid}/apply", headers={"If-Match": r.headers["etag"]}).status_code == 200
        assert c.post("/plans/propose", json={"community": WEST, "min_households": 60,
                                              "max_households": 30}).status_code == 400


def test_exports(client):
    pid = client.post("/plans", json={"community": WEST, "grids": MOVED}).json()["id"]
    r = client.get(f"/plans/{pid}/export", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "building_id,grid_code,current_grid_code"
    assert f"2,{G1},{G2}" in r.text.splitlines()
    r = client.get(f"/plans/{pid}/export", params={"format": "gpkg"})
    assert r.status_code == 200 and r.content[:16] == b"SQLite format 3\x00"
    r = client.get(f"/plans/{pid}/export", params={"format": "geojson"})
    assert r.status_code == 200 and len(r.json()["features"]) == 2
    assert client.get(f"/plans/{pid}/export", params={"format": "shp"}).status_code == 400


def test_propose_past_its_budget_is_a_503_that_says_what_was_tried(tmp_path):
    from planning_common import make_crowded_store
    make_crowded_store(tmp_path / "c.gpkg").close()
    with planner_client(tmp_path / "c.gpkg") as c:
        c.app.state.settings.propose_budget_s = 0.3  # less than the solver takes to start
        r = c.post("/plans/propose", json={"community": WEST, "min_households": 30, "max_households": 60})
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"].isdigit()
        body = r.json()
        assert body["title"] == "BudgetExceededError" and "0.3 s" in body["detail"]
        assert body["errors"]["attempts"][0]["community"] == WEST
        assert c.get("/plans").json()["plans"] == []  # nothing half-made was stored
