"""API fixtures: the demo district behind the real app, and the toy district with small limits."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store, toy_people
from gis_grid.testing import find_pii
from stores import location

#: the toy district's published limits (small, so limits are easy to hit)
TOY_LIMITS = dict(max_batch_points=3, default_page_size=2, max_page_size=3, max_polygon_vertices=20)


def assert_no_pii(text: str) -> None:
    """No unmasked 18-digit ID number or 11-digit mobile anywhere in a response body."""
    found = find_pii(text)
    assert not found, f"unmasked personal data in a response: {found}"


@pytest.fixture(scope="session")
def no_pii():
    """The PII scan as a fixture (test modules cannot import this conftest)."""
    return assert_no_pii


@pytest.fixture(scope="session")
def toy_limits():
    return dict(TOY_LIMITS)


@pytest.fixture(scope="session")
def client(demo_store_path, demo_headers):
    with TestClient(create_app(Settings(db=str(demo_store_path))), headers=demo_headers) as c:
        yield c


def toy_residents():
    """The toy residents with some special-group flags set (so counts are not all zero)."""
    _, res = toy_people()
    res = res.copy()
    res.loc[res["id"] == "Rq1", "disabled"] = 1
    res.loc[res["id"] == "Rq2", ["low_income", "elderly_alone"]] = 1
    res.loc[res["id"] == "Rq5", "veteran"] = 1
    res.loc[res["id"] == "Rq6", ["disabled", "community_correction"]] = 1
    res.loc[res["id"] == "Rq4", "birth_date"] = "1950-06-15"
    return res


@pytest.fixture(scope="session")
def toy_store_path(store_backend, tmp_path_factory):
    path = location(tmp_path_factory.mktemp("toy") / "toy.gpkg")
    make_toy_store(path, residents=toy_residents()).close()
    return path


@pytest.fixture(scope="session")
def toy_client(toy_store_path):
    with TestClient(create_app(Settings(db=str(toy_store_path), **TOY_LIMITS)),
                    headers=bearer(toy_store_path)) as c:
        yield c
