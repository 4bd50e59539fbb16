"""OGC API - Features Parts 1 and 2 under /ogc, against the demo district."""
from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.state import AtlasHolder
from gis_grid import crs as crs_mod

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
E4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
E4548 = "http://www.opengis.net/def/crs/EPSG/0/4548"
COLLECTIONS = ["streets", "communities", "grids", "buildings"]


@pytest.fixture(scope="module")
def client(demo_store_path, demo_store, demo_atlas, demo_headers):
    # reuse the session atlas; the app never closes the store (no lifespan run without `with`)
    holder = AtlasHolder.__new__(AtlasHolder)
    holder.store, holder._atlas, holder._lock = demo_store, demo_atlas, threading.Lock()
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
    assert rels["service-desc"].endswith("/openapi.json")
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
    assert [c["id"] for c in doc["collections"]] == COLLECTIONS
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
        assert props == {"code", "name", "level", "parent_code"}


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
    ("/ogc/collections/grids/tiles/WorldCRS84Quad/2/0/0", 404, "WorldCRS84Quad"),
    ("/ogc/collections/nope/tiles/WebMercatorQuad/2/0/0", 404, "nope"),
])
def test_bad_input(client, url, status, word):
    r = client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["detail"]
    assert word in r.text
