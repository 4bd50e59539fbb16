"""Just enough of the OGC GeoPackage 1.3 format to write and read feature tables.

We write GeoPackage through sqlite3 ourselves (rather than through GDAL) so
that edits are ordinary SQL transactions: a boundary commit is one
``BEGIN IMMEDIATE ... COMMIT`` that either lands whole or not at all.
"""
from __future__ import annotations

import sqlite3
import struct
from functools import lru_cache

import numpy as np
import shapely

from ...errors import StoreError

APPLICATION_ID = 0x47504B47  # "GPKG"
#: GeoPackage 1.3, not the 1.4 that newer GDAL writes by default: GDAL before 3.7 (Debian 12's 3.6)
#: warns "may only be partially supported" on every open of a 1.4 file, and nothing here needs 1.4.
#: The store and the exports both write it.
VERSION = "1.3"
USER_VERSION = 10300
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


@lru_cache(maxsize=8)
def _wkt(epsg: int) -> str:
    from pyproj import CRS
    return CRS.from_epsg(epsg).to_wkt("WKT1_GDAL")


def init(conn: sqlite3.Connection, epsg: int) -> None:
    """Create the mandatory GeoPackage metadata tables."""
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {USER_VERSION}")
    for stmt in """
    CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
      srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
      organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
    CREATE TABLE IF NOT EXISTS gpkg_contents (
      table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
      description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
      min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER);
    CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
      table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
      srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
      CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
    CREATE TABLE IF NOT EXISTS gpkg_extensions (
      table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
      scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
    """.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    rows = [("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, _wkt(4326), None)]
    if epsg not in (4326,):
        rows.append((f"EPSG:{epsg}", epsg, "EPSG", epsg, _wkt(epsg), None))
    conn.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", rows)


def register(conn, table: str, *, geometry_column: str | None, geometry_type: str = "GEOMETRY",
             epsg: int = 0, description: str = "") -> None:
    """Declare a table in gpkg_contents (features if it has geometry, else attributes)."""
    kind = "features" if geometry_column else "attributes"
    conn.execute("INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, srs_id)"
                 " VALUES (?,?,?,?,?)", (table, kind, table, description, epsg if geometry_column else None))
    if geometry_column:
        conn.execute("INSERT OR REPLACE INTO gpkg_geometry_columns VALUES (?,?,?,?,0,0)",
                     (table, geometry_column, geometry_type, epsg))


def update_extent(conn, table: str, geometry_column: str = "geom") -> None:
    """Refresh the table's bounding box in gpkg_contents (QGIS zooms to it)."""
    rows = conn.execute(f"SELECT {geometry_column} FROM {table}").fetchall()
    geoms = decode([r[0] for r in rows])
    if len(geoms) == 0:
        return
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    conn.execute("UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=?, "
                 "last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
                 (minx, miny, maxx, maxy, table))


def encode(geoms, epsg: int) -> list[bytes]:
    """Shapely geometries -> GeoPackage binary (little-endian, xy envelope)."""
    geoms = np.asarray(geoms, dtype=object)
    wkbs = shapely.to_wkb(geoms, byte_order=1)
    bounds = shapely.bounds(geoms)
    out = []
    for wkb, (minx, miny, maxx, maxy) in zip(wkbs, bounds):
        header = b"GP\x00\x03" + struct.pack("<i4d", epsg, minx, maxx, miny, maxy)
        out.append(header + wkb)
    return out


def _wkb_start(b: bytes) -> int:
    if b[:2] != b"GP":
        raise StoreError("not a GeoPackage geometry blob (missing 'GP' magic)")
    return 8 + _ENVELOPE_BYTES[(b[3] >> 1) & 7]


def decode(blobs) -> np.ndarray:
    """GeoPackage binary -> array of shapely geometries (None stays None)."""
    wkbs = [None if b is None else bytes(b)[_wkb_start(bytes(b)):] for b in blobs]
    return shapely.from_wkb(np.array(wkbs, dtype=object))


def envelope(blob) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of one GeoPackage geometry blob; None for a null or empty geometry."""
    if blob is None:
        return None
    b = bytes(blob)
    start = _wkb_start(b)
    if b[3] & 0x10:  # the empty-geometry flag
        return None
    if start > 8:
        return struct.unpack("<4d" if b[3] & 1 else ">4d", b[8:40])
    minx, miny, maxx, maxy = shapely.bounds(shapely.from_wkb(b[8:]))  # GDAL writes points without one
    return minx, maxx, miny, maxy
