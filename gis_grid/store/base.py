"""The store contract every backend implements, and what the backends share.

Callers use :func:`gis_grid.store.open_store` and the :class:`Store` methods only, so the
embedded GeoPackage store (default) and a PostGIS store are interchangeable.
Tables, all geometry in EPSG:4490:

- ``divisions``: every level (district, street, community, grid) with
  ``version``, ``valid_from``, ``valid_to`` (NULL = current) for history;
- ``buildings``: footprints with kind, floors, units, current ``grid_code``;
- ``households``, ``residents``, ``workers``: attribute tables;
- ``incidents``: cases with a point, per-step timestamps and their event log.
"""
from __future__ import annotations

import abc
import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from types import ModuleType

import pandas as pd

from ..errors import InvalidInputError, NotFoundError, StoreError
from ..paths import DATABASE_URL_ENV, DEFAULT_STORE_NAME, default_store_path  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1
#: the :meth:`Store.scoped` value for whole-district work (atlas loads, statistics, demo writing)
SYSTEM_SCOPE = "*"

#: the incidents table's columns, in the order both backends store them. ``grid_code`` is the
#: case's current grid (re-homed by a boundary apply), ``reported_grid_code`` the one it was logged in
INCIDENT_COLUMNS = (
    "id", "category", "department", "priority", "lon", "lat", "grid_code", "reported_grid_code", "building_id", "reporter",
    "reporter_role", "description", "status", "created", "registered", "dispatched", "handled", "fed_back",
    "closed", "assessed", "cancelled", "deadline", "satisfaction", "assessment", "rework_count", "version",
    "events")

#: the residents table's columns, as both backends return them by default
RESIDENT_COLUMNS = ("id", "household_id", "name", "gender", "birth_date", "id_number", "phone", "relation",
                    "disabled", "low_income", "elderly_alone", "extreme_poverty", "left_behind_child", "veteran",
                    "community_correction")


def with_reported_grid(df: pd.DataFrame) -> pd.DataFrame:
    """Cases to write, ``reported_grid_code`` filled from ``grid_code`` where a caller left it out."""
    rep = df["reported_grid_code"] if "reported_grid_code" in df.columns else pd.Series(None, index=df.index,
                                                                                         dtype=object)
    return df.assign(reported_grid_code=rep.where(rep.notna(), df["grid_code"]))


def safe_columns(columns) -> list[str]:
    """Column names a caller asked for, refused unless they are plain identifiers (they go into SQL)."""
    bad = [c for c in columns if not str(c).isidentifier()]
    if bad:
        raise InvalidInputError(f"not column names: {bad}")
    return list(columns)


def plan_key(plan_id) -> int:
    """A plan id as the tables store it (a 64-bit integer); anything else names no plan."""
    try:
        key = int(plan_id)
    except (TypeError, ValueError):
        key = 0
    if not 0 < key < 2 ** 63:
        raise NotFoundError(f"no plan with id {plan_id}")
    return key


