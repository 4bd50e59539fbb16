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
        assert out.crs.to_epsg() == 4490
    if out_ext != "csv":  # outside the district: null, not ''
        assert out["grid"].isna().tolist() == [w == "" for w in WANT]
    assert out["grid"].astype(object).fillna("").tolist() == WANT
    assert list(out["name"]) == [f"p{i}" for i in range(5)]


def test_csv_without_coordinate_columns(atlas, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"east": [1], "north": [2]}).to_csv(src, index=False)
    with pytest.raises(InvalidInputError, match="no coordinate columns.*--x-col"):
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
    # lon stays a number column: the unparsable text is null there and quoted in the error
    assert out["lon"].tolist()[1] == "" and "'abc'" in out["error"].tolist()[1]


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


# -- coordinates where they belong: every input CRS x every output format ----------------------
IN_CRS = ["EPSG:4326", "EPSG:4490", "EPSG:4548", "gcj02", "bd09"]
KEEP = [0, 1, 3, 4]  # the exact vertex cannot survive a round trip through a transformed CRS


def _read_geo(dst, fmt):
    out = gpd.read_parquet(dst) if fmt == "parquet" else gpd.read_file(dst)
    assert out.crs.to_epsg() == 4490  # what the file declares ...
    return out


@pytest.mark.filterwarnings("ignore:The filename extension should be:RuntimeWarning")
@pytest.mark.parametrize("out_ext", ["csv", "parquet", "geojson", "gpkg"])
@pytest.mark.parametrize("in_crs", IN_CRS)
def test_output_geometry_is_in_the_declared_crs(atlas, tmp_path, in_crs, out_ext):
    lon, lat = np.array(LON)[KEEP], np.array(LAT)[KEEP]
    x, y = crs.from_storage(lon, lat, in_crs)
    src, dst = tmp_path / "in.csv", tmp_path / f"out.{out_ext}"
    pd.DataFrame({"id": range(len(KEEP)), "lon": x, "lat": y}).to_csv(src, index=False)
    locate_file(src, dst, atlas.locate_many, crs=in_crs)
    if out_ext == "csv":  # no CRS label: the input columns come back as given
        out = pd.read_csv(dst, dtype={c: str for c in OUT_COLUMNS})
        np.testing.assert_allclose(out[["lon", "lat"]].to_numpy(), np.column_stack([x, y]), rtol=0, atol=1e-9)
    else:  # ... and where the points are in it: the storage point, within a millimetre
        out = _read_geo(dst, out_ext)
        np.testing.assert_allclose(shapely.get_coordinates(out.geometry.to_numpy()), np.column_stack([lon, lat]),
                                   rtol=0, atol=1e-8)
    assert out["grid"].astype(object).fillna("").tolist() == [WANT[i] for i in KEEP]


@pytest.mark.filterwarnings("ignore:The filename extension should be:RuntimeWarning")
@pytest.mark.parametrize("out_ext", ["parquet", "gpkg"])
@pytest.mark.parametrize("in_ext", ["parquet", "gpkg", "geojson"])
def test_a_file_in_epsg4548_is_read_in_its_own_crs(atlas, tmp_path, in_ext, out_ext):
    lon, lat = np.array(LON)[KEEP], np.array(LAT)[KEEP]
    gdf = gpd.GeoDataFrame({"n": range(len(KEEP))}, geometry=gpd.points_from_xy(*crs.from_storage(lon, lat, 4548)),
                           crs=4548)
    src, dst = tmp_path / f"in.{in_ext}", tmp_path / f"out.{out_ext}"
    gdf.to_parquet(src) if in_ext == "parquet" else gdf.to_file(src)
    locate_file(src, dst, atlas.locate_many)  # no --crs: the file says EPSG:4548
    out = _read_geo(dst, out_ext)
    np.testing.assert_allclose(shapely.get_coordinates(out.geometry.to_numpy()), np.column_stack([lon, lat]),
                               rtol=0, atol=1e-8)
    assert out["grid"].astype(object).fillna("").tolist() == [WANT[i] for i in KEEP]
    with pytest.raises(InvalidInputError, match="declares its CRS as EPSG:4548 but --crs says EPSG:4326"):
        locate_file(src, tmp_path / "x.csv", atlas.locate_many, crs="EPSG:4326")


