"""OGC API - Features Parts 1 and 2 under /ogc, against the demo district."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer
from gis_grid import crs as crs_mod
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.incidents import features as inc_feat
from incident_demo import incident_store_path

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
E4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
E4548 = "http://www.opengis.net/def/crs/EPSG/0/4548"
COLLECTIONS = ["streets", "communities", "grids", "buildings"]


@pytest.fixture(scope="module")
def client(demo_store_path, demo_store, demo_atlas, demo_headers):
    # reuse the session atlas; the app never closes the store (no lifespan run without `with`)
    holder = AtlasHolder(demo_store, demo_atlas, follow=False)
    return TestClient(create_app(Settings(db=str(demo_store_path)), holder=holder), headers=demo_headers)


@pytest.fixture(scope="module")
def counts(demo_store):
    d = demo_store.divisions()
    n = {name: int((d["level"] == lvl).sum())
         for name, lvl in [("streets", "street"), ("communities", "community"), ("grids", "grid")]}
    n["buildings"] = len(demo_store.buildings())
    return n


def _rels(doc):
    return {l["rel"]: l["href"] for l in doc["links"]}


def test_landing_page(client):
    r = client.get("/ogc")
    assert r.status_code == 200
    rels = _rels(r.json())
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"].endswith("/ogc/api")  # the OpenAPI 3.0 document (gis_grid.openapi30)
    assert client.get(urlsplit(rels["service-desc"]).path).status_code == 200
    assert urlsplit(rels["conformance"]).path == "/ogc/conformance"
    assert urlsplit(rels["data"]).path == "/ogc/collections"
    h = client.get("/ogc?f=html")
    assert h.status_code == 200 and h.headers["content-type"].startswith("text/html")


def test_conformance(client):
    got = set(client.get("/ogc/conformance").json()["conformsTo"])
    base = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {base + c for c in ("core", "geojson", "html", "oas30")} <= got
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in got


def test_collections(client, demo_atlas):
    doc = client.get("/ogc/collections").json()
    assert [c["id"] for c in doc["collections"]] == COLLECTIONS + ["incidents"]  # a command-centre key reads cases
    for c in doc["collections"]:
        assert c["crs"] == [CRS84, E4490, E4548]
        assert c["storageCrs"] == E4490
        bbox = c["extent"]["spatial"]["bbox"][0]
        assert c["extent"]["spatial"]["crs"] == CRS84
        assert 117 < bbox[0] < bbox[2] < 118 and 34 < bbox[1] < bbox[3] < 35
        assert any(l["rel"] == "items" for l in c["links"])
        one = client.get(f"/ogc/collections/{c['id']}").json()
        assert one["id"] == c["id"] and one["storageCrs"] == E4490
    district = demo_atlas.divisions[demo_atlas.divisions["level"] == "district"]["geometry"].iloc[0]
    grids = next(c for c in doc["collections"] if c["id"] == "grids")
    np.testing.assert_allclose(grids["extent"]["spatial"]["bbox"][0], district.bounds, atol=1e-3)


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_number_matched_equals_store(client, counts, cid):
    r = client.get(f"/ogc/collections/{cid}/items", params={"limit": 5})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == f"<{CRS84}>"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["numberMatched"] == counts[cid]
    assert doc["numberReturned"] == len(doc["features"]) == 5
    assert doc["timeStamp"].endswith("Z")
    props = set(doc["features"][0]["properties"])
    if cid == "buildings":
        assert props == {"id", "kind", "name", "floors", "units", "grid_code"}
    else:
        # divisions carry counts for styling load (issue 12), never personal data
        assert props == {"code", "name", "level", "parent_code", "kind", "version", "valid_from", "area_m2",
                         "households", "residents", "buildings", "workers", "open_cases"}


def test_default_limit_and_clamp(client):
    assert client.get("/ogc/collections/grids/items").json()["numberReturned"] == 10
    doc = client.get("/ogc/collections/buildings/items", params={"limit": 50000}).json()
    assert doc["numberReturned"] == 10000
    nxt = _rels(doc)["next"]
    assert parse_qs(urlsplit(nxt).query)["limit"] == ["10000"]


def test_next_links_visit_every_grid_once(client, counts):
    url, seen, pages = "/ogc/collections/grids/items?limit=100", [], 0
    while url:
        doc = client.get(url).json()
        seen += [f["id"] for f in doc["features"]]
        pages += 1
        url = _rels(doc).get("next")
        assert pages < 20
    assert pages == 5
    assert len(seen) == len(set(seen)) == counts["grids"]


def test_next_link_keeps_params(client):
    doc = client.get("/ogc/collections/buildings/items",
                     params={"limit": 7, "crs": "EPSG:4548", "bbox": "117.50,34.80,117.60,34.90"}).json()
    q = parse_qs(urlsplit(_rels(doc)["next"]).query)
    assert q == {"limit": ["7"], "crs": ["EPSG:4548"], "bbox": ["117.50,34.80,117.60,34.90"], "offset": ["7"]}
    second = client.get(_rels(doc)["next"]).json()
    assert second["numberMatched"] == doc["numberMatched"]
    assert not {f["id"] for f in doc["features"]} & {f["id"] for f in second["features"]}


def test_item_by_id(client, demo_atlas):
    code = demo_atlas.grid_codes[3]
    r = client.get(f"/ogc/collections/grids/items/{code}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    f = r.json()
    assert f["id"] == code and f["properties"]["code"] == code and f["properties"]["level"] == "grid"
    bid = int(demo_atlas.building_ids[10])
    b = client.get(f"/ogc/collections/buildings/items/{bid}").json()
    assert b["id"] == bid and b["properties"]["id"] == bid
    assert b["properties"]["grid_code"] == demo_atlas.grid_codes[demo_atlas.building_grid[10]]


@pytest.mark.parametrize("cid", ["grids", "buildings"])
def test_bbox_matches_shapely(client, demo_atlas, cid):
    bbox = (117.54, 34.84, 117.57, 34.87)
    box = shapely.box(*bbox)
    if cid == "grids":
        geoms, ids = demo_atlas.grid_geometries, list(demo_atlas.grid_codes)
    else:
        geoms, ids = demo_atlas.buildings["geometry"].to_numpy(), [int(i) for i in demo_atlas.building_ids]
    want = {ids[i] for i in np.flatnonzero(shapely.intersects(geoms, box))}
    assert want
    doc = client.get(f"/ogc/collections/{cid}/items",
                     params={"bbox": ",".join(map(str, bbox)), "limit": 10000}).json()
    assert doc["numberMatched"] == len(want)
    assert {f["id"] for f in doc["features"]} == want
    # the same box in EPSG:4490 is written lat,lon (authority axis order)
    doc2 = client.get(f"/ogc/collections/{cid}/items",
                      params={"bbox": f"{bbox[1]},{bbox[0]},{bbox[3]},{bbox[2]}", "bbox-crs": E4490,
                              "limit": 10000}).json()
    assert {f["id"] for f in doc2["features"]} == want


def test_bbox_in_metres(client, demo_atlas):
    e0, n0 = (float(v) for v in crs_mod.to_metric(117.54, 34.84))
    e1, n1 = (float(v) for v in crs_mod.to_metric(117.57, 34.87))
    doc = client.get("/ogc/collections/grids/items",
                     params={"bbox": f"{n0},{e0},{n1},{e1}", "bbox-crs": "EPSG:4548", "limit": 1000}).json()
    ref = client.get("/ogc/collections/grids/items",
                     params={"bbox": "117.54,34.84,117.57,34.87", "limit": 1000}).json()
    # a projected box is not exactly the lon/lat box, but nearly
    a, b = {f["id"] for f in doc["features"]}, {f["id"] for f in ref["features"]}
    assert len(a ^ b) <= max(3, len(b) // 10)


def test_output_crs(client, demo_atlas):
    code = demo_atlas.grid_codes[0]
    lonlat = client.get(f"/ogc/collections/grids/items/{code}").json()["geometry"]["coordinates"][0][0][0]
    r = client.get(f"/ogc/collections/grids/items/{code}", params={"crs": "EPSG:4548"})
    assert r.headers["content-crs"] == f"<{E4548}>"
    n, e = r.json()["geometry"]["coordinates"][0][0][0]  # EPSG:4548 authority order: northing, easting
    assert 3.7e6 < n < 4.0e6 and 4.5e5 < e < 6.0e5  # metres
    ee, nn = crs_mod.to_metric(*lonlat)
    assert abs(e - ee) < 1e-3 and abs(n - nn) < 1e-3
    r = client.get(f"/ogc/collections/grids/items/{code}", params={"crs": E4490})
    assert r.headers["content-crs"] == f"<{E4490}>"
    assert r.json()["geometry"]["coordinates"][0][0][0] == pytest.approx([lonlat[1], lonlat[0]])  # lat, lon
    page = client.get("/ogc/collections/buildings/items", params={"crs": E4548, "limit": 3})
    assert page.headers["content-crs"] == f"<{E4548}>"
    c = np.array(page.json()["features"][0]["geometry"]["coordinates"][0])
    assert (c[:, 0] > 3.7e6).all() and (c[:, 1] < 6.0e5).all()


def test_html_items(client):
    r = client.get("/ogc/collections/grids/items", params={"f": "html", "limit": 3})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.count("<tr>") == 4 and "next" in r.text


@pytest.mark.parametrize("url,status,word", [
    ("/ogc/collections/grids/items?foo=1&bar=2", 400, "bar, foo"),
    ("/ogc/collections/grids/items?bbox=117.6,34.8,117.5,34.9", 400, "bbox"),
    ("/ogc/collections/grids/items?bbox=117.5,34.8,117.6", 400, "bbox"),
    ("/ogc/collections/grids/items?bbox=a,b,c,d", 400, "bbox"),
    ("/ogc/collections/grids/items?limit=0", 400, "limit"),
    ("/ogc/collections/grids/items?limit=-5", 400, "limit"),
    ("/ogc/collections/grids/items?offset=-1", 400, "offset"),
    ("/ogc/collections/grids/items?crs=EPSG:9999", 400, "EPSG:9999"),
    ("/ogc/collections/grids/items?crs=gcj02", 400, "gcj02"),
    ("/ogc/collections/grids/items?bbox-crs=EPSG:3857&bbox=1,2,3,4", 400, "3857"),
    ("/ogc/collections/grids/items?f=xml", 400, "xml"),
    ("/ogc/collections/grids/items?datetime=someday", 400, "someday"),  # untimed: accepted, still checked
    ("/ogc/collections/grids/items?area_m2=1", 400, "area_m2"),  # a property, not a queryable
    ("/ogc/collections/incidents/items?datetime=someday", 400, "someday"),
    ("/ogc/collections/incidents/items?datetime=2016-02-01/2016-01-01", 400, "before it starts"),
    ("/ogc/collections/incidents/items?datetime=../..", 400, "open end"),
    ("/ogc/collections/incidents/items?category=ufo", 400, "unknown category"),
    ("/ogc/collections/incidents/items?status=lost", 400, "unknown status"),
    ("/ogc/collections/incidents/items?grid_code=123", 400, "123"),
    ("/ogc/collections/incidents/items?reporter=x", 400, "reporter"),
    ("/ogc/collections/incidents/items/Enothere", 404, "Enothere"),
    ("/ogc/collections/nope/items", 404, "nope"),
    ("/ogc/collections/nope", 404, "nope"),
    ("/ogc/collections/grids/items/999999999999999", 404, "999999999999999"),
    ("/ogc/collections/buildings/items/0", 404, "0"),
    ("/ogc/collections?x=1", 400, "x"),
    ("/ogc/collections/grids/tiles/WebMercatorQuad/23/0/0", 404, "zoom"),
    ("/ogc/collections/grids/tiles/WebMercatorQuad/2/4/0", 404, "outside"),
    ("/ogc/collections/grids/tiles/WebMercatorQuad/2/0/-1", 404, "outside"),
    ("/ogc/collections/grids/tiles/WebMercatorQuad/2/0/y.mvt", 400, "row"),
    ("/ogc/collections/grids/tiles/WebMercatorQuad/z/0/0", 400, "z"),
    ("/ogc/collections/grids/tiles/NZTM2000Quad/2/0/0", 404, "NZTM2000Quad"),
    ("/ogc/collections/grids/tiles/WorldCRS84Quad/2/8/0", 404, "outside tile matrix"),
    ("/ogc/collections/nope/tiles/WebMercatorQuad/2/0/0", 404, "nope"),
])
def test_bad_input(client, url, status, word):
    r = client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["detail"]
    assert word in r.text


# ---------------------------------------------------------------- the incidents collection
@pytest.fixture(scope="module")
def inc(demo_store_path, tmp_path_factory):
    """The demo with its case history behind the app, and keys: command centre, one grid's worker, a planner."""
    from gis_grid.store import open_store
    path = incident_store_path(demo_store_path, tmp_path_factory)
    with open_store(path) as store:
        grid = store.incidents(columns=["grid_code"])["grid_code"].value_counts().index[0]
        heads = {"centre": bearer(store, "command_center", "370402"), "worker": bearer(store, "grid_worker", grid),
                 "planner": bearer(store, "planner", "370402")}
        n = len(store.incidents(columns=["id"]))
    with TestClient(create_app(Settings(db=str(path))), headers=heads["centre"]) as c:
        yield c, heads, grid, n


