"""The GeoPackage store: round trip, GDAL readability, clear errors on bad files."""
from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pyogrio
import pytest
import shapely

from common import make_toy_store, toy_buildings, toy_divisions, toy_people
from gis_grid.errors import NotFoundError, StoreError
from gis_grid.store import open_store

pytestmark = pytest.mark.gpkg_only  # the file format itself; tests/gis_grid/test_store_postgis.py covers PostGIS


@pytest.fixture()
def toy_path(tmp_path):
    path = tmp_path / "toy.gpkg"
    make_toy_store(path).close()
    return path


def test_round_trip(toy_path):
    with open_store(toy_path) as store:
        d = store.divisions()
        ref = toy_divisions()
        assert list(d["code"]) == sorted(ref["code"], key=lambda c: (len(c), c))
        by_code = dict(zip(d["code"], d["geometry"]))
        for code, geom in zip(ref["code"], ref["geometry"]):
            assert shapely.equals_exact(by_code[code], geom, tolerance=0), code
        assert set(d["level"]) == {"district", "street", "community", "grid"}
        b = store.buildings()
        assert list(b["id"]) == [1, 2, 3, 4]
        assert all(shapely.equals_exact(g, r, 0) for g, r in zip(b["geometry"], toy_buildings()["geometry"]))
        hh, res = toy_people()
        h = store.households()
        assert sorted(h["id"]) == sorted(hh["id"])
        assert store.households(ids=["Ha1"])["building_id"].tolist() == [1]
        assert sorted(store.households(building_ids=[1])["id"]) == ["Ha1", "Hb2"]
        assert store.households(ids=[]).empty
        r = store.residents(household_ids=["Ha1"], columns=["id", "name"])
        assert list(r.columns) == ["id", "name"] and sorted(r["id"]) == ["Rq1", "Rq2"]
        assert store.residents()["id_number"].tolist() == res["id_number"].tolist()
        assert store.workers()["name"].tolist() == ["周八"]
        assert store.atlas_version() == 1
        assert store.meta()["district"] == "370402"
        assert len(store.grid_history("370402001001001")) == 1
        with pytest.raises(NotFoundError):
            store.grid_history("370402009009009")
        with pytest.raises(ValueError):
            store.residents(columns=["id; DROP TABLE residents"])


def test_replace_all_bumps_version_and_replaces(toy_path):
    with open_store(toy_path) as store:
        hh, res = toy_people()
        store.replace_all({"households": hh.iloc[:2], "residents": res.iloc[:3]}, {})
        assert store.atlas_version() == 2
        assert len(store.households()) == 2
        assert len(store.buildings()) == 4  # untouched table kept


def test_gdal_reads_the_store(toy_path):
    layers = {name: gtype for name, gtype in pyogrio.list_layers(toy_path)}
    assert {"divisions", "buildings"} <= set(layers)
    assert "households" in layers   # attribute tables are registered too
    div = pyogrio.read_dataframe(toy_path, layer="divisions")
    assert div.crs.to_epsg() == 4490
    assert len(div) == 9
    assert set(div["level"]) == {"district", "street", "community", "grid"}
    grids = div[div["level"] == "grid"].sort_values("code")
    ref = toy_divisions().query("level == 'grid'").sort_values("code")
    assert np.allclose(shapely.area(grids.geometry.to_numpy()), [g.area for g in ref["geometry"]])
    b = pyogrio.read_dataframe(toy_path, layer="buildings")
    assert b.crs.to_epsg() == 4490 and sorted(b["id"]) == [1, 2, 3, 4]
    info = pyogrio.read_info(toy_path, layer="buildings")
    assert info["features"] == 4
    assert info["total_bounds"] is None or np.allclose(info["total_bounds"][0], 117.5048, atol=1e-3)


def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no store at .*missing.gpkg"):
        open_store(tmp_path / "missing.gpkg")
    assert not (tmp_path / "missing.gpkg").exists()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_random_bytes_file(tmp_path):
    path = tmp_path / "junk.gpkg"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    before = _digest(path)
    with pytest.raises(StoreError, match="corrupt or not a gis_grid store|not a readable"):
        open_store(path)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.gpkg"] or _digest(path) == before


def test_plain_sqlite_without_our_tables(tmp_path):
    path = tmp_path / "other.sqlite"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE things (a INTEGER)")
    c.execute("INSERT INTO things VALUES (1)")
    c.commit()
    c.close()
    before = _digest(path)
    with pytest.raises(StoreError) as err:
        open_store(path)
    assert "not a gis_grid store" in str(err.value) or "corrupt" in str(err.value)
    assert str(path) in str(err.value)
    assert _digest(path) == before


