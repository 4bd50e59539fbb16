"""Databases as a whole: create (from a migrated template), migrate, check, drop.

Creating a store must be cheap (the tests make many): the first creation per
migration state builds ``gis_grid_template_<head>_<digest>`` once, under an
advisory lock so concurrent processes build it once, and every later store is
``CREATE DATABASE x TEMPLATE that`` (a file copy, ~0.2 s) instead of a
migration run with CREATE EXTENSION postgis (~1.5 s).
"""
from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pgerr, sql
from psycopg.conninfo import conninfo_to_dict

from ...errors import StoreError
from . import migrate

MAINTENANCE_DB = "postgres"
TEMPLATE_PREFIX = "gis_grid_template_"


def normalise(url: str) -> str:
    """``postgres://`` and SQLAlchemy's ``postgresql+psycopg://`` -> libpq's ``postgresql://``."""
    scheme, rest = str(url).split("://", 1)
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise StoreError(f"not a PostgreSQL URL: {redact(url)}")
    return "postgresql://" + rest


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(str(url))
        if parts.password is None:
            return str(url)
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable database URL>"


def dbname(url: str) -> str:
    params = conninfo_to_dict(url)
    return params.get("dbname") or params.get("user") or os.environ.get("PGDATABASE") or os.environ.get(
        "PGUSER", "postgres")


def with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name)))


def _admin(url: str) -> psycopg.Connection:
    """An autocommit connection to the maintenance database with the URL's credentials."""
    try:
        return psycopg.connect(with_dbname(url, MAINTENANCE_DB), autocommit=True)
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}".strip()) from exc


def _exists(admin: psycopg.Connection, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def exists(url: str) -> bool:
    """Whether the database named by ``url`` exists (asked on the maintenance database)."""
    url = normalise(url)
    with _admin(url) as admin:
        return _exists(admin, dbname(url))


def _check_name(name: str) -> None:
    # the name goes into CREATE/DROP DATABASE (quoted); refuse what would surprise
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,63}", name):
        raise StoreError(f"database name {name!r}: use 1-63 letters, digits, '_' or '-'")


def current_revision(conn: psycopg.Connection) -> str | None:
    """The database's migration revision; None if it has never been migrated."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except pgerr.UndefinedTable:
        return None
    return row[0] if row else None


def template_name() -> str:
    return TEMPLATE_PREFIX + migrate.fingerprint()


def _ensure_template(admin: psycopg.Connection, url: str) -> str:
    name = template_name()
    if _exists(admin, name):
        return name
    admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
    try:
        if _exists(admin, name):  # built by another process while we waited
            return name
        building = f"{name[:40]}_build_{os.getpid()}"
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(building)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
        try:
            migrate.upgrade(with_dbname(url, building))
        except Exception:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(building)))
            raise
        # renamed only once complete, so a template under the final name is always fully migrated;
        # no connections are allowed to it, as CREATE DATABASE ... TEMPLATE needs it idle
        admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building),
                                                                      sql.Identifier(name)))
        admin.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)))
        return name
    finally:
        admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


def create(url: str) -> bool:
    """Make sure the database at ``url`` exists and is migrated to head; True if it was created."""
    url = normalise(url)
    name = dbname(url)
    _check_name(name)
    with _admin(url) as admin:
        if not _exists(admin, name):
            try:
                template = _ensure_template(admin, url)
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)))
                # database privileges are not copied from a template: repeat migration 0004's
                admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE {0} FROM PUBLIC; "
                                      "GRANT CONNECT ON DATABASE {0} TO gis_grid_owner, gis_grid_app").format(
                    sql.Identifier(name)))
                return True
            except pgerr.DuplicateDatabase:
                pass  # created concurrently by another process: fall through and migrate it
            except psycopg.Error as exc:
                raise StoreError(f"cannot create database {name!r} at {redact(url)}: {str(exc).strip()}; "
                                 "a superuser (or a role with CREATEDB and CREATEROLE) must run "
                                 "`gis-grid db upgrade --db URL` first") from exc
    upgrade(url)
    return False


def upgrade(url: str) -> str:
    """Migrate an existing database to head (a no-op when it is there); returns the revision."""
    url = normalise(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if current_revision(conn) == migrate.head():
                return migrate.head()
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to {redact(url)}: {exc}".strip()) from exc
    try:
        migrate.upgrade(url)
    except Exception as exc:
        import sqlalchemy.exc as saexc
        if isinstance(exc, saexc.ProgrammingError | saexc.OperationalError):
            raise StoreError(f"migrating {redact(url)} failed (migrations need a superuser: they create "
                             f"roles and the postgis extension): {exc.orig}") from exc
        raise
    return migrate.head()


def drop(url: str) -> None:
    """Drop the database at ``url`` (test clean-up); closes its other sessions first."""
    url = normalise(url)
    name = dbname(url)
    _check_name(name)
    if name in (MAINTENANCE_DB, "template0", "template1") or name.startswith(TEMPLATE_PREFIX):
        raise StoreError(f"refusing to drop {name!r}")
    with _admin(url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
