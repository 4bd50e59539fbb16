"""The PII guard (tests/pii_guard.py) catches a leak, and leaves the one legitimate unmask alone."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

import pii_guard
from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid.testing import find_pii

G1 = "370402001001001"


@pytest.fixture
def toy(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url))) as client:
        yield client, store


@pytest.mark.store_free
def test_patterns():
    assert find_pii('{"id_number": "370402197001010011"}') == ["370402197001010011"]
    assert find_pii("37040219700101001X and 13812345678") == ["37040219700101001X", "13812345678"]
    # masked values, coordinates with long fractions and longer digit runs are not personal data
    assert find_pii('"370402********0011" "138****5678" 34.13812345678 3704021970010100111') == []
    # digit runs inside hex key ids and hashes are not phone numbers; next to Chinese text they are
    assert find_pii("actor a13812345678f hash 9e370402197001010011ab") == []
    assert find_pii("电话13812345678，身份证370402197001010011。") == ["370402197001010011", "13812345678"]


def test_a_masking_regression_is_caught(toy, monkeypatch):
    client, store = toy
    import gis_grid.people_search as people_search
    monkeypatch.setattr(people_search, "mask_ids", lambda ids: ids)  # the bug: IDs go out as stored
    with pii_guard.expect_leaks() as leaks:
        r = client.get(f"/grids/{G1}/residents", headers=bearer(store, "command_center", "370402"))
    assert r.status_code == 200
    assert len(leaks) == 1 and "370402197001010011" in leaks[0] and "command_center" in leaks[0]


@pytest.mark.store_free
def test_a_leak_without_a_key_is_caught_on_any_client():
    app = FastAPI()

    @app.get("/oops", response_class=PlainTextResponse)
    def oops():
        return "call 13912345678"

    with pii_guard.expect_leaks() as leaks, TestClient(app) as client:
        client.get("/oops")
    assert leaks and "no key" in leaks[0] and "13912345678" in leaks[0]


def test_the_purpose_bound_unmask_is_exempt_only_for_roles_allowed_to_unmask(toy):
    client, store = toy
    worker = bearer(store, "grid_worker", G1)
    with pii_guard.expect_leaks() as leaks:
        r = client.get("/residents/Rq1/unmasked", params={"purpose": "home visit"}, headers=worker)
    assert r.status_code == 200 and r.json()["id_number"] == "370402197001010011"
    assert leaks == []
    # the same answer to a token the session never made (so its role is unknown) is a leak
    assert pii_guard.inspect("GET", "http://t/residents/Rq1/unmasked", {"authorization": "Bearer gg_x_y"},
                             "application/json", r.content)
