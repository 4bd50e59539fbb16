"""Atlas on the toy district: locate with every input CRS, who lives here, drawn-polygon checks."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from common import XM, X0, X1, Y0, Y1, YM, make_toy_store
from gis_grid import crs
from gis_grid.atlas import Atlas, check_polygon
from gis_grid.errors import (InvalidCoordinatesError, InvalidGeometryError, InvalidInputError,
                             LimitExceededError, NotFoundError, UnknownCRSError)

WN, WS, EN, ES = "370402001001001", "370402001001002", "370402002001001", "370402002001002"


@pytest.fixture(scope="module")
def atlas(store_backend, tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("toy") / "toy.gpkg")
    try:
        yield Atlas.from_store(store)
    finally:
        store.close()


def test_locate_one_hierarchy(atlas):
    r = atlas.locate_one(117.505, 34.805)
    assert not r.outside
    assert r.district == ("370402", "市中区")
    assert r.street == ("370402001", "西街道")
    assert r.community == ("370402001001", "西社区居委会")
    assert r.grid == (WS, "西第2网格")
    assert r.building == {"id": 2, "name": "2号楼", "kind": "residential_block"}
    assert atlas.locate_one(117.5065, 34.8065).building is None          # in the grid, not in a building
    assert atlas.locate_one(117.5065, 34.8065, with_building=False).grid[0] == WS
    out = atlas.locate_one(117.6, 34.9)
    assert out.outside and out.grid is None and out.to_dict()["grid"] is None
    assert atlas.locate_one(XM, YM).grid[0] == WN                        # tie: lowest code
    assert atlas.locate_one(X1, Y0).grid[0] == ES                        # outer corner is inside


def test_locate_many_columns_and_outside(atlas):
    lon = np.array([117.505, 117.515, XM, 117.6])
    lat = np.array([34.815, 34.805, 34.805, 34.9])
    df = atlas.locate_many(lon, lat)
    assert list(df.columns) == ["district", "street", "community", "grid", "building"]
    assert df["grid"].tolist() == [WN, ES, WS, ""]
    assert df["street"].tolist() == ["370402001", "370402002", "370402001", ""]
    assert df["building"].tolist() == ["1", "4", "", ""]
    assert "building" not in atlas.locate_many(lon, lat, with_building=False).columns


# one location given in each accepted input CRS must land in the same grid
@pytest.mark.parametrize("name", ["EPSG:4326", "EPSG:4490", "EPSG:4548", "gcj02", "bd09", "CRS84", "4548"])
@pytest.mark.parametrize("lon,lat,want", [(117.5051, 34.8049, WS), (117.5149, 34.8151, EN),
                                          (117.5101, 34.8151, EN), (117.5099, 34.8049, WS)])
def test_same_location_in_every_crs(atlas, name, lon, lat, want):
    x, y = crs.from_storage(np.array([lon]), np.array([lat]), name)
    if crs.parse_crs(name).is_offset:
        assert abs(float(x[0]) - lon) > 1e-4   # the offset systems really move the point
    df = atlas.locate_points(x, y, name)
    assert df["grid"].tolist() == [want]


@pytest.mark.parametrize("x,y,crs_name,match", [
    (np.nan, 34.81, "EPSG:4326", "NaN"),
    (117.51, np.inf, "EPSG:4490", "NaN or infinite"),
    (190.0, 34.81, "EPSG:4326", "out of range"),
    (34.81, 117.51, "EPSG:4326", "swapped"),
    (3852000.0, 550000.0, "EPSG:4548", "swapped"),
    (117.51, 34.81, "EPSG:4548", "degrees"),
])
def test_bad_coordinates_raise(atlas, x, y, crs_name, match):
    with pytest.raises(InvalidCoordinatesError, match=match) as err:
        gx, gy = crs.from_storage(117.505, 34.805, crs_name)   # a good first row in that CRS
        atlas.locate_points([float(gx), x], [float(gy), y], crs_name)
    assert err.value.detail[0]["row"] == 1   # the good first row is not blamed


def test_unknown_crs(atlas):
    with pytest.raises(UnknownCRSError, match="unknown CRS 'EPSG:3857'"):
        atlas.locate_points([117.505], [34.805], "EPSG:3857")
    with pytest.raises(InvalidInputError):
        atlas.locate_points([117.505], [34.805], "wgs-85")


def test_households_in_every_level(atlas):
    assert sorted(atlas.households_in(WN)["id"]) == ["Ha1", "Hb2"]
    assert atlas.households_in(WS)["id"].tolist() == ["Hc3"]
    assert sorted(atlas.households_in("370402001001")["id"]) == ["Ha1", "Hb2", "Hc3"]
    assert sorted(atlas.households_in("370402002")["id"]) == ["Hd4", "He5"]
    assert sorted(atlas.households_in("370402")["id"]) == ["Ha1", "Hb2", "Hc3", "Hd4", "He5"]
    assert sorted(atlas.household_ids_in("370402002001")) == ["Hd4", "He5"]
    df = atlas.households_in(EN)
    assert df["grid_code"].tolist() == [EN]
    assert not any(c.startswith("_") for c in df.columns)   # internal columns hidden
    with pytest.raises(NotFoundError):
        atlas.households_in("370402003")
    with pytest.raises(InvalidInputError):
        atlas.households_in("37040")


def test_households_in_building(atlas):
    assert sorted(atlas.households_in_building(1)["id"]) == ["Ha1", "Hb2"]
    assert atlas.households_in_building(4)["id"].tolist() == ["He5"]
    with pytest.raises(NotFoundError, match="no building"):
        atlas.households_in_building(99)
    with pytest.raises(NotFoundError):
        atlas.households_in_building("abc")


def test_households_in_polygon(atlas):
    # covers buildings 1 and 3 (the northern row) but not 2 and 4
    north = shapely.box(117.50, 34.812, 117.52, 34.818)
    assert sorted(atlas.households_in_polygon(north)["id"]) == ["Ha1", "Hb2", "Hd4"]
    # a MultiPolygon over buildings 2 and 4
    south = shapely.MultiPolygon([shapely.box(117.504, 34.804, 117.506, 34.806),
                                  shapely.box(117.514, 34.804, 117.516, 34.806)])
    assert sorted(atlas.households_in_polygon(south)["id"]) == ["Hc3", "He5"]
    # nothing there
    assert atlas.households_in_polygon(shapely.box(117.507, 34.807, 117.508, 34.808)).empty
    assert len(atlas.household_rows_in_polygon(shapely.box(X0, Y0, X1, Y1))) == 5


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_polygon_errors(atlas):
    bowtie = shapely.Polygon([(117.50, 34.80), (117.52, 34.82), (117.52, 34.80), (117.50, 34.82)])
    with pytest.raises(InvalidGeometryError, match="Self-intersection") as err:
        atlas.households_in_polygon(bowtie)
    assert "Self-intersection" in err.value.detail["reason"]
    with pytest.raises(InvalidGeometryError, match="empty"):
        atlas.households_in_polygon(shapely.Polygon())
    with pytest.raises(InvalidGeometryError, match="3D"):
        atlas.households_in_polygon(shapely.Polygon([(117.50, 34.80, 1), (117.52, 34.80, 1), (117.52, 34.82, 1)]))
    with pytest.raises(InvalidGeometryError, match="Polygon"):
        atlas.households_in_polygon(shapely.Point(117.51, 34.81))
    circle = shapely.Point(117.51, 34.81).buffer(0.005, quad_segs=3000)
    assert shapely.get_num_coordinates(circle) > 10_000
    with pytest.raises(LimitExceededError, match="limit is 10000"):
        atlas.households_in_polygon(circle)
    assert check_polygon(circle, max_vertices=20_000) is circle
    with pytest.raises(InvalidGeometryError, match="NaN"):
        check_polygon(shapely.Polygon([(117.50, 34.80), (np.nan, 34.80), (117.52, 34.82)]))