def test_store_with_tables_but_no_meta_version(tmp_path):
    path = tmp_path / "old.gpkg"
    make_toy_store(path).close()
    c = sqlite3.connect(path)
    c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(path)


def test_close_folds_the_wal_into_the_file(toy_path, tmp_path):
    """After close() the .gpkg alone holds every write, though another thread's connection is still open."""
    import shutil
    import threading

    from gis_grid.security.keys import create_key
    store = open_store(toy_path)
    opened, done = threading.Event(), threading.Event()

    def worker():  # a server worker thread: reads, and keeps its connection while it lives
        store.divisions()
        opened.set()
        done.wait(30)

    t = threading.Thread(target=worker)
    t.start()
    opened.wait(30)
    try:
        create_key(store, "command_center", "370402", days=1, note="wal test")
        store.close()
        copy = tmp_path / "copy.gpkg"
        shutil.copyfile(toy_path, copy)  # the file alone, as a user copies it
    finally:
        done.set()
        t.join()
    with sqlite3.connect(copy) as c:
        notes = [r[0] for r in c.execute("SELECT note FROM api_keys")]
    assert "wal test" in notes


def _validate_gpkg() -> list[str]:
    """GDAL's validate_gpkg.py as Debian's python3-gdal ships it (run by the system Python, which has osgeo)."""
    import shutil as sh
    from pathlib import Path

    from gis_grid.testing import skip_or_fail_on_ci
    script = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py")
    py = sh.which("python3", path="/usr/bin")
    if not script.exists() or py is None:
        skip_or_fail_on_ci("validate_gpkg.py is missing (Debian python3-gdal; `bash scripts/system-deps.sh`)")
    return [py, str(script)]


