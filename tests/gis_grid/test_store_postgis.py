"""The PostGIS store: same behaviour as the GeoPackage store, row-level security, NOTIFY, migrations.

Runs against the cluster of ``GIS_GRID_TEST_DATABASE_URL`` (default: ``scripts/postgres.sh url``)
and is skipped, saying why, when none is reachable. Every database made here is named
``gg_test_<pid>_pgs_*`` (so a concurrent run's clean-up sees its owner alive) and dropped afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

import stores
from common import X0, X1, XM, Y0, Y1, YM, toy_divisions, toy_people
from gis_grid import testing
from gis_grid.atlas import Atlas
from gis_grid.errors import (ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError,
                             PreconditionError, StoreError)
from gis_grid.security import audit
from gis_grid.store import open_store
from gis_grid.store.gpkg import GeoPackageStore

G1, G2 = "370402001001001", "370402001001002"   # west community: Ha1, Hb2 (3 residents) / Hc3 (1)
E1 = "370402002001001"                           # east: Hd4 (1 resident)
APP = "gis_grid_app"
PERSONAL = ("households", "residents", "workers", "incidents")


@pytest.fixture(scope="module")
def admin_url(store_backend):
    if store_backend == "gpkg" and "postgis" in stores.backends():
        pytest.skip("PostGIS-only tests: they run once, in the [postgis] half of the session")
    url = stores.admin_url()
    if url is None:
        pytest.skip("no PostgreSQL/PostGIS reachable: run `scripts/postgres.sh start` or set "
                    "GIS_GRID_TEST_DATABASE_URL")
    return url


@pytest.fixture()
def new_url(admin_url, request):
    """A factory of fresh database URLs on the test cluster, dropped after the test."""
    from gis_grid.store.postgis import drop_database
    made = []

    def make(tag: str = "") -> str:
        # the run's pid in the name: stores.drop_test_databases of a concurrent run leaves it alone
        name = f"{stores.PREFIX}{os.getpid()}_pgs_" + hashlib.sha1(
            f"{request.node.nodeid}{tag}{uuid.uuid4()}".encode()).hexdigest()[:12]
        url = admin_url.rpartition("/")[0] + "/" + name
        made.append(url)
        return url

    yield make
    for url in made:
        drop_database(url)


def toy_tables() -> dict[str, pd.DataFrame]:
    # a second worker, in the east, so scoped reads of workers have something to leave out
    return testing.toy_tables(workers=pd.DataFrame({"id": ["W1", "W2"], "grid_code": [G1, E1], "name": ["周八", "吴九"],
                                                    "role": ["网格长", "网格员"],
                                                    "phone": ["13900001111", "13900002222"]}))


def _write(store):
    store.replace_all(toy_tables(), {"district": "370402"})
    return store


@pytest.fixture()
def pg(new_url):
    url = new_url()
    with _write(open_store(url, create=True)) as store:
        yield store


@pytest.fixture()
def gp(tmp_path):
    with _write(GeoPackageStore(tmp_path / "ref.gpkg", create=True)) as store:
        yield store


def app_url(store) -> str:
    """The store's database, logged in as the application role itself (LOGIN, trust on loopback)."""
    parts = store.url.split("://", 1)[1].split("@", 1)[1]
    return f"postgresql://{APP}@{parts}"


def _same_frame(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    assert list(a.columns) == list(b.columns), what
    if "geometry" in a.columns:
        assert all(shapely.equals_exact(x, y, tolerance=0) for x, y in zip(a["geometry"], b["geometry"])), what
        a, b = a.drop(columns="geometry"), b.drop(columns="geometry")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), obj=what)


