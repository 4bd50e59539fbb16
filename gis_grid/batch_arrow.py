"""The Arrow side of batch location: CSV batches, code columns, point WKB, the output writer.

Batch jobs stay in Arrow from read to write: pyarrow parses CSV on every core into
typed columns, the located codes become dictionary columns (one small dictionary per
level, null outside), output points are WKB built from the coordinate arrays, and
pyarrow (CSV, GeoParquet) or pyogrio's Arrow writer (GeoPackage, GeoJSON) writes them.
Neither pandas nor shapely objects are made per row.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

STORAGE_EPSG = 4490
CSV_BLOCK_BYTES = 16 << 20  # ~400k rows of lon,lat,id per batch: memory stays flat, every core parses
_POINT_HEADER = np.frombuffer(b"\x01\x01\x00\x00\x00", dtype=np.uint8)  # little-endian 2D Point


# -- arrays without pandas: pa.array() imports pandas (0.5 s) to check its argument's type ---------
_TYPES = {np.dtype(np.int8): pa.int8(), np.dtype(np.int16): pa.int16(), np.dtype(np.int32): pa.int32(),
          np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}


def _bitmap(valid: np.ndarray | None):
    return None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))


def numeric_array(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow array over a numpy array's buffer (null where not ``valid``)."""
    values = np.ascontiguousarray(values)
    nulls = 0 if valid is None else len(valid) - int(valid.sum())
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [_bitmap(valid if nulls else None),
                                                                     pa.py_buffer(values)], null_count=nulls)


def float_values(column) -> tuple[np.ndarray, np.ndarray | None]:
    """(float64 values with NaN at nulls, null mask or None) of a numeric Arrow (chunked) array."""
    import pyarrow.compute as pc
    arr = pc.cast(column, pa.float64())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    n, off = len(arr), arr.offset
    null = None
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), bitorder="little")
        null = bits[off:off + n] == 0
    values = np.frombuffer(arr.buffers()[1], dtype=np.float64, count=n, offset=off * 8).copy()
    if null is not None:
        values[null] = np.nan
    return values, null


def string_array(values) -> pa.Array:
    """An Arrow string array of Python/numpy strings."""
    text = np.asarray(values).astype(str)
    data = "".join(text.tolist()).encode()
    lengths = np.char.str_len(text) if len(text) else np.zeros(0, dtype=np.int64)
    if len(data) != int(lengths.sum()):  # not all ASCII: count bytes, not characters
        lengths = np.array([len(v.encode()) for v in text.tolist()], dtype=np.int64)
    offsets = np.zeros(len(text) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(text), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# -- CSV ----------------------------------------------------------------------------------------
def csv_sample_types(path: Path, rows: int) -> dict[str, str]:
    """Column -> 'int64' | 'double' | 'bool' | 'string', inferred by pyarrow from the first ``rows`` rows.

    Anything else pyarrow recognises (dates, times, decimals) stays text, so it is written
    back exactly as it came; a column with only blanks in the sample is text too.
    """
    import pyarrow.csv as pacsv
    with open(path, "rb") as f:
        head = b"".join(line for _, line in zip(range(rows + 1), f))
    table = pacsv.read_csv(pa.py_buffer(head), convert_options=_convert_options(None))
    kinds = {}
    for field in table.schema:
        t = field.type
        kinds[field.name] = ("int64" if pa.types.is_integer(t) else "double" if pa.types.is_floating(t)
                             else "bool" if pa.types.is_boolean(t) else "string")
    return kinds


def _convert_options(types: dict | None):
    import pyarrow.csv as pacsv
    # a blank is null in typed columns; text keeps '' (as pandas' keep_default_na=False did)
    return pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=False,
                                quoted_strings_can_be_null=False, true_values=["true", "True", "TRUE"],
                                false_values=["false", "False", "FALSE"])