@pytest.mark.parametrize("in_ext", ["parquet", "geojson"])
def test_offset_data_labelled_wgs84_is_converted(atlas, tmp_path, in_ext):
    lon, lat = np.array(LON)[KEEP], np.array(LAT)[KEEP]
    gdf = gpd.GeoDataFrame({"n": range(len(KEEP))}, geometry=gpd.points_from_xy(*crs.from_storage(lon, lat, "gcj02")),
                           crs=4326)
    src, dst = tmp_path / f"in.{in_ext}", tmp_path / "out.parquet"
    gdf.to_parquet(src) if in_ext == "parquet" else gdf.to_file(src)
    locate_file(src, dst, atlas.locate_many, crs="gcj02")
    out = _read_geo(dst, "parquet")
    np.testing.assert_allclose(shapely.get_coordinates(out.geometry.to_numpy()), np.column_stack([lon, lat]),
                               rtol=0, atol=1e-8)
    assert out["grid"].astype(object).fillna("").tolist() == [WANT[i] for i in KEEP]


def test_a_file_in_another_projected_crs_is_reprojected(atlas, tmp_path):
    lon, lat = np.array(LON)[KEEP], np.array(LAT)[KEEP]
    gdf = gpd.GeoDataFrame({"n": range(len(KEEP))}, geometry=gpd.points_from_xy(lon, lat), crs=4490).to_crs(3857)
    src, dst = tmp_path / "in.parquet", tmp_path / "out.gpkg"
    gdf.to_parquet(src)
    locate_file(src, dst, atlas.locate_many)
    out = _read_geo(dst, "gpkg")
    np.testing.assert_allclose(shapely.get_coordinates(out.geometry.to_numpy()), np.column_stack([lon, lat]),
                               rtol=0, atol=1e-7)
    assert out["grid"].astype(object).fillna("").tolist() == [WANT[i] for i in KEEP]


# -- the columns users actually have -------------------------------------------------------------
@pytest.mark.parametrize("xname,yname", [("lng", "lat"), ("Longitude", "LATITUDE"), ("X", "y"), (" LON ", "Lat")])
def test_coordinate_column_aliases(atlas, tmp_path, xname, yname):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"name": [f"p{i}" for i in range(5)], xname: LON, yname: LAT}).to_csv(src, index=False)
    locate_file(src, dst, atlas.locate_many)
    assert pd.read_csv(dst, dtype=str, keep_default_na=False)["grid"].tolist() == WANT


def test_named_columns_and_wkt(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"east": LON, "north": LAT}).to_csv(src, index=False)
    locate_file(src, dst, atlas.locate_many, x_col="east", y_col="north")
    assert pd.read_csv(dst, dtype=str, keep_default_na=False)["grid"].tolist() == WANT
    wkt = [f"POINT ({x} {y})" for x, y in zip(LON, LAT)]
    pd.DataFrame({"id": range(5), "WKT": wkt}).to_csv(src, index=False)
    locate_file(src, dst, atlas.locate_many)
    out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    assert out["grid"].tolist() == WANT and out["WKT"].tolist() == wkt
    pd.DataFrame({"id": range(5), "where": wkt}).to_csv(src, index=False)
    locate_file(src, dst, atlas.locate_many, wkt_col="where")
    assert pd.read_csv(dst, dtype=str, keep_default_na=False)["grid"].tolist() == WANT