# -- same behaviour as the GeoPackage store ------------------------------------------------
def test_every_read_matches_the_geopackage_store(pg, gp):
    past = datetime(2015, 1, 1, tzinfo=timezone.utc)
    for what, read in {
        "divisions": lambda s: s.divisions(),
        "divisions at": lambda s: s.divisions(at=past),
        "divisions before time": lambda s: s.divisions(at=datetime(2000, 1, 1, tzinfo=timezone.utc)),
        "buildings": lambda s: s.buildings(),
        "households": lambda s: s.households(),
        "households by id": lambda s: s.households(ids=["Hb2", "Ha1"]),
        "households by building": lambda s: s.households(building_ids=[1, 3]),
        "households none": lambda s: s.households(ids=[]),
        "residents": lambda s: s.residents(),
        "residents columns": lambda s: s.residents(household_ids=["Ha1"], columns=["id", "name"]),
        "residents by id": lambda s: s.residents(ids=["Rq4", "nope"]),
        "workers": lambda s: s.workers(),
        "workers by grid": lambda s: s.workers(grid_codes=[E1]),
        "grid history": lambda s: s.grid_history(G1),
        "incidents (none yet)": lambda s: s.incidents(),
    }.items():
        _same_frame(read(pg), read(gp), what)
    drop = lambda m: {k: v for k, v in m.items() if k != "updated_at"}  # noqa: E731
    assert drop(pg.meta()) == drop(gp.meta()) and pg.atlas_version() == gp.atlas_version() == 1
    assert pg.incidents_version() == gp.incidents_version() == 0
    for name in ("plans", "grid_changes", "keys", "audit_records"):
        assert getattr(pg, name)() == getattr(gp, name)() == [], name
    assert pg.audit_head() is gp.audit_head() is None
    assert pg.grid_codes_ever("370402001") == gp.grid_codes_ever("370402001") == [G1, G2]
    for s in (pg, gp):
        with pytest.raises(NotFoundError):
            s.grid_history("370402009009009")
        with pytest.raises(NotFoundError):
            s.plan(7)
        with pytest.raises(NotFoundError):
            s.key("nope")
        with pytest.raises(ValueError):
            s.residents(columns=["id; DROP TABLE residents"])


def test_geometry_is_stored_in_4490_with_gist_indexes(pg):
    with psycopg.connect(pg.url) as conn:
        cols = dict(conn.execute("SELECT f_table_name || '.' || f_geometry_column, type || ':' || srid "
                                 "FROM geometry_columns").fetchall())
        gist = {r[0] for r in conn.execute("SELECT tablename FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")}
    assert cols == {"divisions.geom": "MULTIPOLYGON:4490", "buildings.geom": "POLYGON:4490",
                    "incidents.geom": "POINT:4490"}
    assert gist == {"divisions", "buildings", "incidents"}


def test_atlas_from_postgis_locates_like_the_geopackage_one(pg, gp):
    a, b = Atlas.from_store(pg), Atlas.from_store(gp)
    rng = np.random.default_rng(7)
    lon = rng.uniform(X0 - 0.005, X1 + 0.005, 20_000)
    lat = rng.uniform(Y0 - 0.005, Y1 + 0.005, 20_000)
    lon[:3], lat[:3] = [XM, X0, 117.505], [YM, Y0, 34.815]  # shared edges and a building
    pd.testing.assert_frame_equal(a.locate_many(lon, lat), b.locate_many(lon, lat))
    assert a.version == b.version == 1


def test_replace_all_keeps_untouched_tables_and_bumps_the_version(pg):
    hh, res = toy_people()
    pg.replace_all({"households": hh.iloc[:2], "residents": res.iloc[:3]}, {})
    assert pg.atlas_version() == 2 and len(pg.households()) == 2 and len(pg.buildings()) == 4
    with pytest.raises(InvalidInputError):
        pg.replace_all({"nonsense": hh}, {})
    with pytest.raises(InvalidInputError):
        pg.replace_all({"households": hh.assign(colour="red")}, {})
    with pytest.raises(ConflictError):  # duplicate ids: nothing written
        pg.replace_all({"households": pd.concat([hh, hh])}, {})
    assert pg.atlas_version() == 2 and len(pg.households()) == 2


def _indexes(store) -> set[str]:
    with psycopg.connect(store.url) as conn:
        return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}


