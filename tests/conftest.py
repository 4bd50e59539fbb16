"""Shared fixtures: the store backend, the generated demo district (built once per backend) and small stores.

The whole suite runs once per store backend: ``store_backend`` is a session-scoped, autouse,
parametrised fixture, so every test is collected as ``test[gpkg]`` and ``test[postgis]`` and
pytest runs all of one backend before the other. See tests/stores.py.

Tests that never open a store are marked ``store_free`` (on the module or the test): only their
first backend's copy is kept, the others are reported as deselected (see
``pytest_collection_modifyitems`` below).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from gis_grid.atlas import Atlas
from gis_grid.store import open_store
from gis_grid.testing import skip_or_fail_on_ci

import stores

pytest_plugins = ["pii_guard"]  # scans every response for unmasked ID numbers and mobiles

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session", autouse=True, params=stores.backends())
def store_backend(request):
    """Every test runs on each store backend in turn (GeoPackage, then PostGIS)."""
    url = None
    if request.param == "postgis":
        url = stores.admin_url()
        if url is None:
            # CI must run the suite on PostGIS too: there a missing server fails the run
            skip_or_fail_on_ci("no PostgreSQL/PostGIS reachable "
                               "(run scripts/postgres.sh start or set GIS_GRID_TEST_DATABASE_URL)")
    stores.activate(request.param, url)
    yield request.param
    if request.param == "postgis":
        stores.drop_test_databases()
    stores.activate("gpkg")


def pytest_collection_modifyitems(config, items):
    """``store_free`` tests are kept on the first backend only; their other copies are deselected.

    Deselecting rather than un-parametrising keeps the kept copy inside its backend's group, so
    pytest's ordering by session parameter still runs each backend's tests together and the
    per-backend session fixtures (the demo store) are built once, never torn down in between.
    """
    first = stores.backends()[0]
    dropped = [item for item in items if item.get_closest_marker("store_free")
               and getattr(item, "callspec", None) is not None
               and item.callspec.params.get("store_backend", first) != first]
    if dropped:
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]
        config.hook.pytest_deselected(items=dropped)


@pytest.fixture(autouse=True)
def _only_on(request, store_backend):
    """``@pytest.mark.gpkg_only``: the test is about the GeoPackage file itself."""
    if store_backend != "gpkg" and request.node.get_closest_marker("gpkg_only"):
        pytest.skip("about the GeoPackage file format itself; the PostGIS store has its own tests")


@pytest.fixture(scope="session")
def demo_store_path(store_backend, tmp_path_factory) -> str:
    """The full demo district (seed 370402), generated once per backend for the whole session.

    Set GIS_GRID_TEST_DEMO (a .gpkg) or GIS_GRID_TEST_PG_DEMO (a postgresql:// URL) to reuse an
    existing demo store (read-only tests only).
    """
    reuse = os.environ.get("GIS_GRID_TEST_PG_DEMO" if store_backend == "postgis" else "GIS_GRID_TEST_DEMO")
    if reuse:
        return reuse
    from gis_grid.demo.generate import write_demo
    path = stores.location(tmp_path_factory.mktemp("demo") / "shizhong.gpkg")
    with open_store(path, create=True) as store:
        write_demo(store, seed=370402, progress=False)
    return path


@pytest.fixture(scope="session")
def demo_store(demo_store_path):
    with open_store(demo_store_path) as store:
        yield store


@pytest.fixture(scope="session")
def demo_atlas(demo_store) -> Atlas:
    return Atlas.from_store(demo_store)


@pytest.fixture(scope="session")
def demo_headers(demo_store_path) -> dict:
    """A command-centre key for the demo store (district-wide, personal data masked)."""
    from common import bearer
    return bearer(demo_store_path)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