@pytest.mark.parametrize("layer", ["grids", "buildings", "households"])
def test_gpkg_exports_pass_gdal_validation_and_open_without_warnings(toy_path, tmp_path, layer):
    """GeoPackage 1.3 exports: validate_gpkg.py passes, and Debian's GDAL 3.6 opens them without a warning."""
    import shutil as sh
    import subprocess

    from gis_grid.export import export_layer
    out = tmp_path / f"{layer}.gpkg"
    with open_store(toy_path) as store:
        export_layer(store, layer, "gpkg", out)
    res = subprocess.run([*_validate_gpkg(), str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr + res.stdout
    with sqlite3.connect(out) as c:
        assert c.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert c.execute("PRAGMA user_version").fetchone()[0] == 10300
    ogrinfo = sh.which("ogrinfo")
    if ogrinfo:
        res = subprocess.run([ogrinfo, "-ro", "-so", "-al", str(out)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Warning" not in res.stderr + res.stdout, res.stderr


def test_geometry_columns_declare_their_type(toy_path):
    """GeoPackage Req 25: the column's declared type is the gpkg_geometry_columns type (not BLOB)."""
    _log_cases(toy_path)
    with sqlite3.connect(toy_path) as c:
        declared = dict(c.execute("SELECT table_name, geometry_type_name FROM gpkg_geometry_columns"))
        assert {"divisions", "buildings", "incidents", "streets", "communities", "grids"} <= set(declared)
        for table in declared:
            cols = {r[1]: r[2] for r in c.execute(f"PRAGMA table_info({table})")}
            assert cols["geom"].upper() == declared[table].upper()
        assert declared["incidents"] == "POINT"
        assert c.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert c.execute("PRAGMA user_version").fetchone()[0] == 10300  # 1.3, as the exports: GDAL 3.6 is silent


def test_debian_gdal_opens_the_store_without_warnings(toy_path):
    import shutil as sh
    import subprocess

    ogrinfo = sh.which("ogrinfo")
    if ogrinfo is None:
        from gis_grid.testing import skip_or_fail_on_ci
        skip_or_fail_on_ci("GDAL's ogrinfo is not installed (run `bash scripts/system-deps.sh`)")
    res = subprocess.run([ogrinfo, "-ro", "-so", "-al", str(toy_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr + res.stdout and "ERROR" not in res.stderr, res.stderr
    assert "Geometry: Multi Polygon" in res.stdout


# -- the store file as a conformant GeoPackage -----------------------------------------------------
_GEOM_TABLES = ("divisions", "buildings", "incidents")


def _log_cases(path, n: int = 3):
    """Write ``n`` cases into the toy store at ``path`` (creates its incidents table)."""
    import pandas as pd

    from gis_grid.store import INCIDENT_COLUMNS
    rows = []
    for i in range(n):
        row = {c: None for c in INCIDENT_COLUMNS}
        row.update(id=f"C{i}", category="city", department="d", priority="normal", lon=117.505 + i * 1e-3,
                   lat=34.805, grid_code="370402001001002", status="registered",
                   created="2025-01-01T00:00:00+08:00", rework_count=0, version=1, events=[])
        rows.append(row)
    with open_store(path) as store:
        store.replace_incidents(pd.DataFrame(rows))


def _rtree_matches(c, table):
    """The table's R-tree holds exactly its rows, each box around its geometry (float32, rounded outward)."""
    from gis_grid.store.gpkg import format as gpkg
    rows = c.execute(f"SELECT fid, geom FROM {table}").fetchall()
    boxes = {r[0]: r[1:] for r in c.execute(f"SELECT id, minx, maxx, miny, maxy FROM rtree_{table}_geom")}
    assert sorted(boxes) == sorted(fid for fid, _ in rows), table
    for (fid, blob), geom in zip(rows, gpkg.decode([r[1] for r in rows])):
        minx, miny, maxx, maxy = geom.bounds
        assert np.allclose(boxes[fid], (minx, maxx, miny, maxy), atol=1e-5), (table, fid)


def _ogr_sql(path, sql):
    import shutil as sh
    import subprocess

    from gis_grid.testing import skip_or_fail_on_ci
    ogrinfo = sh.which("ogrinfo")
    if ogrinfo is None:
        skip_or_fail_on_ci("GDAL's ogrinfo is not installed (run `bash scripts/system-deps.sh`)")
    res = subprocess.run([ogrinfo, "-ro", "-q", "-sql", sql, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Warning" not in res.stderr and "ERROR" not in res.stderr, res.stderr
    return res.stdout


def _assert_conformant(path):
    """validate_gpkg.py passes; Debian's GDAL finds an R-tree on every feature table and a layer per level."""
    import subprocess
    res = subprocess.run([*_validate_gpkg(), str(path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr + res.stdout
    out = _ogr_sql(path, "SELECT " + ", ".join(f"HasSpatialIndex('{t}', 'geom') AS {t}" for t in _GEOM_TABLES))
    for t in _GEOM_TABLES:
        assert f"{t} (Integer) = 1" in out, out
    layers = dict(pyogrio.list_layers(path))
    assert {"streets", "communities", "grids", "households", "residents", "workers"} <= set(layers)
    assert layers["grids"] == "MultiPolygon" and layers["incidents"] == "Point"


def test_the_store_is_a_conformant_geopackage(toy_path):
    _log_cases(toy_path)
    _assert_conformant(toy_path)
    with open_store(toy_path) as store:
        current = store.divisions()
    for view, level in (("streets", "street"), ("communities", "community"), ("grids", "grid")):
        layer = pyogrio.read_dataframe(toy_path, layer=view)
        assert sorted(layer["code"]) == sorted(current.loc[current["level"] == level, "code"]), view
        assert layer.crs.to_epsg() == 4490


def test_the_rtree_indexes_follow_every_write(toy_path):
    from gis_grid.store.gpkg import format as gpkg
    _log_cases(toy_path)
    with open_store(toy_path) as store:
        c = store.conn
        for t in _GEOM_TABLES:
            _rtree_matches(c, t)
        case = store.incidents(ids=["C1"]).iloc[0].to_dict()
        store.update_incident({**case, "lon": 117.52, "lat": 34.81, "version": 2}, expected_version=1)
        hh, res = toy_people()
        store.replace_all({"buildings": toy_buildings().iloc[:3], "households": hh, "residents": res}, {})
        moved = shapely.affinity.translate(store.divisions().iloc[-1]["geometry"], 0.01, 0.0)
        with store.write_transaction() as w:  # any writer, also plain SQL, goes through the triggers
            w.execute("UPDATE divisions SET geom = ? WHERE fid = (SELECT max(fid) FROM divisions)",
                      (gpkg.encode([moved], 4490)[0],))
            w.execute("DELETE FROM divisions WHERE fid = (SELECT min(fid) FROM divisions)")
        for t in _GEOM_TABLES:
            _rtree_matches(c, t)
        assert c.execute("SELECT count(*) FROM rtree_buildings_geom").fetchone()[0] == 3
        box = c.execute("SELECT minx, miny FROM rtree_incidents_geom r JOIN incidents i ON i.fid = r.id "
                        "WHERE i.id = 'C1'").fetchone()
        assert np.allclose(box, (117.52, 34.81), atol=1e-5)
    # GDAL's spatial filter goes through the index and finds the moved case alone
    near = pyogrio.read_dataframe(toy_path, layer="incidents", bbox=(117.519, 34.809, 117.521, 34.811))
    assert list(near["id"]) == ["C1"]


# what gis_grid wrote before the store became a conformant GeoPackage (BLOB geometries, TEXT keys)
_OLD_TABLES = {
    "divisions": "fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, "
                 "level TEXT NOT NULL, parent_code TEXT, kind TEXT, version INTEGER NOT NULL DEFAULT 1, "
                 "valid_from TEXT NOT NULL, valid_to TEXT, area_m2 REAL",
    "buildings": "fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB NOT NULL, id INTEGER NOT NULL UNIQUE, "
                 "kind TEXT NOT NULL, name TEXT, floors INTEGER, units INTEGER, grid_code TEXT NOT NULL",
    "households": "id TEXT PRIMARY KEY, building_id INTEGER NOT NULL, grid_code TEXT NOT NULL, unit INTEGER, "
                  "floor INTEGER, room TEXT, size INTEGER NOT NULL, head_name TEXT, flags TEXT NOT NULL DEFAULT ''",
    "residents": "id TEXT PRIMARY KEY, household_id TEXT NOT NULL, name TEXT NOT NULL, gender TEXT, birth_date TEXT, "
                 "id_number TEXT, phone TEXT, relation TEXT, disabled INTEGER, low_income INTEGER, "
                 "elderly_alone INTEGER, extreme_poverty INTEGER, left_behind_child INTEGER, veteran INTEGER, "
                 "community_correction INTEGER",
    "workers": "id TEXT PRIMARY KEY, grid_code TEXT NOT NULL, name TEXT NOT NULL, role TEXT, phone TEXT",
}


def _make_old_store(path):
    """The toy store as an older gis_grid wrote it, without reported_grid_code on its cases."""
    _log_cases(path)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("BEGIN")
    for kind, name in c.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger')").fetchall():
        c.execute(f"DROP {kind.upper()} {name}")
    for t in _GEOM_TABLES:
        c.execute(f"DROP TABLE rtree_{t}_geom")
    incidents = [f"{col} {'BLOB' if col == 'geom' else typ}" for _, col, typ, *_ in
                 c.execute("PRAGMA table_info(incidents)").fetchall() if col != "reported_grid_code"]
    incidents[0] += " PRIMARY KEY AUTOINCREMENT"
    for table, cols in {**_OLD_TABLES, "incidents": ", ".join(incidents)}.items():
        names = [p.split()[0] for p in cols.split(", ")]
        c.execute(f"CREATE TABLE old_{table} ({cols})")
        c.execute(f"INSERT INTO old_{table} ({', '.join(names)}) SELECT {', '.join(names)} FROM {table}")
        c.execute(f"DROP TABLE {table}")
        c.execute(f"ALTER TABLE old_{table} RENAME TO {table}")
    c.execute("DELETE FROM gpkg_contents WHERE table_name IN ('streets', 'communities', 'grids')")
    c.execute("DELETE FROM gpkg_geometry_columns WHERE table_name IN ('streets', 'communities', 'grids')")
    c.execute("DROP TABLE gpkg_extensions")
    c.execute("PRAGMA user_version = 10200")
    c.execute("COMMIT")
    c.close()


def test_an_older_store_is_upgraded_on_open(toy_path):
    _make_old_store(toy_path)
    with sqlite3.connect(toy_path) as c:  # really the old layout
        assert {r[1]: r[2] for r in c.execute("PRAGMA table_info(divisions)")}["geom"] == "BLOB"
        assert "fid" not in {r[1] for r in c.execute("PRAGMA table_info(residents)")}
        fids = dict(c.execute("SELECT id, fid FROM buildings"))
        before = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (*_GEOM_TABLES, *_OLD_TABLES)}
    with open_store(toy_path) as store:
        ref = toy_people()[1]
        assert store.residents()["id_number"].tolist() == ref["id_number"].tolist()
        assert list(store.residents().columns) == list(ref.columns)
        assert store.incidents()["reported_grid_code"].tolist() == ["370402001001002"] * 3
        assert store.households(ids=["Ha1"])["building_id"].tolist() == [1]
    with sqlite3.connect(toy_path) as c:
        assert dict(c.execute("SELECT id, fid FROM buildings")) == fids  # feature ids survive
        assert {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before} == before
    _assert_conformant(toy_path)
    mtime = toy_path.stat().st_mtime_ns
    open_store(toy_path).close()  # idempotent: a second open changes nothing
    assert toy_path.stat().st_mtime_ns == mtime


def test_the_demo_store_is_a_conformant_geopackage(demo_store_path, tmp_path):
    """validate_gpkg.py on the full demo district (a copy, upgraded on open if an older gis_grid made it)."""
    copy = tmp_path / "demo.gpkg"
    src = sqlite3.connect(f"file:{demo_store_path}?mode=ro", uri=True)  # the source stays as it is
    with sqlite3.connect(copy) as dst:
        src.backup(dst)
    src.close()
    open_store(copy).close()
    _assert_conformant(copy)