def test_whole_table_replaces_rebuild_indexes_and_need_the_system_scope(pg):
    before = _indexes(pg)
    assert {"residents_grid", "residents_household", "buildings_geom", "households_grid"} <= before
    hh, _ = toy_people()
    with pytest.raises(ConflictError):  # fails after its indexes were dropped: all rolled back
        pg.replace_all({"households": pd.concat([hh, hh])}, {})
    assert _indexes(pg) == before and len(pg.households()) == 5
    pg.replace_all(toy_tables(), {})
    assert _indexes(pg) == before
    with psycopg.connect(pg.url) as conn:  # analysed in the same transaction: the planner knows the sizes
        assert conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'residents'").fetchone()[0] > 0
    with psycopg.connect(app_url(pg)) as conn:  # TRUNCATE skips RLS, so a scoped session may not
        conn.execute("SELECT set_config('gis_grid.scope', %s, true)", (G1,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT gis_grid_begin_replace('residents')")
    assert len(pg.residents()) == 6


def test_opening_errors_are_store_errors(new_url, admin_url):
    missing = new_url()
    with pytest.raises(StoreError, match="does not exist"):
        open_store(missing)
    with psycopg.connect(admin_url, autocommit=True) as conn:  # a database that is not a store
        conn.execute(f'CREATE DATABASE "{missing.rpartition("/")[2]}"')
    with pytest.raises(StoreError, match="not a gis_grid store"):
        open_store(missing)
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://postgres@127.0.0.1:1/nothing")


def test_gis_grid_database_url_is_the_default_store(pg, monkeypatch):
    monkeypatch.setenv("GIS_GRID_DATABASE_URL", pg.url)
    with open_store() as store:
        assert type(store).__name__ == "PostGISStore" and store.atlas_version() == 1


def test_db_upgrade_command_creates_and_migrates(new_url):
    url = new_url()
    out = subprocess.run([sys.executable, "-m", "gis_grid.cli", "db", "upgrade", "--db", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with open_store(url) as store:
        assert store.atlas_version() == 0 and store.divisions().empty


# -- planning, incidents, audit: conflicts across connections and processes ---------------------
def test_apply_changeset_conflict(pg):
    from gis_grid.planning.workflow import apply_plan, create_plan
    west = "370402001001"
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)}
        for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
    atlas = Atlas.from_store(pg)
    plan, _ = create_plan(pg, atlas, west, fc)
    out = apply_plan(pg, atlas, plan, 1)
    assert out["atlas_version"] == 2 and pg.atlas_version() == 2
    # the residents' RLS column followed building 2 (household Hc3) into G1
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT grid_code FROM residents WHERE id = 'Rq4'").fetchone()[0] == G1
    with pytest.raises(PreconditionError) as err:
        pg.apply_changeset(_noop_changeset(), expected_version=1)
    assert err.value.detail == {"current_version": 2, "expected_version": 1}
    assert pg.atlas_version() == 2 and len(pg.grid_changes()) == 1 and pg.plan(plan.id)["status"] == "applied"


def _noop_changeset():
    from gis_grid.planning.changeset import ChangeSet
    return ChangeSet(plan_id=None, base_version=1, valid_from="2030-01-01T00:00:00.000000Z", close_codes=[],
                     insert=toy_divisions().iloc[:0], building_moves=pd.DataFrame({"id": [], "old": [], "new": []}),
                     retired=[])


def test_concurrent_changesets_on_two_instances_one_wins(pg):
    other = open_store(pg.url)
    results, barrier = [], threading.Barrier(2)

    def go(store):
        barrier.wait()
        try:
            results.append(store.apply_changeset(_noop_changeset(), expected_version=1))
        except PreconditionError as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in (pg, other)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    other.close()
    assert sorted(map(type, results), key=str) == sorted([int, PreconditionError], key=str)
    assert pg.atlas_version() == 2


def test_update_incident_conflict(pg):
    from gis_grid.incidents import service
    atlas = Atlas.from_store(pg)
    now = datetime(2016, 6, 1, 12, tzinfo=timezone.utc)
    case = service.create(pg, atlas, lon=117.505, lat=34.815, crs="EPSG:4490", category="dispute",
                          reporter="张三", role="grid_worker", at=now - timedelta(days=1), now=now)
    assert pg.incidents_version() == 1
    stored = pg.incidents(ids=[case.id])
    assert stored["grid_code"].tolist() == [G1] and isinstance(stored["events"].iloc[0], list)
    row = stored.iloc[0].to_dict()
    pg.update_incident({**row, "version": 2, "status": "registered"}, expected_version=1)
    with pytest.raises(ConflictError):  # a second writer that also read version 1
        pg.update_incident({**row, "version": 2, "status": "cancelled"}, expected_version=1)
    with pytest.raises(ConflictError):
        pg.insert_incident(row)
    with pytest.raises(NotFoundError):
        pg.update_incident({**row, "id": "Enope"}, expected_version=1)
    assert pg.incidents(ids=[case.id])["status"].tolist() == ["registered"] and pg.incidents_version() == 2


def test_audit_chain_stays_linear_across_two_instances(pg):
    other = open_store(pg.url)

    def append(store, n):
        for i in range(n):
            store.append_audit(audit.new_record(key_id="k", role="admin", scope="370402", action="test",
                                                resource=f"r/{i}", masked=bool(i % 2)))

    threads = [threading.Thread(target=append, args=(s, 25)) for s in (pg, other, pg, other)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    records = other.audit_records()
    assert [r["seq"] for r in records] == list(range(1, 101))
    ok, seq, message = audit.verify_store(pg)
    assert ok, message
    assert {r["masked"] for r in records} == {True, False}  # booleans, as the GeoPackage store returns
    other.close()


# -- least privilege: the app role's raw SQL (migration 0004) -----------------------------------
def _refused(conn, stmt, params=None, error=psycopg.errors.InsufficientPrivilege, scope="*"):
    with pytest.raises(error):
        with conn.transaction():
            conn.execute("SELECT set_config('gis_grid.scope', %s, true)", (scope,))
            conn.execute(stmt, params)


def _apply_west_split(pg):
    from gis_grid.planning.workflow import apply_plan, create_plan
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)}
        for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
    atlas = Atlas.from_store(pg)
    plan, _ = create_plan(pg, atlas, "370402001001", fc)
    return apply_plan(pg, atlas, plan, 1, audit=audit.new_record(key_id=None, role="cli", scope=None,
                                                                 action="plan.apply", resource=f"plan/{plan.id}"))


def test_the_app_role_cannot_mint_or_widen_keys(pg):
    from gis_grid.security import keys
    record, token = keys.create_key(pg, "grid_worker", G1, days=1)   # the app's own path works
    assert keys.authenticate(pg, token).role == "grid_worker"
    assert pg.audit_records()[-1]["action"] == "key.create"          # and is audited with it
    digest = hashlib.sha256(b"secret").hexdigest()
    now = datetime.now(timezone.utc)
    forged = ("k1", "admin", "370402", digest, now.isoformat(), (now + timedelta(days=1)).isoformat(), "x")
    with psycopg.connect(app_url(pg), autocommit=True) as conn:
        _refused(conn, "INSERT INTO api_keys VALUES (%s, %s, %s, %s, %s, %s, NULL, %s)", forged)
        _refused(conn, "UPDATE api_keys SET role = 'admin', scope = '370402' WHERE id = %s", (record["id"],))
        _refused(conn, "UPDATE api_keys SET expires = '2100-01-01' WHERE id = %s", (record["id"],))
        _refused(conn, "DELETE FROM api_keys")
        # the issuing function wants the key's audit record in the same transaction
        _refused(conn, "SELECT gis_grid_issue_key(%s, %s, %s, %s, %s, %s, %s)", forged)
        # revoking is the one change a key gets, and only once
        with conn.transaction():
            assert conn.execute("SELECT gis_grid_revoke_key(%s, 'then')", (record["id"],)).fetchone() == (True,)
            assert conn.execute("SELECT gis_grid_revoke_key(%s, 'later')", (record["id"],)).fetchone() == (True,)
            assert conn.execute("SELECT gis_grid_revoke_key('nope', 'x')").fetchone() == (False,)
    assert pg.key(record["id"])["revoked"] == "then"
    assert {k["id"] for k in pg.keys()} == {record["id"]}


def test_the_app_role_cannot_forge_or_rewrite_the_audit_log(pg, monkeypatch):
    monkeypatch.setenv(audit.KEY_ENV, "k" * 32)
    first = pg.append_audit(audit.new_record(key_id=None, role="cli", scope=None, action="x", resource="y"))
    fields = [first.get(k) for k in (*audit.FIELDS, "prev_hash", "hash")]
    with psycopg.connect(app_url(pg), autocommit=True) as conn:
        _refused(conn, "DELETE FROM audit_log")
        _refused(conn, "UPDATE audit_log SET result = 'denied'")
        _refused(conn, f"INSERT INTO audit_log VALUES ({', '.join(['%s'] * 14)})", [2, *fields[1:]])
        _refused(conn, "UPDATE meta SET value = '0:x' WHERE key = 'audit_head'")
        _refused(conn, "DELETE FROM meta WHERE key = 'audit_head'")
        link = f"SELECT gis_grid_append_audit({', '.join(['%s'] * 14)})"
        # not at the head: a replayed seq, or a record claiming another predecessor
        _refused(conn, link, fields, error=psycopg.errors.IntegrityConstraintViolation)
        _refused(conn, link, [2, *fields[1:-2], "0" * 64, fields[-1]],
                 error=psycopg.errors.IntegrityConstraintViolation)
        # at the head, but without the audit key the HMAC cannot be right: verify names it
        with conn.transaction():
            conn.execute(link, [2, *fields[1:-2], first["hash"], "hmac:" + "0" * 64])
    assert pg.audit_head() == f"2:hmac:{'0' * 64}"
    assert audit.verify_store(pg) == (False, 2, "record 2 was altered")


def test_the_app_role_cannot_rewrite_history(pg):
    _apply_west_split(pg)
    closed = "valid_to IS NOT NULL"

    def count_closed():
        with psycopg.connect(pg.url) as conn:
            return conn.execute(f"SELECT count(*) FROM divisions WHERE {closed}").fetchone()[0]
    before = count_closed()
    assert before > 0
    with psycopg.connect(app_url(pg), autocommit=True) as conn:
        _refused(conn, f"DELETE FROM divisions WHERE {closed}")
        _refused(conn, f"UPDATE divisions SET valid_to = NULL WHERE {closed}")
        _refused(conn, "UPDATE divisions SET valid_to = '2030-01-01' WHERE valid_to IS NULL")
        _refused(conn, "DELETE FROM grid_changes")
        _refused(conn, "UPDATE grid_changes SET summary = '{}'")
        _refused(conn, "INSERT INTO grid_changes (applied_at, from_version, to_version, summary) "
                       "VALUES ('x', 2, 3, '{}')")
        _refused(conn, "DELETE FROM grid_code_registry")
        # the apply's function: only in the system scope, only on the current version
        call = "SELECT gis_grid_record_apply('x', NULL, %s, NULL, '{}', %s)"
        _refused(conn, call, (2, [G1]), scope=G1)
        _refused(conn, call, (1, [G1]), error=psycopg.errors.SerializationFailure)
        _refused(conn, "SELECT gis_grid_close_grids(%s, 'x')", ([G1],), scope=G1)
        # in the system scope it closes current versions only: history stays as it was
        with conn.transaction():
            conn.execute("SELECT set_config('gis_grid.scope', '*', true)")
            ours = "code = ANY(%s)"
            current = conn.execute(f"SELECT count(*) FROM divisions WHERE {ours} AND valid_to IS NULL",
                                   ([G1, G2],)).fetchone()[0]
            conn.execute("SELECT gis_grid_close_grids(%s, '2099-01-01')", ([G1, G2],))
            assert conn.execute(f"SELECT count(*) FROM divisions WHERE {ours} AND valid_to = '2099-01-01'",
                                ([G1, G2],)).fetchone()[0] == current
            assert conn.execute(f"SELECT count(*) FROM divisions WHERE {closed}").fetchone()[0] == before + current
            raise psycopg.Rollback()
    history = pg.grid_changes()
    assert len(history) == 1 and history[0]["to_version"] == 2
    assert count_closed() == before


def test_only_the_two_roles_may_connect(pg, admin_url, new_url):
    from gis_grid.store.postgis import database
    migrated = new_url("migrated")  # the migration path, not a copy of the template
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database.dbname(migrated)}"')
    database.upgrade(migrated)
    outsider = "gg_test_outsider_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {outsider} LOGIN")
    try:
        for url in (pg.url, migrated):
            host = url.split("@", 1)[1]
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(f"postgresql://{outsider}@{host}", connect_timeout=5).close()
            psycopg.connect(f"postgresql://{APP}@{host}", connect_timeout=5).close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {outsider}")


