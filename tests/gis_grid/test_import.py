"""`gis-grid import`: a district's own layers from files, checked before anything is written.

Two toy stores: A is tests/common.py's district; B differs from A in the layer under test
(B's grids split the west community east/west and the east community's south half in two).
A layer exported from A and imported into B must make B's layer equal A's.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from common import X0, X1, XM, Y0, Y1, YM, box, make_toy_store, toy_buildings, toy_divisions, toy_people
from gis_grid import crs as crs_mod
from gis_grid.cli import main
from gis_grid.coverage import check_store
from gis_grid.export import export_layer
from gis_grid.importing import (CoverageRefusedError, ImportFileError, ImportRejectedError, MissingColumnsError,
                                import_layer)
from gis_grid.store import open_store
from gis_grid.testing import skip_or_fail_on_ci
from stores import is_postgis, location

XW, XE = 117.503, 117.518          # B's extra grid lines (no toy building straddles them)
WEST, EAST = "370402001001", "370402002001"
FORMATS = {"gpkg": "gpkg", "parquet": "parquet", "shp": "shp", "geojson": "geojson"}


# ------------------------------------------------------------------ fixtures and helpers
def b_divisions() -> pd.DataFrame:
    d = toy_divisions()
    d = d[d["level"] != "grid"]
    grids = [(WEST + "001", "西第1网格", WEST, "urban", box(X0, Y0, XW, Y1)),
             (WEST + "002", "西第2网格", WEST, "urban", box(XW, Y0, XM, Y1)),
             (EAST + "001", "东第1网格", EAST, "rural", box(XM, YM, X1, Y1)),
             (EAST + "002", "东第2网格", EAST, "rural", box(XM, Y0, XE, YM)),
             (EAST + "003", "东第3网格", EAST, "rural", box(XE, Y0, X1, YM))]
    g = pd.DataFrame(grids, columns=["code", "name", "parent_code", "kind", "geometry"]).assign(
        level="grid", version=1, valid_from="2014-01-01T00:00:00.000000Z", valid_to=None, area_m2=0.0)
    return pd.concat([d, g[d.columns]], ignore_index=True)


def make_b_grids(path):
    """B: different grids; buildings and households recorded in them; a worker in the grid A lacks."""
    b = toy_buildings().assign(grid_code=[WEST + "002", WEST + "002", EAST + "001", EAST + "002"])
    hh, res = toy_people()
    hh["grid_code"] = hh["building_id"].map(dict(zip(b["id"], b["grid_code"])))
    store = make_toy_store(path, divisions=b_divisions(), buildings=b, households=hh, residents=res)
    store.replace_all({"workers": pd.DataFrame({"id": ["W1", "W2"], "grid_code": [WEST + "001", EAST + "003"],
                                                "name": ["周八", "吴九"], "role": ["网格长", "网格员"],
                                                "phone": ["13900001111", "13900002222"]})}, {})
    return store


def make_b_buildings(path):
    b = toy_buildings()
    b.loc[b["id"] == 2, ["name", "floors", "kind"]] = ["旧2号楼", 3, "shop"]
    b.loc[b["id"] == 2, "geometry"] = shapely.box(117.5060, 34.8040, 117.5063, 34.8042)
    extra = pd.DataFrame({"id": [5], "kind": "school", "name": "五号", "floors": 2, "units": 1,
                          "grid_code": [EAST + "001"], "geometry": [shapely.box(117.516, 34.816, 117.5162, 34.8162)]})
    return make_toy_store(path, buildings=pd.concat([b, extra], ignore_index=True))


def make_b_households(path):
    hh, res = toy_people()
    hh.loc[hh["id"] == "Hb2", ["building_id", "grid_code", "room", "floor"]] = [2, WEST + "002", "2单元301", 3]
    hh.loc[hh["id"] == "Ha1", ["head_name", "size", "flags"]] = ["张三丰", 3, "elderly"]
    return make_toy_store(path, households=hh)


MAKE_B = {"grids": make_b_grids, "buildings": make_b_buildings, "households": make_b_households}


def layer_table(store, layer: str) -> pd.DataFrame:
    if layer == "grids":
        d = store.divisions()
        return d[d["level"] == "grid"][["code", "name", "level", "parent_code", "kind", "geometry"]] \
            .sort_values("code").reset_index(drop=True)
    df = store.buildings() if layer == "buildings" else store.households()
    return df.sort_values("id").reset_index(drop=True)


def assert_same(a: pd.DataFrame, b: pd.DataFrame, tol: float = 0.0) -> None:
    assert list(a.columns) == list(b.columns)
    attrs = [c for c in a.columns if c != "geometry"]
    rows = lambda df: df[attrs].astype(object).where(df[attrs].notna(), None).values.tolist()  # noqa: E731
    assert rows(a) == rows(b)
    if "geometry" in a.columns:
        ga, gb = shapely.normalize(a["geometry"].to_numpy()), shapely.normalize(b["geometry"].to_numpy())
        # within a tolerance, normalize may start rings at different vertices: compare as point sets
        same = shapely.equals_exact(ga, gb) if tol == 0 else shapely.hausdorff_distance(ga, gb) <= tol
        assert same.all(), [(x.wkt, y.wkt) for x, y, s in zip(ga, gb, same) if not s]


def fingerprint(loc):
    """What must not change when an import is refused: the GeoPackage's bytes, or every table's content."""
    if not is_postgis():
        return hashlib.sha256(open(loc, "rb").read()).hexdigest()
    with open_store(loc) as s:
        tables = [layer_table(s, layer) for layer in ("grids", "buildings", "households")]
        return (s.meta().get("atlas_version"), [t.drop(columns="geometry", errors="ignore").to_json() for t in tables],
                [shapely.to_wkb(t["geometry"].to_numpy()).tolist() for t in tables[:2]], len(s.grid_changes()))


@pytest.fixture
def store_a(tmp_path):
    make_toy_store(tmp_path / "a.gpkg").close()
    return location(tmp_path / "a.gpkg")


def export_a(store_a, layer, fmt, out_dir, crs="EPSG:4490"):
    out = out_dir / f"{layer}.{FORMATS[fmt]}"
    with open_store(store_a) as s:
        export_layer(s, layer, fmt, out, crs)
    return out


def import_into_b(tmp_path, layer, file, make=True, **kw):
    if make:
        MAKE_B[layer](tmp_path / "b.gpkg").close()
    loc = location(tmp_path / "b.gpkg")
    with open_store(loc) as s:
        summary = import_layer(s, layer, file, **kw)
        return loc, summary


def assert_b_equals_a(store_a, b_path, layer, tol=0.0):
    with open_store(store_a) as a, open_store(b_path) as b:
        assert_same(layer_table(b, layer), layer_table(a, layer), tol)
        # the layers that follow: buildings' and households' grid codes
        assert_same(layer_table(b, "buildings"), layer_table(a, "buildings"), tol if layer == "buildings" else 0)
        assert_same(layer_table(b, "households"), layer_table(a, "households"))


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("layer", ["grids", "buildings", "households"])
def test_export_then_import_makes_the_layer_equal(store_a, tmp_path, layer, fmt):
    file = export_a(store_a, layer, fmt, tmp_path)
    MAKE_B[layer](tmp_path / "b.gpkg").close()
    b_path = location(tmp_path / "b.gpkg")
    with open_store(b_path) as b, open_store(store_a) as a:
        with pytest.raises(AssertionError):   # B really starts different
            assert_same(layer_table(b, layer), layer_table(a, layer))
        before = b.atlas_version()
    _, summary = import_into_b(tmp_path, layer, file, make=False)
    assert summary["committed"] and summary["atlas_version"] == before + 1
    # GDAL's GeoJSON writer keeps 15 significant digits: 117.51520000000001 comes back as 117.5152
    assert_b_equals_a(store_a, b_path, layer, tol=1e-12 if fmt == "geojson" else 0.0)
    with open_store(b_path) as b:
        assert check_store(b).ok


@pytest.mark.parametrize("layer", ["grids", "buildings", "households"])
def test_reimporting_an_export_into_its_own_store_changes_nothing(store_a, tmp_path, layer):
    file = export_a(store_a, layer, "gpkg", tmp_path)
    with open_store(store_a) as s:
        before = layer_table(s, layer)
        grids_before = s.divisions()
        summary = import_layer(s, layer, file)
        assert_same(layer_table(s, layer), before)
        if layer == "grids":  # nothing to write: no new version, no new atlas
            assert summary["unchanged"] == 4 and not summary["committed"] and s.atlas_version() == 1
            assert s.divisions()[["code", "version", "valid_from"]].equals(grids_before[["code", "version", "valid_from"]])


def test_grids_import_keeps_history_moves_buildings_and_workers(store_a, tmp_path):
    """A -> B's grids -> A's grids again: versions, closed intervals, moved buildings, retired codes."""
    b_file = tmp_path / "b_grids.gpkg"
    make_b_grids(tmp_path / "b.gpkg").close()
    with open_store(location(tmp_path / "b.gpkg")) as b:
        export_layer(b, "grids", "gpkg", b_file)
    with open_store(store_a) as s:
        s.replace_all({"workers": pd.DataFrame({"id": ["W1"], "grid_code": [WEST + "001"], "name": ["周八"],
                                                "role": ["网格长"], "phone": ["1"]})}, {})
        v0 = s.atlas_version()
        out = import_layer(s, "grids", b_file)
        assert out["created"] == [EAST + "003"] and out["retired"] == []
        assert sorted(out["redrawn"]) == [WEST + "001", WEST + "002", EAST + "002"] and out["unchanged"] == 1
        assert out["buildings_moved"] == 1 and s.atlas_version() == v0 + 1
        hist = s.grid_history(WEST + "001")
        assert list(hist["version"]) == [1, 2] and hist["valid_to"].iloc[0] == hist["valid_from"].iloc[1]
        assert pd.isna(hist["valid_to"].iloc[1])
        b = s.buildings().set_index("id")
        assert b.loc[1, "grid_code"] == WEST + "002"
        assert set(s.households(building_ids=[1])["grid_code"]) == {WEST + "002"}
        changes = s.grid_changes()
        assert changes[-1]["summary"]["source"] == "import" and changes[-1]["summary"]["file"] == "b_grids.gpkg"
        # back to A's grids: 003 retired (its code is never reissued), the worker of ...001 stays
        a_file = tmp_path / "a_grids.gpkg"
        make_toy_store(tmp_path / "orig.gpkg").close()
        with open_store(location(tmp_path / "orig.gpkg")) as orig:
            export_layer(orig, "grids", "gpkg", a_file)
        out = import_layer(s, "grids", a_file)
        assert out["retired"] == [EAST + "003"] and out["workers_moved"] == {}
        # one worker for two communities: the grids holding households it cannot serve are reported
        assert sorted(out["unstaffed"]) == [WEST + "002", EAST + "002"]
        assert list(s.grid_history(WEST + "001")["version"]) == [1, 2, 3]
        assert EAST + "003" in s.grid_codes_ever(EAST)
        assert EAST + "003" not in set(s.divisions()["code"])
        assert s.buildings().set_index("id").loc[1, "grid_code"] == WEST + "001"
        # the retired code comes back in a later import: its history continues at version 2
        out = import_layer(s, "grids", b_file)
        assert list(s.grid_history(EAST + "003")["version"]) == [1, 2]


def test_grids_import_rehomes_cases_and_staffs_grids_as_a_plan_apply_does(store_a, tmp_path):
    """An import that redraws grids carries cases and workers with it by the planning rules: each
    case's grid recomputed from its point in the same transaction (reported grid and history kept),
    and every redrawn or created grid holding households gets a worker."""
    from datetime import datetime, timedelta, timezone

    from gis_grid.atlas import Atlas
    from gis_grid.incidents import aggregate, service
    b_file = tmp_path / "b_grids.gpkg"
    make_b_grids(tmp_path / "b.gpkg").close()
    with open_store(location(tmp_path / "b.gpkg")) as b:
        export_layer(b, "grids", "gpkg", b_file)
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    with open_store(store_a) as s:
        s.replace_all({"workers": pd.DataFrame({"id": ["W1", "W2", "W3"], "grid_code": [WEST + "001"] * 2 + [EAST + "002"],
                                                "name": "周八", "role": "网格员", "phone": "1"})}, {})
        atlas = Atlas.from_store(s)
        points = {(117.505, 34.815): WEST + "002",   # A's north-west grid -> B's east strip of the west
                  (117.501, 34.805): WEST + "001",   # A's south-west grid -> B's west strip
                  (117.515, 34.815): EAST + "001",   # unchanged
                  (117.519, 34.805): EAST + "003"}   # A's south-east grid -> B's new grid
        cases = {service.create(s, atlas, lon=x, lat=y, crs="EPSG:4490", category="dispute", reporter="张三",
                                role="grid_worker", at=now - timedelta(days=1), now=now).id: (want, (x, y))
                 for (x, y), want in points.items()}
        before = s.incidents().set_index("id")["grid_code"].to_dict()
        iv = s.incidents_version()
        by_community = aggregate.group_stats(aggregate.case_table(s, atlas), atlas, "community")["cases"].to_dict()

        out = import_layer(s, "grids", b_file)
        # W1 and W2 served A's north-west grid, which keeps its code but loses its households to
        # ...002: one of them follows (rule 4 of gis_grid/planning/staffing.py, lowest id on a tie)
        assert out["workers_moved"] == {"W1": WEST + "002"} and out["unstaffed"] == []
        assert s.workers().set_index("id")["grid_code"].to_dict() == \
            {"W1": WEST + "002", "W2": WEST + "001", "W3": EAST + "002"}
        assert s.incidents_version() == iv + 1
        assert s.grid_changes()[-1]["summary"]["cases_rehomed"] == 3
        rows = s.incidents().set_index("id")
        new = Atlas.from_store(s)
        for cid, (want, (x, y)) in cases.items():
            assert rows.loc[cid, "grid_code"] == want == new.locate_one(x, y).grid[0]
            assert rows.loc[cid, "reported_grid_code"] == before[cid]
            moved = want != before[cid]
            assert [e["action"] for e in rows.loc[cid, "events"] or []].count("rehome") == int(moved)
            if moved:
                assert rows.loc[cid, "events"][-1]["actor"] == "import" and rows.loc[cid, "version"] == 2
        t = aggregate.case_table(s, new)
        assert aggregate.group_stats(t, new, "community")["cases"].to_dict() == by_community
        grid = aggregate.group_stats(t, new, "grid")["cases"].to_dict()
        assert {g: n for g, n in grid.items() if n} == {w: 1 for w, _ in cases.values()}


def test_dry_run_writes_nothing(store_a, tmp_path):
    make_b_grids(tmp_path / "b.gpkg").close()
    file = tmp_path / "g.gpkg"
    with open_store(location(tmp_path / "b.gpkg")) as b:
        export_layer(b, "grids", "gpkg", file)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(file), "--dry-run"]) == 0
    assert fingerprint(store_a) == before


# ------------------------------------------------------------------ refusals
def write_grids(path, geoms=None, codes=None, crs=4490, **columns):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    df = gpd.GeoDataFrame({"code": codes or list(d["code"]), "name": list(d["name"]), **columns},
                          geometry=list(geoms) if geoms is not None else list(d["geometry"]), crs=crs)
    df.to_file(path) if not str(path).endswith(".parquet") else df.to_parquet(path)
    return path


def test_every_bad_feature_is_named_and_nothing_written(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    geoms = list(d["geometry"])
    geoms[1] = shapely.Point(117.505, 34.805)                                  # wrong type
    geoms[2] = shapely.MultiPolygon([shapely.box(34.81, 117.51, 34.82, 117.52)])  # (lat, lon)
    codes = [d["code"][0], "370402001001", "370402009001001", d["code"][0]]     # 12 digits, no community, duplicate
    file = write_grids(tmp_path / "bad.gpkg", geoms, codes)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(file)]) == 2
    err = capsys.readouterr().err
    assert "row 2 (grid 370402001001): code '370402001001' is not a 15-digit base-grid code (a community" in err
    assert "row 2 (grid 370402001001): is a Point, not a Polygon" in err
    assert "row 3 (grid 370402009001001): its community 370402009001 does not exist" in err
    assert "row 3 (grid 370402009001001): has implausible coordinates" in err and "swapped" in err
    assert "row 4 (grid 370402001001001): repeats the code of row 1" in err
    assert fingerprint(store_a) == before


def test_missing_columns_and_wrong_layer(store_a, tmp_path):
    file = export_a(store_a, "buildings", "gpkg", tmp_path)
    with open_store(store_a) as s, pytest.raises(MissingColumnsError) as err:
        import_layer(s, "grids", file)
    assert "missing column(s) code" in err.value.message and "pass --layer buildings" in err.value.message
    comm = tmp_path / "communities.gpkg"
    with open_store(store_a) as s:
        export_layer(s, "communities", "gpkg", comm)
        with pytest.raises(ImportRejectedError) as err:
            import_layer(s, "grids", comm)
    named = {p["feature"] for p in err.value.detail if "community/village code" in p["reason"]}
    assert named == {"grid 370402001001", "grid 370402002001"}


def test_malformed_and_missing_files(store_a, tmp_path, capsys):
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"SQLite format 3\x00" + os.urandom(2000))
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(junk)]) == 2
    assert "cannot read junk.gpkg as GeoPackage" in capsys.readouterr().err
    txt = tmp_path / "grids.txt"
    txt.write_text("hello")
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(txt)]) == 2
    assert "cannot tell what grids.txt is" in capsys.readouterr().err
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(tmp_path / "none.gpkg")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(broken)]) == 2
    assert "cannot read broken.geojson as GeoJSON" in capsys.readouterr().err


def test_crs_missing_given_offset_and_unknown(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    metric = crs_mod.transform_geoms(d["geometry"].to_numpy(), "EPSG:4490", "EPSG:4548")
    nocrs = write_grids(tmp_path / "nocrs.shp", metric, crs=None)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(nocrs)]) == 2
    assert "declares no CRS: pass --crs" in capsys.readouterr().err
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(nocrs), "--crs", "EPSG:4548"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 4   # back to the stored grids within 1 m2
    # metres declared as degrees: every feature named
    liar = write_grids(tmp_path / "liar.gpkg", metric, crs=4490)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(liar)]) == 2
    rows = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  row ")]
    assert len(rows) == 4 and all("looks like projected metres" in line for line in rows)
    # AMap (GCJ-02) and Baidu (BD-09) exports are labelled WGS84; --crs says what they are
    for offset in ("gcj02", "bd09"):
        gcj = tmp_path / f"{offset}.geojson"
        with open_store(store_a) as s:
            export_layer(s, "grids", "geojson", gcj, crs=offset)
            out = import_layer(s, "grids", gcj, crs=offset, dry_run=True)
            assert out["unchanged"] == 4 and out["source_crs"] == offset
            with pytest.raises(CoverageRefusedError):  # read as WGS84 it lands ~500 m off
                import_layer(s, "grids", gcj, dry_run=True)
    with open_store(store_a) as s:
        with pytest.raises(ImportFileError, match="declares EPSG:4326 .* but --crs says EPSG:4548"):
            import_layer(s, "grids", gcj, crs="EPSG:4548", dry_run=True)
    # a CRS pyproj knows by EPSG code but crs.py does not (UTM 50N): reprojected with pyproj
    utm = write_grids(tmp_path / "utm.gpkg", gpd.GeoSeries(d["geometry"], crs=4490).to_crs(32650), crs=32650)
    with open_store(store_a) as s:
        assert import_layer(s, "grids", utm, dry_run=True)["unchanged"] == 4
    # a custom CRS with no EPSG code
    custom = "+proj=tmerc +lat_0=0 +lon_0=117.3 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    odd = write_grids(tmp_path / "odd.gpkg", gpd.GeoSeries(d["geometry"], crs=4490).to_crs(custom), crs=custom)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(odd)]) == 2
    assert "a CRS gis_grid cannot identify" in capsys.readouterr().err


def test_buildings_outside_or_crossing_new_grids_refuse_the_grids(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    geoms = list(d["geometry"])
    # move the west line between ...001 and ...002 through building 1 (x 117.5048..117.5052, y 34.8149..34.8151)
    geoms[0] = box(X0, 34.815, XM, Y1)
    geoms[1] = box(X0, Y0, XM, 34.815)
    file = write_grids(tmp_path / "cut.gpkg", geoms)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(file)]) == 1
    err = capsys.readouterr().err
    assert "[地不漏房] building 1: crosses the boundary" in err
    assert fingerprint(store_a) == before


def test_buildings_import_refused_when_households_lose_their_building(store_a, tmp_path, capsys):
    b = gpd.GeoDataFrame(toy_buildings().query("id != 4"), crs=4490)
    b.loc[b["id"] == 2, "geometry"] = shapely.box(117.53, 34.80, 117.531, 34.801)   # outside the district
    file = tmp_path / "b.parquet"
    b.to_parquet(file)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "buildings", str(file)]) == 1
    err = capsys.readouterr().err
    assert "[房不漏户] household He5: its building 4 does not exist" in err
    assert "[地不漏房] building 2: lies outside every base grid" in err
    assert fingerprint(store_a) == before


def test_households_rules(store_a, tmp_path, capsys):
    hh, _ = toy_people()
    hh.loc[hh["id"] == "Hc3", "building_id"] = 99
    hh.loc[hh["id"] == "Hd4", "size"] = 0
    hh = pd.concat([hh, hh.iloc[[0]].assign(id="Hnew")], ignore_index=True)
    file = tmp_path / "hh.parquet"
    hh.to_parquet(file)
    assert main(["import", "--db", str(store_a), "--layer", "households", str(file)]) == 2
    err = capsys.readouterr().err
    assert "household Hc3): its building 99 does not exist" in err and "household Hd4): size 0 is below 1" in err
    hh.loc[hh["id"] == "Hc3", "building_id"] = 2
    hh.loc[hh["id"] == "Hd4", "size"] = 1
    hh.to_parquet(file)
    assert main(["import", "--db", str(store_a), "--layer", "households", str(file)]) == 1
    assert "[户不漏人] household Hnew: has no registered residents" in capsys.readouterr().err
    # the file's grid_code is informational: the store takes the building's
    hh = hh[hh["id"] != "Hnew"].assign(grid_code="370402002001002").drop(columns=["size"])
    hh.to_parquet(file)
    with open_store(store_a) as s:
        out = import_layer(s, "households", file)
        assert out["grid_code_replaced"] == 4
        stored = s.households().set_index("id")
        assert stored.loc["Ha1", "grid_code"] == WEST + "001" and stored.loc["Ha1", "size"] == 2


# ------------------------------------------------------------------ files written by GDAL's ogr2ogr
def ogr2ogr(*args):
    exe = shutil.which("ogr2ogr")
    if exe is None:
        skip_or_fail_on_ci("GDAL's ogr2ogr is not installed (run `bash scripts/system-deps.sh`)")
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.gdal
@pytest.mark.parametrize("encoding", ["UTF-8", "CP936"])    # CP936 (GBK): what Chinese desktop GIS writes
@pytest.mark.parametrize("layer", ["grids", "buildings", "households"])
def test_ogr2ogr_shapefile(store_a, tmp_path, layer, encoding):
    src = export_a(store_a, layer, "gpkg", tmp_path)
    out = tmp_path / "shp" / f"{layer}.shp"
    out.parent.mkdir()
    ogr2ogr("-f", "ESRI Shapefile", "-lco", f"ENCODING={encoding}", out, src)
    assert out.with_suffix(".cpg").read_text().strip() == encoding
    fields = {f.lower() for f in pyogrio.read_info(out if out.exists() else out.with_suffix(".dbf"))["fields"]}
    assert all(len(f) <= 10 for f in fields)            # DBF truncated parent_code / building_id
    b_path, summary = import_into_b(tmp_path, layer, out)
    assert summary["format"] == "Shapefile"
    assert_b_equals_a(store_a, b_path, layer)


@pytest.mark.gdal
@pytest.mark.parametrize("epsg", [4548, 4527])   # Gauss-Kruger CM 117E without and with the zone prefix 39
def test_ogr2ogr_projected_shapefile(store_a, tmp_path, epsg):
    src = export_a(store_a, "grids", "gpkg", tmp_path)
    out = tmp_path / f"grids_{epsg}.shp"
    ogr2ogr("-f", "ESRI Shapefile", "-lco", "ENCODING=UTF-8", "-t_srs", f"EPSG:{epsg}", out, src)
    assert "AUTHORITY" not in out.with_suffix(".prj").read_text()   # ESRI WKT: identified by its content
    b_path, summary = import_into_b(tmp_path, "grids", out)
    assert summary["source_crs"] == f"EPSG:{epsg}"
    assert_b_equals_a(store_a, b_path, "grids", tol=1e-9)


@pytest.mark.gdal
def test_ogr2ogr_shapefile_that_lost_its_chinese_names_is_refused(store_a, tmp_path, capsys):
    src = export_a(store_a, "grids", "gpkg", tmp_path)
    out = tmp_path / "latin1.shp"
    ogr2ogr("-f", "ESRI Shapefile", "-lco", "ENCODING=ISO-8859-1", out, src)   # 西第1网格 -> ??1??
    assert main(["import", "--db", store_a, "--layer", "grids", str(out)]) == 2
    rows = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  row ")]
    assert len(rows) == 4 and all("lost to a text-encoding conversion" in line for line in rows)


@pytest.mark.gdal
@pytest.mark.parametrize("variant", ["rfc7946", "epsg4326", "epsg4548"])
@pytest.mark.parametrize("layer", ["grids", "buildings"])
def test_ogr2ogr_geojson(store_a, tmp_path, layer, variant):
    src = export_a(store_a, layer, "gpkg", tmp_path)
    out = tmp_path / f"{layer}_{variant}.geojson"
    opts = {"rfc7946": ["-lco", "RFC7946=YES"], "epsg4326": ["-t_srs", "EPSG:4326"],
            "epsg4548": ["-t_srs", "EPSG:4548"]}[variant]
    ogr2ogr("-f", "GeoJSON", *opts, out, src)
    text = out.read_text()
    if variant == "epsg4548":
        assert "EPSG::4548" in text
    b_path, summary = import_into_b(tmp_path, layer, out)
    assert summary["source_crs"] == ("EPSG:4548" if variant == "epsg4548" else "EPSG:4326")
    # RFC 7946 keeps 7 decimals (~1 cm); metres back to degrees differ in the last bits
    assert_b_equals_a(store_a, b_path, layer, tol={"rfc7946": 1e-7, "epsg4326": 1e-12, "epsg4548": 1e-9}[variant])


@pytest.mark.gdal
def test_ogr2ogr_geopackage_with_other_layer_names(store_a, tmp_path, capsys):
    grids = export_a(store_a, "grids", "gpkg", tmp_path)
    buildings = export_a(store_a, "buildings", "gpkg", tmp_path)
    out = tmp_path / "district.gpkg"
    ogr2ogr("-f", "GPKG", "-nln", "wangge", out, grids)
    b_path, summary = import_into_b(tmp_path, "grids", out)
    assert summary["src_layer"] == "wangge"
    assert_b_equals_a(store_a, b_path, "grids")
    ogr2ogr("-f", "GPKG", "-update", "-nln", "jianzhu", out, buildings)
    assert main(["import", "--db", b_path, "--layer", "grids", str(out)]) == 2
    assert "holds 2 layers ['wangge', 'jianzhu']: name the one to import with --src-layer" in capsys.readouterr().err
    assert main(["import", "--db", b_path, "--layer", "grids", str(out), "--src-layer", "wangge"]) == 0
    assert main(["import", "--db", b_path, "--layer", "buildings", str(out), "--src-layer", "jianzhu"]) == 0
    capsys.readouterr()
    assert_b_equals_a(store_a, b_path, "grids")


@pytest.mark.gdal
@pytest.mark.parametrize("layer", ["grids", "buildings"])
def test_ogr2ogr_flatgeobuf(store_a, tmp_path, layer):
    src = export_a(store_a, layer, "gpkg", tmp_path)
    out = tmp_path / f"{layer}.fgb"
    ogr2ogr("-f", "FlatGeobuf", out, src)
    b_path, summary = import_into_b(tmp_path, layer, out)
    assert summary["format"] == "FlatGeobuf"
    assert_b_equals_a(store_a, b_path, layer)


@pytest.mark.gdal
def test_ogr2ogr_file_with_an_invalid_polygon_is_refused(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    geoms = list(d["geometry"])
    # a bow tie over the east-south grid: its ring crosses itself at (117.515, 34.805)
    geoms[3] = shapely.Polygon([(XM, Y0), (X1, YM), (X1, Y0), (XM, YM), (XM, Y0)])
    src = write_grids(tmp_path / "hand.geojson", geoms)
    out = tmp_path / "bowtie.gpkg"
    ogr2ogr("-f", "GPKG", "-nln", "grids", out, src)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 4 (grid 370402002001002): is not a valid polygon: Self-intersection[117.515 34.805]" in err
    assert err.count("row ") == 1
    assert fingerprint(store_a) == before


@pytest.mark.gdal
def test_ogr2ogr_file_with_a_gap_is_refused(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    geoms = list(d["geometry"])
    geoms[3] = box(XM, Y0, X1, YM - 0.001)            # a 110 m strip under the east-north grid
    src = write_grids(tmp_path / "hand.geojson", geoms)
    out = tmp_path / "gap.shp"
    ogr2ogr("-f", "ESRI Shapefile", "-lco", "ENCODING=UTF-8", out, src)
    before = fingerprint(store_a)
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(out)]) == 1
    err = capsys.readouterr().err
    assert "[区不漏地] 370402002001:" in err and "not covered by any child" in err
    assert fingerprint(store_a) == before
    with open_store(store_a) as s:
        assert s.atlas_version() == 1
        stored = s.divisions().query("code == '370402002001002'")["geometry"].iloc[0]
        assert np.isclose(stored.area, 0.01 * 0.01)


# ------------------------------------------------------------------ a running service, a real district's size
def test_a_running_service_follows_imports(store_a, tmp_path):
    """The API's atlas holder (a replica watching the store) swaps in imported grids and buildings."""
    import time

    from gis_grid.atlas.holder import AtlasHolder

    def wait_for(holder, version):
        deadline = time.monotonic() + 10
        while holder.version < version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.version == version

    make_b_grids(tmp_path / "b.gpkg").close()
    with open_store(location(tmp_path / "b.gpkg")) as b:
        export_layer(b, "grids", "gpkg", tmp_path / "b_grids.gpkg")
    served = open_store(store_a)
    holder = AtlasHolder(served)
    try:
        assert holder.atlas.locate_one(117.505, 34.815).to_dict()["grid"]["code"] == WEST + "001"
        with open_store(store_a) as writer:   # another process, as far as the holder knows
            v = import_layer(writer, "grids", tmp_path / "b_grids.gpkg")["atlas_version"]
        wait_for(holder, v)
        assert holder.atlas.locate_one(117.505, 34.815).to_dict()["grid"]["code"] == WEST + "002"
        b = gpd.GeoDataFrame(toy_buildings(), crs=4490)
        b.loc[b["id"] == 2, "geometry"] = shapely.box(117.5010, 34.8040, 117.5013, 34.8042)   # into B's ...001
        b.to_parquet(tmp_path / "moved.parquet")
        with open_store(store_a) as writer:
            out = import_layer(writer, "buildings", tmp_path / "moved.parquet")
        assert out["grid_code_replaced"] == 2 and out["households_regridded"] == 1   # buildings 1 and 2
        wait_for(holder, out["atlas_version"])
        found = holder.atlas.locate_one(117.5011, 34.8041).to_dict()
        assert found["building"]["id"] == 2 and found["grid"]["code"] == WEST + "001"
    finally:
        del holder
        served.close()


