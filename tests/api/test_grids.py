"""GET /grids/{code}, GET /buildings/{id} and GET /capabilities.

Statistics are checked against counts computed independently with plain SQL
on the store file (not through the atlas or gis_grid.stats).
"""
from __future__ import annotations


import pytest
import shapely

from common import bearer
from gis_grid.suppression import suppressed
from stores import raw_sql

FLAGS = ("disabled", "low_income", "elderly_alone", "extreme_poverty",
         "left_behind_child", "veteran", "community_correction")


def sql_stats(path, code: str) -> dict:
    like = code + "%"
    one = lambda sql: raw_sql(path, sql, (like,))[0][0]  # noqa: E731
    flags = raw_sql(
        path, "SELECT " + ", ".join(f"COALESCE(SUM(CASE WHEN {f} <> 0 THEN 1 ELSE 0 END), 0)" for f in FLAGS) +
        " FROM residents r JOIN households h ON r.household_id = h.id WHERE h.grid_code LIKE ?", (like,))[0]
    return {
        "households": one("SELECT count(*) FROM households WHERE grid_code LIKE ?"),
        "residents": one("SELECT count(*) FROM residents r JOIN households h ON r.household_id = h.id "
                         "WHERE h.grid_code LIKE ?"),
        "buildings": one("SELECT count(*) FROM buildings WHERE grid_code LIKE ?"),
        "workers": one("SELECT count(*) FROM workers WHERE grid_code LIKE ?"),
        "grids": one("SELECT count(*) FROM divisions WHERE level='grid' AND valid_to IS NULL AND code LIKE ?"),
        "special_groups": dict(zip(FLAGS, flags)),
    }


def hidden_by_sql(path) -> dict:
    rows = raw_sql(path, "SELECT h.grid_code, " + ", ".join(f"SUM(CASE WHEN {f} <> 0 THEN 1 ELSE 0 END)" for f in FLAGS) +
                   " FROM residents r JOIN households h ON r.household_id = h.id GROUP BY h.grid_code")
    return {f: suppressed({r[0]: int(r[1 + i]) for r in rows}, 5) for i, f in enumerate(FLAGS)}


def sql_children(path, code: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in raw_sql(path, "SELECT code, name FROM divisions WHERE parent_code = ? "
                                      "AND valid_to IS NULL ORDER BY code", (code,))]


@pytest.fixture(scope="module")
def chain(demo_store_path) -> list[str]:
    """One division per level, district down to a base grid."""
    grid = raw_sql(demo_store_path, "SELECT grid_code FROM households GROUP BY grid_code "
                   "ORDER BY count(*) DESC, grid_code LIMIT 1")[0][0]
    return [grid[:6], grid[:9], grid[:12], grid]


@pytest.mark.parametrize("depth,level", [(0, "district"), (1, "street"), (2, "community"), (3, "grid")])
def test_card_at_each_level_matches_the_store(client, chain, demo_store_path, depth, level):
    code = chain[depth]
    r = client.get(f"/grids/{code}", params={"geometry": "false"})
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["code"] == code and card["level"] == level
    assert "geometry" not in card
    expected = sql_stats(demo_store_path, code)
    assert expected["households"] > 0 and expected["residents"] > expected["households"]
    # the command centre sees special-group counts with cells under 5 suppressed (null), and the
    # cells that would give them back by subtraction (the rule of gis_grid.suppression, applied
    # here to the SQL counts per base grid)
    hidden = hidden_by_sql(demo_store_path)
    groups = {k: (None if code in hidden[k] else v) for k, v in expected["special_groups"].items()}
    assert all(v is None for k, v in groups.items() if 0 < expected["special_groups"][k] < 5)
    if level == "grid":  # a base grid does not count itself
        assert expected.pop("grids") == 1
    assert card["statistics"] == {**expected, "special_groups": groups}
    assert card["suppressed_below"] == 5   # the threshold beside the figures, not among them
    assert [(k["code"], k["name"]) for k in card["children"]] == sql_children(demo_store_path, code)
    if level == "grid":
        assert card["children"] == []
    else:
        assert card["children"] and all(k["level"] != level for k in card["children"])
        assert chain[depth + 1] in [k["code"] for k in card["children"]]
    if depth:
        assert card["parent"]["code"] == chain[depth - 1]
        assert card["parent"]["level"] == ("district", "street", "community")[depth - 1]
        assert card["parent"]["name"]
    assert card["area_m2"] > 0


