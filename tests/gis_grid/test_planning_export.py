"""Plan exports: GeoPackage and GeoJSON layers that GDAL reads back, and the assignment CSV."""
from __future__ import annotations

import io
import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from common import X0, XM, Y0, Y1, make_toy_store
from gis_grid.atlas import Atlas
from gis_grid.errors import InvalidInputError
from gis_grid.planning.export import assignment, export_plan
from gis_grid.planning.workflow import create_plan

WEST = "370402001001"


@pytest.fixture
def planned(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    atlas = Atlas.from_store(store)
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}
        for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
    plan, _ = create_plan(store, atlas, WEST, fc)
    yield atlas, store, plan
    store.close()


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_grids_export_reads_back(planned, tmp_path, fmt):
    atlas, store, plan = planned
    path = tmp_path / f"p.{fmt}"
    path.write_bytes(export_plan(atlas, store, plan, fmt))
    gdf = gpd.read_file(path)
    assert sorted(gdf["code"]) == [WEST + "001", WEST + "003"]
    assert gdf.set_index("code").loc[WEST + "001", "households"] == 3
    assert gdf.crs.to_epsg() in (4490, 4326)
    assert gdf.geometry.union_all().equals_exact(shapely.box(X0, Y0, XM, Y1), 1e-9) or \
        gdf.geometry.union_all().symmetric_difference(shapely.box(X0, Y0, XM, Y1)).area < 1e-12


def test_assignment_csv(planned):
    atlas, store, plan = planned
    df = pd.read_csv(io.BytesIO(export_plan(atlas, store, plan, "csv")), dtype=str)
    assert list(df.columns) == ["building_id", "grid_code", "current_grid_code"]
    assert df.set_index("building_id")["grid_code"].to_dict() == {"1": WEST + "001", "2": WEST + "001"}
    assert df.set_index("building_id")["current_grid_code"].to_dict() == {"1": WEST + "001", "2": WEST + "002"}
    assert len(assignment(atlas, store, plan)) == 2


def test_unknown_format(planned):
    atlas, store, plan = planned
    with pytest.raises(InvalidInputError):
        export_plan(atlas, store, plan, "shp")
