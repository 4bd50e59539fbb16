"""A plan's whole life over HTTP on the toy district: compare drafts, delete one, apply the
other and still read its impact, map and export, revert the redraw as a new version."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import shapely

from common import X0, X1, XM, Y0, Y1, YM
from test_planning_api import G1, G2, WEST, client, fc  # noqa: F401 - the fixture

G3, G4 = WEST + "003", WEST + "004"
EAST = "370402002001"


def named(collection, *names):
    """The features as a planner copying served grids would send them: with the old names."""
    for f, n in zip(collection["features"], names):
        f["properties"]["name"] = n
    return collection


def test_compare_delete_apply_read_back_and_revert(client, no_pii):
    original = {G1: shapely.box(X0, YM, XM, Y1), G2: shapely.box(X0, Y0, XM, YM)}
    # the lower piece keeps the old grid's name but will get a new number
    moved = named(fc(shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804)), "西第1网格", "西第2网格")
    a = client.post("/plans", json={"community": WEST, "grids": moved}).json()["id"]
    b = client.post("/plans", json={"edit": {"op": "merge", "grids": [G1, G2]}}).json()["id"]
    east = client.post("/plans", json={"edit": {"op": "merge", "grids": [EAST + "001", EAST + "002"]}}).json()["id"]

    cmp = client.get("/plans/compare", params={"a": a, "b": b, "target_households": 2})
    assert cmp.status_code == 200, cmp.text
    no_pii(cmp.text)
    body = cmp.json()
    left, right = body["plans"]
    assert [left["id"], right["id"]] == [a, b] and [left["grids"], right["grids"]] == [2, 1]
    assert left["moved"]["households"] == 1 and right["moved"]["households"] == 2
    assert (body["before"]["min"], body["before"]["max"]) == (1, 2)
    assert (left["balance"]["min"], left["balance"]["max"]) == (0, 3) and right["balance"]["max"] == 3
    # a 1x2 rectangle is less compact than the two near-squares
    assert right["shape"]["polsby_popper_min"] < left["shape"]["polsby_popper_min"]
    assert body["identical_grids"] == 0
    again = client.post("/plans", json={"community": WEST, "grids": moved}).json()["id"]
    assert client.get("/plans/compare", params={"a": a, "b": again}).json()["identical_grids"] == 2
    assert client.delete(f"/plans/{again}").status_code == 204
    assert client.get("/plans/compare", params={"a": a, "b": east}).status_code == 400
    assert client.get("/plans/compare", params={"a": a, "b": a}).status_code == 400
    assert client.get("/plans/compare", params={"a": a, "b": 999}).status_code == 404
    assert client.get("/plans/compare", params={"a": a}).status_code == 400

    assert client.delete(f"/plans/{b}").status_code == 204
    assert client.get(f"/plans/{b}").status_code == 404 and client.delete(f"/plans/{b}").status_code == 404
    store = client.app.state.holder.store
    assert any(r["action"] == "delete_plan" and r["resource"] == f"plan:{b}" for r in store.audit_records())

    draft_imp = client.get(f"/plans/{a}/impact").json()
    assert [g["name"] for g in draft_imp["grids"]] == ["西第1网格", "西第3网格"]  # named for its new number
    draft_csv = client.get(f"/plans/{a}/export", params={"format": "csv"}).text
    before = (datetime.now(timezone.utc) - timedelta(microseconds=1)).isoformat()
    time.sleep(0.01)
    assert client.post(f"/plans/{a}/apply", headers={"If-Match": '"1"'}).status_code == 200
    assert client.get(f"/grids/{G3}").json()["name"] == "西第3网格"

    # the applied plan reads as it stood when applied (the links in GET /plans keep working)
    applied = client.get(f"/plans/{a}").json()
    imp = client.get(f"/plans/{a}/impact")
    assert imp.status_code == 200 and imp.headers["etag"] == '"1"'
    kept = imp.json()
    assert kept["as_of"] == applied["applied_at"] and kept["applied_version"] == 2
    for k in ("grids", "old_grids", "changes", "moved_buildings", "retired", "created", "balance"):
        assert kept[k] == draft_imp[k], k
    assert client.get(f"/plans/{a}/impact", params={"target_households": 1}).json()["balance"]["after"]["target"] == 1
    page = client.get(f"/plans/{a}/map")
    assert page.status_code == 200 and G3 in page.text and G2 in page.text
    assert client.get(f"/plans/{a}/export", params={"format": "csv"}).text == draft_csv
    gj = client.get(f"/plans/{a}/export", params={"format": "geojson"}).json()
    assert sorted(f["properties"]["code"] for f in gj["features"]) == [G1, G3]
    assert client.get(f"/plans/{a}/export", params={"format": "shp"}).status_code == 400
    assert client.delete(f"/plans/{a}").status_code == 409
    assert client.get(f"/plans/{east}/impact").status_code == 409  # a draft on an older version stays stale

    # revert: the grids as they stood before the apply, as a new version with fresh codes where no grid survives
    bad = client.post("/plans/revert", json={"community": WEST, "at": "last week"})
    assert bad.status_code == 400
    assert client.post("/plans/revert", json={"community": "370402", "at": before}).status_code == 400
    assert client.post("/plans/revert", json={"at": before}).status_code == 400
    r = client.post("/plans/revert", json={"community": WEST, "at": before})
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["source"] == "revert" and rev["replaces"] == [G1, G3] and rev["validation"]["ok"]
    shapes = sorted(shapely.from_geojson(json.dumps(f["geometry"])).bounds for f in rev["grids"]["features"])
    assert shapes == sorted(g.bounds for g in original.values())
    rimp = client.get(f"/plans/{rev['id']}/impact").json()
    assert rimp["retired"] == [G3] and rimp["created"] == [G4] and rimp["redrawn"] == [G1]
    r = client.post(f"/plans/{rev['id']}/apply", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200 and r.json()["atlas_version"] == 3
    assert client.get(f"/grids/{G4}").json()["name"] == "西社区第4网格"  # no drawn name: the generated one
    assert client.get(f"/grids/{G2}").status_code == 404  # a retired code is never issued again
    now = shapely.from_geojson(json.dumps(client.get(f"/grids/{G4}").json()["geometry"]))
    assert now.equals(original[G2])
    assert [v["version"] for v in client.get(f"/grids/{G1}/history").json()["versions"]] == [1, 2, 3]
    # the as-of state now is today's: nothing left to revert
    assert client.post("/plans/revert", json={"community": WEST, "at": "2100-01-01"}).status_code == 400
