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


def test_cached_arrow_codes_equal_the_atlas(toy_gpkg):
    from gis_grid.batch_arrow import code_columns
    from gis_grid.batchio import OUT_COLUMNS
    cached = locator(toy_gpkg)
    with open_store(toy_gpkg) as store:
        atlas = Atlas.from_store(store)
    x, y = np.array(_probe_points()).T
    good = np.ones(len(x), dtype=bool)
    ours = code_columns(cached.locate_arrow(x, y), good, OUT_COLUMNS)
    theirs = atlas.locate_many(x, y)
    for c in OUT_COLUMNS:  # the same code per point, null where the atlas says '' (outside, no building)
        got = ours[c].to_pylist()
        assert got == [v or None for v in theirs[c].astype(str)], c
        assert "" not in ours[c].dictionary.to_pylist()
    assert any(v is None for v in ours["grid"].to_pylist()) and any(ours["building"].to_pylist())


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_a_cached_csv_or_geoparquet_job_never_imports_pandas(toy_gpkg, tmp_path, ext):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from gis_grid.batch_arrow import geo_metadata, point_wkb
    src = tmp_path / f"in.{ext}"
    lon, lat = np.array([117.505, 117.7]), np.array([34.805, 34.9])
    table = pa.table({"id": [1, 2], "ok": [True, None]})
    if ext == "csv":
        pacsv.write_csv(table.append_column("lon", pa.array(lon)).append_column("lat", pa.array(lat)), src)
    else:
        wkb = point_wkb(lon, lat, np.ones(2, dtype=bool))
        meta = {b"geo": json.dumps(geo_metadata()).encode()}
        pq.write_table(table.append_column("geometry", wkb).replace_schema_metadata(meta), src)
    locator(toy_gpkg)  # a warm cache
    _, probe = _run("locate", "--db", toy_gpkg, src, "-o", tmp_path / f"out.{ext}", "--quiet")
    assert probe["code"] == 0
    assert [m for m in ("pandas", "geopandas", "fastapi", "dask") if m in probe["loaded"]] == []
    out = pq.read_table(tmp_path / "out.parquet") if ext == "parquet" else pacsv.read_csv(
        tmp_path / "out.csv", convert_options=pacsv.ConvertOptions(column_types={"grid": pa.string()}))
    assert [v or None for v in out["grid"].to_pylist()] == ["370402001001002", None]  # CSV: an empty field