def test_special_groups_are_not_all_zero_in_the_demo(client):
    card = client.get("/grids/370402", params={"geometry": "false"}).json()
    assert all(v > 0 for v in card["statistics"]["special_groups"].values()), card["statistics"]


def test_upper_level_is_the_sum_of_its_children(client, chain):
    card = client.get(f"/grids/{chain[1]}", params={"geometry": "false"}).json()
    total = {k: 0 for k in ("households", "residents", "buildings", "workers", "grids")}
    for kid in card["children"]:
        s = client.get(f"/grids/{kid['code']}", params={"geometry": "false"}).json()["statistics"]
        for k in total:
            total[k] += s[k]
    assert total == {k: card["statistics"][k] for k in total}


def test_grid_card_lists_workers_with_work_phones(client, chain, demo_store_path):
    """Names masked; work phones in full for the command centre, which calls them (they are on the grid's board)."""
    r = client.get(f"/grids/{chain[3]}", params={"geometry": "false"})
    workers = r.json()["workers"]
    raw = raw_sql(demo_store_path, "SELECT id, name, phone, role FROM workers WHERE grid_code=?", (chain[3],))
    assert len(workers) == len(raw) > 0
    by_id = {w["id"]: w for w in workers}
    for wid, name, phone, role in raw:
        w = by_id[wid]
        assert w["role"] == role
        assert w["name"] != name and w["name"][0] == name[0] and w["name"].endswith("*")
        assert w["phone"] == phone


def test_other_roles_see_work_phones_masked(client, chain, demo_store_path, no_pii):
    street = bearer(demo_store_path, "street_admin", chain[3][:9])
    r = client.get(f"/grids/{chain[3]}", params={"geometry": "false"}, headers=street)
    assert r.status_code == 200 and r.json()["workers"]
    no_pii(r.text)
    assert all("****" in w["phone"] for w in r.json()["workers"])


def test_upper_levels_have_no_worker_list(client, chain):
    assert "workers" not in client.get(f"/grids/{chain[2]}", params={"geometry": "false"}).json()


def test_geometry_is_geojson_matching_the_store(client, chain, demo_store_path):
    from gis_grid.store import open_store
    card = client.get(f"/grids/{chain[3]}").json()
    assert card["geometry"]["type"] in ("Polygon", "MultiPolygon")
    got = shapely.geometry.shape(card["geometry"])
    store = open_store(demo_store_path)
    try:
        d = store.divisions()
    finally:
        store.close()
    want = d.loc[d["code"] == chain[3], "geometry"].iloc[0]
    assert got.equals_exact(want, 1e-9) or got.symmetric_difference(want).area < 1e-12
    assert card["area_m2"] == pytest.approx(float(d.loc[d["code"] == chain[3], "area_m2"].iloc[0]))


def test_statistics_are_cached_on_the_atlas(client, chain):
    atlas = client.app.state.holder.atlas
    client.get(f"/grids/{chain[0]}", params={"geometry": "false"})
    cached = atlas.memo.peek("stats.grid_table")
    assert cached is not None and len(cached) == len(atlas.grid_codes)
    client.get(f"/grids/{chain[1]}", params={"geometry": "false"})
    assert atlas.memo.peek("stats.grid_table") is cached  # not recomputed


@pytest.mark.parametrize("code", ["abc", "3704", "37040200", "3704020010130011", "37040200101300x"])
def test_malformed_code_is_400(client, code):
    r = client.get(f"/grids/{code}")
    assert r.status_code == 400, r.text
    assert "not a division code" in r.json()["detail"]


def test_unknown_code_is_404_with_a_hint(client, chain):
    unknown = chain[2] + "999"
    r = client.get(f"/grids/{unknown}")
    assert r.status_code == 404, r.text
    body = r.json()
    assert unknown in body["detail"] and chain[2] in body["detail"]
    assert chain[3] in body["detail"]  # lists the existing siblings
    assert body["errors"]["parent"] == chain[2]
    assert client.get("/grids/370499").status_code == 404


