"""The published body-size limit is enforced with 413 before the body is read."""
from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store


def test_oversized_body_gets_413_and_small_one_passes(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, max_body_bytes=200)), headers=bearer(store)) as c:
        small = c.post("/locate", json=[[117.505, 34.815]])
        assert small.status_code == 200 and small.json()["results"][0]["grid"] == "370402001001001"
        big = c.post("/locate", json=[[117.505, 34.815]] * 50)
        assert big.status_code == 413
        assert "200" in big.json()["detail"] and "gis-grid locate" in big.json()["detail"]
