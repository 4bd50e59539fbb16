"""Batch location of point files: CSV, GeoJSON, GeoParquet, GeoPackage.

Input is streamed in chunks (CSV and GeoParquet) so memory stays bounded;
output is written to a temporary file and renamed only when the whole job
succeeds, so a failed run never leaves a half-written result.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import shapely

from . import crs as crs_mod
from .batch_arrow import (TableWriter, code_columns, csv_batches, csv_sample_types, float_values, numeric_array,
                          point_wkb, string_array)
from .batch_arrow import geo_metadata as _geo_metadata  # noqa: F401  (bench/ writes its inputs with it)
from .errors import InvalidCoordinatesError, InvalidInputError
from .paths import output_path

# pandas is imported only where a route needs it: a CSV or GeoParquet job runs on Arrow alone

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
        for i in np.flatnonzero(reasons != "")[:MAX_REPORTED_INVALID - len(self.invalid)]:
            if len(self.invalid) >= MAX_REPORTED_INVALID:
                break
            self.invalid.append({"row": self.rows + int(i) + 1, "reason": reasons[i]})
        self.rows += len(reasons)

    def tally(self, out, reasons: np.ndarray) -> None:
        located = len(out) - out.column("grid").null_count
        self.located += located
        self.outside += int((reasons == "").sum()) - located


X_NAMES = ("lon", "lng", "longitude", "x")
Y_NAMES = ("lat", "latitude", "y")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom")
CSV_SAMPLE_ROWS = 10_000  # column types are inferred from these rows, then held for the whole file
_CRS_OF_EPSG = {4326: crs_mod.InputCRS.CRS84, 4490: crs_mod.InputCRS.CGCS2000, 4548: crs_mod.InputCRS.GK117}


@dataclass(frozen=True)
class InputSpec:
    """How to read a point file, settled once from its header or metadata.

    The streaming reader and the Dask partitions both parse with it, so they agree
    on columns, types and CRS whatever part of the file each one sees.
    """

    fmt: str
    crs: crs_mod.InputCRS                 # the CRS of the coordinates handed to the locate step
    x_col: str | None = None              # numeric coordinate columns ...
    y_col: str | None = None
    wkt_col: str | None = None            # ... or a WKT (or WKB) text column ...
    geom_col: str | None = None           # ... or the file's own geometry (GeoParquet, GPKG, GeoJSON)
    source_epsg: int | None = None        # a declared CRS we reproject from with PROJ (to EPSG:4490)
    csv_types: dict | None = None         # column -> int64/double/bool/string, coordinates as read

    @property
    def csv_dtypes(self) -> dict:
        """The same column types for pandas (nullable, so a later blank stays null).

        Coordinates are text there: the text route parses them itself and names a bad one.
        """
        return {c: str if t == "string" or c in self._coordinates else
                {"int64": "Int64", "bool": "boolean", "double": "float64"}[t] for c, t in self.csv_types.items()}

    @property
    def csv_na(self) -> dict:
        return {c: [""] for c, t in self.csv_types.items() if t != "string" and c not in self._coordinates}

    @property
    def _coordinates(self) -> tuple:
        return (self.x_col, self.y_col, self.wkt_col)

    @property
    def out_geometry(self) -> str:
        """Name of the output geometry column: the input's own, else ``geometry``."""
        return self.geom_col or "geometry"


def _resolve_crs(declared, given, name: str):
    """The input CRS from what the file declares and what the caller says.

    ``declared`` is an InputCRS, an EPSG code we reproject from, or None (nothing declared).
    """
    if given is None:
        if isinstance(declared, int):
            return crs_mod.InputCRS.CGCS2000, declared
        return declared or crs_mod.InputCRS.CRS84, None
    g = crs_mod.parse_crs(given)
    if declared is None or declared is g:
        return g, None
    # offset web-map data is routinely labelled WGS84: the caller knows better
    if g.is_offset and declared in (crs_mod.InputCRS.CRS84, crs_mod.InputCRS.CGCS2000):
        return g, None
    said = f"EPSG:{declared}" if isinstance(declared, int) else str(declared)
    raise InvalidInputError(f"{name} declares its CRS as {said} but --crs says {g}; drop --crs to use the "
                            "file's own CRS (--crs gcj02/bd09 is accepted for offset data labelled WGS84)")


