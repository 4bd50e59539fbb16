"""Batch locate of point files (CSV, GeoJSON, GeoParquet, GeoPackage) on the toy district."""
from __future__ import annotations


import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from common import XM, YM, make_toy_store
from gis_grid import crs
from gis_grid.atlas import Atlas
from gis_grid.batchio import OUT_COLUMNS, file_format, locate_file
from gis_grid.errors import InvalidCoordinatesError, InvalidInputError

WN, WS, EN, ES = "370402001001001", "370402001001002", "370402002001001", "370402002001002"
LON = [117.505, 117.515, XM, 117.6, 117.5149]
LAT = [34.815, 34.805, YM, 34.9, 34.8151]
WANT = [WN, ES, WN, "", EN]


@pytest.fixture(scope="module")
def atlas(store_backend, tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("toy") / "toy.gpkg")
    try:
        yield Atlas.from_store(store)
    finally:
        store.close()


def _points_frame():
    return pd.DataFrame({"name": [f"p{i}" for i in range(len(LON))], "lon": LON, "lat": LAT})


def test_csv_to_csv(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _points_frame().to_csv(src, index=False)
    res = locate_file(src, dst, atlas.locate_many)
    assert (res.rows, res.located, res.outside, res.invalid) == (5, 4, 1, [])
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert list(out.columns) == ["name", "lon", "lat", *OUT_COLUMNS]
    assert out["grid"].tolist() == WANT
    assert out["district"].tolist() == ["370402"] * 3 + [""] + ["370402"]
    assert out["community"].tolist()[:2] == ["370402001001", "370402002001"]
    assert out["building"].tolist() == ["1", "4", "", "", "3"]  # the last point is on building 3's edge
    assert out["name"].tolist() == [f"p{i}" for i in range(5)]
    assert not list(tmp_path.glob(".*partial"))


def test_csv_in_other_crs(atlas, tmp_path):
    # the exact vertex (index 2) cannot survive a round trip through an offset CRS
    keep = [0, 1, 3, 4]
    x, y = crs.from_storage(np.array(LON)[keep], np.array(LAT)[keep], "gcj02")
    src = tmp_path / "in.csv"
    pd.DataFrame({"lon": x, "lat": y}).to_csv(src, index=False)
    locate_file(src, tmp_path / "out.csv", atlas.locate_many, crs="gcj02")
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert out["grid"].tolist() == [WANT[i] for i in keep]


@pytest.mark.filterwarnings("ignore:The filename extension should be:RuntimeWarning")
@pytest.mark.parametrize("in_ext,out_ext", [("geojson", "csv"), ("parquet", "parquet"), ("gpkg", "gpkg"),
                                            ("geojson", "geojson"), ("csv", "parquet")])
def test_geo_inputs_and_outputs(atlas, tmp_path, in_ext, out_ext):
    df = _points_frame()
    src = tmp_path / f"in.{in_ext}"
    if in_ext == "csv":
        df.to_csv(src, index=False)
    else:
        gdf = gpd.GeoDataFrame(df[["name"]], geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4326)
        if in_ext == "parquet":
            gdf.to_parquet(src)
        else:
            gdf.to_file(src, driver="GeoJSON" if in_ext == "geojson" else "GPKG")
    dst = tmp_path / f"out.{out_ext}"
    res = locate_file(src, dst, atlas.locate_many, chunk_rows=2)   # several chunks for CSV/Parquet
    assert res.rows == 5 and res.located == 4
    if out_ext == "csv":
        out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    elif out_ext == "parquet":
        out = gpd.read_parquet(dst)
        assert out.crs.to_epsg() == 4490
        assert out.geometry.iloc[0].equals(shapely.Point(LON[0], LAT[0]))
    else:
        out = gpd.read_file(dst)
        out = out.fillna("")
    assert [str(g) for g in out["grid"]] == WANT
    assert list(out["name"]) == [f"p{i}" for i in range(5)]


def test_csv_without_lon_lat(atlas, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"x": [1], "y": [2]}).to_csv(src, index=False)
    with pytest.raises(InvalidInputError, match="no lat and lon column"):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many)
    assert not (tmp_path / "out.csv").exists()


def _bad_csv(path):
    path.write_text("lon,lat\n117.505,34.815\nabc,34.81\n117.51,NaN\n117.51,95\n34.81,117.51\n117.515,34.805\n")


def test_invalid_rows_fail_and_write_nothing(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _bad_csv(src)
    with pytest.raises(InvalidCoordinatesError) as err:
        locate_file(src, dst, atlas.locate_many)
    assert [d["row"] for d in err.value.detail] == [2, 3, 4, 5]
    assert "row 2: lon 'abc' is not a number" in str(err.value)
    assert "NaN" in err.value.detail[1]["reason"]
    assert "swapped" in err.value.detail[2]["reason"] or "range" in err.value.detail[2]["reason"]
    assert "swapped" in err.value.detail[3]["reason"]
    assert not dst.exists()
    assert not list(tmp_path.glob(".*partial"))


def test_invalid_rows_across_chunks(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _bad_csv(src)
    with pytest.raises(InvalidCoordinatesError) as err:
        locate_file(src, dst, atlas.locate_many, chunk_rows=2)
    assert [d["row"] for d in err.value.detail] == [2, 3, 4, 5]
    assert not dst.exists()


def test_on_invalid_mark(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _bad_csv(src)
    res = locate_file(src, dst, atlas.locate_many, on_invalid="mark", chunk_rows=4)
    assert res.rows == 6 and res.located == 2 and len(res.invalid) == 4
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert "error" in out.columns
    assert out["grid"].tolist() == [WN, "", "", "", "", ES]
    assert out["error"].tolist()[0] == "" and out["error"].tolist()[-1] == ""
    assert all(e for e in out["error"].tolist()[1:5])
    assert out["lon"].tolist()[1] == "abc"   # the row is kept as given


def test_unreadable_and_unknown_files(atlas, tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        locate_file(tmp_path / "nope.csv", tmp_path / "out.csv", atlas.locate_many)
    bad = tmp_path / "bad.geojson"
    bad.write_text("{ this is not json")
    with pytest.raises(InvalidInputError, match="cannot read bad.geojson"):
        locate_file(bad, tmp_path / "out.csv", atlas.locate_many)
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1 garbage")
    with pytest.raises(InvalidInputError, match="cannot read bad.parquet"):
        locate_file(pq, tmp_path / "out.csv", atlas.locate_many)
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        file_format("points.xlsx")
    src = tmp_path / "in.csv"
    _points_frame().to_csv(src, index=False)
    with pytest.raises(InvalidInputError, match="on_invalid"):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many, on_invalid="skip")
    assert not (tmp_path / "out.csv").exists()


def test_non_point_geometry_is_invalid(atlas, tmp_path):
    gdf = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[shapely.Point(117.505, 34.815),
                                                    shapely.box(117.50, 34.80, 117.501, 34.801)], crs=4326)
    src = tmp_path / "in.geojson"
    gdf.to_file(src, driver="GeoJSON")
    with pytest.raises(InvalidCoordinatesError, match="row 2: geometry is not a point"):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many)
