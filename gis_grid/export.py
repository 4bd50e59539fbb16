"""`gis-grid export`: layers to GeoJSON, GeoPackage or GeoParquet in a chosen CRS."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from . import crs as crs_mod
from .errors import InvalidInputError
from .hierarchy import Level

_LEVEL_OF_LAYER = {"streets": Level.STREET, "communities": Level.COMMUNITY, "grids": Level.GRID}


def layer_frame(store, layer: str) -> gpd.GeoDataFrame:
    """A layer as a GeoDataFrame in EPSG:4490 (grid layers carry code, name, level, parent_code)."""
    if layer in _LEVEL_OF_LAYER:
        d = store.divisions()
        d = d[d["level"] == _LEVEL_OF_LAYER[layer].value]
        cols = ["code", "name", "level", "parent_code", "kind", "version", "valid_from", "area_m2", "geometry"]
        return gpd.GeoDataFrame(d[cols].reset_index(drop=True), geometry="geometry", crs=4490)
    if layer == "buildings":
        return gpd.GeoDataFrame(store.buildings(), geometry="geometry", crs=4490)
    raise InvalidInputError(f"unknown layer {layer!r}; use streets, communities, grids or buildings")


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
    gdf = reproject(layer_frame(store, layer), crs)
    output = Path(output)
    if fmt == "geojson":
        gdf.to_file(output, driver="GeoJSON")
    elif fmt == "gpkg":
        gdf.to_file(output, driver="GPKG", layer=layer)
    elif fmt == "parquet":
        gdf.to_parquet(output)
    else:
        raise InvalidInputError(f"unknown format {fmt!r}; use geojson, gpkg or parquet")
    return len(gdf)
