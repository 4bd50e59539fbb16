"""``?at=`` within its memory budget over HTTP (issue 13, finding 5): past it a 503 with
Retry-After, never a bigger process; the current atlas is served regardless."""
from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store


def test_asof_past_the_budget_is_503_with_retry_after(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    head = bearer(store)
    with TestClient(create_app(Settings(db=store.url, asof_budget_mb=0)), headers=head) as client:
        r = client.get("/grids/370402", params={"at": "2020-01-01", "geometry": "false"})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "budget" in r.json()["detail"] and "retry" in r.json()["detail"]
        assert client.get("/grids/370402", params={"geometry": "false"}).status_code == 200


def test_asof_atlases_kept_stay_within_the_entry_and_byte_budget(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url, asof_max_entries=2)), headers=bearer(store)) as client:
        for day in ("2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-01"):
            r = client.get("/grids/370402001001001", params={"at": day, "geometry": "false"})
            assert r.status_code == 200, r.text
        cache = client.app.state.holder.asof
        assert len(cache) == 2 and 0 < cache.bytes <= cache.max_bytes
