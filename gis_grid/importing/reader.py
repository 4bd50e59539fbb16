"""Reading a district's file: format by content, the layer inside it, and its CRS.

Everything returned is in the storage CRS (EPSG:4490, lon/lat). The CRS a file
declares is trusted only if it can be identified; web-map offset systems (GCJ-02,
BD-09) have no EPSG code, so files in them declare WGS84 and need ``--crs``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from .. import crs as crs_mod
from ..errors import InvalidInputError, UnknownCRSError

# first bytes of each container; extensions lie more often than headers
_MAGIC = ((b"SQLite format 3\x00", "gpkg"), (b"PAR1", "parquet"), (b"fgb\x03", "fgb"),
          (b"\x00\x00\x27\x0a", "shp"))
_EXT = {".gpkg": "gpkg", ".parquet": "parquet", ".geoparquet": "parquet", ".shp": "shp", ".dbf": "shp",
        ".geojson": "geojson", ".json": "geojson", ".fgb": "fgb", ".csv": "csv"}
FORMAT_NAMES = {"gpkg": "GeoPackage", "parquet": "GeoParquet", "shp": "Shapefile", "geojson": "GeoJSON",
                "fgb": "FlatGeobuf", "csv": "CSV"}
_KNOWN_EPSG = {4326: crs_mod.InputCRS.CRS84, 4490: crs_mod.InputCRS.CGCS2000, 4548: crs_mod.InputCRS.GK117}
_LONLAT = (crs_mod.InputCRS.CRS84, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GCJ02, crs_mod.InputCRS.BD09)


class ImportFileError(InvalidInputError):
    """The file cannot be read as a layer: unreadable, ambiguous, without a usable CRS."""


@dataclass
class SourceFrame:
    frame: pd.DataFrame          # attribute columns as read, plus ``geometry`` (storage CRS) when present
    path: Path
    fmt: str
    src_layer: str | None
    source_crs: str | None       # what the coordinates were taken to be in, for the summary
    coordinate_problems: np.ndarray  # per row: "" or why its coordinates are implausible


def detect_format(path: Path) -> str:
    if path.suffix.lower() == ".dbf":  # an attribute-only Shapefile has no .shp header to sniff
        return "shp"
    with open(path, "rb") as f:
        head = f.read(64)
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "geojson"
    fmt = _EXT.get(path.suffix.lower())
    if fmt in ("csv",):
        return fmt
    raise ImportFileError(f"cannot tell what {path.name} is: it is not a GeoPackage, GeoParquet, Shapefile, "
                          "GeoJSON or FlatGeobuf file (nor a CSV by name)")


def _resolve_path(path: Path) -> Path:
    if path.exists():
        return path
    # an attribute-only layer exported "as Shapefile" is a lone .dbf
    if path.suffix.lower() == ".shp" and path.with_suffix(".dbf").exists():
        return path.with_suffix(".dbf")
    raise ImportFileError(f"input file {path} does not exist")


def _choose_layer(path: Path, wanted: str | None, target_layer: str) -> str | None:
    import pyogrio
    layers = [str(n) for n, _ in pyogrio.list_layers(path)]
    if wanted is not None:
        if wanted not in layers:
            raise ImportFileError(f"{path.name} has no layer {wanted!r}; its layers are {layers}")
        return wanted
    if len(layers) == 1:
        return layers[0]
    if target_layer in layers:
        return target_layer
    raise ImportFileError(f"{path.name} holds {len(layers)} layers {layers}: name the one to import "
                          "with --src-layer")


def read_source(path, target_layer: str, *, src_layer: str | None = None, crs=None) -> SourceFrame:
    path = _resolve_path(Path(path))
    fmt = detect_format(path)
    if src_layer is not None and fmt != "gpkg":
        raise ImportFileError(f"--src-layer applies to GeoPackage files; {path.name} is {FORMAT_NAMES[fmt]}")
    layer, undeclared = None, False
    try:
        if fmt == "parquet":
            df, file_crs = _read_parquet(path)
        else:
            import pyogrio
            layer = _choose_layer(path, src_layer, target_layer) if fmt == "gpkg" else None
            df = pyogrio.read_dataframe(path, layer=layer)
            file_crs = getattr(df, "crs", None)
            # GDAL labels a GeoJSON without a "crs" member WGS84 (RFC 7946); that label is a
            # default, not a declaration, so --crs may override it
            undeclared = fmt == "geojson" and not _geojson_declares_crs(path)
            if undeclared and crs:
                file_crs = None
    except ImportFileError:
        raise
    except Exception as exc:  # GDAL/pyarrow parse errors: the file is the problem
        raise ImportFileError(f"cannot read {path.name} as {FORMAT_NAMES[fmt]}: {exc}") from exc
    geom_name = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    frame = pd.DataFrame(df.drop(columns=[geom_name])) if geom_name else pd.DataFrame(df)
    problems = np.full(len(frame), "", dtype=object)
    source = None
    if geom_name:
        geoms = np.asarray(df.geometry.to_numpy(), dtype=object)
        if not all(g is None for g in geoms):
            src = source_crs(file_crs, crs, path)
            geoms, problems = to_storage(geoms, src)
            if fmt == "geojson" and not crs and (problems != "").any() and undeclared:
                hint = (" (the file has no \"crs\" member, so it was read as WGS84 lon/lat: "
                        "pass --crs, e.g. --crs EPSG:4548, if its coordinates are in another CRS)")
                problems = np.array([p + hint if p else p for p in problems], dtype=object)
            source = str(src) if isinstance(src, crs_mod.InputCRS) else src.to_string()
        frame["geometry"] = geoms
    return SourceFrame(frame.reset_index(drop=True), path, fmt, layer, source, problems)


def _geojson_declares_crs(path: Path) -> bool:
    import json
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return True  # unreadable here: leave the CRS to GDAL's reading
    return isinstance(doc, dict) and doc.get("crs") is not None


def _read_parquet(path: Path):
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata or {}
    if b"geo" in meta:
        gdf = gpd.read_parquet(path)
        return gdf, gdf.crs
    return pd.read_parquet(path), None  # plain Parquet: an attribute table


def _identify(file_crs) -> crs_mod.InputCRS | CRS | None:
    """The file's CRS as one crs.py handles, else as any EPSG CRS pyproj can transform; None if unidentifiable."""
    c = CRS.from_user_input(file_crs)
    if c.to_authority() == ("OGC", "CRS84"):
        return crs_mod.InputCRS.CRS84
    epsg = c.to_epsg(min_confidence=70)  # Shapefile .prj WKT carries no authority code
    if epsg in _KNOWN_EPSG:
        return _KNOWN_EPSG[epsg]
    if epsg is not None:
        return CRS.from_epsg(epsg)
    return None


