"""DataFrames in and out of PostgreSQL: WKB reads, COPY writes.

Frames are built exactly as the GeoPackage store builds them (``pd.DataFrame``
over the fetched tuples, ``geom`` popped and decoded into a trailing
``geometry`` column), so both stores hand callers the same columns and dtypes.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import shapely
from psycopg import sql

from ...crs import STORAGE_EPSG
from ...errors import InvalidInputError

COPY_CHUNK_ROWS = 100_000


def read_frame(cur, query, params=None) -> pd.DataFrame:
    cur.execute(query, params)
    cols = [d.name for d in cur.description]
    df = pd.DataFrame(cur.fetchall(), columns=cols)
    if "geom" in df.columns:
        df["geometry"] = shapely.from_wkb(np.array(df.pop("geom").tolist(), dtype=object))
    return df


def column_types(cur, table: str) -> dict[str, str]:
    """Column -> SQL type; the key ``None`` says whether the table has row-level security."""
    cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,))
    types = dict(cur.fetchall())
    types[None] = cur.execute("SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]
    return types


def _coerce(s: pd.Series, pgtype: str, table: str) -> pd.Series:
    """One column as COPY text: integers without '.0', JSON serialised, geometries as hex EWKB."""
    name = f"{table}.{s.name}"
    if pgtype.startswith("geometry"):
        try:
            geoms = shapely.set_srid(s.to_numpy(dtype=object), STORAGE_EPSG)
        except TypeError:
            raise InvalidInputError(f"{name} must hold shapely geometries") from None
        return pd.Series(shapely.to_wkb(geoms, hex=True, include_srid=True), index=s.index, dtype=object)
    if pgtype in ("integer", "bigint", "smallint"):
        try:
            return pd.Series(pd.array(pd.to_numeric(s.astype(object).where(s.notna(), None)), dtype="Int64"),
                             index=s.index)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must hold whole numbers: {exc}") from None
    if pgtype in ("json", "jsonb"):
        return s.map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False),
                     na_action="ignore")
    if pgtype in ("double precision", "real"):
        try:
            return pd.to_numeric(s.astype(object).where(s.notna(), None)).astype(float)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must hold numbers: {exc}") from None
    if pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        return s.map(str, na_action="ignore")  # codes given as numbers: text, as the column says
    return s


def _csv(df: pd.DataFrame) -> bytes:
    """CSV as COPY reads it: NULL unquoted-empty, '' quoted. Arrow's writer is ~10x pandas'."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    table = pa.Table.from_pandas(df, preserve_index=False)
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue().to_pybytes()


def copy_frame(cur, table: str, df: pd.DataFrame, types: dict[str, str], extra: dict | None = None) -> int:
    """Append ``df`` to ``table`` with COPY (CSV in chunks); ``geometry`` goes to ``geom``."""
    df = df.rename(columns={"geometry": "geom"})
    for k, v in (extra or {}).items():
        df[k] = v
    unknown = [c for c in df.columns if c is None or c not in types]
    if unknown:
        raise InvalidInputError(f"{table} has no columns {unknown}")
    if df.empty:
        return 0
    cols = list(df.columns)
    names = sql.SQL(", ").join(map(sql.Identifier, cols))
    target = sql.Identifier(table)
    if types[None]:
        # COPY cannot write through row-level security: stage in a temporary table, then
        # INSERT ... SELECT, which the policies check row by row
        target = sql.Identifier(f"_load_{table}")
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            target, names, sql.Identifier(table)))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, names)
    with cur.copy(stmt) as copy:
        for start in range(0, len(df), COPY_CHUNK_ROWS):
            chunk = df.iloc[start:start + COPY_CHUNK_ROWS]
            chunk = pd.DataFrame({c: _coerce(chunk[c], types[c], table) for c in cols})
            copy.write(_csv(chunk))
    if types[None]:
        cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(sql.Identifier(table), names, names, target))
        cur.execute(sql.SQL("DROP TABLE {}").format(target))
    return len(df)
