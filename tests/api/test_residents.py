"""Who lives here: GET /grids/{code}/residents, GET /buildings/{id}/residents, POST /residents/search."""
from __future__ import annotations

import json
import re
from datetime import date

import pytest

from gis_grid import crs as crs_mod
from gis_grid.testing import ID18, MOBILE, X0, X1, Y0, Y1
from stores import raw_sql

WHOLE_TOY = {"type": "Polygon", "coordinates": [[[X0 - 0.001, Y0 - 0.001], [X1 + 0.001, Y0 - 0.001],
                                                 [X1 + 0.001, Y1 + 0.001], [X0 - 0.001, Y1 + 0.001],
                                                 [X0 - 0.001, Y0 - 0.001]]]}
MASKED_ID = re.compile(r"^\d{6}\*{8}\d{3}[\dX]$")
MASKED_PHONE = re.compile(r"^1\d{2}\*{4}\d{4}$")


def walk(client, method, url, **kw):
    """Follow `next` tokens to the end; returns the pages."""
    pages = []
    params = dict(kw.pop("params", {}))
    while True:
        r = client.request(method, url, params=params, **kw)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        if not r.json()["next"]:
            return pages
        params = {**{k: v for k, v in params.items() if k != "offset"}, "next": r.json()["next"]}
        assert len(pages) < 1000


def age_band(birth: str, today: date | None = None) -> str:
    today = today or date.today()
    y, m, d = map(int, birth.split("-"))
    age = today.year - y - ((today.month, today.day) < (m, d))
    return "90+" if age >= 90 else f"{age // 10 * 10}-{age // 10 * 10 + 9}"


# ------------------------------------------------------------- toy district: exact answers
def test_toy_district_pages_cover_every_household_once(toy_client, toy_limits, no_pii):
    pages = walk(toy_client, "GET", "/grids/370402/residents")
    assert [p["numberReturned"] for p in pages] == [2, 2, 1]  # default page size 2
    assert all(p["numberMatched"] == 5 for p in pages)
    assert pages[0]["limit"] == toy_limits["default_page_size"]
    ids = [h["id"] for p in pages for h in p["households"]]
    assert ids == ["Ha1", "Hb2", "Hc3", "Hd4", "He5"]
    people = [r["id"] for p in pages for h in p["households"] for r in h["residents"]]
    assert sorted(people) == ["Rq1", "Rq2", "Rq3", "Rq4", "Rq5", "Rq6"]
    for p in pages:
        no_pii(json.dumps(p, ensure_ascii=False))
    nxt = [link for link in pages[0]["links"] if link["rel"] == "next"]
    assert nxt and "next=" in nxt[0]["href"]
    assert not [link for link in pages[-1]["links"] if link["rel"] == "next"]


def test_toy_offset_and_limit(toy_client, toy_limits):
    r = toy_client.get("/grids/370402/residents", params={"offset": 3, "limit": 1})
    assert r.status_code == 200
    assert [h["id"] for h in r.json()["households"]] == ["Hd4"]
    assert r.json()["offset"] == 3 and r.json()["next"]
    r = toy_client.get("/grids/370402/residents", params={"offset": 4})
    assert [h["id"] for h in r.json()["households"]] == ["He5"] and r.json()["next"] is None
    r = toy_client.get("/grids/370402/residents", params={"offset": 50})
    assert r.json()["numberReturned"] == 0 and r.json()["numberMatched"] == 5


def test_toy_limit_above_max_is_clamped(toy_client, toy_limits):
    r = toy_client.get("/grids/370402/residents", params={"limit": 1000})
    assert r.status_code == 200
    assert r.json()["limit"] == toy_limits["max_page_size"] == r.json()["numberReturned"] == 3


@pytest.mark.parametrize("params,word", [({"limit": 0}, "limit"), ({"limit": -5}, "limit"),
                                         ({"offset": -1}, "offset"), ({"limit": "ten"}, "limit"),
                                         ({"next": "not-a-token!"}, "next")])