# -- replicas: NOTIFY ---------------------------------------------------------------------------
def test_a_second_instance_hears_the_new_version_within_a_second(pg):
    other = open_store(pg.url)
    heard: queue.Queue = queue.Queue()
    stop = other.watch_atlas_version(heard.put)
    try:
        assert heard.get(timeout=5) == 1  # on connecting: the current version
        start = time.monotonic()
        pg.replace_all({"workers": toy_tables()["workers"]}, {})
        assert heard.get(timeout=1.0) == 2 and time.monotonic() - start < 1.0
        pg.apply_changeset(_noop_changeset(), expected_version=2)
        assert heard.get(timeout=1.0) == 3
        with pytest.raises(PreconditionError):  # a refused apply announces nothing
            pg.apply_changeset(_noop_changeset(), expected_version=2)
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.5)
    finally:
        stop()
        other.close()


def test_the_watch_reconnects_after_losing_its_session(pg, admin_url):
    heard: queue.Queue = queue.Queue()
    stop = pg.watch_atlas_version(heard.put)
    try:
        assert heard.get(timeout=5) == 1
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND application_name = 'gis_grid_listen'", (pg.url.rpartition("/")[2],))
        assert heard.get(timeout=5) == 1  # listening again, and it re-read the version
        pg.replace_all({"workers": toy_tables()["workers"]}, {})
        assert heard.get(timeout=2) == 2
    finally:
        stop()


