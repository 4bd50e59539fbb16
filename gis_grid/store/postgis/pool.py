"""A small thread-safe connection pool whose every connection works as the application role.

The API serves from a thread pool; each store call borrows one connection for one
transaction and gives it back. At most ``GIS_GRID_DB_POOL_MAX`` (default 8) are
open per store, so many replicas (and the many stores a test session makes) stay
under the server's ``max_connections``; at most ``max_idle`` stay open between calls.

Every wait is bounded by default, so an unreachable or silent server costs a request seconds,
not for ever (0 turns one off):

- ``GIS_GRID_DB_CONNECT_TIMEOUT_S`` (default 5): opening a connection, including a server that
  accepts and never answers; a ``connect_timeout`` in the URL wins;
- ``GIS_GRID_DB_STATEMENT_TIMEOUT_S`` (default 60): one statement, enforced by the server;
- ``GIS_GRID_DB_POOL_TIMEOUT_S`` (default 10): waiting for a free pooled connection.
"""
from __future__ import annotations

import os
import select
import threading
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerr

from ...errors import StoreError
from .database import redact

APP_ROLE = "gis_grid_app"


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        raise StoreError(f"{name} must be a number of seconds") from None
    return max(value, 0.0)


def connect_as_app(url: str, application_name: str = "gis_grid", **kwargs) -> psycopg.Connection:
    """A connection working as ``gis_grid_app``, whoever the URL logs in as.

    A superuser or owner login would bypass row-level security (or own the tables);
    ``SET ROLE`` makes every statement run with the application's grants and policies.
    """
    if "connect_timeout" not in psycopg.conninfo.conninfo_to_dict(url):
        connect_s = _seconds("GIS_GRID_DB_CONNECT_TIMEOUT_S", 5)
        if connect_s:
            kwargs.setdefault("connect_timeout", max(1, round(connect_s)))  # libpq takes whole seconds
    try:
        conn = psycopg.connect(url, autocommit=True, application_name=application_name, **kwargs)
    except psycopg.OperationalError as exc:
        msg = str(exc).strip()
        if "does not exist" in msg and "database" in msg:
            raise StoreError(f"no store at {redact(url)}: the database does not exist; create it with "
                             f"`gis-grid db upgrade --db URL` or `gis-grid demo --out URL`") from exc
        raise StoreError(f"cannot connect to {redact(url)}: {msg}") from exc
    try:
        conn.execute(f"SET ROLE {APP_ROLE}")
        statement_ms = int(_seconds("GIS_GRID_DB_STATEMENT_TIMEOUT_S", 60) * 1000)
        conn.execute(f"SET statement_timeout = {statement_ms}")
    except (pgerr.InsufficientPrivilege, pgerr.InvalidParameterValue) as exc:
        conn.close()
        raise StoreError(f"{redact(url)}: cannot work as the {APP_ROLE} role ({exc}); log in as "
                         f"{APP_ROLE}, a superuser, or a member of it, after `gis-grid db upgrade`") from exc
    return conn


def _alive(conn: psycopg.Connection) -> bool:
    """An idle connection has nothing to read; if it has, the server ended the session (a restart,
    pg_terminate_backend, DROP DATABASE ... FORCE elsewhere) and the first query would fail."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable


class Pool:
    def __init__(self, url: str, *, max_size: int | None = None, max_idle: int = 2, timeout_s: float | None = None):
        self.url = url
        self.max_size = max_size or int(os.environ.get("GIS_GRID_DB_POOL_MAX", "8"))
        self.max_idle = max_idle
        self.timeout_s = _seconds("GIS_GRID_DB_POOL_TIMEOUT_S", 10) if timeout_s is None else timeout_s
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_size)

    @contextmanager
    def connection(self):
        if not self._slots.acquire(timeout=self.timeout_s or None):
            raise StoreError(f"no free database connection within {self.timeout_s:g} s "
                             f"(GIS_GRID_DB_POOL_MAX={self.max_size})")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is not None and not _alive(conn):
                conn.close()
                conn = None
            if conn is None:
                conn = connect_as_app(self.url)
            try:
                yield conn
            except BaseException:
                self._give_back(conn)
                raise
            self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: psycopg.Connection) -> None:
        healthy = not conn.closed and not conn.broken and \
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (a later call simply opens new ones, as GeoPackageStore does)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