def test_toy_bad_paging_is_400(toy_client, params, word):
    r = toy_client.get("/grids/370402/residents", params=params)
    assert r.status_code == 400, r.text
    assert word in r.json()["detail"]


def test_toy_next_token_of_another_query_is_400(toy_client):
    token = toy_client.get("/grids/370402/residents").json()["next"]
    assert token
    r = toy_client.get("/grids/370402001/residents", params={"next": token})
    assert r.status_code == 400 and "different query" in r.json()["detail"]



def test_toy_building_residents(toy_client):
    r = toy_client.get("/buildings/1/residents")
    assert r.status_code == 200
    body = r.json()
    assert body["numberMatched"] == 2 and [h["id"] for h in body["households"]] == ["Ha1", "Hb2"]
    assert body["households"][0]["address"] == "1号楼 1单元101"
    assert body["households"][0]["building_name"] == "1号楼"
    assert toy_client.get("/buildings/77/residents").status_code == 404
    assert toy_client.get("/buildings/x/residents").status_code == 400


def test_toy_unknown_and_malformed_division(toy_client):
    assert toy_client.get("/grids/370402001001009/residents").status_code == 404
    r = toy_client.get("/grids/12/residents")
    assert r.status_code == 400 and "division code" in r.json()["detail"]


def test_toy_search_whole_district_and_feature(toy_client, no_pii):
    pages = walk(toy_client, "POST", "/residents/search", json=WHOLE_TOY)
    assert [h["id"] for p in pages for h in p["households"]] == ["Ha1", "Hb2", "Hc3", "Hd4", "He5"]
    assert pages[0]["buildingsMatched"] == 4
    for p in pages:
        no_pii(json.dumps(p, ensure_ascii=False))
    feature = {"type": "Feature", "properties": {"name": "west half"}, "geometry": {
        "type": "Polygon", "coordinates": [[[X0, Y0], [117.51, Y0], [117.51, Y1], [X0, Y1], [X0, Y0]]]}}
    r = toy_client.post("/residents/search", json=feature, params={"limit": 3})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["households"]] == ["Ha1", "Hb2", "Hc3"] and r.json()["numberMatched"] == 3


def test_toy_search_empty_area_matches_nothing(toy_client):
    poly = {"type": "Polygon", "coordinates": [[[117.6, 34.9], [117.61, 34.9], [117.61, 34.91], [117.6, 34.9]]]}
    r = toy_client.post("/residents/search", json=poly)
    assert r.status_code == 200
    assert r.json()["numberMatched"] == 0 and r.json()["households"] == [] and r.json()["next"] is None


def test_toy_search_token_bound_to_polygon(toy_client):
    token = toy_client.post("/residents/search", json=WHOLE_TOY).json()["next"]
    other = {"type": "Polygon", "coordinates": [[[X0, Y0], [117.51, Y0], [117.51, Y1], [X0, Y1], [X0, Y0]]]}
    r = toy_client.post("/residents/search", json=other, params={"next": token})
    assert r.status_code == 400 and "different query" in r.json()["detail"]


def test_toy_search_in_gcj02(toy_client):
    ring = [[X0 + 0.001, Y0 + 0.001], [X0 + 0.009, Y0 + 0.001], [X0 + 0.009, Y1 - 0.001],
            [X0 + 0.001, Y1 - 0.001], [X0 + 0.001, Y0 + 0.001]]
    gx, gy = crs_mod.wgs84_to_gcj02([p[0] for p in ring], [p[1] for p in ring])
    poly = {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in zip(gx, gy)]]}
    r = toy_client.post("/residents/search", json=poly, params={"crs": "gcj02", "limit": 3})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["households"]] == ["Ha1", "Hb2", "Hc3"]
    r = toy_client.post("/residents/search", json=poly, params={"crs": "EPSG:12345"})
    assert r.status_code == 400 and "unknown CRS" in r.json()["detail"]


# ------------------------------------------------------------- invalid polygon catalogue
def ring(*pts):
    """Ring in toy coordinates from unit-square points (0..4)."""
    return [[X0 + 0.004 * x, Y0 + 0.004 * y] for x, y in pts]