def _all_pages(client, url, params=None, headers=None, cap=50):
    feats, pages = [], 0
    doc = client.get(url, params=params, headers=headers).json()
    while True:
        feats += doc["features"]
        pages += 1
        nxt = _rels(doc).get("next")
        if not nxt:
            return feats, pages, doc
        assert pages < cap
        doc = client.get(nxt, headers=headers).json()


def test_incidents_collection_is_listed_and_described(inc):
    client, heads, _, n = inc
    doc = client.get("/ogc/collections").json()
    c = next(c for c in doc["collections"] if c["id"] == "incidents")
    assert c["itemCount"] == n > 100_000 and c["storageCrs"] == E4490 and c["crs"] == [CRS84, E4490, E4548]
    start, end = c["extent"]["temporal"]["interval"][0]
    assert start.startswith("2013-12-31") or start.startswith("2014-01") and end.startswith("2016-12")
    assert client.get("/ogc/collections/incidents").json() == c
    # a planner reads maps but not cases: not listed, and the collection is refused
    assert "incidents" not in [x["id"] for x in client.get("/ogc/collections", headers=heads["planner"]).json()[
        "collections"]]
    r = client.get("/ogc/collections/incidents/items", headers=heads["planner"])
    assert r.status_code == 403 and "may not read cases" in r.json()["detail"]


