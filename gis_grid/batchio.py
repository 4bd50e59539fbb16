"""Batch location of point files: CSV, GeoJSON, GeoParquet, GeoPackage.

Input is streamed in chunks (CSV and GeoParquet) so memory stays bounded;
output is written to a temporary file and renamed only when the whole job
succeeds, so a failed run never leaves a half-written result.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import shapely

from . import crs as crs_mod
from .errors import InvalidCoordinatesError, InvalidInputError
from .paths import output_path

OUT_COLUMNS = ("district", "street", "community", "grid", "building")
CHUNK_ROWS = 500_000
_FORMATS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson", ".parquet": "parquet",
            ".geoparquet": "parquet", ".gpkg": "gpkg"}


def file_format(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in _FORMATS:
        raise InvalidInputError(f"cannot tell the format of {path}: use .csv, .geojson, .parquet or .gpkg")
    return _FORMATS[ext]


MAX_REPORTED_INVALID = 1000


@dataclass
class BatchResult:
    rows: int = 0
    located: int = 0
    outside: int = 0
    invalid: list[dict] = field(default_factory=list)

    def count(self, reasons: np.ndarray) -> None:
        """Account for the next chunk's rows and remember (the first 1000) invalid ones."""
        for i in np.flatnonzero(reasons != ""):
            if len(self.invalid) >= MAX_REPORTED_INVALID:
                break
            self.invalid.append({"row": self.rows + int(i) + 1, "reason": reasons[i]})
        self.rows += len(reasons)

    def tally(self, out: pd.DataFrame, reasons: np.ndarray) -> None:
        found = (out["grid"] != "").to_numpy()
        self.located += int(found.sum())
        self.outside += int(((reasons == "") & ~found).sum())


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (frame, x, y, reasons) per chunk; reasons explain unparsable rows."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input file {path} does not exist")
    fmt = file_format(path)
    try:
        if fmt == "csv":
            reader = pd.read_csv(path, chunksize=chunk_rows, dtype=str, keep_default_na=False)
            for df in reader:
                yield (df, *parse_chunk(df, "csv", None, path.name))
        elif fmt == "parquet":
            import pyarrow.parquet as pq
            # pre_buffer=False: with it, iter_batches keeps ~20 MB per 1M rows read (RSS grew with the file)
            pf = pq.ParquetFile(path, pre_buffer=False)
            geo = parquet_geo(pf.schema_arrow.metadata)
            # iter_batches decodes one row group at a time: memory is bounded by the
            # file's row-group size (GeoParquet writers default to <= 1M rows)
            for batch in pf.iter_batches(batch_size=chunk_rows):
                df = batch.to_pandas()
                yield (df, *parse_chunk(df, "parquet", geo, path.name))
        else:
            import pyogrio
            df = pyogrio.read_dataframe(path)
            if df.crs is not None and df.crs.to_epsg() not in (4326, 4490, None):
                df = df.to_crs(4490)
            geoms = df.geometry.to_numpy()
            df = pd.DataFrame(df.drop(columns=df.geometry.name)).assign(geometry=geoms)
            yield (df, *_xy_from_frame(df, "geometry", path.name))
    except InvalidInputError:
        raise
    except Exception as exc:  # pyogrio/pyarrow/pandas parse errors: the file is the problem
        raise InvalidInputError(f"cannot read {path.name} as {fmt}: {exc}") from exc


def parquet_geo(metadata) -> dict:
    """The GeoParquet ``geo`` metadata of a schema ({} when absent)."""
    return json.loads((metadata or {}).get(b"geo", b"{}") or "{}")


def parse_chunk(df: pd.DataFrame, fmt: str, geo: dict | None, name: str):
    """(x, y, reasons) of one raw CSV or GeoParquet chunk; decodes WKB geometry in place.

    Shared by the streaming reader and the Dask partitions, so both parse identically.
    """
    if fmt == "csv":
        missing = {"lon", "lat"} - set(df.columns)
        if missing:
            raise InvalidInputError(f"{name} has no {' and '.join(sorted(missing))} column; "
                                    f"it has {list(df.columns)}. Name the columns lon and lat.")
        return _parse_numbers(df["lon"], df["lat"])
    col = (geo or {}).get("primary_column")
    if col in df.columns:  # WKB -> shapely, so every output format can write it
        df[col] = shapely.from_wkb(df[col].to_numpy())
    return _xy_from_frame(df, col, name)