CATALOGUE = [
    ("bowtie", {"type": "Polygon", "coordinates": [ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))]},
     422, "Self-intersection"),
    ("spike", {"type": "Polygon", "coordinates": [ring((0, 0), (2, 0), (2, 2), (1, 2), (1, 3), (1, 2), (0, 2),
                                                       (0, 0))]}, 422, "Self-intersection"),
    ("self-touching ring", {"type": "Polygon", "coordinates": [
        ring((0, 0), (2, 0), (1, 1), (2, 2), (0, 2), (1, 1), (0, 0))]}, 422, "Ring Self-intersection"),
    ("hole outside shell", {"type": "Polygon", "coordinates": [
        ring((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), ring((2, 2), (3, 2), (3, 3), (2, 3), (2, 2))]},
     422, "Hole lies outside shell"),
    ("empty", {"type": "Polygon", "coordinates": []}, 422, "empty"),
    ("GeometryCollection", {"type": "GeometryCollection", "geometries": [
        {"type": "Polygon", "coordinates": [ring((0, 0), (1, 0), (1, 1), (0, 0))]}]}, 422, "GeometryCollection"),
    ("point", {"type": "Point", "coordinates": [117.51, 34.81]}, 422, "Point"),
    ("3D", {"type": "Polygon", "coordinates": [[[X0, Y0, 10.0], [X1, Y0, 10.0], [X1, Y1, 10.0], [X0, Y0, 10.0]]]},
     422, "3D"),
    ("swapped", {"type": "Polygon", "coordinates": [[[Y0, X0], [Y0, X1], [Y1, X1], [Y0, X0]]]}, 422, "swapped"),
    ("too few points", {"type": "Polygon", "coordinates": [[[X0, Y0], [X1, Y1]]]}, 422, "malformed"),
    ("not geometry", {"hello": "world"}, 400, "GeoJSON Polygon"),
    ("array", [[117.5, 34.8]], 400, "GeoJSON Polygon"),
]


