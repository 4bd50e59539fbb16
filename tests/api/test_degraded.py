"""A store outage: atlas routes keep answering for recently verified keys, database routes
answer 503 with Retry-After, and no error body gives away internals."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid.errors import StoreError
from stores import location

WEST = "370402001001"
LEAK = "postgresql://gis_grid:s3cret@db.internal:5432/gis_grid: connection refused (libpq) /var/lib/x.gpkg"
INTERNALS = ("postgresql://", "s3cret", "db.internal", "libpq", "/var/lib", ".gpkg", "5432")


def _down(*args, **kwargs):
    raise StoreError(LEAK)


@pytest.fixture
def toy(tmp_path):
    path = location(tmp_path / "toy.gpkg")
    make_toy_store(path).close()
    headers = bearer(path)
    with TestClient(create_app(Settings(db=str(path))), headers=headers) as c:
        yield c


def _outage(client, monkeypatch):
    store = client.app.state.holder.store
    for name in ("key", "workers", "plans", "incidents", "incidents_version", "append_audit", "audit_records"):
        monkeypatch.setattr(store, name, _down)


def _no_internals(r):
    for word in INTERNALS:
        assert word not in r.text, (word, r.text)


def test_atlas_routes_ride_out_an_outage_for_recent_keys(toy, monkeypatch):
    assert toy.get("/locate", params={"lon": 117.505, "lat": 34.805}).status_code == 200  # verified now
    toy.app.state.auth_cache.ttl_s = 0  # every request would re-check the key in the store
    _outage(toy, monkeypatch)
    for _ in range(3):
        r = toy.get("/locate", params={"lon": 117.505, "lat": 34.805})
        assert r.status_code == 200 and r.json()["grid"]["code"].startswith(WEST)
    card = toy.get(f"/grids/{WEST}001")
    assert card.status_code == 200 and card.json()["workers"] is None  # the only part that needs the store
    # a route that needs the database: 503, Retry-After, nothing internal
    r = toy.get("/incidents")
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    _no_internals(r)
    # past the grace period the key is no longer taken on trust
    toy.app.state.auth_cache.grace_s = 0
    r = toy.get("/locate", params={"lon": 117.505, "lat": 34.805})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit()
    _no_internals(r)


def test_an_unknown_key_in_an_outage_is_a_bare_503(toy, monkeypatch):
    _outage(toy, monkeypatch)
    r = toy.get("/locate", params={"lon": 117.505, "lat": 34.805},
                headers={"Authorization": "Bearer gg_madeup_xxxxxxxx"})
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert r.headers["content-type"].startswith("application/problem+json")
    _no_internals(r)


def test_a_date_before_the_history_does_not_name_the_store(toy, tmp_path):
    r = toy.get("/locate", params={"lon": 117.505, "lat": 34.805, "at": "1990-01-01"})
    assert r.status_code == 404 and "before" in r.json()["detail"]
    _no_internals(r)
    assert str(tmp_path) not in r.text


def test_a_listener_that_never_answers_costs_a_connect_timeout_not_for_ever(monkeypatch):
    import socket
    import time

    from gis_grid.store.postgis.pool import Pool
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel completes the handshake) and never says a word
    port = silent.getsockname()[1]
    monkeypatch.setenv("GIS_GRID_DB_CONNECT_TIMEOUT_S", "1")
    pool = Pool(f"postgresql://gis_grid:s3cret@127.0.0.1:{port}/gis_grid")
    started = time.monotonic()
    with pytest.raises(StoreError):
        with pool.connection():
            pass
    assert time.monotonic() - started < 5
    assert pool.timeout_s == 10  # checkout from a full pool is bounded by default too
    silent.close()
