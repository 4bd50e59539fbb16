"""Aggregates, map layers, OGC features, tiles and search counts follow the key's scope (issue 13, point 3).

The toy district has cases in every grid, most of them in the east grid G_OUT, which lies
outside the west grid worker's and the west street admin's scope. Each check first shows what
the district-wide command centre gets (so the check can fail), then that a confined key gets
only its own part.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, X1, XM, Y0, Y1, bearer, make_toy_store
from gis_grid import tiles as tl
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.incidents import model, service

G_IN, G_OUT = "370402001001001", "370402002001001"
WEST_STREET, EAST_STREET = "370402001", "370402002"
POINTS = {G_IN: (117.505, 34.815), "370402001001002": (117.505, 34.805), G_OUT: (117.515, 34.815),
          "370402002001002": (117.515, 34.805)}
# (baseline cases in 2016-01..10, recent cases in the last 20 days before AT) per grid:
# G_OUT's burst is an anomaly against its own baseline
CASES = {G_IN: (10, 2), "370402001001002": (10, 2), G_OUT: (3, 15), "370402002001002": (10, 2)}
AT = "2016-12-31"
EAST = {"type": "Polygon", "coordinates": [[[XM, Y0], [X1, Y0], [X1, Y1], [XM, Y1], [XM, Y0]]]}
WEST = {"type": "Polygon", "coordinates": [[[X0, Y0], [XM, Y0], [XM, Y1], [X0, Y1], [X0, Y0]]]}


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("scope") / "toy.gpkg")
    atlas = AtlasHolder(store).atlas
    for grid, (base, recent) in CASES.items():
        lon, lat = POINTS[grid]
        for i in range(base):
            service.create(store, atlas, lon=lon, lat=lat, crs="EPSG:4490", category="dispute", reporter="R", role="hotline",
                           now=datetime(2016, 1, 5, tzinfo=model.CST) + timedelta(days=25 * i))
        for i in range(recent):
            service.create(store, atlas, lon=lon, lat=lat, crs="EPSG:4490", category="sanitation", reporter="R", role="hotline",
                           now=datetime(2016, 12, 12, tzinfo=model.CST) + timedelta(days=i % 18))
    heads = {"centre": bearer(store, "command_center", "370402"), "worker": bearer(store, "grid_worker", G_IN),
             "street": bearer(store, "street_admin", WEST_STREET)}
    with TestClient(create_app(Settings(db=store.url))) as client:
        yield client, heads


def total(scope: str) -> int:
    return sum(b + r for g, (b, r) in CASES.items() if g.startswith(scope))


def get(client, heads, who, url):
    r = client.get(url, headers=heads[who])
    assert r.status_code == 200, (who, url, r.status_code, r.text[:300])
    return r.json()


CONFINED = [("worker", G_IN), ("street", WEST_STREET)]


@pytest.mark.parametrize("who,scope", CONFINED)
def test_statistics_count_only_the_scope(env, who, scope):
    client, heads = env
    assert get(client, heads, "centre", "/stats/summary")["cases"] == total("370402")
    assert get(client, heads, who, "/stats/summary")["cases"] == total(scope)
    for url in ("/stats/departments", "/stats/categories", "/stats/divisions?level=district"):
        assert sum(r["cases"] for r in get(client, heads, who, url)["items"]) == total(scope), url
    rows = get(client, heads, who, "/stats/divisions?level=grid")["items"]
    assert rows and all(r["code"].startswith(scope) for r in rows)
    rank = get(client, heads, who, "/stats/ranking?by=grid&min_cases=1&metric=cases")["items"]
    assert rank and all(r["code"].startswith(scope) for r in rank)
    assert G_OUT in [r["code"] for r in get(client, heads, "centre", "/stats/ranking?by=grid&min_cases=1")["items"]]


@pytest.mark.parametrize("who,scope", CONFINED)
def test_within_outside_the_scope_is_404(env, who, scope):
    client, heads = env
    assert get(client, heads, "centre", f"/stats/divisions?level=grid&within={EAST_STREET}")["items"]
    for within in (EAST_STREET, G_OUT, "370402"):
        r = client.get(f"/stats/divisions?level=grid&within={within}", headers=heads[who])
        assert r.status_code == 404, (within, r.status_code, r.text[:200])
        assert "东" not in r.text


@pytest.mark.parametrize("who,scope", CONFINED)
def test_warnings_list_only_the_scope(env, who, scope):
    client, heads = env
    full = get(client, heads, "centre", f"/warnings?at={AT}")
    assert G_OUT in [i["code"] for i in full["items"]]  # the burst is flagged district-wide
    assert full["counts"]["district_recent"] == sum(r for _, r in CASES.values())
    mine = get(client, heads, who, f"/warnings?at={AT}")
    assert all(i["code"].startswith(scope) for i in mine["items"])
    assert "district_recent" not in mine["counts"] and "district_share_recent" not in mine["method"]
    assert mine["counts"]["recent"] == sum(r for g, (_, r) in CASES.items() if g.startswith(scope))
    assert mine["counts"]["grids"] == sum(1 for g in CASES if g.startswith(scope))


@pytest.mark.parametrize("who,scope", CONFINED)
def test_map_layers_follow_the_scope(env, who, scope):
    client, heads = env
    assert get(client, heads, "centre", "/map/incidents/heat.json")["cases"] == total("370402")
    assert get(client, heads, who, "/map/incidents/heat.json")["cases"] == total(scope)
    assert G_OUT in get(client, heads, "centre", "/map/incidents/choropleth/grid.json")["values"]
    values = get(client, heads, who, "/map/incidents/choropleth/grid.json")["values"]
    assert values and all(c.startswith(scope) for c in values)
    assert G_OUT in get(client, heads, "centre", f"/map/incidents/warnings.json?at={AT}")["items"]
    warn = get(client, heads, who, f"/map/incidents/warnings.json?at={AT}")["items"]
    assert all(c.startswith(scope) for c in warn)
    assert G_OUT in client.get(f"/map/incidents?at={AT}", headers=heads["centre"]).text
    page = client.get(f"/map/incidents?at={AT}", headers=heads[who])
    assert page.status_code == 200 and G_OUT not in page.text


@pytest.mark.parametrize("who,scope", CONFINED)
def test_ogc_features_follow_the_scope(env, who, scope):
    client, heads = env
    assert client.get("/ogc/collections/buildings/items/3", headers=heads["centre"]).status_code == 200
    for url in ("/ogc/collections/buildings/items/3", f"/ogc/collections/grids/items/{G_OUT}",
                f"/ogc/collections/streets/items/{EAST_STREET}"):
        out = client.get(url, headers=heads[who])
        missing = client.get(url.rsplit("/", 1)[0] + "/999999", headers=heads[who])
        assert out.status_code == 404 == missing.status_code, (url, out.status_code)
        assert "东" not in out.text and "3号楼" not in out.text
    assert client.get("/buildings/3", headers=heads[who]).status_code == 404  # the rule it follows
    assert get(client, heads, "centre", "/ogc/collections/buildings/items")["numberMatched"] == 4
    b = get(client, heads, who, "/ogc/collections/buildings/items")
    assert b["numberMatched"] == sum(1 for g in POINTS if g.startswith(scope))
    assert all(f["properties"]["grid_code"].startswith(scope) for f in b["features"])
    g = get(client, heads, who, "/ogc/collections/grids/items")
    assert g["features"] and all(f["id"].startswith(scope) for f in g["features"])


def _tile_ids(client, headers, cid: str, z: int, lon: float, lat: float) -> set:
    t = tl.TMS.tile(lon, lat, z)
    r = client.get(f"/ogc/collections/{cid}/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}", headers=headers)
    assert r.status_code == 200, r.text[:200]
    if not r.content:
        return set()
    return {f["id"] for layer in mapbox_vector_tile.decode(r.content).values() for f in layer["features"]}


@pytest.mark.parametrize("who,scope", CONFINED)
def test_tiles_follow_the_scope(env, who, scope):
    client, heads = env
    lon, lat = POINTS[G_OUT]
    assert 3 in _tile_ids(client, heads["centre"], "buildings", 14, lon, lat)
    assert 3 not in _tile_ids(client, heads[who], "buildings", 14, lon, lat)
    assert 1 in _tile_ids(client, heads[who], "buildings", 14, *POINTS[G_IN])
    assert int(G_OUT) in _tile_ids(client, heads["centre"], "grids", 10, lon, lat)
    grids = _tile_ids(client, heads[who], "grids", 10, lon, lat)
    assert int(G_IN) in grids and all(str(i).startswith(scope) for i in grids)
    r = client.get(f"/ogc/collections/grids/tiles/WebMercatorQuad/10/{tl.TMS.tile(lon, lat, 10).x}/"
                   f"{tl.TMS.tile(lon, lat, 10).y}", headers=heads[who])
    assert "private" in r.headers["cache-control"]


def test_search_counts_only_buildings_in_scope(env):
    client, heads = env
    for who in ("centre", "worker", "street"):
        r = client.post("/residents/search", headers=heads[who], json=EAST)
        assert r.status_code == 200, r.text[:200]
        assert r.json()["buildingsMatched"] == (2 if who == "centre" else 0), who
    r = client.post("/residents/search", headers=heads["worker"], json=WEST)
    assert r.json()["buildingsMatched"] == 1
