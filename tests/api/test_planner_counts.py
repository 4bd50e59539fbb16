"""Planner data where planners work (issue 12, build 5): division features in OGC API and in the
exports carry households, residents, buildings, workers and open cases, and the sums agree with
the store and with /stats; /stats/divisions gives households per division."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import pandas as pd
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from gis_grid.atlas import Atlas
from gis_grid.export import export_layer
from gis_grid.features import DIVISION_COLUMNS
from gis_grid.incidents import service
from gis_grid.security import keys
from gis_grid.stats import FEATURE_COUNTS
from gis_grid.store import open_store
from planning_common import WEST, make_crowded_store
from stores import location

NOW = datetime.now(timezone.utc)
G1, G2 = WEST + "001", WEST + "002"


def _setup(path):
    store = make_crowded_store(path)
    w = pd.DataFrame({"id": [f"W{i}" for i in range(7)], "grid_code": [G1] * 4 + [G2] * 3, "name": "周八",
                      "role": "网格员", "phone": "13900001111"})
    store.replace_all({"workers": w}, {})
    atlas = Atlas.from_store(store)
    pts = [(p.x, p.y) for p in shapely.point_on_surface(atlas.buildings["geometry"].to_numpy())]
    for x, y in pts[:9]:
        service.create(store, atlas, lon=x, lat=y, crs="EPSG:4490", category="dispute", reporter="张三",
                       role="grid_worker", at=NOW - timedelta(days=1), now=NOW)
    truth = {"households": len(store.households()), "residents": len(store.residents(columns=["household_id"])),
             "buildings": len(store.buildings()), "workers": 7}
    token = keys.create_key(store, "command_center", "370402")[1]
    store.close()
    return token, truth, pts


def _features(c, cid):
    r = c.get(f"/ogc/collections/{cid}/items", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {f["id"]: f["properties"] for f in r.json()["features"]}, r.text


def _sums(feats, n=None):
    out = {}
    for code, p in feats.items():
        key = code[:n] if n else ""
        acc = out.setdefault(key, dict.fromkeys(FEATURE_COUNTS, 0))
        for k in FEATURE_COUNTS:
            acc[k] += p[k]
    return out


def test_division_features_carry_counts_that_add_up(tmp_path):
    path = tmp_path / "s.gpkg"
    token, truth, pts = _setup(path)
    with TestClient(create_app(Settings(db=location(path)))) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        grids, text = _features(c, "grids")
        communities, _ = _features(c, "communities")
        streets, _ = _features(c, "streets")
        # totals only: the division properties and the counts, no names of people
        assert all(set(p) == set(DIVISION_COLUMNS) | set(FEATURE_COUNTS) for p in grids.values())
        assert "张三" not in text and "周八" not in text and "1390000" not in text
        total = _sums(grids)[""]
        district_open = c.get("/stats/divisions", params={"level": "district"}).json()["items"][0]["open"]
        assert total == {**truth, "open_cases": district_open} and district_open == 9
        assert grids[G1]["workers"] == 4 and grids[G2]["workers"] == 3
        # every level sums to its parent
        assert {k: v for k, v in _sums(grids, 12).items()} == {k: {c_: p[c_] for c_ in FEATURE_COUNTS}
                                                                for k, p in communities.items()}
        assert _sums(communities, 9) == {k: {c_: p[c_] for c_ in FEATURE_COUNTS} for k, p in streets.items()}
        # one feature reads the same as in the page
        one = c.get(f"/ogc/collections/grids/items/{G1}").json()["properties"]
        assert one == grids[G1]

        # /stats/divisions: the most crowded community in one call, the same households
        rows = c.get("/stats/divisions", params={"level": "community"}).json()["items"]
        assert {r["code"]: r["households"] for r in rows} == {k: p["households"] for k, p in communities.items()}
        assert max(rows, key=lambda r: r["households"])["code"] == WEST
        grid_rows = c.get("/stats/divisions", params={"level": "grid", "format": "csv"}).text
        assert grid_rows.splitlines()[0].startswith("code,name,households,residents,buildings,workers,cases")

        # a case written afterwards shows at once (the open-case column is not frozen with the atlas)
        with open_store(location(path)) as s:
            service.create(s, Atlas.from_store(s), lon=pts[0][0], lat=pts[0][1], crs="EPSG:4490",
                           category="dispute", reporter="张三", role="grid_worker", at=NOW, now=NOW)
        after, _ = _features(c, "grids")
        assert _sums(after)[""]["open_cases"] == 10

    # the export carries the same counts
    out = tmp_path / "grids.gpkg"
    with open_store(location(path)) as s:
        export_layer(s, "grids", "gpkg", out)
        export_layer(s, "communities", "geojson", tmp_path / "comm.geojson")
    g = gpd.read_file(out).set_index("code")
    for code, p in after.items():
        assert {k: int(g.loc[code, k]) for k in FEATURE_COUNTS} == {k: p[k] for k in FEATURE_COUNTS}
    comm = gpd.read_file(tmp_path / "comm.geojson").set_index("code")
    assert int(comm["households"].sum()) == truth["households"]
    assert int(comm.loc[WEST, "open_cases"]) == sum(after[k]["open_cases"] for k in after if k.startswith(WEST))