def _declared(crs_obj):
    """An InputCRS for the CRSs we know, else the EPSG code to reproject from (None: not declared)."""
    if crs_obj is None:
        return None
    from pyproj import CRS
    c = CRS.from_user_input(crs_obj)
    epsg = c.to_epsg()
    if epsg is None:
        if c.to_json_dict().get("id", {}).get("code") == "CRS84" or c.name in ("WGS 84 (CRS84)",):
            return crs_mod.InputCRS.CRS84
        raise InvalidInputError(f"the file's CRS {c.name!r} has no EPSG code; reproject it to EPSG:4490 first")
    return _CRS_OF_EPSG.get(epsg, epsg)


def _find(columns, wanted: str, name: str) -> str:
    if wanted in columns:
        return wanted
    same = [c for c in columns if str(c).lower() == wanted.lower()]
    if len(same) == 1:
        return same[0]
    raise InvalidInputError(f"{name} has no column {wanted!r}; it has {list(columns)}")


def pick_columns(columns, name: str, x_col=None, y_col=None, wkt_col=None):
    """(x, y, wkt) column names: the caller's, else recognised by name (case-insensitive)."""
    columns = list(columns)
    if (x_col is None) != (y_col is None):
        raise InvalidInputError("give both --x-col and --y-col, or neither")
    if x_col is not None:
        if wkt_col is not None:
            raise InvalidInputError("give --x-col/--y-col or --wkt-col, not both")
        return _find(columns, x_col, name), _find(columns, y_col, name), None
    if wkt_col is not None:
        return None, None, _find(columns, wkt_col, name)
    xs = [c for c in columns if str(c).strip().lower() in X_NAMES]
    ys = [c for c in columns if str(c).strip().lower() in Y_NAMES]
    wkts = [c for c in columns if str(c).strip().lower() in WKT_NAMES]
    hint = "name the ones to use with --x-col/--y-col (or --wkt-col)"
    if len(xs) > 1 or len(ys) > 1:
        many = xs if len(xs) > 1 else ys
        raise InvalidInputError(f"{name} is ambiguous: several {'x' if len(xs) > 1 else 'y'} columns "
                                f"{many}; {hint}")
    if xs and ys and wkts:
        raise InvalidInputError(f"{name} is ambiguous: it has coordinate columns {xs[0]!r}/{ys[0]!r} and a "
                                f"geometry column {wkts[0]!r}; {hint}")
    if xs and ys:
        return xs[0], ys[0], None
    if len(wkts) > 1:
        raise InvalidInputError(f"{name} is ambiguous: several geometry columns {wkts}; {hint}")
    if wkts:
        return None, None, wkts[0]
    if xs or ys:
        have, miss = ("x", "y") if xs else ("y", "x")
        names = Y_NAMES if xs else X_NAMES
        raise InvalidInputError(f"{name} has the {have} column {(xs or ys)[0]!r} but no {miss} column "
                                f"(one of {', '.join(names)}, any case); or name it with --{miss}-col")
    raise InvalidInputError(f"{name} has no coordinate columns: name them lon/lng/longitude/x and "
                            f"lat/latitude/y (any case), or a WKT column wkt/geometry, or pass --x-col/--y-col "
                            f"or --wkt-col; it has {columns}")


