"""The PostGIS store: the same :class:`~gis_grid.store.Store` contract as the GeoPackage store.

Every call is one transaction on a pooled connection working as ``gis_grid_app``,
opened with ``set_config('gis_grid.scope', ..., true)``: the whole database ('*')
unless the caller narrowed it with :meth:`scoped`. Row-level security then
decides which personal-data rows that transaction sees (see README.md).
"""
from __future__ import annotations

import contextvars
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
import psycopg
from psycopg import errors as pgerr

from ...errors import (ConflictError, GisGridError, InvalidInputError, NotFoundError, PermissionDeniedError,
                      StoreError)
from ...hierarchy import level_of
from ..base import INCIDENT_COLUMNS, RESIDENT_COLUMNS, SCHEMA_VERSION, SYSTEM_SCOPE, SqlModulesStore, safe_columns, utc_stamp
from . import database, incidents, migrate, plans, security
from .frames import column_types, copy_frame, read_frame
from .notify import watch
from .pool import Pool

#: NOTIFY channel carrying the new atlas version; NOTIFY is per database, so one name serves all
ATLAS_CHANNEL = "gis_grid_atlas"

_DIVISION_COLS = "ST_AsBinary(geom) AS geom, code, name, level, parent_code, kind, version, valid_from, valid_to, area_m2"
_PEOPLE_TABLES = ("divisions", "buildings", "households", "residents", "workers")


def _check_scope(scope: str) -> str:
    scope = str(scope)
    if scope != SYSTEM_SCOPE:
        level_of(scope)  # InvalidInputError for anything but a division code
    return scope


