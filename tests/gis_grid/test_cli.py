"""The `gis-grid` command line: locate (one point, files) and export."""
from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from common import make_toy_store
from stores import location
from gis_grid import crs
from gis_grid.cli import main

WS = "370402001001002"


@pytest.fixture(scope="module")
def toy_db(store_backend, tmp_path_factory):
    path = location(tmp_path_factory.mktemp("toy") / "toy.gpkg")
    make_toy_store(path).close()
    return path


def test_locate_one_point_prints_json(toy_db, capsys):
    assert main(["locate", "--db", toy_db, "--lon", "117.505", "--lat", "34.805"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outside"] is False
    assert out["grid"] == {"code": WS, "name": "西第2网格"}
    assert out["district"]["code"] == "370402"
    assert out["building"]["id"] == 2
    x, y = crs.from_storage(117.5051, 34.8049, "EPSG:4548")
    assert main(["locate", "--db", toy_db, "--lon", str(float(x)), "--lat", str(float(y)), "--crs", "EPSG:4548"]) == 0
    assert json.loads(capsys.readouterr().out)["grid"]["code"] == WS
    assert main(["locate", "--db", toy_db, "--lon", "117.9", "--lat", "34.9"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outside"] is True and out["grid"] is None


def test_locate_bad_point_exits_non_zero(toy_db, capsys):
    assert main(["locate", "--db", toy_db, "--lon", "34.805", "--lat", "117.505"]) != 0
    assert "swapped" in capsys.readouterr().err
    assert main(["locate", "--db", toy_db, "--lon", "117.505", "--lat", "34.805", "--crs", "EPSG:9999"]) != 0
    assert "unknown CRS" in capsys.readouterr().err
    assert main(["locate", "--db", toy_db, "--lon", "117.505"]) != 0
    assert main(["locate", "--db", toy_db + ".missing", "--lon", "117.5", "--lat", "34.8"]) != 0
    assert "no store" in capsys.readouterr().err


def test_locate_csv_file(toy_db, tmp_path, capsys):
    src, dst = tmp_path / "pts.csv", tmp_path / "out.csv"
    src.write_text("id,lon,lat\na,117.505,34.805\nb,117.9,34.9\n")
    assert main(["locate", "--db", toy_db, str(src), "-o", str(dst), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"rows": 2, "located": 1, "outside": 1, "invalid": 0, "output": str(dst)}
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert out[["id", "grid", "building"]].values.tolist() == [["a", WS, "2"], ["b", "", ""]]
    assert out["street"].tolist() == ["370402001", ""]


def test_locate_file_named_columns_and_crs(toy_db, tmp_path, capsys):
    src, dst = tmp_path / "pts.csv", tmp_path / "out.parquet"
    x, y = crs.from_storage([117.505, 117.9], [34.805, 34.9], "gcj02")
    pd.DataFrame({"id": [1, 2], "E": x, "N": y}).to_csv(src, index=False)
    assert main(["locate", "--db", toy_db, str(src), "-o", str(dst), "--quiet", "--x-col", "E", "--y-col", "N",
                 "--crs", "gcj02"]) == 0
    out = gpd.read_parquet(dst)
    assert out.crs.to_epsg() == 4490 and out["id"].tolist() == [1, 2]
    assert out["grid"][0] == WS and pd.isna(out["grid"][1])
    assert abs(out.geometry.x[0] - 117.505) < 1e-8 and abs(out.geometry.y[0] - 34.805) < 1e-8


def test_locate_file_with_bad_rows(toy_db, tmp_path, capsys):
    src, dst = tmp_path / "pts.csv", tmp_path / "out.csv"
    src.write_text("lon,lat\n117.505,34.805\nx,34.8\n117.5,nan\n117.5,91\n")
    assert main(["locate", "--db", toy_db, str(src), "-o", str(dst), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "row 2" in err and "row 3" in err and "row 4" in err
    assert "--on-invalid mark" in err
    assert not dst.exists()
    assert main(["locate", "--db", toy_db, str(src), "-o", str(dst), "--quiet", "--on-invalid", "mark"]) == 0
    assert json.loads(capsys.readouterr().out)["invalid"] == 3
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert out["error"].astype(bool).tolist() == [False, True, True, True]
    assert out["grid"].tolist() == [WS, "", "", ""]


def test_locate_file_errors(toy_db, tmp_path, capsys):
    src = tmp_path / "pts.csv"
    src.write_text("east,north\n1,2\n")
    assert main(["locate", "--db", toy_db, str(src), "-o", str(tmp_path / "o.csv"), "--quiet"]) != 0
    assert "no coordinate columns" in capsys.readouterr().err
    assert main(["locate", "--db", toy_db, str(src), "-o", str(tmp_path / "o.csv"), "--quiet",
                 "--x-col", "east"]) != 0
    assert "give both --x-col and --y-col" in capsys.readouterr().err
    assert main(["locate", "--db", toy_db, str(tmp_path / "none.csv"), "-o", str(tmp_path / "o.csv")]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert main(["locate", "--db", toy_db, str(src)]) != 0       # no -o
    assert not (tmp_path / "o.csv").exists()


def test_console_script_runs(toy_db):
    proc = subprocess.run([sys.executable, "-m", "gis_grid.cli", "locate", "--db", toy_db,
                           "--lon", "117.505", "--lat", "34.805"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["grid"]["code"] == WS
    proc = subprocess.run([sys.executable, "-m", "gis_grid.cli", "check", "--db", toy_db + ".nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no store" in proc.stderr


@pytest.mark.parametrize("fmt,ext", [("geojson", "geojson"), ("gpkg", "gpkg"), ("parquet", "parquet")])
def test_export_grids_toy(toy_db, tmp_path, capsys, fmt, ext):
    out = tmp_path / f"grids.{ext}"
    assert main(["export", "--db", toy_db, "--layer", "grids", "--format", fmt, "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["features"] == 4
    gdf = gpd.read_parquet(out) if fmt == "parquet" else gpd.read_file(out)
    assert len(gdf) == 4
    assert {"code", "name", "level", "parent_code"} <= set(gdf.columns)
    assert set(gdf["level"]) == {"grid"}
    assert all(p == c[:12] for c, p in zip(gdf["code"], gdf["parent_code"]))


def test_export_in_metric_crs(toy_db, tmp_path, capsys):
    out = tmp_path / "streets.gpkg"
    assert main(["export", "--db", toy_db, "--layer", "streets", "--format", "gpkg", "-o", str(out),
                 "--crs", "EPSG:4548"]) == 0
    gdf = gpd.read_file(out)
    assert gdf.crs.to_epsg() == 4548 and len(gdf) == 2
    assert 400_000 < gdf.total_bounds[0] < 600_000   # metres, not degrees


@pytest.mark.parametrize("fmt,ext", [("geojson", "geojson"), ("gpkg", "gpkg"), ("parquet", "parquet")])
def test_export_grids_demo(demo_store_path, tmp_path, capsys, fmt, ext):
    out = tmp_path / f"grids.{ext}"
    assert main(["export", "--db", str(demo_store_path), "--layer", "grids", "--format", fmt, "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["features"] == 445
    if fmt == "parquet":
        gdf = gpd.read_parquet(out)
    else:
        gdf = pyogrio.read_dataframe(out)
    assert len(gdf) == 445
    assert gdf.crs.to_epsg() == 4490
    for col in ("code", "name", "level", "parent_code"):
        assert gdf[col].notna().all() and (gdf[col].astype(str) != "").all(), col
    assert gdf["code"].str.len().eq(15).all()
    assert (gdf["code"].str[:12] == gdf["parent_code"]).all()
    assert set(gdf["level"]) == {"grid"}
    assert gdf["code"].is_unique


def test_gis_grid_map_writes_a_light_standalone_heatmap(demo_store_path, tmp_path_factory, tmp_path):
    """`gis-grid map --layer heatmap -o FILE.html`: server-binned, assets inlined, far under 3 MB."""
    from incident_demo import incident_store_path

    from gis_grid.cli import main

    db = incident_store_path(demo_store_path, tmp_path_factory)
    out = tmp_path / "heat.html"
    assert main(["map", "--db", str(db), "--layer", "heatmap", "--from", "2016-01-01", "--to", "2016-03-31",
                 "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 10_000 < len(page.encode()) < 3_000_000
    assert "heatLayer" in page and "<script src=\"http" not in page
    assert main(["map", "--db", str(tmp_path / "missing.gpkg"), "--layer", "heatmap", "-o", str(out)]) == 2


def test_serve_refuses_zero_workers(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


@pytest.mark.parametrize("command,argv,says", [
    (["keys", "create"], ["--role", "grid_worker", "--scope", "370402001001001", "--days", "0"], "positive lifetime"),
    (["keys", "create"], ["--role", "grid_worker", "--scope", "370402001001001", "--days", "-3"], "positive lifetime"),
    (["export"], ["--layer", "grids", "--format", "geojson", "-o", "/nonexistent-dir/x/grids.geojson"],
     "/nonexistent-dir/x"),
])
def test_a_callers_mistake_is_one_line_not_a_traceback(toy_db, command, argv, says):
    # a subprocess, as a user runs it: exit 2, the reason on stderr, and no Python traceback
    proc = subprocess.run([sys.executable, "-m", "gis_grid.cli", *command, "--db", toy_db, *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
