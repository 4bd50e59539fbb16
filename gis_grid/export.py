"""`gis-grid export`: layers to GeoJSON, GeoPackage, GeoParquet, Shapefile or FlatGeobuf in a chosen CRS.

Every layer `gis-grid import` reads can be exported and imported back unchanged
(grids, buildings, households); households have no geometry, so they are written as an
attribute table (a GeoPackage attributes table, plain Parquet, a lone .dbf for
Shapefile, null geometries in GeoJSON).
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from . import crs as crs_mod
from . import stats
from .atlas import Atlas
from .errors import InvalidInputError
from .hierarchy import Level
from .paths import output_path
from .store.gpkg.format import VERSION as GPKG_VERSION  # 1.3, as the store: see there

_LEVEL_OF_LAYER = {"streets": Level.STREET, "communities": Level.COMMUNITY, "grids": Level.GRID}
LAYERS = ("streets", "communities", "grids", "buildings", "households")
FORMATS = ("geojson", "gpkg", "parquet", "shp", "fgb")
_DRIVERS = {"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile", "fgb": "FlatGeobuf"}


def layer_frame(store, layer: str, atlas=None) -> gpd.GeoDataFrame | pd.DataFrame:
    """A layer in EPSG:4490; households without geometry.

    Division layers carry code, name, level, parent_code and the counts of
    :data:`gis_grid.stats.FEATURE_COUNTS` (households ... open_cases; totals only), so a
    planner can style load in QGIS. ``atlas``: the store's current snapshot, read when not given.
    """
    if layer in _LEVEL_OF_LAYER:
        d = store.divisions()
        d = d[d["level"] == _LEVEL_OF_LAYER[layer].value]
        cols = ["code", "name", "level", "parent_code", "kind", "version", "valid_from", "area_m2", "geometry"]
        frame = d[cols].reset_index(drop=True)
        atlas = atlas if atlas is not None else Atlas.from_store(store)
        counts = stats.level_counts(atlas, store, _LEVEL_OF_LAYER[layer])
        frame = frame.join(counts, on="code")
        frame[list(counts.columns)] = frame[list(counts.columns)].fillna(0).astype("int64")
        return gpd.GeoDataFrame(frame, geometry="geometry", crs=4490)
    if layer == "buildings":
        return gpd.GeoDataFrame(store.buildings(), geometry="geometry", crs=4490)
    if layer == "households":
        return store.households().reset_index(drop=True)
    raise InvalidInputError(f"unknown layer {layer!r}; use {', '.join(LAYERS)}")


def reproject(gdf: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    target = crs_mod.parse_crs(crs)
    if target in (crs_mod.InputCRS.CGCS2000,):
        return gdf
    if target is crs_mod.InputCRS.CRS84:
        return gdf.set_crs(4326, allow_override=True)  # CGCS2000 = WGS84 to cm
    out = gdf.copy()
    out["geometry"] = crs_mod.transform_geoms(gdf.geometry.to_numpy(), crs_mod.InputCRS.CGCS2000, target)
    # offset systems have no EPSG code: keep the lon/lat CRS and say so in the file name/docs
    return out.set_crs(4548 if target is crs_mod.InputCRS.GK117 else 4326, allow_override=True)


def export_layer(store, layer: str, fmt: str, output, crs="EPSG:4490") -> int:
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
    output = output_path(output)
    frame = layer_frame(store, layer)
    if not isinstance(frame, gpd.GeoDataFrame):
        _write_table(frame, layer, fmt, output)
        return len(frame)
    gdf = reproject(frame, crs)
    if fmt == "geojson":  # RFC 7946 3.1.6: exterior rings counter-clockwise, holes clockwise
        gdf = gdf.set_geometry(shapely.orient_polygons(gdf.geometry.to_numpy(), exterior_cw=False), crs=gdf.crs)
    if fmt == "parquet":
        gdf.to_parquet(output)
    elif fmt == "gpkg":
        gdf.to_file(output, driver="GPKG", layer=layer, VERSION=GPKG_VERSION)
    else:
        gdf.to_file(output, driver=_DRIVERS[fmt], **({"encoding": "UTF-8"} if fmt == "shp" else {}))
    return len(gdf)


def _write_table(df: pd.DataFrame, layer: str, fmt: str, output: Path) -> None:
    import pyogrio
    if fmt == "parquet":
        df.to_parquet(output, index=False)
    elif fmt == "fgb":
        raise InvalidInputError(f"FlatGeobuf cannot hold the {layer} layer (it has no geometry); use gpkg, "
                                "parquet, geojson or shp")
    elif fmt == "geojson":
        pyogrio.write_dataframe(gpd.GeoDataFrame(df, geometry=[None] * len(df), crs=4490), output,
                                driver="GeoJSON")
    else:  # a GeoPackage attributes table; for Shapefile, GDAL writes only the .dbf
        pyogrio.write_dataframe(df, output, driver=_DRIVERS[fmt],
                                **({"layer": layer, "VERSION": GPKG_VERSION} if fmt == "gpkg" else
                                   {"encoding": "UTF-8"}))