class PostGISStore(SqlModulesStore):
    _security_sql, _plans_sql = security, plans

    def __init__(self, url: str, *, create: bool = False):
        self.url = database.normalise(url)
        self._shown = database.redact(self.url)
        if create:
            database.create(self.url)
        self._pool = Pool(self.url)
        self._scope = contextvars.ContextVar(f"gis_grid_scope_{id(self)}", default=SYSTEM_SCOPE)
        self._types: dict[str, dict[str, str]] = {}
        self._watches: list = []
        self._check()

    def _check(self) -> None:
        with self._pool.connection() as conn:
            rev = database.current_revision(conn)
            if rev is None:
                raise StoreError(f"{self._shown} is not a gis_grid store (no migrations applied); run "
                                 f"`gis-grid db upgrade --db URL` or `gis-grid demo --out URL`")
            if rev != migrate.head():
                raise StoreError(f"{self._shown} is at schema revision {rev}, this gis_grid needs "
                                 f"{migrate.head()}: run `gis-grid db upgrade --db URL`")
            with conn.transaction():
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self._shown} has schema version {row and row[0]}, "
                             f"this gis_grid reads version {SCHEMA_VERSION}")

    @property
    def shown(self) -> str:
        return self._shown

    def has_divisions(self) -> bool:
        with self.transaction() as cur:
            return cur.execute("SELECT 1 FROM divisions WHERE valid_to IS NULL LIMIT 1").fetchone() is not None

    def __repr__(self) -> str:
        return f"PostGISStore({self._shown!r})"

    # -- transactions --------------------------------------------------------------
    @contextmanager
    def scoped(self, scope: str):
        """Reads and writes inside see only personal data under ``scope`` (row-level security)."""
        token = self._scope.set(_check_scope(scope))
        try:
            yield self
        finally:
            self._scope.reset(token)

    @contextmanager
    def transaction(self):
        """A cursor in one transaction, with this context's scope set for row-level security."""
        with self._pool.connection() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT set_config('gis_grid.scope', %s, true)", (self._scope.get(),))
                    yield cur
            except GisGridError:
                raise
            except pgerr.InsufficientPrivilege as exc:
                raise PermissionDeniedError(f"the database refused: {exc.diag.message_primary}") from exc
            except pgerr.IntegrityError as exc:
                raise ConflictError(f"the write conflicts with stored data: {exc.diag.message_primary}"
                                    + (f" ({exc.diag.message_detail})" if exc.diag.message_detail else "")) from exc
            except pgerr.DataError as exc:
                raise InvalidInputError(f"the database refused a value: {exc.diag.message_primary}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"{self._shown}: {type(exc).__name__}: {str(exc).strip()}") from exc

    @contextmanager
    def system_transaction(self, what: str):
        """A transaction for whole-district writes. Inside a narrower :meth:`scoped` they are
        refused: widening would escape the caller's scope, and RLS would silently make them partial."""
        scope = self._scope.get()
        if scope != SYSTEM_SCOPE:
            raise PermissionDeniedError(f"{what} writes the whole district; it cannot run in scope {scope}")
        with self.transaction() as cur:
            yield cur

    def _read(self, query, params=None) -> pd.DataFrame:
        with self.transaction() as cur:
            return read_frame(cur, query, params)

    def _types_of(self, cur, table: str) -> dict[str, str]:
        if table not in self._types:
            self._types[table] = column_types(cur, table)
        return self._types[table]

    def copy(self, cur, table: str, df: pd.DataFrame, extra: dict | None = None) -> int:
        return copy_frame(cur, table, df, self._types_of(cur, table), extra)

    def close(self) -> None:
        """Close idle connections and end this store's watches (each holds a LISTEN session)."""
        while self._watches:
            self._watches.pop()()
        self._pool.close()

    def cache_dir(self) -> str:
        # lookup tables are keyed by content, so every database may share one directory
        return os.environ.get("GIS_GRID_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "gis_grid_cache")

    # -- meta and the atlas ----------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.transaction() as cur:
            return dict(cur.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, cur, values: dict) -> None:
        cur.executemany("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        [(str(k), str(v)) for k, v in values.items()])

    def locked_atlas_version(self, cur) -> int:
        """The atlas version, row-locked until commit: version-checked writers queue here."""
        return int(cur.execute("SELECT value FROM meta WHERE key = 'atlas_version' FOR UPDATE").fetchone()[0])

    def publish_atlas_version(self, cur, version: int) -> None:
        """Store the new version and announce it; NOTIFY is delivered at commit, or never."""
        self.set_meta(cur, {"atlas_version": version})
        cur.execute("SELECT pg_notify(%s, %s)", (ATLAS_CHANNEL, str(version)))

    def divisions(self, at: datetime | None = None) -> pd.DataFrame:
        if at is None:
            return self._read(f"SELECT {_DIVISION_COLS} FROM divisions WHERE valid_to IS NULL "
                              "ORDER BY length(code), code")
        stamp = utc_stamp(at)
        return self._read(f"SELECT {_DIVISION_COLS} FROM divisions WHERE valid_from <= %s "
                          "AND (valid_to IS NULL OR valid_to > %s) ORDER BY length(code), code", (stamp, stamp))

    def grid_history(self, code: str) -> pd.DataFrame:
        df = self._read("SELECT ST_AsBinary(geom) AS geom, code, name, level, parent_code, version, valid_from, "
                        "valid_to, area_m2 FROM divisions WHERE code = %s ORDER BY version", (str(code),))
        if df.empty:
            raise NotFoundError(f"no division with code {code!r}")
        return df

    def buildings(self) -> pd.DataFrame:
        return self._read("SELECT ST_AsBinary(geom) AS geom, id, kind, name, floors, units, grid_code "
                          "FROM buildings ORDER BY id")

    # -- people (row-level security applies) -------------------------------------------
    def households(self, ids=None, building_ids=None) -> pd.DataFrame:
        return self._filtered("SELECT id, building_id, grid_code, unit, floor, room, size, head_name, flags "
                              "FROM households", id=(ids, str), building_id=(building_ids, int))

    def residents(self, household_ids=None, columns=None, ids=None) -> pd.DataFrame:
        cols = ", ".join(safe_columns(columns) if columns else RESIDENT_COLUMNS)
        return self._filtered(f"SELECT {cols} FROM residents", id=(ids, str), household_id=(household_ids, str))

    def workers(self, grid_codes=None) -> pd.DataFrame:
        return self._filtered("SELECT id, grid_code, name, role, phone FROM workers", grid_code=(grid_codes, str))

    def _filtered(self, query: str, **filters) -> pd.DataFrame:
        where, params = [], []
        for col, (values, kind) in filters.items():
            if values is None:
                continue
            where.append(f"{col} = ANY(%s)")
            params.append([kind(v) for v in values])  # numpy scalars are not adaptable
        if where:
            query += " WHERE " + " AND ".join(where)
        return self._read(query, params)

    # -- bulk replace ----------------------------------------------------------------------
    def replace_all(self, tables: dict[str, pd.DataFrame], meta: dict[str, str], audit: dict | None = None) -> None:
        unknown = set(tables) - set(_PEOPLE_TABLES)
        if unknown:
            raise InvalidInputError(f"replace_all writes {', '.join(_PEOPLE_TABLES)}, not {sorted(unknown)}")
        with self.system_transaction("replace_all") as cur:
            version = self.locked_atlas_version(cur) + 1
            if "residents" in tables:
                grids = self._household_grids(cur, tables, tables["residents"]["household_id"])
            for table in _PEOPLE_TABLES:
                if table not in tables:
                    continue
                df = tables[table]
                self.begin_replace(cur, table)
                self.copy(cur, table, df.assign(grid_code=grids) if table == "residents" else df)
            self.end_replace(cur)
            if "households" in tables and "residents" not in tables:
                cur.execute("UPDATE residents r SET grid_code = h.grid_code FROM households h "
                            "WHERE h.id = r.household_id AND r.grid_code IS DISTINCT FROM h.grid_code")
            self.set_meta(cur, {**meta, "updated_at": utc_stamp()})
            self.publish_atlas_version(cur, version)
            if audit is not None:  # committed with the change, or not at all
                from ...security.audit import committed
                security.append_audit_in(self, cur, committed(audit, version - 1, version))

    @staticmethod
    def begin_replace(cur, table: str) -> None:
        """Empty ``table`` for a whole-table load and drop its secondary indexes until
        :meth:`end_replace` (one index build after the load, not one insert per row; then ANALYZE)."""
        cur.execute("SELECT gis_grid_begin_replace(%s)", (table,))

    @staticmethod
    def end_replace(cur) -> None:
        cur.execute("SELECT gis_grid_end_replace()")

    def _household_grids(self, cur, tables, household_ids: pd.Series) -> pd.Series:
        """Each resident's household's grid, for the residents' RLS column."""
        if "households" in tables:
            hh = tables["households"][["id", "grid_code"]]
        else:
            hh = read_frame(cur, "SELECT id, grid_code FROM households")
        return household_ids.map(pd.Series(hh["grid_code"].to_numpy(), index=hh["id"].to_numpy()))

    # -- incidents ---------------------------------------------------------------------------
    def incidents(self, ids=None, columns=None, grid_codes=None) -> pd.DataFrame:
        return incidents.read(self, ids, safe_columns(columns) if columns else list(INCIDENT_COLUMNS), grid_codes)

    def insert_incident(self, row: dict) -> None:
        incidents.insert(self, row)

    def update_incident(self, row: dict, expected_version: int) -> None:
        incidents.update(self, row, expected_version)

    def replace_incidents(self, df: pd.DataFrame) -> None:
        incidents.replace(self, df)

    # -- replicas --------------------------------------------------------------------------------
    def watch_atlas_version(self, callback):

        stop = watch(self.url, ATLAS_CHANNEL, callback)
        self._watches.append(stop)
        return stop
