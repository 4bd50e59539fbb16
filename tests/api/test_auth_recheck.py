"""A recently verified key is re-checked off the request path: a store that hangs (a listener
that never answers) costs atlas routes nothing, and a revoked key is still dropped."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid.errors import NotFoundError
from stores import location

PROBE = {"lon": 117.505, "lat": 34.805}


@pytest.fixture
def toy(tmp_path):
    path = location(tmp_path / "toy.gpkg")
    make_toy_store(path).close()
    with TestClient(create_app(Settings(db=str(path))), headers=bearer(path)) as c:
        yield c


def test_a_hanging_store_does_not_hold_up_a_recently_verified_key(toy, monkeypatch):
    assert toy.get("/locate", params=PROBE).status_code == 200  # verified now
    toy.app.state.auth_cache.ttl_s = 0  # every request is due for a re-check
    store = toy.app.state.holder.store
    release, hanging = threading.Event(), []
    real_key = store.key

    def hanging_key(key_id):  # the store accepted the connection and says nothing
        hanging.append(key_id)
        try:
            release.wait(30)
            return real_key(key_id)
        finally:
            hanging.remove(key_id)

    monkeypatch.setattr(store, "key", hanging_key)
    try:
        for _ in range(3):
            r = toy.get("/locate", params=PROBE)
            assert r.status_code == 200
        assert len(hanging) == 1  # answered while the one re-check still hangs
    finally:
        release.set()


def test_a_revoked_key_is_dropped_by_its_recheck(toy, monkeypatch):
    assert toy.get("/locate", params=PROBE).status_code == 200
    cache = toy.app.state.auth_cache
    cache.ttl_s = 0
    store = toy.app.state.holder.store

    def revoked(key_id):
        raise NotFoundError("no such key")

    monkeypatch.setattr(store, "key", revoked)
    assert toy.get("/locate", params=PROBE).status_code == 200  # the request that starts the re-check
    deadline = time.monotonic() + 10
    while cache._entries and time.monotonic() < deadline:
        time.sleep(0.02)
    r = toy.get("/locate", params=PROBE)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
