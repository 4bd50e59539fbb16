"""The embedded default store: one GeoPackage file that QGIS and GDAL open."""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
import threading
from datetime import datetime
from pathlib import Path

import pandas as pd
import shapely

from ...crs import STORAGE_EPSG
from ...errors import ConflictError, NotFoundError, StoreError
from ...incidents.model import event_log
from ..base import INCIDENT_COLUMNS, RESIDENT_COLUMNS, SCHEMA_VERSION, SqlModulesStore, safe_columns, utc_stamp, with_reported_grid
from . import format as gpkg
from . import conformance, plans, rtree, schema, security

class GeoPackageStore(SqlModulesStore):
    _security_sql, _plans_sql = security, plans

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        self.url = str(self.path)
        self._local = threading.local()
        if not self.path.exists():
            if not create:
                raise StoreError(f"no store at {self.path}; run `gis-grid demo --out {self.path}` "
                                 "or pass --db PATH to an existing store")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create()
        self._check()
        self._upgrade()

    # one connection per thread: sqlite3 connections must not cross threads
    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA foreign_keys=ON")
                rtree.register_functions(c)  # the R-tree triggers call them on every write
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path} is not a readable GeoPackage/SQLite file: {exc}") from exc
            self._local.conn = c
        return c

    def close(self) -> None:
        # fold the WAL into the database file first: connections of other threads (a server's worker
        # pool) stay open, so SQLite's own checkpoint on the last close may never come, and a copied
        # .gpkg without its -wal would miss the latest writes
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextmanager
    def write_transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error: all or nothing.

        IMMEDIATE takes SQLite's write lock up front, so concurrent writers queue
        instead of failing half-way, and a read-then-write (a version check, the
        audit chain's head) cannot be raced.
        """
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _create(self) -> None:
        with self.write_transaction() as c:
            gpkg.init(c, STORAGE_EPSG)
            for table, stmt in schema.TABLES.items():
                c.execute(stmt)
                for index in schema.INDEXES.get(table, ()):
                    c.execute(index)
            for t in ("divisions", "buildings"):
                gpkg.register(c, t, geometry_column="geom", geometry_type=schema.GEOMETRY[t], epsg=STORAGE_EPSG)
            for t in schema.ATTRIBUTES:
                gpkg.register(c, t, geometry_column=None)
            conformance.upgrade(c, STORAGE_EPSG)  # R-trees and the per-level views
            c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('atlas_version', '0')")

    def _upgrade(self) -> None:
        """A store an older gis_grid wrote becomes a conformant GeoPackage on open (once)."""
        if not conformance.outdated(self.conn):
            return
        try:
            with self.write_transaction() as c:
                if conformance.outdated(c):  # another process may have done it meanwhile
                    conformance.upgrade(c, STORAGE_EPSG)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"upgrading {self.path} to GeoPackage {gpkg.VERSION} failed: {exc}") from exc

    def _check(self) -> None:
        # a read-only connection: a foreign or corrupt file must not be switched
        # to WAL mode (which rewrites its header) before we know it is ours
        try:
            ro = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a readable GeoPackage/SQLite file: {exc}") from exc
        try:
            names = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = ro.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is corrupt or not a gis_grid store: {exc}") from exc
        finally:
            ro.close()
        missing = {"divisions", "buildings", "households", "residents", "workers"} - names
        if missing:
            raise StoreError(f"{self.path} is not a gis_grid store: missing tables {sorted(missing)}")
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version and version[0]}, "
                             f"this gis_grid reads version {SCHEMA_VERSION}")

    def _query(self, sql: str, params=()) -> pd.DataFrame:
        try:
            cur = self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"reading {self.path} failed: {exc}") from exc
        cols = [d[0] for d in cur.description]
        df = pd.DataFrame(cur.fetchall(), columns=cols)
        if "geom" in df.columns:
            df["geometry"] = gpkg.decode(df.pop("geom").tolist())
        return df

    def cache_dir(self) -> str:
        return str(self.path.with_name(self.path.stem + ".cache"))

    def has_divisions(self) -> bool:
        return self.conn.execute("SELECT 1 FROM divisions WHERE valid_to IS NULL LIMIT 1").fetchone() is not None

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def divisions(self, at: datetime | None = None) -> pd.DataFrame:
        cols = "geom, code, name, level, parent_code, kind, version, valid_from, valid_to, area_m2"
        if at is None:
            return self._query(f"SELECT {cols} FROM divisions WHERE valid_to IS NULL ORDER BY length(code), code")
        stamp = utc_stamp(at)
        return self._query(f"SELECT {cols} FROM divisions WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
                           " ORDER BY length(code), code", (stamp, stamp))

    def current_boundaries(self) -> tuple[int, pd.DataFrame]:
        c = self.conn
        c.execute("BEGIN")  # a deferred read transaction: both reads see one committed state
        try:
            return self.atlas_version(), self.divisions()
        finally:
            c.execute("COMMIT")

    def grid_history(self, code: str) -> pd.DataFrame:
        df = self._query("SELECT geom, code, name, level, parent_code, version, valid_from, valid_to, area_m2 "
                         "FROM divisions WHERE code = ? ORDER BY version", (code,))
        if df.empty:
            raise NotFoundError(f"no division with code {code!r}")
        return df

    def buildings(self) -> pd.DataFrame:
        return self._query("SELECT geom, id, kind, name, floors, units, grid_code FROM buildings ORDER BY id")

    def households(self, ids=None, building_ids=None) -> pd.DataFrame:
        sql = "SELECT id, building_id, grid_code, unit, floor, room, size, head_name, flags FROM households"
        return self._filtered(sql, ids=ids, building_id=building_ids)

    def residents(self, household_ids=None, columns=None, ids=None) -> pd.DataFrame:
        cols = ", ".join(safe_columns(columns) if columns else RESIDENT_COLUMNS)
        return self._filtered(f"SELECT {cols} FROM residents", ids=ids, household_id=household_ids)

    def workers(self, grid_codes=None) -> pd.DataFrame:
        return self._filtered("SELECT id, grid_code, name, role, phone FROM workers", grid_code=grid_codes)

    def _filtered(self, sql: str, ids=None, **columns) -> pd.DataFrame:
        filters = {"id": ids, **columns}
        # sqlite3 binds no numpy scalars (an int64 matched nothing): plain Python values
        filters = {k: [x.item() if hasattr(x, "item") else x for x in v] for k, v in filters.items() if v is not None}
        if not filters:
            return self._query(sql)
        if not all(filters.values()):
            return self._query(sql + " WHERE 0")
        # temp tables keep large IN lists off the SQL parser's variable limit; every filter applies
        c = self.conn
        where = []
        for i, (col, values) in enumerate(filters.items()):
            c.execute(f"CREATE TEMP TABLE IF NOT EXISTS _keys{i} (k)")
            c.execute(f"DELETE FROM _keys{i}")
            c.executemany(f"INSERT INTO _keys{i} VALUES (?)", [(v,) for v in values])
            where.append(f"{col} IN (SELECT k FROM _keys{i})")
        return self._query(f"{sql} WHERE {' AND '.join(where)}")

    # -- incidents -----------------------------------------------------------------
    def _has_incidents(self) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='incidents'"
                                 ).fetchone() is not None

    def _ensure_incidents(self, c) -> None:
        if not self._has_incidents():
            c.execute(schema.INCIDENTS)
            for stmt in schema.INDEXES["incidents"]:
                c.execute(stmt)
            gpkg.register(c, "incidents", geometry_column="geom", geometry_type=schema.GEOMETRY["incidents"],
                          epsg=STORAGE_EPSG, description=schema.DESCRIPTIONS["incidents"])
            rtree.add_rtree(c, "incidents")
        elif not self._has_reported_grid():  # a table from before re-homing: every case is still where logged
            c.execute("ALTER TABLE incidents ADD COLUMN reported_grid_code TEXT")
            c.execute("UPDATE incidents SET reported_grid_code = grid_code")

    def _has_reported_grid(self) -> bool:
        return any(r[1] == "reported_grid_code" for r in self.conn.execute("PRAGMA table_info(incidents)"))

    def incidents(self, ids=None, columns=None, grid_codes=None) -> pd.DataFrame:
        cols = safe_columns(columns) if columns else list(INCIDENT_COLUMNS)
        if not self._has_incidents():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        if "reported_grid_code" in cols and not self._has_reported_grid():  # not migrated yet (read-only so far)
            cols = ["grid_code AS reported_grid_code" if c == "reported_grid_code" else c for c in cols]
        df = self._filtered(f"SELECT {', '.join(cols)} FROM incidents", ids=ids, grid_code=grid_codes)
        if "events" in df.columns:
            df["events"] = [event_log(e) for e in df["events"]]
        return df

    @staticmethod
    def _incident_rows(df: pd.DataFrame):
        df = with_reported_grid(df)[list(INCIDENT_COLUMNS)].copy()
        df["events"] = [json.dumps(e, ensure_ascii=False) if e is not None and not isinstance(e, str) else e
                        for e in df["events"]]
        pts = shapely.points(df["lon"].to_numpy(dtype=float), df["lat"].to_numpy(dtype=float))
        df.insert(0, "geom", gpkg.encode(pts, STORAGE_EPSG))
        return list(df.columns), df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)

    def _bump_incidents(self, c) -> None:
        v = int(self.meta().get("incidents_version", "0")) + 1
        c.execute("INSERT OR REPLACE INTO meta VALUES ('incidents_version', ?)", (str(v),))

    def _write(self, fn) -> None:
        with self.write_transaction() as c:
            self._ensure_incidents(c)
            fn(c)
            self._bump_incidents(c)

    def insert_incident(self, row: dict) -> None:
        cols, rows = self._incident_rows(pd.DataFrame([row]))

        def go(c):
            if c.execute("SELECT 1 FROM incidents WHERE id = ?", (row["id"],)).fetchone():
                raise ConflictError(f"an incident with id {row['id']!r} exists")
            c.executemany(f"INSERT INTO incidents ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        self._write(go)

    def update_incident(self, row: dict, expected_version: int) -> None:
        cols, rows = self._incident_rows(pd.DataFrame([row]))
        values = next(iter(rows))

        def go(c):
            cur = c.execute(f"UPDATE incidents SET {', '.join(f'{k} = ?' for k in cols)} "
                            "WHERE id = ? AND version = ?", (*values, row["id"], int(expected_version)))
            if cur.rowcount != 1:
                if c.execute("SELECT 1 FROM incidents WHERE id = ?", (row["id"],)).fetchone() is None:
                    raise NotFoundError(f"no incident with id {row['id']!r}")
                raise ConflictError(f"incident {row['id']!r} changed since version {expected_version}; "
                                    "reload it and retry")
        self._write(go)

    def replace_incidents(self, df: pd.DataFrame) -> None:
        cols, rows = self._incident_rows(df)

        def go(c):
            c.execute("DELETE FROM incidents")
            c.executemany(f"INSERT INTO incidents ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
            if len(df):
                c.execute("UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=? WHERE table_name='incidents'",
                          (float(df["lon"].min()), float(df["lat"].min()), float(df["lon"].max()),
                           float(df["lat"].max())))
        self._write(go)

    def replace_all(self, tables: dict[str, pd.DataFrame], meta: dict[str, str], audit: dict | None = None) -> None:
        with self.write_transaction() as c:
            for table, df in tables.items():
                c.execute(f"DELETE FROM {table}")
                df = df.copy()
                if "geometry" in df.columns:
                    df["geom"] = gpkg.encode(df.pop("geometry").to_numpy(), STORAGE_EPSG)
                cols = list(df.columns)
                rows = df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)
                c.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              rows)
            for table in ("divisions", "buildings"):
                if table in tables:
                    gpkg.update_extent(c, table)
            if "divisions" in tables:
                for view in schema.LEVEL_VIEWS:
                    gpkg.update_extent(c, view)
            version = int(self.meta().get("atlas_version", "0")) + 1
            for k, v in {**meta, "atlas_version": str(version), "updated_at": utc_stamp()}.items():
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))
            if audit is not None:  # committed with the change, or not at all
                from ...security.audit import committed
                from .security import append_audit_in
                append_audit_in(c, committed(audit, version - 1, version))
