"""The whole story over HTTP (issue 12): cases logged -> plan proposed -> impact -> apply.
Afterwards cases, workers, statistics, warnings, map layers, history and as-of reads agree."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import shapely
import shapely.ops
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


# -- the issue's "Found" list, on the demo district --------------------------------------------
SCENARIO_COMMUNITY = "370402005001"  # 辛庄居委会, the community the issue rebalanced


def _split_line(geom):
    """A straight west-east line through a grid's representative point, past its edges."""
    p = geom.representative_point()
    x0, _, x1, _ = geom.bounds
    pad = (x1 - x0) or 1.0
    return shapely.LineString([(x0 - pad, p.y), (x1 + pad, p.y)])


@pytest.mark.slow
def test_the_issues_found_list_holds_on_the_demo(demo_store_path, tmp_path):
    """Each point of the issue's "Found" list, as a new user met it on the demo (辛庄居委会, propose
    300-500 households per grid, apply), now holds the other way round."""
    import json
    import shutil

    import numpy as np

    from gis_grid import crs as crs_mod
    from stores import copy_store, is_postgis
    db = copy_store(demo_store_path, tmp_path / "shizhong.gpkg")
    cache = Path(str(demo_store_path).removesuffix(".gpkg") + ".cache")
    if not is_postgis() and cache.is_dir():  # content-keyed lookup tables: reuse, do not rebuild
        shutil.copytree(cache, tmp_path / "shizhong.cache")
    with open_store(db) as s:
        tokens = {r: keys.create_key(s, r, "370402")[1] for r in ("planner", "command_center")}
    planner = {"Authorization": f"Bearer {tokens['planner']}"}
    comm = SCENARIO_COMMUNITY
    with TestClient(create_app(Settings(db=db))) as c:
        c.headers["Authorization"] = f"Bearer {tokens['command_center']}"
        before = _figures(c)
        _add_up(before)
        open_before = {r["code"]: r["open"] for r in
                       c.get("/stats/divisions", params={"level": "community"}).json()["items"]}
        assert before["community"][comm] > 0 and open_before[comm] > 0

        r = c.post("/plans/propose", json={"community": comm, "min_households": 300, "max_households": 500},
                   headers=planner)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        imp = c.get(f"/plans/{pid}/impact", headers=planner).json()
        # Found: "8 of the 13 new grids have households but no grid worker, and the impact did not warn"
        assert imp["unstaffed"] == []
        promised = {g["code"]: g for g in imp["grids"]}
        stamp = datetime.now(timezone.utc).isoformat()
        r = c.post(f"/plans/{pid}/apply", headers={**planner, "If-Match": r.headers["ETag"]})
        assert r.status_code == 200, r.text
        new_codes = sorted(promised)
        retired = sorted(set(imp["old_grids"][k]["code"] for k in range(len(imp["old_grids"]))) - set(new_codes))

        after = _figures(c)
        # Found: "the community's cases went from 2,939 to 0"; "the per-community sum went down while
        # /stats/summary did not": every level still adds up and nothing above the grids changed
        _add_up(after)
        for lvl in ("community", "street", "district"):
            assert after[lvl] == before[lvl], lvl
        assert after["summary"] == before["summary"]
        assert sum(after["grid"][g] for g in new_codes) == before["community"][comm]
        stats = {r["code"]: r for r in c.get("/stats/divisions", params={"level": "grid"}).json()["items"]}
        assert sum(stats[g]["open"] for g in new_codes) == open_before[comm]
        # Found: "/incidents?grid=<any new grid> finds 0 cases; the open cases only by bbox or id"
        for g in new_codes:
            listed = c.get("/incidents", params={"grid": g, "limit": 1}).json()
            assert listed["numberMatched"] == after["grid"][g]
        assert all(g not in after["grid"] for g in retired)
        # Found: "the choropleth shows the new grids as 'no cases' although the impact promised figures"
        choro = c.get("/map/incidents/choropleth/grid.json").json()["values"]
        for g in new_codes:
            assert choro[g]["cases"] == after["grid"][g]
            assert (choro[g]["cases"] > 0) == (promised[g]["cases_per_year"] > 0)
        # Found: workers left behind: every new grid holding households has the team the impact promised
        for g in new_codes:
            card = c.get(f"/grids/{g}").json()
            if card["statistics"]["households"] > 0:
                assert len(card["workers"]) == promised[g]["workers"] >= 1
            # Found: "grid names do not follow new numbers"
            assert card["name"].endswith(f"第{int(g[12:])}网格")

        # Found: "an applied plan's impact, map and export answer 409 although GET /plans links them"
        assert any(p["id"] == pid and p["status"] == "applied" for p in c.get("/plans", headers=planner).json()["plans"])
        for path in (f"/plans/{pid}/impact", f"/plans/{pid}/map", f"/plans/{pid}/export?format=csv"):
            assert c.get(path, headers=planner).status_code == 200, path

        # Found: the server's own tools failed its validation, on a grid the redraw made
        target = max(new_codes, key=lambda g: promised[g]["area_m2"])
        served = {g: shapely.from_geojson(json.dumps(c.get(f"/grids/{g}").json()["geometry"])) for g in new_codes}
        line = _split_line(served[target])
        r = c.post("/plans", headers=planner,
                   json={"edit": {"op": "split", "grid": target, "line": json.loads(shapely.to_geojson(line))}})
        assert r.status_code == 201, r.text  # was: 422, "8.8 m2 covered by no new grid"
        pieces = list(shapely.get_parts(shapely.ops.split(served[target], line)))
        rest = [served[g] for g in new_codes if g != target]
        for crs in (None, "EPSG:4548"):  # was: 422 with 1-2 m2 gaps; in EPSG:4548 "extends 17.9 m2 beyond its parent"
            geoms = pieces + rest
            if crs:  # a QGIS project in EPSG:4548: the grids and the line drawn in metres
                metric = crs_mod.transform_geoms(np.array([served[target]] + rest, dtype=object),
                                                 crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GK117)
                mline = crs_mod.transform_geoms(line, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GK117)
                geoms = list(shapely.get_parts(shapely.ops.split(metric[0], mline))) + list(metric[1:])
            body = {"community": comm, "grids": {"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))} for g in geoms]}}
            if crs:
                body["crs"] = crs
            r = c.post("/plans", headers=planner, json=body)
            assert r.status_code == 201, (crs, r.text)

        # Found: "no way to delete a draft, compare two drafts, or revert a redraw"
        drafts = [p["id"] for p in c.get("/plans", headers=planner).json()["plans"] if p["status"] == "draft"]
        cmp = c.get("/plans/compare", params={"a": drafts[-2], "b": drafts[-1]}, headers=planner)
        assert cmp.status_code == 200, cmp.text
        assert c.delete(f"/plans/{drafts[-1]}", headers=planner).status_code == 204
        r = c.post("/plans/revert", json={"community": comm, "at": stamp}, headers=planner)
        assert r.status_code == 201, r.text
        # Found: "grid features carry no household counts; the most crowded community takes 170 calls"
        ogc = c.get(f"/ogc/collections/grids/items/{target}").json()["properties"]
        assert ogc["households"] == stats[target]["households"] == promised[target]["households"]
        rows = c.get("/stats/divisions", params={"level": "community"}).json()["items"]
        assert all("households" in r for r in rows)