def inspect_input(path, crs=None, x_col=None, y_col=None, wkt_col=None) -> InputSpec:
    """Settle columns, types and CRS of ``path`` from its header/metadata (reads no more than a sample)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input file {path} does not exist")
    fmt = file_format(path)
    try:
        if fmt == "csv":
            sample = csv_sample_types(path, CSV_SAMPLE_ROWS)
            x, y, w = pick_columns(sample, path.name, x_col, y_col, wkt_col)
            in_crs, src = _resolve_crs(None, crs, path.name)
            # coordinates are parsed as numbers by pyarrow; a value it cannot parse sends the
            # job to the text reader, which names the row (a marked row, not a read error)
            types = {c: "double" if c in (x, y) else "string" if c == w else t for c, t in sample.items()}
            return InputSpec(fmt, in_crs, x, y, w, None, src, types)
        if fmt == "parquet":
            import pyarrow.parquet as pq
            schema = pq.read_schema(path)
            geo = parquet_geo(schema.metadata)
            col = geo.get("primary_column")
            if col in schema.names and x_col is None and wkt_col is None:
                meta = geo.get("columns", {}).get(col, {})
                if meta.get("encoding", "WKB").upper() != "WKB":
                    raise InvalidInputError(f"{path.name}: geometry encoding {meta.get('encoding')!r} is not "
                                            "supported; write the GeoParquet with WKB geometry")
                # GeoParquet: a missing crs means OGC:CRS84, an explicit null an unknown CRS
                declared = _declared(meta["crs"]) if "crs" in meta else crs_mod.InputCRS.CRS84
                in_crs, src = _resolve_crs(declared, crs, path.name)
                return InputSpec(fmt, in_crs, geom_col=col, source_epsg=src)
            x, y, w = pick_columns(schema.names, path.name, x_col, y_col, wkt_col)
            in_crs, src = _resolve_crs(None, crs, path.name)
            return InputSpec(fmt, in_crs, x, y, w, source_epsg=src)
        import pyogrio
        info = pyogrio.read_info(path)
        if info.get("geometry_type") and x_col is None and wkt_col is None:
            in_crs, src = _resolve_crs(_declared(info.get("crs")), crs, path.name)
            return InputSpec(fmt, in_crs, geom_col="geometry", source_epsg=src)
        x, y, w = pick_columns(info["fields"], path.name, x_col, y_col, wkt_col)
        in_crs, src = _resolve_crs(None, crs, path.name)
        return InputSpec(fmt, in_crs, x, y, w, source_epsg=src)
    except InvalidInputError:
        raise
    except Exception as exc:  # pyogrio/pyarrow/pandas parse errors: the file is the problem
        raise InvalidInputError(f"cannot read {path.name} as {fmt}: {exc}") from exc


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS, spec: InputSpec | None = None
                ) -> Iterator[tuple["pd.DataFrame", np.ndarray, np.ndarray, np.ndarray]]:
    """Yield pandas (frame, x, y, reasons) per chunk of a CSV file; reasons explain unparsable rows.

    The text route, for a CSV value pyarrow cannot parse as its column's type: pandas reads
    the coordinates as text, so a bad one is a named row rather than a read error.
    """
    import pandas as pd
    path = Path(path)
    spec = spec or inspect_input(path)
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, dtype=spec.csv_dtypes, keep_default_na=False,
                             na_values=spec.csv_na)
        while True:
            try:
                df = next(reader)
            except StopIteration:
                break
            except ValueError as exc:  # a value that does not fit the type the sample gave its column
                typed = {c: str(t) for c, t in spec.csv_dtypes.items() if t is not str}
                raise InvalidInputError(
                    f"cannot read {path.name}: {exc}. Column types come from the first {CSV_SAMPLE_ROWS} "
                    f"rows ({typed}); a later value does not fit its column") from exc
            yield (df, *parse_chunk(df, spec, path.name))
    except InvalidInputError:
        raise
    except Exception as exc:  # pandas parse errors: the file is the problem
        raise InvalidInputError(f"cannot read {path.name} as csv: {exc}") from exc


class _TextRoute(InvalidInputError):
    """A CSV value pyarrow cannot parse as its column's type: the job restarts on the text route.

    Caught by :func:`locate_file`; were it ever to escape, it says what is wrong with the file.
    """


def arrow_chunks(path: Path, chunk_rows: int, spec: InputSpec):
    """Yield (Arrow table without the input geometry, x, y, reasons) per chunk of ``path``.

    GeoJSON and GeoPackage come whole through pyogrio's Arrow reader (GDAL cannot split them).
    """
    import pyarrow as pa
    if spec.fmt in ("geojson", "gpkg"):
        import pyogrio
        try:
            meta, table = pyogrio.read_arrow(path, read_geometry=spec.geom_col is not None)
        except Exception as exc:  # GDAL's parse errors: the file is the problem
            raise InvalidInputError(f"cannot read {path.name} as {spec.fmt}: {exc}") from exc
        if spec.geom_col is not None:
            name = meta.get("geometry_name") or "wkb_geometry"
            table = table.rename_columns([spec.geom_col if c == name else c for c in table.column_names])
        yield _arrow_xy(table, spec, path.name)
        return
    if spec.fmt == "csv":
        batches = csv_batches(path, spec.csv_types)
        while True:
            try:
                block = next(batches)
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _TextRoute(str(exc)) from exc
            for start in range(0, len(block), chunk_rows):
                yield _arrow_xy(block.slice(start, chunk_rows), spec, path.name)
        return
    import pyarrow.parquet as pq
    # pre_buffer=False: with it, iter_batches keeps ~20 MB per 1M rows read (RSS grew with the file)
    pf = pq.ParquetFile(path, pre_buffer=False)
    # iter_batches decodes one row group at a time: memory is bounded by the
    # file's row-group size (GeoParquet writers default to <= 1M rows)
    for batch in pf.iter_batches(batch_size=chunk_rows):
        yield _arrow_xy(pa.Table.from_batches([batch]), spec, path.name)


def _arrow_xy(table, spec: InputSpec, name: str):
    """(table, x, y, reasons) of one Arrow chunk: coordinates as float64, the input geometry dropped."""
    import pyarrow as pa
    n = len(table)
    reasons = np.full(n, "", dtype=object)
    if spec.geom_col is not None or spec.wkt_col is not None:
        col = spec.geom_col or spec.wkt_col
        xy = wkb_points(table.column(col).combine_chunks()) if spec.geom_col else None  # plain WKB points
        if xy is None:  # not plain WKB points: shapely names each problem
            x, y, reasons = _xy_from_geoms(table.column(col).to_numpy(zero_copy_only=False), spec.wkt_col)
        else:
            x, y = xy
        if spec.geom_col is not None:
            table = table.drop_columns([col])
    else:
        xc, yc = table.column(spec.x_col), table.column(spec.y_col)
        if all(pa.types.is_integer(v.type) or pa.types.is_floating(v.type) for v in (xc, yc)):
            (x, null_x), (y, null_y) = float_values(xc), float_values(yc)  # null -> NaN
            if spec.fmt == "csv":  # a blank, named as the text route names it
                if null_y is not None:
                    reasons[null_y] = f"{spec.y_col} '' is not a number"
                if null_x is not None:
                    reasons[null_x] = f"{spec.x_col} '' is not a number"
        else:  # text coordinates (GeoParquet): parsed and reasoned as the CSV text route does
            import pandas as pd
            xs, ys = (pd.Series(v.to_numpy(zero_copy_only=False), dtype=object) for v in (xc, yc))
            x, y, reasons = _parse_numbers(xs, ys, spec.x_col, spec.y_col)
        for c, v in ((spec.x_col, x), (spec.y_col, y)):  # a number column in the output, whatever came in
            v = np.asarray(v, np.float64)
            nan = np.isnan(v)  # null, as pandas writes NaN, so the text and Dask routes write the same
            table = table.set_column(table.column_names.index(c), c, numeric_array(v, ~nan if nan.any() else None))
    if spec.source_epsg is not None:  # a CRS we only know through PROJ: to storage here
        x, y = crs_mod._proj(x, y, spec.source_epsg, crs_mod.STORAGE_EPSG)
    return table, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), reasons


def wkb_points(column) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) of an Arrow binary column of little-endian 2D WKB points, read from its buffer.

    None unless every row is such a point with real coordinates: anything else (nulls,
    other types, big-endian, Z, empty points) takes the shapely path, which names each
    problem, so both paths answer alike.
    """
    import pyarrow as pa
    if not pa.types.is_binary(column.type) or len(column) == 0 or column.null_count:
        return None
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32, count=len(column) + 1, offset=column.offset * 4)
    if offsets[-1] - offsets[0] != 21 * len(column) or not (np.diff(offsets) == 21).all():
        return None
    rows = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 21)
    if not ((rows[:, 0] == 1).all() and (np.ascontiguousarray(rows[:, 1:5]).view("<u4") == 1).all()):
        return None
    xy = np.ascontiguousarray(rows[:, 5:]).view("<f8")
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    if np.isnan(x).any() or np.isnan(y).any():
        return None
    return x, y


