"""The locate-only start: the on-disk locate cache answers as the atlas does, and the CLI stays light."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from gis_grid.atlas import Atlas
from gis_grid.locate_cache import cache_path, locator
from gis_grid.store import open_store
from gis_grid.testing import X0, X1, XM, Y0, Y1, YM, make_toy_store


@pytest.fixture()
def toy_gpkg(tmp_path):
    # the cache belongs to GeoPackage stores (PostGIS takes the ordinary path), whatever the backend run
    path = tmp_path / "toy.gpkg"
    make_toy_store(path).close()
    return path


def _probe_points():
    rng = np.random.default_rng(3)
    lon = rng.uniform(X0 - 0.003, X1 + 0.003, 3000)
    lat = rng.uniform(Y0 - 0.003, Y1 + 0.003, 3000)
    edges = [(XM, YM), (X0, YM), (XM, Y1), (X1, Y0), (XM, 34.8123), (117.5071, YM), (117.5149, 34.8151)]
    return [*zip(lon.tolist(), lat.tolist()), *edges]


def test_cached_answers_equal_the_atlas(toy_gpkg):
    cached = locator(toy_gpkg)
    assert cached is not None and (cache_path(toy_gpkg) / "meta.json").is_file()
    with open_store(toy_gpkg) as store:
        atlas = Atlas.from_store(store)
    points = _probe_points()
    assert [cached.locate_one(x, y) for x, y in points] == [atlas.locate_one(x, y).to_dict() for x, y in points]
    answers = [cached.locate_one(x, y) for x, y in points]
    assert {a["outside"] for a in answers} == {True, False} and any(a["building"] for a in answers)
    # the shared vertex goes to the lowest code, answered by the exact test from the cached WKB
    assert cached.locate_one(XM, YM)["grid"]["code"] == "370402001001001"


def test_a_new_atlas_version_is_a_new_cache(toy_gpkg):
    first = cache_path(toy_gpkg)
    locator(toy_gpkg)
    con = sqlite3.connect(toy_gpkg)
    with con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'atlas_version'")
    con.close()
    second = cache_path(toy_gpkg)
    assert second != first and "-99-" in second.name and not second.exists()
    assert locator(toy_gpkg).version == 99 and (second / "meta.json").is_file()


def test_not_a_store_is_left_to_the_ordinary_path(tmp_path):
    assert locator(tmp_path / "missing.gpkg") is None
    (tmp_path / "junk.gpkg").write_text("not sqlite")
    assert locator(tmp_path / "junk.gpkg") is None


HEAVY = ["pandas", "geopandas", "pyogrio", "fastapi", "starlette", "dask", "distributed", "folium", "spopt"]
PROBE = ("import sys, json\nfrom gis_grid.cli import main\ncode = main(sys.argv[1:])\n"
         "print(json.dumps({'code': code, 'loaded': sorted({m.split('.')[0] for m in sys.modules})}))\n")


def _run(*argv):
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    *answer, probe = proc.stdout.strip().splitlines()
    return answer, json.loads(probe)


def test_a_warm_single_point_imports_no_heavy_module(toy_gpkg):
    argv = ["locate", "--db", toy_gpkg, "--lon", "117.505", "--lat", "34.805"]
    cold, _ = _run(*argv)  # builds the cache (loads the store through pandas)
    warm, probe = _run(*argv)
    assert warm == cold and json.loads(warm[0])["grid"]["code"] == "370402001001002"
    assert probe["code"] == 0
    assert [m for m in HEAVY if m in probe["loaded"]] == []
    assert "pyproj" not in probe["loaded"]  # lon/lat input needs no PROJ


def test_a_file_job_imports_no_web_dask_or_map_stack(toy_gpkg, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("lon,lat\n117.505,34.805\n")
    _, probe = _run("locate", "--db", toy_gpkg, src, "-o", tmp_path / "out.parquet", "--quiet")
    assert probe["code"] == 0
    assert [m for m in ("fastapi", "starlette", "dask", "distributed", "folium", "spopt") if m in probe["loaded"]] == []


def test_cached_batches_equal_the_atlas(toy_gpkg):
    import pandas as pd
    cached = locator(toy_gpkg)
    with open_store(toy_gpkg) as store:
        atlas = Atlas.from_store(store)
    x, y = np.array(_probe_points()).T
    pd.testing.assert_frame_equal(cached.locate_many(x, y), atlas.locate_many(x, y))
    assert cached.locate_many(x, y)["grid"].ne("").any()