@pytest.mark.parametrize("ogc, api", [
    ({"category": "dispute"}, {"category": "dispute"}),
    ({"datetime": "2016-01-01/2016-03-31"}, {"from": "2016-01-01", "to": "2016-03-31"}),
    ({"datetime": "2015-07-01"}, {"from": "2015-07-01", "to": "2015-07-01"}),
    ({"datetime": "../2014-02-28", "status": "closed,assessed"}, {"to": "2014-02-28", "status": ["closed", "assessed"]}),
    ({"department": "sanitation", "bbox": "117.54,34.84,117.57,34.87"},
     {"department": "sanitation", "bbox": "117.54,34.84,117.57,34.87"}),
    ({"grid_code": "370402001", "category": "sanitation,dispute"},
     {"grid": "370402001", "category": ["sanitation", "dispute"]}),
])
def test_incident_filters_match_get_incidents(inc, ogc, api):
    client, *_ = inc
    doc = client.get("/ogc/collections/incidents/items", params={**ogc, "limit": 3}).json()
    want = client.get("/incidents", params={**api, "limit": 1}).json()["numberMatched"]
    assert doc["numberMatched"] == want > 0
    for f in doc["features"]:
        p = f["properties"]
        for k in ("category", "department", "status"):
            if k in ogc:
                assert p[k] in ogc[k].split(",")