# ------------------------------------------------------------- toy district
def test_toy_cards_exact(toy_client, toy_store_path):
    # a planner falls under the command centre's small-count rule; a street admin sees its street exactly
    planner = bearer(toy_store_path, "planner", "370402")
    d = toy_client.get("/grids/370402", params={"geometry": "false"}, headers=planner).json()
    cc = toy_client.get("/grids/370402", params={"geometry": "false"}).json()
    assert cc["suppressed_below"] == 5 and "suppressed_below" not in cc["statistics"]
    assert d["suppressed_below"] == 5 and d["statistics"] == cc["statistics"]
    assert cc["statistics"]["special_groups"]["disabled"] is None  # 2 people: under 5
    assert cc["statistics"]["special_groups"]["extreme_poverty"] == 0  # zero reveals nobody
    assert d["statistics"] == {"grids": 4, "households": 5, "residents": 6, "buildings": 4, "workers": 1,
                               "special_groups": {"disabled": None, "low_income": None, "elderly_alone": None,
                                                  "extreme_poverty": 0, "left_behind_child": 0, "veteran": None,
                                                  "community_correction": None}}
    assert [k["code"] for k in d["children"]] == ["370402001", "370402002"]
    g = toy_client.get("/grids/370402001001001", headers=planner).json()
    assert g["statistics"]["households"] == 2 and g["statistics"]["residents"] == 3
    assert g["statistics"]["special_groups"]["disabled"] is None
    west = bearer(toy_store_path, "street_admin", "370402001")
    gw = toy_client.get("/grids/370402001001001", headers=west).json()
    assert "suppressed_below" not in gw
    assert gw["statistics"]["special_groups"]["disabled"] == 1
    assert gw["statistics"]["special_groups"]["low_income"] == 1
    assert g["parent"] == {"code": "370402001001", "name": "西社区居委会", "level": "community"}
    assert g["workers"] == [{"id": "W1", "role": "网格长", "name": "周*", "phone": "139****1111"}]  # planner: masked
    assert g["geometry"]["type"] == "MultiPolygon"
    # toy areas are not stored (0): computed in EPSG:4548, ~0.01 deg x 0.01 deg at 34.8N
    assert 0.9e6 < g["area_m2"] < 1.1e6
    e = toy_client.get("/grids/370402002001002", headers=bearer(toy_store_path, "street_admin", "370402002")).json()
    assert e["workers"] == [] and e["statistics"]["workers"] == 0
    assert e["statistics"]["special_groups"]["community_correction"] == 1


def test_toy_building(toy_client):
    r = toy_client.get("/buildings/1")
    assert r.status_code == 200
    b = r.json()
    assert {k: b[k] for k in ("id", "name", "kind", "floors", "units", "grid_code", "households")} == \
        {"id": 1, "name": "1号楼", "kind": "residential_block", "floors": 6, "units": 2,
         "grid_code": "370402001001001", "households": 2}
    assert shapely.geometry.shape(b["geometry"]).contains(shapely.Point(117.505, 34.815))
    assert "geometry" not in toy_client.get("/buildings/3", params={"geometry": "false"}).json()
    r = toy_client.get("/buildings/99")
    assert r.status_code == 404 and "99" in r.json()["detail"]
    assert toy_client.get("/buildings/abc").status_code == 400


def test_demo_building_matches_store(client, demo_store_path):
    bid, name, floors, gcode = raw_sql(demo_store_path, "SELECT id, name, floors, grid_code FROM buildings "
                                       "ORDER BY id LIMIT 1 OFFSET 100")[0]
    n = raw_sql(demo_store_path, "SELECT count(*) FROM households WHERE building_id=?", (bid,))[0][0]
    b = client.get(f"/buildings/{bid}").json()
    assert (b["id"], b["name"], b["floors"], b["grid_code"], b["households"]) == (bid, name, floors, gcode, n)


def test_capabilities_publish_the_settings(toy_client, toy_limits, client):
    caps = toy_client.get("/capabilities").json()
    for k, v in toy_limits.items():
        assert caps["limits"][k] == v
    assert caps["limits"]["max_body_bytes"] > 0
    ids = [c["id"] for c in caps["crs"]]
    assert ids == ["EPSG:4326", "EPSG:4490", "EPSG:4548", "gcj02", "bd09"]
    from api.settings import Settings
    assert client.get("/capabilities").json()["limits"]["max_page_size"] == Settings().max_page_size