def utc_stamp(at: datetime | None = None) -> str:
    """The UTC text both backends store and compare ``valid_from``/``valid_to`` as (default: now).

    A naive ``at`` is compared as written, as it always was."""
    if at is not None and at.tzinfo is None:
        return at.isoformat()
    return (at or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EmptyStoreError(StoreError):
    """A store with no divisions where a populated one is expected: usually the wrong store.

    The message names the store (without its password): a command without ``--db`` reads the
    default GeoPackage, not the database the service uses, and would report on nothing."""

    def __init__(self, store: "Store"):
        super().__init__(
            f"the store at {store.shown} has no divisions; did you mean another store? Pass --db PATH_OR_URL "
            f"or export {DATABASE_URL_ENV} (docs/operations.md), or fill this one with `gis-grid demo` or "
            "`gis-grid import`")


def require_populated(store: "Store") -> None:
    if not store.has_divisions():
        raise EmptyStoreError(store)


class Store(abc.ABC):
    """What the atlas, the CLI and the API need from persistence."""

    @property
    def shown(self) -> str:
        """Where the store is, safe to print (a database URL without its password)."""
        return str(self.url)

    def has_divisions(self) -> bool:
        """Whether any division is current (backends answer without reading them all)."""
        return not self.divisions().empty

    url: str
    #: called inside every apply transaction after the new grids are written and before the rest;
    #: tests set it on the instance to kill a process there (tests/gis_grid/test_planning.py)
    mid_apply = None

    def _mid_apply(self) -> None:
        if self.mid_apply is not None:
            self.mid_apply()

    @abc.abstractmethod
    def meta(self) -> dict[str, str]: ...

    def atlas_version(self) -> int:
        return int(self.meta().get("atlas_version", "0"))

    @abc.abstractmethod
    def divisions(self, at: datetime | None = None) -> pd.DataFrame:
        """Divisions valid at ``at`` (default: now) with a shapely ``geometry`` column."""

    def current_boundaries(self) -> tuple[int, pd.DataFrame]:
        """The atlas version and the current divisions, read in one snapshot where the backend can."""
        return self.atlas_version(), self.divisions()

    @abc.abstractmethod
    def buildings(self) -> pd.DataFrame: ...

    @abc.abstractmethod
    def households(self, ids=None, building_ids=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def residents(self, household_ids=None, columns=None, ids=None) -> pd.DataFrame:
        """Residents (all columns, or ``columns``), optionally of some households or by id."""

    @abc.abstractmethod
    def workers(self, grid_codes=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def grid_history(self, code: str) -> pd.DataFrame: ...

    # -- boundary planning; see gis_grid.planning -------------------------------------
    @abc.abstractmethod
    def save_plan(self, record: dict) -> int:
        """Store a draft plan (scope, base_version, created_at, source, note, replaces, grids); its id."""

    @abc.abstractmethod
    def plans(self, scope: str | None = None) -> list[dict]: ...

    @abc.abstractmethod
    def plan(self, plan_id: int) -> dict:
        """One stored plan (NotFoundError if none); ``impact``: the impact as of its apply, or None."""

    @abc.abstractmethod
    def delete_plan(self, plan_id: int) -> None:
        """Remove a draft (NotFoundError if none, ConflictError if it was applied)."""

    @abc.abstractmethod
    def grid_codes_ever(self, prefix: str) -> list[str]:
        """Every base-grid code ever issued under ``prefix`` (current, historical, retired)."""

    @abc.abstractmethod
    def apply_changeset(self, changeset, expected_version: int, audit: dict | None = None) -> int:
        """Write a planning ChangeSet atomically if the atlas version is ``expected_version``
        (else PreconditionError, nothing written); returns the new atlas version. ``audit``: a
        record (:func:`~gis_grid.security.audit.new_record`) appended in the same transaction,
        its ``result`` set to the versions."""

    @abc.abstractmethod
    def grid_changes(self, code: str | None = None) -> list[dict]:
        """The audit log of applied plans (those naming ``code``)."""

    @abc.abstractmethod
    def replace_all(self, tables: dict[str, pd.DataFrame], meta: dict[str, str], audit: dict | None = None) -> None:
        """Replace the whole content in one transaction (demo generation, import); ``audit``: the
        change's audit record, committed in the same transaction."""

    # -- incidents (社情民意事件); see gis_grid.incidents ------------------------------
    @abc.abstractmethod
    def incidents(self, ids=None, columns=None, grid_codes=None) -> pd.DataFrame:
        """Cases (all, or those with ``ids``, or currently in ``grid_codes``); an empty frame when the
        store has none yet."""

    @abc.abstractmethod
    def insert_incident(self, row: dict) -> None:
        """Add one case in one transaction (ConflictError if its id exists)."""

    @abc.abstractmethod
    def update_incident(self, row: dict, expected_version: int) -> None:
        """Replace one case if its stored ``version`` is ``expected_version`` (else ConflictError)."""

    @abc.abstractmethod
    def replace_incidents(self, df: pd.DataFrame) -> None:
        """Replace every case in one transaction (demo history, import)."""

    def incidents_version(self) -> int:
        """Bumped on every incident write: a cache key for aggregations."""
        return int(self.meta().get("incidents_version", "0"))

    # -- API keys and the audit log (gis_grid.security) ----------------------------------
    @abc.abstractmethod
    def insert_key(self, record: dict, audit: dict) -> None:
        """Store a new key and append its ``key.create`` audit record, in one transaction
        (PostGIS refuses a key without its record: migration 0004)."""

    @abc.abstractmethod
    def key(self, key_id: str) -> dict:
        """The key record with its digest; NotFoundError if unknown."""

    @abc.abstractmethod
    def keys(self) -> list[dict]:
        """Every key without its digest, oldest first."""

    @abc.abstractmethod
    def revoke_key(self, key_id: str, when: str) -> None: ...

    @abc.abstractmethod
    def append_audit(self, record: dict) -> dict:
        """Append one record to the hash chain atomically; returns it with seq and hashes."""

    @abc.abstractmethod
    def audit_records(self) -> list[dict]: ...

    @abc.abstractmethod
    def audit_head(self) -> str | None:
        """'seq:hash' of the newest record as recorded at append time."""

    # -- row-level scope and replicas (PostGIS enforces the first, see postgis/README.md) --
    @contextmanager
    def scoped(self, scope: str):
        """Inside, personal-data reads see only what lies under the division code ``scope``.

        The PostGIS store enforces it with row-level security, a second line behind the
        caller's own filtering; the GeoPackage store has no such mechanism (a no-op).
        """
        yield self

    def watch_atlas_version(self, callback, interval_s: float = 0.5):
        """Call ``callback(version)`` from a daemon thread when another writer commits a new
        atlas version; returns ``stop()``. May repeat a version: callers compare.

        This default polls :meth:`atlas_version` every ``interval_s`` (a cheap one-row
        read for the GeoPackage file); PostGIS listens for NOTIFY instead.
        """
        stopping = threading.Event()
        seen = self.atlas_version()

        def run() -> None:
            nonlocal seen
            while not stopping.wait(interval_s):
                try:
                    version = self.atlas_version()
                except Exception:  # a store being replaced or deleted: try again next tick
                    continue
                if version != seen:
                    seen = version
                    try:
                        callback(version)
                    except Exception:
                        logging.getLogger("gis_grid.store").exception("atlas version callback failed")

        threading.Thread(target=run, daemon=True, name="gis-grid-poll-atlas-version").start()
        return stopping.set

    def cache_dir(self) -> str | None:
        """Where derived, content-keyed lookup tables may be cached (None: no cache)."""
        return None

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SqlModulesStore(Store):
    """A store whose key/audit SQL lives in a ``security`` module and whose plan SQL lives in a
    ``plans`` module beside it: each backend names its two modules, these forward to them."""

    _security_sql: ModuleType
    _plans_sql: ModuleType

    def insert_key(self, record: dict, audit: dict) -> None:
        self._security_sql.insert_key(self, record, audit)

    def key(self, key_id: str) -> dict:
        return self._security_sql.key(self, key_id)

    def keys(self) -> list[dict]:
        return self._security_sql.keys(self)

    def revoke_key(self, key_id: str, when: str) -> None:
        self._security_sql.revoke_key(self, key_id, when)

    def append_audit(self, record: dict) -> dict:
        return self._security_sql.append_audit(self, record)

    def audit_records(self) -> list[dict]:
        return self._security_sql.audit_records(self)

    def audit_head(self) -> str | None:
        return self._security_sql.audit_head(self)

    def save_plan(self, record: dict) -> int:
        return self._plans_sql.save_plan(self, record)

    def plans(self, scope: str | None = None) -> list[dict]:
        return self._plans_sql.list_plans(self, scope)

    def plan(self, plan_id: int) -> dict:
        return self._plans_sql.get_plan(self, plan_id)

    def delete_plan(self, plan_id: int) -> None:
        self._plans_sql.delete_plan(self, plan_id)

    def grid_codes_ever(self, prefix: str) -> list[str]:
        return self._plans_sql.grid_codes_ever(self, prefix)

    def apply_changeset(self, changeset, expected_version: int, audit: dict | None = None) -> int:
        return self._plans_sql.apply_changeset(self, changeset, expected_version, audit)

    def grid_changes(self, code: str | None = None) -> list[dict]:
        return self._plans_sql.grid_changes(self, code)