def test_households_from_csv(store_a, tmp_path):
    hh, _ = toy_people()
    hh.loc[hh["id"] == "Hb2", "room"] = "1单元202"
    hh.drop(columns=["grid_code"]).to_csv(tmp_path / "hh.csv", index=False)
    with open_store(store_a) as s:
        out = import_layer(s, "households", tmp_path / "hh.csv")
        assert out["format"] == "CSV" and out["committed"]
        got = s.households().set_index("id")
    assert got.loc["Hb2", "room"] == "1单元202" and got.loc["Hb2", "building_id"] == 1
    assert got.loc["Hb2", "grid_code"] == WEST + "001"


def test_demo_district_round_trip_and_refusal(demo_store_path, tmp_path, capsys):
    """445 grids, ~60k buildings: grids and buildings exported and imported back unchanged; one building
    nudged across a grid edge is named and nothing is written."""
    from stores import copy_store
    loc = copy_store(demo_store_path, tmp_path / "demo.gpkg")
    with open_store(loc) as s:
        export_layer(s, "grids", "parquet", tmp_path / "grids.parquet")
        export_layer(s, "buildings", "parquet", tmp_path / "buildings.parquet")
        version = s.atlas_version()
        out = import_layer(s, "grids", tmp_path / "grids.parquet")
        assert out["unchanged"] == 445 and not out["committed"] and s.atlas_version() == version
        grids = s.divisions().query("level == 'grid'").set_index("code")
    b = gpd.read_parquet(tmp_path / "buildings.parquet")
    victim = b.iloc[1000]
    edge = grids.loc[victim["grid_code"], "geometry"].boundary
    nudged = shapely.affinity.translate(victim.geometry, *(np.array(shapely.shortest_line(
        victim.geometry.centroid, edge).coords[1]) - np.array(victim.geometry.centroid.coords[0])))
    b.loc[b.index[1000], "geometry"] = nudged                     # its centre now on the grid's edge
    b.to_parquet(tmp_path / "nudged.parquet")
    before = fingerprint(loc)
    assert main(["import", "--db", loc, "--layer", "buildings", str(tmp_path / "nudged.parquet")]) == 1
    assert f"building {victim['id']}: crosses the boundary" in capsys.readouterr().err
    assert fingerprint(loc) == before