def csv_batches(path: Path, types: dict[str, str], block_bytes: int = CSV_BLOCK_BYTES):
    """Tables of ``path``'s rows, one per block of about ``block_bytes``, typed as ``types``.

    Each block is cut at a record boundary and parsed by pyarrow on every core. Not
    pyarrow's streaming reader: it reads ahead as fast as the disk allows, so its
    memory grew with the file (200 MB buffered for a 224 MB file). Raises
    ``pyarrow.ArrowInvalid`` when a value does not fit its column's type.
    """
    import pyarrow.csv as pacsv
    read = pacsv.ReadOptions(column_names=list(types), use_threads=True)
    convert = _convert_options({c: pa.type_for_alias(t) for c, t in types.items()})
    with open(path, "rb") as f:
        f.readline()  # the header: the names are known
        rest = b""
        while True:
            data = f.read(block_bytes)
            buf = rest + data
            cut = len(buf) if not data else _record_end(buf)
            if cut:
                yield pacsv.read_csv(pa.py_buffer(buf[:cut]), read_options=read, convert_options=convert)
            rest = buf[cut:]
            if not data:
                return


def _record_end(buf: bytes) -> int:
    """The end of the last whole record in ``buf`` (0: none): after a newline outside quotes."""
    if b'"' not in buf:
        return buf.rfind(b"\n") + 1
    raw = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    outside = newlines[np.cumsum(raw == 34)[newlines] % 2 == 0]  # an even count of quotes before it
    return int(outside[-1]) + 1 if len(outside) else 0


# -- located codes ------------------------------------------------------------------------------
def index_dtype(n: int):
    """The index dtype pandas gives a categorical of ``n`` categories (so both routes write one schema)."""
    return np.int8 if n < 127 else np.int16 if n < 32767 else np.int32


def code_columns(found, good: np.ndarray, names) -> dict[str, pa.DictionaryArray]:
    """Dictionary columns of ``len(good)`` rows from the answers for the ``good`` rows (null elsewhere).

    ``found`` maps each name to (indices, dictionary) with -1 = no answer, or is the
    categorical frame of ``Atlas.locate_many`` ('' = no answer).
    """
    out = {}
    for name in names:
        idx, dictionary = _codes(found[name])
        if good.all():
            full = idx
        else:
            full = np.full(len(good), -1, dtype=idx.dtype)
            full[good] = idx
        valid = full >= 0
        out[name] = pa.DictionaryArray.from_arrays(numeric_array(full, None if valid.all() else valid), dictionary)
    return out


def _codes(column):
    if isinstance(column, tuple):
        return column
    cat = column.array  # a pandas Categorical whose '' category means no answer
    cats = np.asarray(cat.categories, dtype=object)
    codes = np.asarray(cat.codes)
    empty = np.flatnonzero(cats == "")
    if len(empty):
        e = empty[0]
        codes = np.where(codes == e, -1, codes - (codes > e)).astype(codes.dtype)
        cats = np.delete(cats, e)
    return codes, string_array(cats)


def point_wkb(lon: np.ndarray, lat: np.ndarray, good: np.ndarray) -> pa.BinaryArray:
    """WKB points (lon[i], lat[i]) at the ``good`` rows, null elsewhere, built straight from the arrays."""
    n, k = len(good), int(good.sum())
    rec = np.empty((k, 21), dtype=np.uint8)
    rec[:, :5] = _POINT_HEADER
    rec[:, 5:].view("<f8")[:] = np.column_stack([lon, lat]).astype("<f8")
    lengths = np.where(good, 21, 0).astype(np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), n, [_bitmap(None if k == n else good), pa.py_buffer(offsets),
                                                  pa.py_buffer(rec)],
                                 null_count=n - k)


# EPSG:4490 as PROJJSON (pyproj's CRS.from_epsg(4490).to_json_dict()), written out so a batch job
# need not import pyproj to label its output; a test checks that pyproj reads it back as EPSG:4490
EPSG4490_PROJJSON = {
    "$schema": "https://proj.org/schemas/v0.7/projjson.schema.json", "type": "GeographicCRS",
    "name": "China Geodetic Coordinate System 2000",
    "datum": {"type": "GeodeticReferenceFrame", "name": "China 2000",
              "ellipsoid": {"name": "CGCS2000", "semi_major_axis": 6378137, "inverse_flattening": 298.257222101}},
    "coordinate_system": {"subtype": "ellipsoidal", "axis": [
        {"name": "Geodetic latitude", "abbreviation": "Lat", "direction": "north", "unit": "degree"},
        {"name": "Geodetic longitude", "abbreviation": "Lon", "direction": "east", "unit": "degree"}]},
    "scope": "Horizontal component of 3D system.", "area": "China - onshore and offshore.",
    "bbox": {"south_latitude": 16.7, "west_longitude": 73.62, "north_latitude": 53.56, "east_longitude": 134.77},
    "id": {"authority": "EPSG", "code": STORAGE_EPSG}}


