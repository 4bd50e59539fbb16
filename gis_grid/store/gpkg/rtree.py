"""GeoPackage R-tree spatial indexes (the ``gpkg_rtree_index`` extension), kept current by triggers.

The triggers are the standard ones of the GeoPackage 1.3 spec, so GDAL, QGIS and we all keep
the index right on every write. They call ``ST_MinX`` ... ``ST_IsEmpty``, which SQLite does not
have: :func:`register_functions` adds them to each of our connections (GDAL adds its own).
"""
from __future__ import annotations

import sqlite3

from .format import envelope

_DEFINITION = "http://www.geopackage.org/spec120/#extension_rtree"
_BOX = 'ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}")'
#: GeoPackage 1.3, F.3 (one statement per trigger; {r} index, {t} table, {c} geometry, {i} id column)
_TRIGGERS = (
    'CREATE TRIGGER "{r}_insert" AFTER INSERT ON "{t}" '
    'WHEN (new."{c}" NOT NULL AND NOT ST_IsEmpty(NEW."{c}")) '
    'BEGIN INSERT OR REPLACE INTO "{r}" VALUES (NEW."{i}", ' + _BOX + '); END',
    'CREATE TRIGGER "{r}_update1" AFTER UPDATE OF "{c}" ON "{t}" '
    'WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}")) '
    'BEGIN INSERT OR REPLACE INTO "{r}" VALUES (NEW."{i}", ' + _BOX + '); END',
    'CREATE TRIGGER "{r}_update2" AFTER UPDATE OF "{c}" ON "{t}" '
    'WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" ISNULL OR ST_IsEmpty(NEW."{c}")) '
    'BEGIN DELETE FROM "{r}" WHERE id = OLD."{i}"; END',
    'CREATE TRIGGER "{r}_update3" AFTER UPDATE ON "{t}" '
    'WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}")) '
    'BEGIN DELETE FROM "{r}" WHERE id = OLD."{i}"; '
    'INSERT OR REPLACE INTO "{r}" VALUES (NEW."{i}", ' + _BOX + '); END',
    'CREATE TRIGGER "{r}_update4" AFTER UPDATE ON "{t}" '
    'WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" ISNULL OR ST_IsEmpty(NEW."{c}")) '
    'BEGIN DELETE FROM "{r}" WHERE id IN (OLD."{i}", NEW."{i}"); END',
    'CREATE TRIGGER "{r}_delete" AFTER DELETE ON "{t}" WHEN old."{c}" NOT NULL '
    'BEGIN DELETE FROM "{r}" WHERE id = OLD."{i}"; END',
)


def _part(i: int):
    def fn(blob):
        box = envelope(blob)
        return None if box is None else box[i]
    return fn


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions the R-tree triggers call."""
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        conn.create_function(name, 1, _part(i), deterministic=True)
    conn.create_function("ST_IsEmpty", 1, lambda blob: None if blob is None else int(envelope(blob) is None),
                         deterministic=True)


def rtree_name(table: str, column: str = "geom") -> str:
    return f"rtree_{table}_{column}"


def add_rtree(conn, table: str, column: str = "geom", id_column: str = "fid") -> None:
    """Create, fill and declare the table's R-tree and its triggers, unless it has one already."""
    r = rtree_name(table, column)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (r,)).fetchone():
        return
    conn.execute(f'CREATE VIRTUAL TABLE "{r}" USING rtree(id, minx, maxx, miny, maxy)')
    conn.execute(f'INSERT INTO "{r}" SELECT "{id_column}", '
                 + _BOX.replace("NEW.", "").format(c=column)
                 + f' FROM "{table}" WHERE "{column}" NOT NULL AND NOT ST_IsEmpty("{column}")')
    for trigger in _TRIGGERS:
        conn.execute(trigger.format(r=r, t=table, c=column, i=id_column))
    conn.execute("INSERT OR REPLACE INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', ?, 'write-only')",
                 (table, column, _DEFINITION))
