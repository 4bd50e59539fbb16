"""Make a store file a conformant GeoPackage 1.3: new stores, and those older versions wrote.

Older stores declared geometry columns BLOB, keyed households/residents/workers by TEXT, had no
R-tree indexes and one ``divisions`` layer. :func:`upgrade` fixes each of these once (it is
idempotent); :func:`outdated` is the cheap test run on every open.
"""
from __future__ import annotations

from . import format as gpkg
from .rtree import add_rtree, rtree_name
from .schema import ATTRIBUTES, FILLED_FROM, GEOMETRY, INCIDENTS, INDEXES, LEVEL_VIEWS, TABLES, level_view


def _exists(c, name: str) -> bool:
    return c.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def _columns(c, table: str) -> dict[str, str]:
    return {r[1]: r[2].upper() for r in c.execute(f'PRAGMA table_info("{table}")')}


def _stale(c, table: str) -> bool:
    cols = _columns(c, table)
    if not cols:  # not there (incidents before the first case)
        return False
    return cols.get("geom") != GEOMETRY[table] if table in GEOMETRY else "fid" not in cols


def outdated(c) -> bool:
    return (c.execute("PRAGMA user_version").fetchone()[0] != gpkg.USER_VERSION
            or not _exists(c, "gpkg_extensions")
            or any(_stale(c, t) for t in (*GEOMETRY, *ATTRIBUTES))
            or any(_exists(c, t) and not _exists(c, rtree_name(t)) for t in GEOMETRY)
            or not all(_exists(c, v) for v in LEVEL_VIEWS))


def _rebuild(c, table: str) -> None:
    """Copy the table into its current definition (SQLite cannot change a column's type or key in place)."""
    new = f"_rebuilt_{table}"
    c.execute(f'DROP TABLE IF EXISTS "{rtree_name(table)}"')
    c.execute((INCIDENTS if table == "incidents" else TABLES[table])
              .replace(f"CREATE TABLE {table} (", f"CREATE TABLE {new} (", 1))
    old = _columns(c, table)
    target = [col for col in _columns(c, new) if col in old or FILLED_FROM.get(col) in old]
    source = [col if col in old else FILLED_FROM[col] for col in target]
    c.execute(f"INSERT INTO {new} ({', '.join(target)}) SELECT {', '.join(source)} FROM {table} ORDER BY rowid")
    c.execute(f"DROP TABLE {table}")
    c.execute(f"ALTER TABLE {new} RENAME TO {table}")
    for stmt in INDEXES.get(table, ()):
        c.execute(stmt)


def add_level_views(c, epsg: int) -> None:
    for view, level in LEVEL_VIEWS.items():
        if not _exists(c, view):
            c.execute(level_view(view))
            gpkg.register(c, view, geometry_column="geom", geometry_type=GEOMETRY["divisions"], epsg=epsg,
                          description=f"current {level} divisions (a view of divisions)")
            gpkg.update_extent(c, view)


def upgrade(c, epsg: int) -> None:
    """Within a write transaction: everything :func:`outdated` checks, made current."""
    gpkg.init(c, epsg)  # application id, user_version, gpkg_extensions
    stale = [t for t in (*GEOMETRY, *ATTRIBUTES) if _stale(c, t)]
    if stale:
        for view in LEVEL_VIEWS:  # a view naming a dropped table would fail the rename
            c.execute(f"DROP VIEW IF EXISTS {view}")
        for table in stale:
            _rebuild(c, table)
    for table in GEOMETRY:
        if _exists(c, table):
            add_rtree(c, table)
    add_level_views(c, epsg)
