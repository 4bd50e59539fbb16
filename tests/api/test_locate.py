"""GET /locate and POST /locate against the demo district (and the toy one for limits)."""
from __future__ import annotations

import math

import pytest
import shapely

from gis_grid import crs as crs_mod
from gis_grid.store import open_store
from stores import raw_sql

OUTSIDE = (116.0, 30.0)  # valid lon/lat in China, far from Zaozhuang


@pytest.fixture(scope="module")
def inside_points(demo_store_path):
    """(lon, lat, grid_code, building_id) at the representative point of a few demo buildings."""
    store = open_store(demo_store_path)
    try:
        b = store.buildings()
    finally:
        store.close()
    pick = b.iloc[[0, len(b) // 3, 2 * len(b) // 3, len(b) - 1]]
    out = []
    for geom, gcode, bid in zip(pick["geometry"], pick["grid_code"], pick["id"]):
        p = shapely.point_on_surface(geom)
        out.append((p.x, p.y, gcode, int(bid)))
    assert len({o[2] for o in out}) >= 2  # the points lie in different grids
    return out


def test_get_inside_returns_full_hierarchy(client, inside_points, demo_store_path):
    lon, lat, gcode, bid = inside_points[0]
    r = client.get("/locate", params={"lon": lon, "lat": lat})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outside"] is False
    assert body["grid"]["code"] == gcode
    assert body["community"]["code"] == gcode[:12]
    assert body["street"]["code"] == gcode[:9]
    assert body["district"]["code"] == "370402"
    assert body["building"]["id"] == bid
    name = raw_sql(demo_store_path, "SELECT name FROM divisions WHERE code=? AND valid_to IS NULL", (gcode,))[0][0]
    assert body["grid"]["name"] == name


def test_get_outside_is_200_with_marker(client):
    r = client.get("/locate", params={"lon": OUTSIDE[0], "lat": OUTSIDE[1]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outside"] is True
    assert body["grid"] is None and body["district"] is None


def test_get_gcj02_input_is_converted(client, inside_points):
    lon, lat, gcode, _ = inside_points[1]
    glon, glat = crs_mod.wgs84_to_gcj02(lon, lat)
    assert abs(float(glon) - lon) > 1e-4  # the offset is real, so passing would not be vacuous
    r = client.get("/locate", params={"lon": float(glon), "lat": float(glat), "crs": "gcj02"})
    assert r.status_code == 200, r.text
    assert r.json()["grid"]["code"] == gcode


@pytest.mark.parametrize("lon,lat,word", [
    (34.86, 117.55, "swapped"),
    ("nan", 34.86, "NaN"),
    (117.55, "inf", "infinite"),
    (200.0, 34.0, "out of range"),
    (500000.0, 3850000.0, "projected metres"),
])
def test_get_bad_coordinates_are_4xx_naming_the_problem(client, lon, lat, word):
    r = client.get("/locate", params={"lon": lon, "lat": lat})
    assert 400 <= r.status_code < 500, r.text
    assert r.status_code == 422
    assert word in r.json()["detail"]


def test_get_unknown_crs_is_400(client):
    r = client.get("/locate", params={"lon": 117.55, "lat": 34.86, "crs": "EPSG:9999"})
    assert r.status_code == 400
    assert "unknown CRS" in r.json()["detail"] and "EPSG:4548" in r.json()["detail"]


def test_get_missing_parameter_is_400(client):
    r = client.get("/locate", params={"lon": 117.55})
    assert r.status_code == 400
    assert "lat" in r.json()["detail"]


def test_post_batch_keeps_input_order(client, inside_points):
    a, b, c, d = inside_points
    pts = [[a[0], a[1]], list(OUTSIDE), [c[0], c[1]], [b[0], b[1]], [d[0], d[1]]]
    r = client.post("/locate", json=pts)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert r.json()["count"] == 5 and len(res) == 5
    assert [x["outside"] for x in res] == [False, True, False, False, False]
    assert [x.get("grid") for x in res] == [a[2], None, c[2], b[2], d[2]]
    assert [x.get("building") for x in res] == [a[3], None, c[3], b[3], d[3]]


def test_post_feature_collection(client, inside_points):
    a = inside_points[2]
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": list(OUTSIDE)}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [a[0], a[1]]}}]}
    r = client.post("/locate", json=fc)
    assert r.status_code == 200, r.text
    props = [f["properties"] for f in r.json()["features"]]  # a FeatureCollection is answered by one
    assert [x["outside"] for x in props] == [True, False]
    assert props[1]["grid"] == a[2]


def test_post_bad_rows_are_named(client, inside_points):
    a = inside_points[0]
    r = client.post("/locate", json=[[a[0], a[1]], [200.0, 34.8], [34.86, 117.55]])
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["row"] for e in errors] == [1, 2]
    assert "out of range" in errors[0]["reason"] and "swapped" in errors[1]["reason"]


def test_post_nan_literal_is_4xx(client, inside_points):
    # NaN is not JSON (RFC 8259): rejected either as malformed JSON or as a NaN coordinate
    a = inside_points[0]
    body = f'[[{a[0]}, {a[1]}], [NaN, 34.8]]'
    r = client.post("/locate", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert "JSON" in r.json()["detail"] or "NaN" in r.json()["detail"]


def test_post_unknown_crs_is_400(client):
    r = client.post("/locate", params={"crs": "EPSG:3857x"}, json=[[117.55, 34.86]])
    assert r.status_code == 400
    assert "unknown CRS" in r.json()["detail"]


def test_post_malformed_json_is_400(client):
    r = client.post("/locate", content="[[117.55, 34.86]", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_post_not_pairs_is_400(client):
    r = client.post("/locate", json=[[117.55, 34.86, 1.0]])
    assert r.status_code == 400
    assert "[lon, lat]" in r.json()["detail"]


def test_post_oversized_batch_is_413_and_names_the_cli(toy_client, toy_limits):
    n = toy_limits["max_batch_points"]
    ok = toy_client.post("/locate", json=[[117.505, 34.815]] * n)
    assert ok.status_code == 200 and ok.json()["results"][0]["grid"] == "370402001001001"
    r = toy_client.post("/locate", json=[[117.505, 34.815]] * (n + 1))
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert f"{n + 1} points" in detail and str(n) in detail
    assert "bulk CLI" in detail and "gis-grid locate" in detail


def test_toy_locate_finds_grid_and_building(toy_client):
    r = toy_client.get("/locate", params={"lon": 117.505, "lat": 34.805})
    assert r.status_code == 200
    assert r.json()["grid"]["code"] == "370402001001002"
    assert r.json()["building"]["id"] == 2
    assert not math.isnan(r.json()["atlas_version"])


# -- batches from other systems: GeoJSON round trip, names, mark mode (toy district, limit 3 points) --
WN, ES = "370402001001001", "370402002001002"


@pytest.fixture(scope="module")
def external(toy_store_path):
    from common import bearer
    return bearer(toy_store_path, "external_system", "370402")


def _fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def _pt(coords, fid=None, **props):
    f = {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": coords}}
    if fid is not None:
        f["id"] = fid
    return f


def test_feature_collection_round_trip_keeps_ids_and_properties(toy_client, external):
    body = _fc(_pt([117.505, 34.815], "a", plate="鲁D1", speed=42.5, grid="stale"),
               _pt([117.6, 34.9], 7, plate="鲁D2"),
               _pt([117.515, 34.805], None, nested={"k": [1, 2]}))
    r = toy_client.post("/locate", json=body, headers=external)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["count"] == 3
    a, b, c = fc["features"]
    assert (a["id"], b["id"]) == ("a", 7) and "id" not in c
    assert a["properties"] == {"plate": "鲁D1", "speed": 42.5, "outside": False, "district": "370402",
                               "street": "370402001", "community": "370402001001", "grid": WN, "building": 1}
    assert b["properties"] == {"plate": "鲁D2", "outside": True}
    assert c["properties"]["nested"] == {"k": [1, 2]} and c["properties"]["grid"] == ES
    assert a["geometry"] == {"type": "Point", "coordinates": [117.505, 34.815]}


def test_feature_collection_geometry_is_answered_in_lon_lat(toy_client, external):
    x, y = crs_mod.from_storage(117.505, 34.815, "gcj02")
    r = toy_client.post("/locate", params={"crs": "gcj02"}, json=_fc(_pt([float(x), float(y)], 1)), headers=external)
    assert r.status_code == 200, r.text
    f = r.json()["features"][0]
    assert f["properties"]["grid"] == WN
    lon, lat = f["geometry"]["coordinates"]  # converted, not the GCJ-02 input under a lon/lat label
    assert abs(lon - 117.505) < 1e-8 and abs(lat - 34.815) < 1e-8


def test_names_come_with_the_codes(toy_client, external):
    r = toy_client.post("/locate", params={"names": "true"}, json=[[117.505, 34.815], [117.6, 34.9]], headers=external)
    assert r.status_code == 200, r.text
    inside, outside = r.json()["results"]
    assert inside["grid"] == WN and inside["grid_name"] == "西第1网格"
    assert inside["district_name"] and inside["street_name"] and inside["community_name"]
    assert outside == {"outside": True}
    plain = toy_client.post("/locate", json=[[117.505, 34.815]], headers=external).json()["results"][0]
    assert "grid_name" not in plain
    assert toy_client.post("/locate", params={"names": "maybe"}, json=[[117.505, 34.815]],
                           headers=external).status_code == 400


def test_mark_mode_answers_bad_rows_instead_of_rejecting(toy_client, external):
    body = _fc(_pt([117.505, 34.815], "ok"), _pt([34.815, 117.505], "swapped", keep=1),
               {"type": "Feature", "id": "line", "properties": None,
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}})
    assert toy_client.post("/locate", json=body, headers=external).status_code == 400  # fail: the batch goes
    r = toy_client.post("/locate", params={"on_invalid": "mark"}, json=body, headers=external)
    assert r.status_code == 200, r.text
    ok, swapped, line = r.json()["features"]
    assert ok["properties"]["grid"] == WN and "error" not in ok["properties"]
    assert swapped["properties"]["keep"] == 1 and "swapped" in swapped["properties"]["error"]
    assert swapped["geometry"] is None and swapped["properties"]["outside"] is None
    assert "Point" in line["properties"]["error"] and line["id"] == "line"
    r = toy_client.post("/locate", params={"on_invalid": "mark"}, json=[[117.505, 34.815], [200, 34.8], "x"],
                        headers=external)
    assert r.status_code == 200, r.text
    good, bad, junk = r.json()["results"]
    assert good["grid"] == WN and "out of range" in bad["error"] and "pair" in junk["error"]
    assert toy_client.post("/locate", params={"on_invalid": "skip"}, json=[[117.5, 34.8]],
                           headers=external).status_code == 400


def test_external_system_turns_codes_into_names(toy_client, external):
    r = toy_client.get("/locate/names", params={"codes": f"{WN},370402,370402009"}, headers=external)
    assert r.status_code == 200, r.text
    names = r.json()["names"]
    assert names[WN] == "西第1网格" and names["370402"] and names["370402009"] is None
    assert toy_client.get("/locate/names", params={"codes": "12x"}, headers=external).status_code == 400
    assert toy_client.get("/locate/names", headers=external).status_code == 400
    assert toy_client.get("/locate/names", params={"codes": WN}).status_code == 200  # the default test key too
