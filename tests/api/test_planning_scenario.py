"""The whole story over HTTP (issue 12): cases logged -> plan proposed -> impact -> apply.
Afterwards cases, workers, statistics, warnings, map layers, history and as-of reads agree."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from gis_grid.atlas import Atlas
from gis_grid.incidents import service
from gis_grid.security import keys
from gis_grid.store import open_store
from planning_common import WEST, make_crowded_store
from stores import location

G1, G2 = WEST + "001", WEST + "002"
NOW = datetime.now(timezone.utc)


def _setup(path):
    store = make_crowded_store(path)
    # five workers per grid, as in the demo district
    w = pd.DataFrame({"id": [f"W{i}" for i in range(10)], "grid_code": [G1] * 5 + [G2] * 5, "name": "周八",
                      "role": "网格员", "phone": "13900001111"})
    store.replace_all({"workers": w}, {})
    atlas = Atlas.from_store(store)
    # a case at every building of the west community and two in the east one, a few days old
    b = atlas.buildings
    pts = [(p.x, p.y) for p in shapely.point_on_surface(b["geometry"].to_numpy())]
    for k, (x, y) in enumerate(pts):
        service.create(store, atlas, lon=x, lat=y, crs="EPSG:4490", category="dispute", reporter="张三",
                       role="grid_worker", at=NOW - timedelta(days=1 + k % 5), now=NOW)
    tokens = {r: keys.create_key(store, r, "370402")[1] for r in ("planner", "command_center")}
    store.close()
    return tokens


def _figures(c):
    """Cases per level from /stats/divisions, and the district summary."""
    out = {lvl: {r["code"]: r["cases"] for r in c.get("/stats/divisions", params={"level": lvl}).json()["items"]}
           for lvl in ("grid", "community", "street", "district")}
    out["summary"] = c.get("/stats/summary").json()["cases"]
    return out


def _add_up(f):
    for child, parent, n in (("grid", "community", 12), ("community", "street", 9), ("street", "district", 6)):
        sums = {}
        for code, v in f[child].items():
            sums[code[:n]] = sums.get(code[:n], 0) + v
        assert sums == {k: v for k, v in f[parent].items() if v or k in sums}, (child, parent)
    assert sum(f["district"].values()) == f["summary"]


def test_cases_workers_statistics_and_layers_follow_an_applied_proposal(tmp_path):
    path = tmp_path / "s.gpkg"
    tokens = _setup(path)
    planner = {"Authorization": f"Bearer {tokens['planner']}"}
    with TestClient(create_app(Settings(db=location(path)))) as c:
        c.headers["Authorization"] = f"Bearer {tokens['command_center']}"
        before = _figures(c)
        _add_up(before)
        assert before["community"][WEST] == 24 and before["summary"] == 26
        warn_before = c.get("/warnings", params={"at": NOW.date().isoformat()}).json()["counts"]
        stamp = datetime.now(timezone.utc).isoformat()

        r = c.post("/plans/propose", json={"community": WEST, "min_households": 50, "max_households": 90},
                   headers=planner)
        assert r.status_code == 201, r.text
        plan = r.json()
        imp = c.get(f"/plans/{plan['id']}/impact", headers=planner).json()
        assert imp["unstaffed"] == [] and len(imp["grids"]) >= 3
        promised = {g["code"]: g["workers"] for g in imp["grids"]}
        r = c.post(f"/plans/{plan['id']}/apply", headers={**planner, "If-Match": r.headers["ETag"]})
        assert r.status_code == 200, r.text
        new_codes = [g["code"] for g in imp["grids"]]

        after = _figures(c)
        _add_up(after)
        # a redraw inside one community: every community, street and district figure is unchanged
        for lvl in ("community", "street", "district"):
            assert after[lvl] == before[lvl], lvl
        assert after["summary"] == before["summary"]
        assert set(c for c in after["grid"] if c.startswith(WEST)) == set(new_codes)
        assert all(after["grid"][g] > 0 for g in new_codes)  # every new grid holds buildings, so cases

        # ?grid= filters, the OGC collection and the choropleth use the current grid
        for g in new_codes:
            listed = c.get("/incidents", params={"grid": g, "limit": 100}).json()
            assert listed["numberMatched"] == after["grid"][g]
            assert {i["grid_code"] for i in listed["items"]} == {g}
            ogc = c.get("/ogc/collections/incidents/items", params={"grid_code": g, "limit": 100}).json()
            assert ogc["numberMatched"] == after["grid"][g]
        choro = c.get("/map/incidents/choropleth/grid.json").json()["values"]
        assert {g: choro[g]["cases"] for g in new_codes} == {g: after["grid"][g] for g in new_codes}
        warn = c.get("/warnings", params={"at": NOW.date().isoformat()}).json()
        # every case still counts in the early warning, now over the new grids
        assert warn["counts"]["district_recent"] == warn_before["district_recent"] == 26
        assert warn["counts"]["grids"] == len(after["grid"])
        assert {x["code"] for x in warn["items"]} <= set(after["grid"])

        # a case keeps the grid it was reported in
        some = c.get("/incidents", params={"grid": WEST, "limit": 100}).json()["items"]
        full = c.get(f"/incidents/{some[0]['id']}").json()
        assert "reported_grid_code" in full and full["reported_grid_code"] in (G1, G2)

        # workers: every new grid with households has the team the impact promised
        for g in new_codes:
            card = c.get(f"/grids/{g}").json()
            assert card["statistics"]["households"] > 0
            assert len(card["workers"]) == promised[g] >= 1

        # history and as-of: before the apply the old grids, with their households
        hist = c.get(f"/grids/{G2}/history", headers=planner).json()
        assert hist["changes"] and hist["changes"][0]["plan_id"] == plan["id"]
        old = c.get(f"/grids/{G2}", params={"at": stamp}).json()
        assert old["statistics"]["households"] == 120

    with open_store(location(path)) as store:  # the library's as-of case table agrees
        from gis_grid.atlas.asof import atlas_at, parse_at
        from gis_grid.incidents import aggregate
        old = atlas_at(store, parse_at(stamp))
        t = aggregate.case_table(store, old)
        by = aggregate.group_stats(t, old, "grid")["cases"].to_dict()
        assert by == before["grid"]