@pytest.mark.parametrize("name,body,status,reason", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_invalid_polygons(toy_client, name, body, status, reason):
    r = toy_client.post("/residents/search", json=body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"], r.json()


def test_nan_vertex_is_422(toy_client):
    body = ('{"type": "Polygon", "coordinates": [[[117.5, 34.8], [117.52, NaN], [117.52, 34.82], '
            '[117.5, 34.8]]]}')
    r = toy_client.post("/residents/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "NaN" in r.json()["detail"]


def test_too_many_vertices_is_413(toy_client, toy_limits):
    import math
    n = toy_limits["max_polygon_vertices"] + 5
    pts = [[117.51 + 0.005 * math.cos(2 * math.pi * i / n), 34.81 + 0.005 * math.sin(2 * math.pi * i / n)]
           for i in range(n)]
    r = toy_client.post("/residents/search", json={"type": "Polygon", "coordinates": [pts + [pts[0]]]})
    assert r.status_code == 413, r.text
    assert str(toy_limits["max_polygon_vertices"]) in r.json()["detail"]


def test_malformed_json_is_400(toy_client):
    r = toy_client.post("/residents/search", content='{"type": "Polygon", "coordinates": [[[117.5, 34.8]',
                        headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.text


def test_wrong_winding_is_accepted_and_equivalent(toy_client):
    ccw = WHOLE_TOY["coordinates"][0]
    cw = {"type": "Polygon", "coordinates": [ccw[::-1]]}
    a = toy_client.post("/residents/search", json=WHOLE_TOY, params={"limit": 3}).json()
    b = toy_client.post("/residents/search", json=cw, params={"limit": 3})
    assert b.status_code == 200, b.text
    assert b.json()["numberMatched"] == a["numberMatched"] == 5
    assert b.json()["households"] == a["households"]
    # a next token issued for one winding is valid for the other: same area, same query
    r = toy_client.post("/residents/search", json=cw, params={"next": a["next"]})
    assert r.status_code == 200 and [h["id"] for h in r.json()["households"]] == ["Hd4", "He5"]


# ------------------------------------------------------------- demo district
@pytest.fixture(scope="module")
def small_grid(demo_store_path):
    code, n = raw_sql(demo_store_path, "SELECT grid_code, count(*) FROM households GROUP BY grid_code "
                      "HAVING count(*) BETWEEN 5 AND 400 ORDER BY grid_code LIMIT 1")[0]
    raw = {r[0]: r[1:] for r in raw_sql(
        demo_store_path, "SELECT r.id, r.name, r.id_number, r.phone, r.birth_date, r.household_id FROM residents r "
        "JOIN households h ON r.household_id = h.id WHERE h.grid_code = ?", (code,))}
    return code, n, raw


def test_demo_grid_residents_masked_and_complete(client, small_grid, no_pii):
    code, n, raw = small_grid
    pages = walk(client, "GET", f"/grids/{code}/residents", params={"limit": 50})
    assert pages[0]["numberMatched"] == n
    hh = [h for p in pages for h in p["households"]]
    assert len(hh) == n and len({h["id"] for h in hh}) == n
    people = [(h, r) for h in hh for r in h["residents"]]
    assert {r["id"] for _, r in people} == set(raw)
    # the scan would catch raw values: the store really holds 18-digit IDs and mobiles
    assert any(ID18.fullmatch(v[1] or "") for v in raw.values())
    assert any(MOBILE.fullmatch(v[2] or "") for v in raw.values())
    for p in pages:
        text = json.dumps(p, ensure_ascii=False)
        no_pii(text)
        assert "birth_date" not in text
    checked_phones = 0
    for h, r in people:
        name, idn, phone, birth, hid = raw[r["id"]]
        assert hid == h["id"]
        assert r["name"] != name and r["name"][0] == name[0] and len(r["name"]) == len(name)
        assert MASKED_ID.match(r["id_number"]) and r["id_number"][:6] == idn[:6] and r["id_number"][-4:] == idn[-4:]
        if phone:
            checked_phones += 1
            assert MASKED_PHONE.match(r["phone"]) and r["phone"][-4:] == phone[-4:]
        else:
            assert r["phone"] is None
        assert r["age_band"] == age_band(birth)
        assert h["head_name"].endswith("*")
        assert h["address"].startswith(h["building_name"])
    assert checked_phones > 0


def test_demo_building_residents_and_search_agree(client, demo_store_path, no_pii):
    bid, n = raw_sql(demo_store_path, "SELECT building_id, count(*) FROM households GROUP BY building_id "
                     "HAVING count(*) >= 3 ORDER BY building_id LIMIT 1")[0]
    import shapely

    from gis_grid.store import open_store
    store = open_store(demo_store_path)
    try:
        b = store.buildings()
    finally:
        store.close()
    footprint = b.loc[b["id"] == bid, "geometry"].iloc[0]
    r = client.get(f"/buildings/{bid}/residents")
    assert r.status_code == 200 and r.json()["numberMatched"] == n
    no_pii(r.text)
    # a polygon hugging the building's footprint finds at least its households
    area = shapely.buffer(footprint, 1e-6)
    s = client.post("/residents/search", json=json.loads(shapely.to_geojson(area)), params={"limit": 1000})
    assert s.status_code == 200, s.text
    no_pii(s.text)
    assert {h["id"] for h in r.json()["households"]} <= {h["id"] for h in s.json()["households"]}
    assert bid in {h["building_id"] for h in s.json()["households"]}


def test_toy_masking_and_age_band(toy_client):
    body = toy_client.get("/grids/370402001/residents", params={"limit": 3}).json()
    ha1 = body["households"][0]
    assert ha1["head_name"] == "张*"
    assert ha1["residents"][0] == {"id": "Rq1", "name": "张*", "gender": "M", "age_band": age_band("1970-01-01"),
                                   "id_number": "370402********0011", "phone": "138****5678", "relation": "户主"}
    hc3 = body["households"][2]
    assert hc3["residents"][0]["age_band"] == age_band("1950-06-15")
    assert age_band("1950-06-15") != age_band("1970-01-01")
    # special-group flags are not published per person
    assert "disabled" not in json.dumps(body)