def test_bad_wkt_rows_are_named(atlas, tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"wkt": ["POINT (117.505 34.815)", "POINT (oops", "", "LINESTRING (0 0, 1 1)"]}).to_csv(src, index=False)
    with pytest.raises(InvalidCoordinatesError) as err:
        locate_file(src, dst, atlas.locate_many)
    reasons = [d["reason"] for d in err.value.detail]
    assert [d["row"] for d in err.value.detail] == [2, 3, 4]
    assert "is not WKT" in reasons[0] and "missing" in reasons[1] and "not a point" in reasons[2]


@pytest.mark.parametrize("columns,says", [
    ({"lon": LON, "x": LON, "lat": LAT}, r"ambiguous: several x columns \['lon', 'x'\]"),
    ({"lon": LON, "lat": LAT, "geometry": ["POINT (1 2)"] * 5}, "ambiguous: it has coordinate columns"),
    ({"lng": LON, "height": LAT}, "has the x column 'lng' but no y column"),
])
def test_ambiguous_or_half_files_are_clear_errors(atlas, tmp_path, columns, says):
    src = tmp_path / "in.csv"
    pd.DataFrame(columns).to_csv(src, index=False)
    with pytest.raises(InvalidInputError, match=says):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many)
    with pytest.raises(InvalidInputError, match="no column 'nope'"):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many, x_col="nope", y_col="lat")
    assert not (tmp_path / "out.csv").exists()


# -- typed outputs -------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The filename extension should be:RuntimeWarning")
@pytest.mark.parametrize("out_ext", ["parquet", "gpkg"])
def test_input_columns_keep_their_types_and_misses_are_null(atlas, tmp_path, out_ext):
    src, dst = tmp_path / "in.csv", tmp_path / f"out.{out_ext}"
    src.write_text("id,name,speed,ok,lon,lat\n"
                   "1,a,1.5,true,117.505,34.815\n2,,,false,117.6,34.9\n3,c,2.0,,117.515,34.805\n"
                   "4,d,3.0,true,abc,34.8\n")
    res = locate_file(src, dst, atlas.locate_many, on_invalid="mark", chunk_rows=2)
    assert (res.rows, res.located, res.outside, len(res.invalid)) == (4, 2, 1, 1)
    out = gpd.read_parquet(dst) if out_ext == "parquet" else gpd.read_file(dst)
    assert out["id"].tolist() == [1, 2, 3, 4] and out["id"].dtype.kind == "i"
    assert out["speed"].dtype.kind == "f" and np.isnan(out["speed"][1])
    assert out["lon"].dtype.kind == "f" and out["lon"][0] == 117.505 and np.isnan(out["lon"][3])
    assert out["name"].tolist()[0] == "a"
    assert out["ok"].tolist()[:2] == [True, False]
    for c in OUT_COLUMNS:  # outside (row 2) and invalid (row 4): null codes, not ''
        assert out[c].isna().tolist() == [False, True, False, True], c
    assert out["grid"].tolist()[0] == WN and out["grid"].tolist()[2] == ES
    assert out.geometry.isna().tolist() == [False, False, False, True]  # no point for the invalid row
    assert out["error"].tolist()[3].startswith("lon 'abc'")


def test_a_value_that_does_not_fit_its_inferred_type_is_a_clear_error(atlas, tmp_path, monkeypatch):
    import gis_grid.batchio as batchio
    monkeypatch.setattr(batchio, "CSV_SAMPLE_ROWS", 3)
    src = tmp_path / "in.csv"
    src.write_text("id,lon,lat\n1,117.505,34.815\n2,117.505,34.815\n3,117.505,34.815\nx9,117.505,34.815\n")
    with pytest.raises(InvalidInputError, match=r"first 3 rows \(\{'id': 'Int64'\}\)"):
        locate_file(src, tmp_path / "out.csv", atlas.locate_many, chunk_rows=2)
    assert not (tmp_path / "out.csv").exists()