def source_crs(file_crs, given, path: Path):
    """What the file's coordinates are in, from the file's CRS and ``--crs``."""
    given = crs_mod.parse_crs(given) if given else None
    if file_crs is None:
        if given is None:
            raise ImportFileError(f"{path.name} declares no CRS: pass --crs (EPSG:4490, EPSG:4326, EPSG:4548, "
                                  "gcj02 or bd09) to say what its coordinates are in")
        return given
    found = _identify(file_crs)
    name = CRS.from_user_input(file_crs).name
    if found is None:
        if given is not None:  # the operator vouches for the coordinates
            return given
        raise UnknownCRSError(f"{path.name} is in a CRS gis_grid cannot identify ({name!r}, no EPSG code): "
                              "reproject it first (ogr2ogr -t_srs EPSG:4490 ...) or pass --crs if its "
                              "coordinates are in EPSG:4490, EPSG:4326, EPSG:4548, gcj02 or bd09")
    if given is None or given is found:
        return found
    # GCJ-02/BD-09 data is labelled WGS84 in files (there is no code for them): --crs says what it really is
    if found in _LONLAT and given in _LONLAT:
        return given
    shown = str(found) if isinstance(found, crs_mod.InputCRS) else f"EPSG:{found.to_epsg()}"
    raise ImportFileError(f"{path.name} declares {shown} ({name}) but --crs says {given}: drop --crs, or fix "
                          "the file's CRS")


def to_storage(geoms: np.ndarray, src) -> tuple[np.ndarray, np.ndarray]:
    """Geometries in ``src`` -> EPSG:4490, with a per-geometry reason when a coordinate is implausible."""
    present = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    problems = np.full(len(geoms), "", dtype=object)
    if not present.any():
        return geoms, problems
    g = shapely.force_2d(geoms[present])
    xy, idx = shapely.get_coordinates(g, return_index=True)
    if isinstance(src, crs_mod.InputCRS):
        _first_problem(problems, present, idx, crs_mod.check_coordinates(xy[:, 0], xy[:, 1], src), f"{src}: ")
        out = crs_mod.transform_geoms(g, src, crs_mod.InputCRS.CGCS2000)
    else:
        tr = Transformer.from_crs(src, crs_mod.STORAGE_EPSG, always_xy=True)
        out = shapely.transform(g, lambda a: np.column_stack(tr.transform(a[:, 0], a[:, 1])))
    sxy, sidx = shapely.get_coordinates(out, return_index=True)
    reasons = crs_mod.check_coordinates(sxy[:, 0], sxy[:, 1], crs_mod.InputCRS.CGCS2000)
    _first_problem(problems, present, sidx, reasons, "after reprojection to EPSG:4490: ")
    result = np.array(geoms, dtype=object)
    result[present] = out
    return result, problems


def _first_problem(problems, present, idx, reasons, prefix):
    """Keep the first implausible vertex of each feature that has no problem recorded yet."""
    bad = np.flatnonzero(reasons != "")
    if not bad.size:
        return
    rows = np.flatnonzero(present)[idx[bad]]
    _, first = np.unique(rows, return_index=True)  # coordinates come grouped by feature, in order
    for k in first:
        if problems[rows[k]] == "":
            problems[rows[k]] = prefix + str(reasons[bad[k]])


def describe(source: SourceFrame) -> dict:
    return {"file": source.path.name, "format": FORMAT_NAMES[source.fmt], "src_layer": source.src_layer,
            "source_crs": source.source_crs}


__all__ = ["ImportFileError", "SourceFrame", "read_source", "detect_format", "source_crs", "to_storage",
           "describe"]