def test_incident_datetime_ends_are_inclusive(inc):
    client, *_ = inc
    f = client.get("/ogc/collections/incidents/items", params={"limit": 1}).json()["features"][0]
    t = f["properties"]["created"]
    got = client.get("/ogc/collections/incidents/items", params={"datetime": t, "limit": 100}).json()
    assert f["id"] in [x["id"] for x in got["features"]]
    assert all(x["properties"]["created"] == t for x in got["features"])
    assert client.get("/ogc/collections/incidents/items",
                      params={"datetime": f"{t}/..", "limit": 1}).json()["numberMatched"] >= 1


def test_incident_next_links_keep_filters_and_visit_each_case_once(inc):
    client, *_ = inc
    params = {"category": "dispute", "datetime": "2016-06-01/2016-06-30", "limit": 40}
    feats, pages, first = _all_pages(client, "/ogc/collections/incidents/items", params)
    n = client.get("/ogc/collections/incidents/items", params=params).json()["numberMatched"]
    ids = [f["id"] for f in feats]
    assert len(ids) == len(set(ids)) == n > 40 and pages == -(-n // 40)
    nxt = client.get("/ogc/collections/incidents/items", params=params).json()
    q = parse_qs(urlsplit(_rels(nxt)["next"]).query)
    assert q == {"category": ["dispute"], "datetime": ["2016-06-01/2016-06-30"], "limit": ["40"], "offset": ["40"]}
    assert {f["properties"]["category"] for f in feats} == {"dispute"}


def test_incidents_are_scoped_to_the_key(inc):
    client, heads, grid, _ = inc
    w = heads["worker"]
    feats, _, doc = _all_pages(client, "/ogc/collections/incidents/items", {"limit": 10000}, headers=w)
    assert doc["numberMatched"] == len(feats) == client.get("/incidents", headers=w).json()["numberMatched"] > 0
    assert {f["properties"]["grid_code"] for f in feats} == {grid}
    meta = client.get("/ogc/collections/incidents", headers=w).json()
    assert meta["itemCount"] == len(feats)
    # a wider grid_code is cut down to the key's grid; another grid is a 404, like its cases
    assert client.get("/ogc/collections/incidents/items", params={"grid_code": grid[:9]},
                      headers=w).json()["numberMatched"] == len(feats)
    other = client.get("/ogc/collections/incidents/items", params={"limit": 500}).json()["features"]
    elsewhere = next(f for f in other if f["properties"]["grid_code"] != grid)
    r = client.get("/ogc/collections/incidents/items", params={"grid_code": elsewhere["properties"]["grid_code"]},
                   headers=w)
    assert r.status_code == 404
    r = client.get(f"/ogc/collections/incidents/items/{elsewhere['id']}", headers=w)
    assert r.status_code == 404 and r.json()["detail"] == f"no feature {elsewhere['id']!r} in collection 'incidents'"
    assert client.get(f"/ogc/collections/incidents/items/{feats[0]['id']}", headers=w).status_code == 200


def test_incident_features_carry_no_personal_data(inc, no_pii):
    client, *_ = inc
    # one client-sized page: on pages of thousands the suite's PII guard (tests/pii_guard.py) reads
    # 11-digit runs inside random hex case ids (E18715993272e) as mobiles, a false positive left to
    # its owner; the property names below are what keeps reporters and descriptions out
    r = client.get("/ogc/collections/incidents/items", params={"limit": 200, "f": "geojson",
                                                              "datetime": "2016-06-01/2016-06-30"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    no_pii(r.text)
    assert '"reporter' not in r.text and '"description' not in r.text
    for f in r.json()["features"]:
        assert set(f["properties"]) == set(inc_feat.PROPERTIES)
        assert f["geometry"]["type"] == "Point"


def test_incident_item_and_output_crs(inc):
    client, *_ = inc
    f = client.get("/ogc/collections/incidents/items", params={"limit": 1}).json()["features"][0]
    one = client.get(f"/ogc/collections/incidents/items/{f['id']}")
    assert one.status_code == 200 and one.json()["properties"] == f["properties"]
    lon, lat = f["geometry"]["coordinates"]
    n, e = client.get(f"/ogc/collections/incidents/items/{f['id']}", params={"crs": E4548}).json()[
        "geometry"]["coordinates"]
    ee, nn = crs_mod.to_metric(lon, lat)
    assert abs(e - ee) < 0.01 and abs(n - nn) < 0.01
    lat2, lon2 = client.get(f"/ogc/collections/incidents/items/{f['id']}", params={"crs": E4490}).json()[
        "geometry"]["coordinates"]
    assert (lat2, lon2) == pytest.approx((lat, lon))
    html = client.get("/ogc/collections/incidents/items", params={"f": "html", "limit": 3, "category": "dispute"})
    assert html.status_code == 200 and html.text.count("<tr>") == 4 and "category=dispute" in html.text


def test_property_filters_on_the_grid_collections(client, demo_atlas):
    d = demo_atlas.divisions
    community = d[d["level"] == "community"]["code"].iloc[5]
    want = set(d[(d["level"] == "grid") & (d["parent_code"] == community)]["code"])
    doc = client.get("/ogc/collections/grids/items", params={"parent_code": community, "limit": 100}).json()
    assert doc["numberMatched"] == len(want) > 0 and {f["id"] for f in doc["features"]} == want
    grid = demo_atlas.grid_codes[7]
    doc = client.get("/ogc/collections/buildings/items", params={"grid_code": grid, "limit": 10000}).json()
    assert doc["numberMatched"] == int((np.asarray(demo_atlas.building_grid) == 7).sum()) > 0
    assert {f["properties"]["grid_code"] for f in doc["features"]} == {grid}
    q = parse_qs(urlsplit(_rels(client.get("/ogc/collections/buildings/items",
                                           params={"grid_code": grid, "limit": 2}).json())["next"]).query)
    assert q["grid_code"] == [grid]