def parquet_geo(metadata) -> dict:
    """The GeoParquet ``geo`` metadata of a schema ({} when absent)."""
    return json.loads((metadata or {}).get(b"geo", b"{}") or "{}")


def parse_chunk(df: pd.DataFrame, spec: InputSpec, name: str):
    """(x, y, reasons) of one raw chunk, x/y in ``spec.crs``; typed coordinate columns replace text ones.

    Shared by the streaming reader and the Dask partitions, so both parse identically.
    """
    if spec.x_col is not None:
        x, y, reasons = _parse_numbers(df[spec.x_col], df[spec.y_col], spec.x_col, spec.y_col)
        df[spec.x_col], df[spec.y_col] = x, y  # a number column in the output, whatever the text
    else:
        x, y, reasons = _xy_from_geoms(df[spec.geom_col or spec.wkt_col].to_numpy(), spec.wkt_col)
    if spec.source_epsg is not None:  # a CRS we only know through PROJ: to storage here
        x, y = crs_mod._proj(x, y, spec.source_epsg, crs_mod.STORAGE_EPSG)
    return x, y, reasons


def _text_nan(s: pd.Series) -> np.ndarray:
    """Where a text value is the literal NaN (a NaN coordinate, reported as such, not as text)."""
    if s.dtype != object:
        return s.isna().to_numpy()
    return s.astype(str).str.strip().str.lower().isin(["nan"]).to_numpy()