def test_wkb_points_are_read_from_the_buffer_or_left_to_shapely():
    import pyarrow as pa
    from gis_grid.batchio import wkb_points
    pts = shapely.points(LON, LAT)
    x, y = wkb_points(pa.array(shapely.to_wkb(pts)))
    assert x.tolist() == LON and y.tolist() == LAT
    sliced = pa.array(shapely.to_wkb(pts)).slice(2)  # an offset into the buffer
    assert wkb_points(sliced)[0].tolist() == LON[2:]
    for odd in ([shapely.to_wkb(pts[0]), None], shapely.to_wkb(pts, byte_order=0).tolist(),
                shapely.to_wkb([shapely.Point(1, 2, 3)]).tolist(), shapely.to_wkb([shapely.Point()]).tolist(),
                shapely.to_wkb([shapely.box(0, 0, 1, 1)]).tolist()):
        assert wkb_points(pa.array(odd, pa.binary())) is None


def test_geoparquet_with_a_bad_row_reads_alike_on_both_paths(atlas, tmp_path):
    gdf = gpd.GeoDataFrame({"n": range(4)}, geometry=[shapely.Point(117.505, 34.815), None,
                                                      shapely.Point(117.515, 34.805), shapely.Point(117.6, 34.9)],
                           crs=4326)
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    gdf.to_parquet(src, row_group_size=2)
    res = locate_file(src, dst, atlas.locate_many, on_invalid="mark", chunk_rows=2)
    out = gpd.read_parquet(dst)
    assert (res.rows, res.located, len(res.invalid)) == (4, 2, 1)
    assert out["error"].tolist() == ["", "geometry is missing", "", ""]
    assert list(out.columns) == ["n", *OUT_COLUMNS, "geometry", "error"]  # the same columns from either path


# -- the Arrow route -----------------------------------------------------------------------------
TYPED_CSV = ("id,name,speed,ok,lon,lat\n"
             "1,a,1.5,true,117.505,34.815\n2,,,false,117.6,34.9\n3,\"c, d\",2.0,,117.515,34.805\n"
             "4,街,3.0,TRUE,117.5149,34.8151\n")


def _text_route(monkeypatch):
    import gis_grid.batchio as batchio

    def refuse(*a, **k):
        raise batchio._TextRoute("forced")
        yield  # a generator, as arrow_chunks is

    monkeypatch.setattr(batchio, "arrow_chunks", refuse)


@pytest.mark.parametrize("out_ext", ["csv", "parquet"])
def test_csv_read_by_pyarrow_equals_the_text_route(atlas, tmp_path, monkeypatch, out_ext):
    import gis_grid.batchio as batchio
    import pyarrow.parquet as pq
    src = tmp_path / "in.csv"
    src.write_text(TYPED_CSV, encoding="utf-8")
    texts = []
    monkeypatch.setattr(batchio, "read_chunks", lambda *a, **k: texts.append(1) or iter(()))
    fast = locate_file(src, tmp_path / f"fast.{out_ext}", atlas.locate_many, chunk_rows=2)
    assert texts == []  # pyarrow read it: the text route was never asked
    monkeypatch.undo()
    _text_route(monkeypatch)
    slow = locate_file(src, tmp_path / f"slow.{out_ext}", atlas.locate_many, chunk_rows=2)
    assert (fast.rows, fast.located, fast.outside) == (slow.rows, slow.located, slow.outside) == (4, 3, 1)
    if out_ext == "csv":  # the same bytes: types, nulls, quoting and number formatting alike
        assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
        out = pd.read_csv(tmp_path / "fast.csv", dtype=str, keep_default_na=False)
        assert out["grid"].tolist() == [WN, "", ES, EN] and out["speed"].tolist()[1] == ""
    else:
        a, b = pq.read_table(tmp_path / "fast.parquet"), pq.read_table(tmp_path / "slow.parquet")
        assert a.schema.remove_metadata() == b.schema.remove_metadata() and a.equals(b)
        assert str(a.schema.field("id").type) == "int64" and str(a.schema.field("ok").type) == "bool"
        assert a["ok"].to_pylist() == [True, False, None, True] and a["speed"].to_pylist()[1] is None
        assert a["name"].to_pylist() == ["a", "", "c, d", "街"]  # text keeps '' (not null)