def _parse_numbers(lon: pd.Series, lat: pd.Series):
    x = pd.to_numeric(lon, errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(lat, errors="coerce").to_numpy(dtype=float)
    bad_x = np.isnan(x) & ~lon.str.strip().str.lower().isin(["nan"]).to_numpy()
    bad_y = np.isnan(y) & ~lat.str.strip().str.lower().isin(["nan"]).to_numpy()
    reasons = np.full(len(x), "", dtype=object)
    reasons[bad_x] = [f"lon {v!r} is not a number" for v in lon[bad_x]]
    reasons[bad_y & ~bad_x] = [f"lat {v!r} is not a number" for v in lat[bad_y & ~bad_x]]
    return x, y, reasons


def _xy_from_frame(df: pd.DataFrame, geom_col, name: str):
    if geom_col and geom_col in df.columns:
        geoms = df[geom_col].to_numpy()
        if len(geoms) and isinstance(geoms[0], (bytes, bytearray)):
            geoms = shapely.from_wkb(geoms)
        kinds = shapely.get_type_id(geoms)
        reasons = np.where(kinds == 0, "", "geometry is not a point").astype(object)
        reasons[pd.isna(geoms)] = "geometry is missing"
        pts = np.where(kinds == 0, geoms, None)
        x = np.where(kinds == 0, shapely.get_x(pts), np.nan)
        y = np.where(kinds == 0, shapely.get_y(pts), np.nan)
        return x, y, reasons
    if {"lon", "lat"} <= set(df.columns):
        return _parse_numbers(df["lon"].astype(str), df["lat"].astype(str))
    raise InvalidInputError(f"{name} has neither point geometry nor lon/lat columns")


def locate_file(src, dst, locate: Callable[[np.ndarray, np.ndarray], pd.DataFrame], crs=None,
                on_invalid: str = "fail", progress=None, chunk_rows: int = CHUNK_ROWS) -> BatchResult:
    """Locate every point of ``src`` into ``dst`` (formats from the extensions).

    ``locate(lon, lat)`` takes storage-CRS arrays and returns the code columns.
    With ``on_invalid='fail'`` any invalid row aborts the job (nothing written)
    and raises :class:`InvalidCoordinatesError` naming the rows; with 'mark'
    those rows are written with empty codes and an ``error`` column.
    """
    if on_invalid not in ("fail", "mark"):
        raise InvalidInputError("on_invalid must be 'fail' or 'mark'")
    in_crs = crs_mod.parse_crs(crs)
    dst = output_path(dst)
    out_fmt = file_format(dst)
    tmp = dst.with_name(f".{dst.name}.partial")
    result = BatchResult()
    writer = _Writer(tmp, out_fmt)
    try:
        for df, x, y, reasons in read_chunks(src, chunk_rows):
            reasons = check_chunk(x, y, reasons, in_crs)
            result.count(reasons)
            if not (result.invalid and on_invalid == "fail"):  # once failing, only scan on
                out = locate_chunk(df, x, y, reasons, locate, in_crs, mark=on_invalid == "mark")
                result.tally(out, reasons)
                writer.write(out)
            if progress is not None:
                progress.update(len(df))
        finish(result, on_invalid, src, writer, dst)
        return result
    finally:
        writer.abort()


def check_chunk(x, y, reasons: np.ndarray, in_crs) -> np.ndarray:
    """Parse reasons completed with the coordinate checks ('' = valid row)."""
    check = crs_mod.check_coordinates(x, y, in_crs)
    return np.where(reasons == "", check, reasons)


def locate_chunk(df: pd.DataFrame, x, y, reasons: np.ndarray, locate, in_crs, mark: bool) -> pd.DataFrame:
    """The output rows of one chunk: its columns plus the codes ('' for invalid rows)."""
    codes = pd.DataFrame({c: np.full(len(df), "", dtype=object) for c in OUT_COLUMNS})
    good = reasons == ""
    if good.any():
        lon, lat = crs_mod.to_storage(x[good], y[good], in_crs)
        found = locate(np.atleast_1d(lon), np.atleast_1d(lat))
        for c in OUT_COLUMNS:
            codes.loc[good, c] = found[c].to_numpy()
    out = df.reset_index(drop=True).drop(columns=[c for c in OUT_COLUMNS if c in df.columns])
    out = pd.concat([out, codes], axis=1)
    if mark:
        out["error"] = reasons
    return out


def finish(result: BatchResult, on_invalid: str, src, writer: "_Writer", dst: Path) -> None:
    """Raise for invalid rows in 'fail' mode, else publish the output in one rename."""
    if result.invalid and on_invalid == "fail":
        first = "; ".join(f"row {r['row']}: {r['reason']}" for r in result.invalid[:5])
        raise InvalidCoordinatesError(
            f"{len(result.invalid)} invalid row(s) in {Path(src).name} (rows counted from 1, "
            f"header excluded): {first}. Fix them or pass --on-invalid mark.", detail=result.invalid)
    writer.close()
    os.replace(writer.path, dst)


class _Writer:
    """Appends chunks to CSV/GeoParquet, or collects them for GeoJSON/GeoPackage."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self._pq = None
        self._frames: list[pd.DataFrame] = []
        self._first = True
        self.closed = False

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt == "csv":
            df = df.drop(columns=["geometry"], errors="ignore")
            df.to_csv(self.path, mode="w" if self._first else "a", header=self._first, index=False)
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(_with_wkb(df), preserve_index=False)
            if self._pq is None:
                meta = dict(table.schema.metadata or {})
                meta[b"geo"] = json.dumps(_geo_metadata()).encode()
                table = table.replace_schema_metadata(meta)
                self._pq = pq.ParquetWriter(self.path, table.schema)
            self._pq.write_table(table.replace_schema_metadata(self._pq.schema.metadata))
        else:
            self._frames.append(df)
        self._first = False

    def close(self) -> None:
        if self.fmt == "parquet" and self._pq is not None:
            self._pq.close()
        elif self.fmt in ("geojson", "gpkg"):
            import geopandas as gpd
            df = pd.concat(self._frames, ignore_index=True) if self._frames else pd.DataFrame()
            if "geometry" not in df.columns:
                df["geometry"] = shapely.points(pd.to_numeric(df["lon"]), pd.to_numeric(df["lat"]))
            gdf = gpd.GeoDataFrame(df, geometry="geometry", crs=4490)
            if self.fmt == "geojson":
                gdf.to_file(self.path, driver="GeoJSON")
            else:  # name the layer after the final file, not the temporary one
                stem = Path(self.path.name.removeprefix(".").removesuffix(".partial")).stem
                gdf.to_file(self.path, driver="GPKG", layer=re.sub(r"\W", "_", stem, flags=re.ASCII) or "points")
        elif self._first and self.fmt == "csv":
            pd.DataFrame(columns=list(OUT_COLUMNS)).to_csv(self.path, index=False)
        self.closed = True

    def abort(self) -> None:
        if not self.closed:
            if self._pq is not None:
                self._pq.close()
            self.path.unlink(missing_ok=True)


def _with_wkb(df: pd.DataFrame) -> pd.DataFrame:
    if "geometry" in df.columns:
        return df.assign(geometry=shapely.to_wkb(df["geometry"].to_numpy()))
    return df.assign(geometry=shapely.to_wkb(shapely.points(pd.to_numeric(df["lon"]), pd.to_numeric(df["lat"]))))


def _geo_metadata() -> dict:
    from pyproj import CRS
    return {"version": "1.0.0", "primary_column": "geometry",
            "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"],
                                     "crs": CRS.from_epsg(4490).to_json_dict()}}}