def _parse_numbers(xs: pd.Series, ys: pd.Series, xname="lon", yname="lat"):
    import pandas as pd
    x = pd.to_numeric(xs, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    y = pd.to_numeric(ys, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad_x = np.isnan(x) & ~_text_nan(xs)
    bad_y = np.isnan(y) & ~_text_nan(ys)
    reasons = np.full(len(x), "", dtype=object)
    reasons[bad_x] = [f"{xname} {v!r} is not a number" for v in xs[bad_x]]
    reasons[bad_y & ~bad_x] = [f"{yname} {v!r} is not a number" for v in ys[bad_y & ~bad_x]]
    return x, y, reasons


def _xy_from_geoms(raw: np.ndarray, wkt_col: str | None):
    """Point coordinates from shapely geometries, WKB bytes or WKT text (NaN + a reason otherwise)."""
    import pandas as pd
    missing = pd.isna(raw) | (raw == "")
    geoms = raw
    present = raw[~missing]
    if len(present) and not isinstance(present[0], shapely.Geometry):
        vals = np.where(missing, None, raw)
        if isinstance(present[0], (bytes, bytearray)):
            geoms = shapely.from_wkb(vals, on_invalid="ignore")
        else:
            geoms = shapely.from_wkt(vals, on_invalid="ignore")
    unreadable = ~missing & pd.isna(geoms)
    kinds = shapely.get_type_id(geoms)
    reasons = np.where(kinds == 0, "", "geometry is not a point").astype(object)
    reasons[(kinds == 0) & shapely.is_empty(geoms)] = "geometry is an empty point"
    label = wkt_col or "geometry"
    reasons[unreadable] = [f"{label} {v!r} is not WKT or WKB" for v in raw[unreadable]]
    reasons[missing] = "geometry is missing"
    pts = np.where(kinds == 0, geoms, None)
    x = np.where(kinds == 0, shapely.get_x(pts), np.nan)
    y = np.where(kinds == 0, shapely.get_y(pts), np.nan)
    return x, y, reasons


def locate_file(src, dst, locate: Callable, crs=None, on_invalid: str = "fail", progress=None,
                chunk_rows: int = CHUNK_ROWS, x_col: str | None = None, y_col: str | None = None,
                wkt_col: str | None = None) -> BatchResult:
    """Locate every point of ``src`` into ``dst`` (formats from the extensions).

    ``locate(lon, lat)`` takes storage-CRS arrays and returns the code columns (the
    frame of :meth:`Atlas.locate_many`, or the (indices, dictionary) pairs of
    :meth:`CachedLocator.locate_arrow`). ``crs`` is the input CRS when the file
    declares none (default EPSG:4326), or gcj02/bd09 for offset data in a file
    labelled WGS84. Output geometry is the point in EPSG:4490, the CRS every
    geometry-carrying output declares. With ``on_invalid='fail'`` any invalid row
    aborts the job (nothing written) and raises :class:`InvalidCoordinatesError`
    naming the rows; with 'mark' those rows are written with null codes and an
    ``error`` column.
    """
    if on_invalid not in ("fail", "mark"):
        raise InvalidInputError("on_invalid must be 'fail' or 'mark'")
    spec = inspect_input(src, crs, x_col, y_col, wkt_col)
    dst = output_path(dst)
    src = Path(src)
    try:
        return _run(arrow_chunks(src, chunk_rows, spec), src, dst, locate, spec, on_invalid, progress)
    except _TextRoute:  # a CSV value pyarrow cannot type: the text reader names the row
        if progress is not None:
            progress.reset()
    chunks = ((frame_table(df, spec), x, y, r) for df, x, y, r in read_chunks(src, chunk_rows, spec))
    return _run(chunks, src, dst, locate, spec, on_invalid, progress)


def _run(chunks, src: Path, dst: Path, locate, spec: InputSpec, on_invalid: str, progress) -> BatchResult:
    out_fmt = file_format(dst)
    writer = TableWriter(dst.with_name(f".{dst.name}.partial"), out_fmt, spec.out_geometry, OUT_COLUMNS)
    result = BatchResult()
    try:
        for table, x, y, reasons in chunks:
            reasons = check_chunk(x, y, reasons, spec.crs)
            result.count(reasons)
            if not (result.invalid and on_invalid == "fail"):  # once failing, only scan on
                out = locate_table(table, x, y, reasons, locate, spec, mark=on_invalid == "mark",
                                   geometry=out_fmt != "csv")
                result.tally(out, reasons)
                writer.write(out)
            if progress is not None:
                progress.update(len(table))
        finish(result, on_invalid, src, writer, dst)
        return result
    finally:
        writer.abort()


def frame_table(df: "pd.DataFrame", spec: InputSpec):
    """A parsed pandas chunk as an Arrow table, without the input geometry (the text and Dask routes)."""
    import pyarrow as pa
    drop = [c for c in (spec.geom_col,) if c is not None and c in df.columns]
    table = pa.Table.from_pandas(df.drop(columns=drop), preserve_index=False).replace_schema_metadata(None)
    # pandas 3 text is large_string; pyarrow's CSV reader gives string: one schema whichever route read it
    return table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
                                 for f in table.schema]))