@pytest.mark.filterwarnings("ignore:The filename extension should be:RuntimeWarning")
def test_code_columns_are_dictionaries_that_pandas_and_gdal_read(atlas, tmp_path):
    import pyarrow.parquet as pq
    import pyogrio
    src = tmp_path / "in.csv"
    src.write_text(TYPED_CSV, encoding="utf-8")
    locate_file(src, tmp_path / "out.parquet", atlas.locate_many)
    locate_file(src, tmp_path / "out.gpkg", atlas.locate_many)
    schema = pq.read_schema(tmp_path / "out.parquet")
    for c in OUT_COLUMNS:
        assert str(schema.field(c).type).startswith("dictionary<values=string"), c
    df = pd.read_parquet(tmp_path / "out.parquet")
    assert isinstance(df["grid"].dtype, pd.CategoricalDtype) and "" not in df["grid"].cat.categories
    assert df["grid"].isna().tolist() == [False, True, False, False] and df["grid"][0] == WN
    gdal = pyogrio.read_dataframe(tmp_path / "out.gpkg")  # GDAL: plain text fields, null outside
    assert gdal["grid"].tolist()[0] == WN and gdal["grid"].isna().tolist() == [False, True, False, False]
    assert gdal["id"].dtype.kind == "i" and gdal.crs.to_epsg() == 4490
    assert gdal.geometry.iloc[2].equals(shapely.Point(117.515, 34.805))
    if "Parquet" in pyogrio.list_drivers():
        g = pyogrio.read_dataframe(tmp_path / "out.parquet")
        assert g["grid"].astype(object).tolist()[:2] == [WN, None] and g.crs.to_epsg() == 4490


def test_arrow_arrays_are_built_from_numpy_buffers():
    import pyarrow as pa
    from gis_grid.batch_arrow import float_values, point_wkb, string_array
    good = np.array([True, False, True])
    wkb = point_wkb(np.array([117.5, 117.6]), np.array([34.8, 34.9]), good)
    assert wkb.to_pylist() == [shapely.to_wkb(shapely.Point(117.5, 34.8)), None,
                               shapely.to_wkb(shapely.Point(117.6, 34.9))]
    assert string_array(["a", "中文", ""]).to_pylist() == ["a", "中文", ""]
    assert string_array(np.array([7, 42])).to_pylist() == ["7", "42"]
    col = pa.chunked_array([pa.array([1.5, None]), pa.array([None, 3], pa.int64()).cast(pa.float64())]).slice(1)
    values, null = float_values(col)
    assert np.isnan(values[:2]).all() and values[2] == 3.0 and null.tolist() == [True, True, False]


def test_csv_blocks_are_cut_between_records_only(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from gis_grid.batch_arrow import csv_batches
    src = tmp_path / "q.csv"
    rows = [f'{i},"note {i}, with ""quotes""\nand a newline",117.5{i}' for i in range(40)]
    src.write_text("id,note,lon\n" + "\n".join(rows), encoding="utf-8")  # no newline at the end
    types = {"id": "int64", "note": "string", "lon": "double"}
    blocks = list(csv_batches(src, types, block_bytes=50))  # smaller than a record: blocks carry over
    assert len(blocks) > 5
    whole = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(column_types={"id": pa.int64()}))
    assert pa.concat_tables(blocks).equals(whole)


def test_the_written_crs_is_epsg4490_for_pyproj():
    from pyproj import CRS
    from gis_grid.batch_arrow import EPSG4490_PROJJSON
    assert CRS.from_json_dict(EPSG4490_PROJJSON) == CRS.from_epsg(4490)
    assert CRS.from_json_dict(EPSG4490_PROJJSON).to_epsg() == 4490