def test_an_api_replica_reloads_its_boundaries(pg):
    from gis_grid.atlas.holder import AtlasHolder
    replica = AtlasHolder(open_store(pg.url))
    try:
        assert replica.version == 1
        pg.apply_changeset(_noop_changeset(), expected_version=1)
        deadline = time.monotonic() + 1.5
        while replica.version != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert replica.version == 2
    finally:
        replica.store.close()


def test_a_forged_notify_is_only_a_hint(pg):
    """Anyone who can connect may NOTIFY; a replica re-reads the stored version and ignores a
    notification that does not change it (no reload, no ~3 CPU-seconds each)."""
    from gis_grid.atlas.holder import AtlasHolder
    replica = AtlasHolder(open_store(pg.url))
    reloads = []
    replica.reload_to = lambda v: reloads.append(v)
    try:
        with psycopg.connect(app_url(pg), autocommit=True) as conn:
            for _ in range(5):
                conn.execute("NOTIFY gis_grid_atlas, '999999'")
        time.sleep(1.5)
        assert reloads == [] and replica.version == 1
        pg.apply_changeset(_noop_changeset(), expected_version=1)  # a real change still gets through
        deadline = time.monotonic() + 1.5
        while not reloads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reloads == [2]
    finally:
        replica.store.close()


