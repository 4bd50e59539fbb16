"""Shared fixtures: the generated demo district (built once per session) and small hand-made stores."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from gis_grid.atlas import Atlas
from gis_grid.store import open_store

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def demo_store_path(tmp_path_factory) -> Path:
    """The full demo district (seed 370402), generated once for the whole test session.

    Set GIS_GRID_TEST_DEMO to reuse an existing demo store (read-only tests only).
    """
    reuse = os.environ.get("GIS_GRID_TEST_DEMO")
    if reuse:
        return Path(reuse)
    from gis_grid.demo.generate import write_demo
    path = tmp_path_factory.mktemp("demo") / "shizhong.gpkg"
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