def geo_metadata(column: str = "geometry") -> dict:
    """GeoParquet metadata of a WKB point column in EPSG:4490 (PROJJSON)."""
    return {"version": "1.0.0", "primary_column": column,
            "columns": {column: {"encoding": "WKB", "geometry_types": ["Point"], "crs": EPSG4490_PROJJSON}}}


# -- output -------------------------------------------------------------------------------------
class TableWriter:
    """Appends Arrow tables to CSV/GeoParquet, or collects them for GeoJSON/GeoPackage.

    Every geometry written is a storage point, so every output declares EPSG:4490.
    CSV and GeoParquet chunks are written on a thread (pyarrow releases the GIL) while
    the next chunk is read and located; one chunk at most waits, so memory stays flat.
    """

    def __init__(self, path: Path, fmt: str, geometry: str = "geometry", empty_columns=()):
        self.path, self.fmt, self.geometry = path, fmt, geometry
        self.empty_columns = empty_columns  # the code columns: the CSV header when no row was written
        self._out = None
        self._tables: list[pa.Table] = []
        self._pending = None
        self._thread = None
        self.closed = False

    def write(self, table: pa.Table) -> None:
        if self.fmt not in ("csv", "parquet"):
            self._tables.append(table)
            return
        from concurrent.futures import ThreadPoolExecutor
        self._wait()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="batch-write")
        self._pending = self._thread.submit(self._append, table)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # a write error surfaces here, in the job's thread

    def _append(self, table: pa.Table) -> None:
        if self.fmt == "csv":
            import pyarrow.csv as pacsv
            if self._out is None:
                self._out = pacsv.CSVWriter(self.path, table.schema)
            self._out.write_table(table)
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq
            if self._out is None:
                meta = {b"geo": json.dumps(geo_metadata(self.geometry)).encode()}
                # statistics for the input's columns; min/max of codes and WKB cost a third of the write
                stats = [c for c in table.column_names if c not in self.empty_columns and c != self.geometry]
                # dictionary pages only where values repeat: tried on 1M distinct WKB points, it costs
                # a third of the write before falling back to plain
                dicts = [c for c in table.column_names if c != self.geometry]
                self._out = pq.ParquetWriter(self.path, table.schema.with_metadata(meta), write_statistics=stats,
                                             use_dictionary=dicts)
            self._out.write_table(table.replace_schema_metadata(self._out.schema.metadata))

    def _stop(self) -> None:
        try:
            self._wait()
        finally:
            if self._thread is not None:
                self._thread.shutdown()
                self._thread = None

    def close(self) -> None:
        self._stop()
        if self._out is not None:
            self._out.close()
        elif self.fmt in ("geojson", "gpkg"):
            self._write_ogr()
        elif self.fmt == "csv":
            import pyarrow.csv as pacsv
            pacsv.write_csv(pa.table({c: pa.array([], pa.string()) for c in self.empty_columns}), self.path)
        self.closed = True

    def _write_ogr(self) -> None:
        import pyogrio
        if self._tables:
            table = pa.concat_tables(self._tables)
        else:
            table = pa.table({self.geometry: pa.array([], pa.binary())})
        # GDAL's formats have no dictionary type: write the codes as text
        table = pa.table({n: (c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c)
                          for n, c in zip(table.column_names, table.columns)})
        # name the layer after the final file, not the temporary one
        stem = Path(self.path.name.removeprefix(".").removesuffix(".partial")).stem
        layer = re.sub(r"\W", "_", stem, flags=re.ASCII) or "points"
        pyogrio.write_arrow(table, self.path, driver="GeoJSON" if self.fmt == "geojson" else "GPKG",
                            layer=layer if self.fmt == "gpkg" else None, geometry_name=self.geometry,
                            geometry_type="Point", crs=f"EPSG:{STORAGE_EPSG}")

    def abort(self) -> None:
        if not self.closed:
            try:
                self._stop()
            except Exception:  # noqa: BLE001 - the job is failing already; its own error is the one to report
                pass
            if self._out is not None:
                self._out.close()
            self.path.unlink(missing_ok=True)