def test_blank_numbers_stay_blank_and_integers_stay_integers(store_a, tmp_path):
    b = gpd.GeoDataFrame(toy_buildings(), crs=4490).astype({"floors": "float64"})
    b.loc[b["id"] == 3, ["floors", "name"]] = [np.nan, None]     # how a DBF or a CSV hands over a blank
    b.drop(columns=["kind"]).to_parquet(tmp_path / "b.parquet")
    with open_store(store_a) as s:
        import_layer(s, "buildings", tmp_path / "b.parquet")
        got = s.buildings().set_index("id")
    assert pd.isna(got.loc[3, "floors"]) and pd.isna(got.loc[3, "name"])
    assert got["floors"].dropna().tolist() == [6, 6, 6]
    if not is_postgis():   # PostGIS would refuse 6.0 in an integer column outright
        from stores import raw_sql
        assert {r[0] for r in raw_sql(store_a, "SELECT typeof(floors) FROM buildings")} == {"integer", "null"}
    assert set(got["kind"]) == {"unknown"}


def test_every_bad_building_is_named(store_a, tmp_path, capsys):
    b = toy_buildings()
    geoms = list(b["geometry"])
    b = pd.concat([b, b.iloc[:3].assign(id=[5, 6, 3])], ignore_index=True)
    b["geometry"] = geoms + [shapely.Polygon(),                                         # empty
                             shapely.MultiPolygon([shapely.box(117.501, 34.801, 117.5012, 34.8012),
                                                   shapely.box(117.502, 34.801, 117.5022, 34.8012)]),
                             geoms[2]]                                                   # duplicate id 3
    b.loc[0, "geometry"] = shapely.Polygon([(117.5048, 34.8149), (117.5052, 34.8151), (117.5052, 34.8149),
                                            (117.5048, 34.8151)])                          # bow tie
    b["floors"] = b["floors"].astype(object)
    b.loc[1, "floors"] = "six"
    gpd.GeoDataFrame(b, crs=4490).to_file(tmp_path / "b.gpkg", layer="buildings")
    before = fingerprint(store_a)
    assert main(["import", "--db", store_a, "--layer", "buildings", str(tmp_path / "b.gpkg")]) == 2
    rows = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  row ")]
    assert rows == [
        "  row 1 (building 1): is not a valid polygon: Self-intersection[117.505 34.815]",
        "  row 2 (building 2): floors 'six' is not an integer",
        "  row 5 (building 5): has an empty geometry",
        "  row 6 (building 6): has 2 separate parts; a footprint must be one polygon",
        "  row 7 (building 3): repeats the id of row 3; ids must be unique",
    ]
    assert fingerprint(store_a) == before


def test_crs_applies_to_a_geojson_without_a_crs_member_and_imports_are_audited(store_a, tmp_path, capsys):
    d = toy_divisions().query("level == 'grid'").reset_index(drop=True)
    metres = gpd.GeoDataFrame({"code": list(d["code"]), "name": list(d["name"])}, geometry=list(d["geometry"]),
                              crs=4490).to_crs(4548)
    doc = json.loads(metres.to_json())
    doc.pop("crs", None)
    file = tmp_path / "metres.geojson"
    file.write_text(json.dumps(doc))
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(file)]) == 2
    assert 'no "crs" member' in capsys.readouterr().err
    with open_store(store_a) as s:
        before = len(s.audit_records())
    assert main(["import", "--db", str(store_a), "--layer", "grids", str(file), "--crs", "EPSG:4548"]) == 0
    with open_store(store_a) as s:
        records = s.audit_records()
    assert len(records) == before + 1
    assert (records[-1]["action"], records[-1]["resource"], records[-1]["role"]) == ("import", "layer/grids", "cli")