def check_chunk(x, y, reasons: np.ndarray, in_crs) -> np.ndarray:
    """Parse reasons completed with the coordinate checks ('' = valid row)."""
    check = crs_mod.check_coordinates(x, y, in_crs)
    parsed = reasons != ""
    if not parsed.any():
        return check
    return np.where(parsed, reasons, check)


def locate_table(table, x, y, reasons: np.ndarray, locate, spec: InputSpec, mark: bool, geometry: bool = True):
    """The output rows of one chunk: its columns plus the codes (null outside and for invalid rows).

    With ``geometry`` the point in EPSG:4490 (null for invalid rows) is appended, so
    coordinates are never written under a CRS label they are not in.
    """
    good = reasons == ""
    if good.all():  # the usual chunk: no copies
        lon, lat = crs_mod.to_storage(x, y, spec.crs)
    else:
        lon, lat = crs_mod.to_storage(x[good], y[good], spec.crs)
    lon, lat = np.atleast_1d(lon), np.atleast_1d(lat)
    # located even when empty, so every chunk's code columns have the same dictionaries (one schema)
    codes = code_columns(locate(lon, lat), good, OUT_COLUMNS)
    out = table.drop_columns([c for c in OUT_COLUMNS if c in table.column_names])
    for name, column in codes.items():
        out = out.append_column(name, column)
    if geometry:
        out = out.append_column(spec.out_geometry, point_wkb(lon, lat, good))
    if mark:
        out = out.append_column("error", string_array(reasons))
    return out


def finish(result: BatchResult, on_invalid: str, src, writer: TableWriter, dst: Path) -> None:
    """Raise for invalid rows in 'fail' mode, else publish the output in one rename."""
    if result.invalid and on_invalid == "fail":
        first = "; ".join(f"row {r['row']}: {r['reason']}" for r in result.invalid[:5])
        raise InvalidCoordinatesError(
            f"{len(result.invalid)} invalid row(s) in {Path(src).name} (rows counted from 1, "
            f"header excluded): {first}. Fix them or pass --on-invalid mark.", detail=result.invalid)
    writer.close()
    os.replace(writer.path, dst)
