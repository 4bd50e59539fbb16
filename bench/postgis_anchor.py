"""The PostGIS anchor of bench/locate.py: bulk ST_Covers against a GiST index, whole round trip.

The grids go into their own benchmark database (``gis_grid_bench``; never the
application's store) once per grid set. Each timed call then does what a
client of PostGIS must do for a batch: send the points by binary COPY (EWKB,
SRID 4490) into an UNLOGGED table, run one set-based ST_Covers join with the
project's tie rule, and read the answers back by binary COPY; the points table
is dropped at the end. Binary COPY both ways, parsed with numpy, is the fastest
client path, so the anchor is not slowed down by Python.

Tie rule in SQL: a point covered by several grids (on a shared edge or vertex)
takes the lowest code, ``DISTINCT ON (p.id) ... ORDER BY p.id, g.code``.
"""
from __future__ import annotations

import os
import struct

import numpy as np
import shapely

BENCH_DB = "gis_grid_bench"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# one tuple: field count, then (length, EWKB point with SRID) and (length, int4 id)
_POINT_ROW = np.dtype([("nf", ">i2"), ("len_id", ">i4"), ("id", ">i4"), ("len_g", ">i4"), ("order", "u1"),
                       ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])
_ANSWER_ROW = np.dtype([("nf", ">i2"), ("len_id", ">i4"), ("id", ">i4"), ("len_g", ">i4"), ("grid", ">i4")])
_EWKB_POINT_WITH_SRID = 0x20000001

LOCATE_SQL = """
COPY (
  SELECT DISTINCT ON (p.id) p.id, g.idx
  FROM {points} p JOIN {grids} g ON ST_Covers(g.geom, p.geom)
  ORDER BY p.id, g.code
) TO STDOUT (FORMAT BINARY)"""


def server_url() -> str | None:
    """A superuser URL: GIS_GRID_BENCH_DATABASE_URL, else the loopback cluster of scripts/postgres.sh."""
    return os.environ.get("GIS_GRID_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:55432/postgres")


def _with_db(url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    return make_conninfo(**{**conninfo_to_dict(url), "dbname": name})


class PostGISAnchor:
    """One connection to the benchmark database; ``unavailable`` says why when there is none."""

    def __init__(self, url: str | None = None):
        self.conn, self.unavailable, self.version = None, None, None
        try:
            import psycopg
        except ImportError as exc:
            self.unavailable = f"psycopg is not installed ({exc})"
            return
        url = url or server_url()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
                if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
                    admin.execute(f"CREATE DATABASE {BENCH_DB}")
            self.conn = psycopg.connect(_with_db(url, BENCH_DB), autocommit=True)
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            self.version = self.conn.execute("SELECT version() || ' / PostGIS ' || postgis_lib_version()").fetchone()[0]
        except psycopg.Error as exc:
            self.unavailable = f"no PostGIS at {url.split('@')[-1]}: {str(exc).strip().splitlines()[0]}"
            self.conn = None

    def load_grids(self, name: str, codes, geoms) -> str:
        """(Re)create table ``name`` with the grids in SRID 4490, a GiST index, and statistics."""
        table = f"grids_{name}"
        c = self.conn
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (idx int PRIMARY KEY, code text NOT NULL, "
                  "geom geometry(MultiPolygon, 4490) NOT NULL)")
        wkb = shapely.to_wkb(shapely.force_2d(np.asarray(geoms, dtype=object)))
        with c.cursor() as cur, cur.copy(f"COPY {table} (idx, code, geom) FROM STDIN") as copy:
            for i, (code, w) in enumerate(zip(codes, wkb)):
                copy.write_row((i, str(code), "SRID=4490;" + w.hex()))
        c.execute(f"CREATE INDEX ON {table} USING gist (geom)")
        c.execute(f"ANALYZE {table}")
        valid = c.execute(f"SELECT count(*) FROM {table} WHERE ST_IsValid(geom)").fetchone()[0]
        if valid != len(wkb):
            raise RuntimeError(f"only {valid} of {len(wkb)} grids are valid in PostGIS")
        return table

    def locate(self, table: str, x: np.ndarray, y: np.ndarray, explain: list | None = None) -> np.ndarray:
        """Grid index per point (-1 outside): COPY in, one ST_Covers join, COPY out.

        With ``explain`` (a list), the query plan is appended to it (outside any timing).
        """
        n = len(x)
        rows = np.empty(n, dtype=_POINT_ROW)
        rows["nf"], rows["len_id"], rows["id"], rows["len_g"] = 2, 4, np.arange(n), _POINT_ROW.itemsize - 14
        rows["order"], rows["type"], rows["srid"], rows["x"], rows["y"] = 1, _EWKB_POINT_WITH_SRID, 4490, x, y
        points = "bench_points"
        c = self.conn
        c.execute(f"DROP TABLE IF EXISTS {points}")
        c.execute(f"CREATE UNLOGGED TABLE {points} (id int4 NOT NULL, geom geometry(Point, 4490) NOT NULL)")
        with c.cursor() as cur:
            with cur.copy(f"COPY {points} (id, geom) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_COPY_HEADER)
                copy.write(rows.tobytes())
                copy.write(_COPY_TRAILER)
            c.execute(f"ANALYZE {points}")  # so the planner knows the size and may go parallel
            if explain is not None:
                sql = LOCATE_SQL.format(points=points, grids=table)
                sql = sql[sql.index("SELECT"):sql.index(") TO STDOUT")]
                explain.append("\n".join(r[0] for r in c.execute("EXPLAIN " + sql).fetchall()))
            out = bytearray()
            with cur.copy(LOCATE_SQL.format(points=points, grids=table)) as copy:
                for block in copy:
                    out += block
        c.execute(f"DROP TABLE {points}")
        answers = np.frombuffer(bytes(out), dtype=_ANSWER_ROW, offset=len(_COPY_HEADER),
                                count=(len(out) - len(_COPY_HEADER) - len(_COPY_TRAILER)) // _ANSWER_ROW.itemsize)
        grid = np.full(n, -1, dtype=np.int64)
        grid[answers["id"]] = answers["grid"]
        return grid

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
