"""Every limit published at GET /capabilities is the one enforced.

Each test reads the number from /capabilities (never from Settings), goes exactly to it
(accepted) and one past it (refused with a 4xx that names the limit), except page sizes,
where one past the maximum is clamped to it. The app runs with small limits so that they
are cheap to reach.
"""
from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid import crs as crs_mod

G1 = "370402001001001"
SMALL = dict(max_body_bytes=4000, max_batch_points=5, max_polygon_vertices=12, max_personal_area_km2=0.5,
             default_page_size=1, max_page_size=2, rate_limit_per_minute=100_000, unmask_per_minute=3)


@pytest.fixture
def env(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, **SMALL))) as client:
        centre = bearer(store, "command_center", "370402")
        limits = client.get("/capabilities", headers=centre).json()["limits"]
        yield client, store, centre, limits


def square(km2: float, lon=117.51, lat=34.81) -> dict:
    """A square of about ``km2`` centred on the toy district, as GeoJSON (area measured in EPSG:4548)."""
    half = math.sqrt(km2 * 1e6) / 2
    x, y = crs_mod.to_metric(lon, lat)
    xs, ys = crs_mod.from_metric([x - half, x + half, x + half, x - half, x - half],
                                 [y - half, y - half, y + half, y + half, y - half])
    return {"type": "Polygon", "coordinates": [[[float(a), float(b)] for a, b in zip(xs, ys)]]}


def circle(vertices: int) -> dict:
    """A closed ring with ``vertices`` coordinates in all (the closing one included)."""
    n = vertices - 1
    ring = [[117.51 + 0.002 * math.cos(2 * math.pi * i / n), 34.81 + 0.002 * math.sin(2 * math.pi * i / n)]
            for i in range(n)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def test_capabilities_publish_every_limit(env):
    _, _, _, limits = env
    for name, value in SMALL.items():
        assert limits[name] == value, name
    assert limits["max_ogc_page_size"] > 0


def test_body_size(env):
    client, _, centre, limits = env
    n = limits["max_body_bytes"]
    body = b"[" + b" " * (n - 2) + b"]"  # an empty batch padded to exactly the limit
    assert len(body) == n
    ok = client.post("/locate", content=body, headers={**centre, "content-type": "application/json"})
    assert ok.status_code == 200, ok.text
    over = client.post("/locate", content=body + b" ", headers={**centre, "content-type": "application/json"})
    assert over.status_code == 413 and str(n) in over.json()["detail"]


def test_batch_points(env):
    client, _, centre, limits = env
    n = limits["max_batch_points"]
    assert client.post("/locate", json=[[117.505, 34.815]] * n, headers=centre).status_code == 200
    over = client.post("/locate", json=[[117.505, 34.815]] * (n + 1), headers=centre)
    assert over.status_code == 413 and str(n) in over.json()["detail"]


def test_polygon_vertices(env):
    client, _, centre, limits = env
    n = limits["max_polygon_vertices"]
    assert client.post("/residents/search", json=circle(n), headers=centre).status_code == 200
    over = client.post("/residents/search", json=circle(n + 1), headers=centre)
    assert over.status_code == 413 and f"limit is {n}" in over.json()["detail"]


def test_personal_data_area(env):
    client, store, centre, limits = env
    km2 = limits["max_personal_area_km2"]
    before = len(store.audit_records())
    assert client.post("/residents/search", json=square(km2 * 0.99), headers=centre).status_code == 200
    over = client.post("/residents/search", json=square(km2 * 1.01), headers=centre)
    assert over.status_code == 413, over.text
    body = over.json()
    assert f"{km2:g} km2" in body["detail"] and "max_personal_area_km2" in body["detail"]
    assert body["errors"]["max_personal_area_km2"] == km2
    # refused before any household was read: only the accepted search is in the audit log
    assert len(store.audit_records()) == before + 1


@pytest.mark.parametrize("url", [f"/grids/{G1}/residents", "/buildings/1/residents", "/incidents", "/audit",
                                 "/stats/ranking?min_cases=1"])
def test_page_size_above_the_maximum_is_clamped(env, url):
    client, store, _, limits = env
    role = "auditor" if url == "/audit" else "command_center"
    head = bearer(store, role, "370402")
    sep = "&" if "?" in url else "?"
    r = client.get(f"{url}{sep}limit={limits['max_page_size'] + 1}", headers=head)
    assert r.status_code == 200, r.text
    body = r.json()
    if "limit" in body:
        assert body["limit"] == limits["max_page_size"]
    rows = body.get("households") or body.get("items") or body.get("records") or []
    assert len(rows) <= limits["max_page_size"]


def test_ogc_page_size_is_clamped(env):
    client, _, centre, limits = env
    n = limits["max_ogc_page_size"]
    r = client.get("/ogc/collections/grids/items", params={"limit": n + 1}, headers=centre)
    assert r.status_code == 200
    assert f"limit={n}" in [l for l in r.json()["links"] if l["rel"] == "self"][0]["href"]


def test_rate_limit_per_key(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, rate_limit_per_minute=12))) as client:
        head = bearer(store, "command_center", "370402")
        n = client.get("/capabilities", headers=head).json()["limits"]["rate_limit_per_minute"]
        # the capabilities read was request 1 of the n this key may make in a minute
        codes = [client.get("/me", headers=head).status_code for _ in range(n - 1)]
        assert codes == [200] * (n - 1)
        over = client.get("/me", headers=head)
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert str(n) in over.json()["detail"]
        # another key has its own bucket
        assert client.get("/me", headers=bearer(store, "command_center", "370402")).status_code == 200


def test_unmask_rate_limit(env):
    client, store, _, limits = env
    worker = bearer(store, "grid_worker", G1)
    n = limits["unmask_per_minute"]
    codes = [client.get("/residents/Rq1/unmasked", params={"purpose": "home visit"}, headers=worker).status_code
             for _ in range(n + 1)]
    assert codes[:n] == [200] * n and codes[n] == 429
