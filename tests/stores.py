"""The store backends the whole suite runs on (one parametrised fixture: conftest.store_backend).

Tests name a store by the GeoPackage path they would use (``tmp_path / "toy.gpkg"``) and pass
it through :func:`location`, which gives the current backend's address for it: the path itself,
or a PostGIS database named after it on the test cluster. Everything after that (``open_store``,
``--db``, ``Settings(db=...)``, ``GIS_GRID_DB``) takes the address unchanged.

``GIS_GRID_TEST_STORES`` picks the backends (default ``gpkg,postgis``);
``GIS_GRID_TEST_DATABASE_URL`` names the PostgreSQL superuser URL (default: the cluster that
``scripts/postgres.sh`` runs). Without a reachable server the PostGIS half is skipped, except
under CI (``CI`` set), where that is an error: a green run must mean both stores passed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "gg_test_"  # every database the suite makes: gg_test_<pid>_<hash>, dropped when its run ends

_state: dict = {"backend": "gpkg", "admin_url": None, "made": set()}


def backends() -> list[str]:
    names = [n.strip() for n in os.environ.get("GIS_GRID_TEST_STORES", "gpkg,postgis").split(",") if n.strip()]
    unknown = set(names) - {"gpkg", "postgis"}
    if unknown:
        raise ValueError(f"GIS_GRID_TEST_STORES: unknown backend(s) {sorted(unknown)}; use gpkg and/or postgis")
    return names


def admin_url() -> str | None:
    """The superuser URL of a reachable test cluster, or None."""
    url = os.environ.get("GIS_GRID_TEST_DATABASE_URL")
    if not url:
        try:
            url = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "url"], capture_output=True,
                                 text=True, check=True, timeout=10).stdout.strip().splitlines()[-1]
        except (OSError, subprocess.SubprocessError, IndexError):
            return None
    try:
        import psycopg
        with psycopg.connect(url, connect_timeout=3):
            return url
    except Exception:  # noqa: BLE001 - any failure means "not reachable", reported by the caller
        return None


def activate(backend: str, url: str | None = None) -> None:
    _state.update(backend=backend, admin_url=url)
    if backend == "postgis":
        drop_test_databases()


def backend() -> str:
    return _state["backend"]


def is_postgis() -> bool:
    return _state["backend"] == "postgis"


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def location(path) -> str:
    """The current backend's address for a store the test would keep at ``path``."""
    path = str(path)
    if _state["backend"] == "gpkg" or path.startswith("postgresql://"):
        return path
    name = f"{PREFIX}{os.getpid()}_{hashlib.sha1(path.encode()).hexdigest()[:16]}"
    if name not in _state["made"]:  # a leftover of an earlier run with the same tmp path
        _state["made"].add(name)
        _drop(name)
    return _with_db(_state["admin_url"], name)


def copy_store(src, dst_path) -> str:
    """A private copy of the store at ``src`` (a file copy, or CREATE DATABASE ... TEMPLATE)."""
    dst = location(dst_path)
    if not is_postgis():
        import sqlite3
        with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
            a.backup(b)  # consistent even while the source has a live WAL
        return dst
    src_db, dst_db = str(src).rpartition("/")[2], dst.rpartition("/")[2]
    with _admin() as conn:
        # TEMPLATE needs the source idle: end the suite's own pooled sessions on it (they reconnect)
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (src_db,))
        conn.execute(f'CREATE DATABASE "{dst_db}" TEMPLATE "{src_db}"')
    return dst


def _admin():
    import psycopg
    return psycopg.connect(_state["admin_url"], autocommit=True)


def _drop(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _owner_alive(name: str) -> bool:
    pid = name[len(PREFIX):].split("_", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}")


_DROP_SCRIPT = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for name in sys.argv[2:]:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
"""


def drop_test_databases() -> None:
    """This run's databases, and those of runs that died; concurrent runs keep theirs.

    Each DROP DATABASE forces a checkpoint (about a second each, for a hundred-odd stores),
    so a detached process does the dropping and the test run does not wait for it.
    """
    with _admin() as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                            (PREFIX.replace("_", r"\_") + "%",))]
    doomed = [n for n in names if not _owner_alive(n)]
    if doomed:
        import sys
        subprocess.Popen([sys.executable, "-c", _DROP_SCRIPT, _state["admin_url"], *doomed],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _state["made"].clear()


def raw_sql(loc, sql: str, params: tuple = ()) -> list:
    """Run SQL straight on a store's database, as someone with database access would (no store code).

    ``?`` placeholders; for tamper tests and for checking what is stored at rest.
    """
    loc = str(loc)
    if loc.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(loc, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    import sqlite3
    conn = sqlite3.connect(loc)
    try:
        cur = conn.execute(sql, params)
        rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()