# -- row-level security ---------------------------------------------------------------------------
def _count(conn, scope, table, where="") -> int:
    """One transaction as a grid worker's session runs it: the scope set for that transaction only."""
    with conn.transaction():
        if scope is not None:
            conn.execute("SELECT set_config('gis_grid.scope', %s, true)", (scope,))
        return conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0]


def test_rls_a_grid_workers_session_sees_only_its_grid_even_in_raw_sql(pg):
    from gis_grid.incidents import service
    atlas = Atlas.from_store(pg)
    for lon, lat in ((117.505, 34.815), (117.515, 34.815)):  # one case in G1, one in E1
        service.create(pg, atlas, lon=lon, lat=lat, crs="EPSG:4490", category="dispute", reporter="W",
                       role="grid_worker")
    with psycopg.connect(app_url(pg), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == APP
        mine = {"households": 2, "residents": 3, "workers": 1, "incidents": 1}
        for table, n in mine.items():
            assert _count(conn, G1, table) == n, table
            assert _count(conn, G1, table, f"WHERE grid_code <> '{G1}'") == 0, table
            assert _count(conn, G2, table, f"WHERE grid_code = '{G1}'") == 0, table
            assert _count(conn, None, table) == 0, table            # no scope: deny by default
            assert _count(conn, "", table) == 0, table
            assert _count(conn, "3", table) == 0, table             # not a division code
        assert _count(conn, "370402001001", "residents") == 4      # a community: both its grids
        assert _count(conn, "*", "residents") == 6                 # the system scope
        # the scope is transaction-local: the next transaction without one sees nothing again
        assert _count(conn, None, "residents") == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # and it cannot write outside it
            with conn.transaction():
                conn.execute("SELECT set_config('gis_grid.scope', %s, true)", (G1,))
                conn.execute("INSERT INTO workers VALUES ('W9', %s, 'x', 'y', 'z')", (E1,))


def test_rls_the_app_role_neither_owns_nor_can_unprotect_the_tables(pg):
    with psycopg.connect(app_url(pg), autocommit=True) as conn:
        rows = conn.execute("SELECT relname, pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity "
                            "FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", (list(PERSONAL),)).fetchall()
        assert {r[0] for r in rows} == set(PERSONAL)
        for name, owner, rls, force in rows:
            assert owner == "gis_grid_owner" and rls and force, name
        role = conn.execute("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = %s",
                            (APP,)).fetchone()
        assert role == (False, False, False)
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'gis_grid_owner'").fetchone() == (False,)
        for stmt in ("ALTER TABLE residents DISABLE ROW LEVEL SECURITY", "ALTER TABLE residents NO FORCE ROW LEVEL "
                     "SECURITY", "DROP POLICY scope ON residents", "SET ROLE gis_grid_owner"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)


def test_rls_through_the_store_scoped_reads(pg):
    with pg.transaction() as cur:  # connected as the superuser, working as the app role
        assert cur.execute("SELECT current_user").fetchone()[0] == APP
    with pg.scoped(G1):
        assert sorted(pg.households()["id"]) == ["Ha1", "Hb2"]
        assert sorted(pg.residents()["id"]) == ["Rq1", "Rq2", "Rq3"]
        assert pg.residents(ids=["Rq5"]).empty                      # in E1: as if missing
        assert pg.workers()["id"].tolist() == ["W1"]
        assert len(pg.divisions()) == 9 and len(pg.buildings()) == 4  # not personal data
        with pg.scoped("370402002"):
            assert pg.residents()["id"].tolist() == ["Rq5", "Rq6"]
    assert len(pg.residents()) == 6  # outside scoped(): the whole district
    with pytest.raises(InvalidInputError):
        with pg.scoped("bogus"):
            pass
    with pg.scoped(G1):  # whole-district writes neither escape nor silently narrow to a scope
        for write in (lambda: pg.replace_all(toy_tables(), {}), lambda: pg.replace_incidents(pg.incidents()),
                      lambda: pg.apply_changeset(_noop_changeset(), expected_version=1)):
            with pytest.raises(PermissionDeniedError):
                write()
    assert pg.atlas_version() == 1
    with pg.scoped(E1), pytest.raises(PermissionDeniedError):  # writes are checked as well
        with pg.transaction() as cur:
            cur.execute("INSERT INTO workers VALUES ('W9', %s, 'x', 'y', 'z')", (G1,))


def test_rls_scoped_is_per_thread_of_the_api(pg):
    seen = {}

    def read(scope):
        with pg.scoped(scope):
            time.sleep(0.05)
            seen[scope] = sorted(pg.residents()["id"])

    threads = [threading.Thread(target=read, args=(s,)) for s in (G1, E1)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen == {G1: ["Rq1", "Rq2", "Rq3"], E1: ["Rq5"]}


def test_scoped_is_a_no_op_on_the_geopackage_store(gp):
    with gp.scoped(G1):
        assert len(gp.residents()) == 6


def test_creating_a_store_is_fast_after_the_first(new_url):
    open_store(new_url(), create=True).close()  # the template exists after this
    start = time.perf_counter()
    open_store(new_url(), create=True).close()
    assert time.perf_counter() - start < 3.0


def test_json_columns_round_trip_plans(pg):
    record = {"scope": "370402001001", "base_version": 1, "created_at": "2026-01-01T00:00:00Z", "source": "geojson",
              "note": "北边", "replaces": [G1, G2], "grids": {"type": "FeatureCollection", "features": [],
                                                                "名称": "甲"}}
    pid = pg.save_plan(record)
    got = pg.plan(pid)
    assert got["grids"] == record["grids"] and got["replaces"] == [G1, G2] and got["status"] == "draft"
    assert [p["id"] for p in pg.plans("370402001")] == [pid] and pg.plans("370402002") == []
    assert json.dumps(got["grids"], ensure_ascii=False).count("甲") == 1


# -- replicas: two `gis-grid serve` processes on one database -----------------------------------
def _serve(url: str, port: int, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from gis_grid.cli import main; raise SystemExit(main())",
                             "serve", "--db", url, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)


def _wait_up(base: str, headers: dict, proc, timeout_s: float = 90) -> None:
    import httpx
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited: {proc.args[-1]}"
        try:
            if httpx.get(f"{base}/plans", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} did not come up")


def test_two_serve_processes_agree_within_a_second_after_an_apply(pg, tmp_path):
    import httpx
    from gis_grid.security import keys
    headers = {"Authorization": f"Bearer {keys.create_key(pg, 'planner', '370402')[1]}"}
    ports = [testing.free_port(), testing.free_port()]
    logs = [open(tmp_path / f"serve-{p}.log", "w") for p in ports]
    procs = [_serve(pg.url, p, log) for p, log in zip(ports, logs)]
    a, b = (f"http://127.0.0.1:{p}" for p in ports)
    try:
        for base, proc, p in zip((a, b), procs, ports):
            try:
                _wait_up(base, headers, proc)
            except AssertionError:
                raise AssertionError((tmp_path / f"serve-{p}.log").read_text()[-3000:]) from None
        where = {"lon": 117.505, "lat": 34.805, "crs": "EPSG:4490"}   # building 2: moves from G2 to G1
        assert [httpx.get(f"{s}/locate", params=where, headers=headers).json()["grid"]["code"] for s in (a, b)] == [G2, G2]
        moved = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)}
            for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
        plan = httpx.post(f"{a}/plans", json={"community": "370402001001", "grids": moved}, headers=headers).json()
        r = httpx.post(f"{a}/plans/{plan['id']}/apply", headers={**headers, "If-Match": '"1"'}, timeout=30)
        assert r.status_code == 200, r.text
        applied = time.monotonic()
        while httpx.get(f"{b}/plans", headers=headers).json()["atlas_version"] != 2:
            assert time.monotonic() - applied < 1.0, "replica B did not follow within 1 s"
            time.sleep(0.02)
        assert [httpx.get(f"{s}/locate", params=where, headers=headers).json()["grid"]["code"] for s in (a, b)] == [G1, G1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc, log in zip(procs, logs):
            proc.wait(timeout=30)
            log.close()


def test_demo_command_refuses_an_existing_database_without_force(pg):
    out = subprocess.run([sys.executable, "-c", "from gis_grid.cli import main; raise SystemExit(main())",
                          "demo", "--out", pg.url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "pass --force" in out.stderr
    assert pg.atlas_version() == 1
