"""Roles as data, API keys, and the hash-chained audit log (library level)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from common import make_toy_store
from stores import location, raw_sql
from gis_grid.cli import main as cli
from gis_grid.errors import InvalidInputError
from gis_grid.security import audit, keys
from gis_grid.security.roles import ROLES, PersonalData, Principal, check_scope, permission


@pytest.fixture
def store(tmp_path):
    s = make_toy_store(location(tmp_path / "toy.gpkg"))
    yield s
    s.close()


def test_role_table_matches_the_policy():
    assert set(ROLES) == {"command_center", "street_admin", "community_admin", "grid_worker", "hotline",
                          "department", "supervisor", "planner", "external_system", "auditor", "admin"}
    assert permission("grid_worker").personal is PersonalData.FULL
    assert permission("command_center").personal is PersonalData.MASKED
    assert permission("command_center").min_cell == 5
    assert permission("planner").personal is PersonalData.COUNTS and permission("planner").plans
    ext = permission("external_system")
    assert ext.locate and not (ext.maps or ext.cases_read or ext.audit or ext.keys)
    assert [r for r, p in ROLES.items() if p.audit] == ["auditor"]
    assert [r for r, p in ROLES.items() if p.keys] == ["admin"]
    with pytest.raises(InvalidInputError):
        permission("root")


def test_scope_levels_and_subtrees():
    assert check_scope("grid_worker", "370402001001001") == "370402001001001"
    for role, bad in [("grid_worker", "370402001001"), ("community_admin", "370402001"), ("street_admin", "370402")]:
        with pytest.raises(InvalidInputError):
            check_scope(role, bad)
    worker = Principal("k", "grid_worker", "370402001001001")
    assert worker.sees("370402001001001") and not worker.sees("370402001001002")
    assert Principal("k", "command_center", "370402").sees("370402002001002")


def test_key_round_trip_and_secret_never_stored(store, tmp_path):
    record, token = keys.create_key(store, "grid_worker", "370402001001001", days=30)
    assert token.startswith(f"gg_{record['id']}_") and "digest" not in record
    who = keys.authenticate(store, token)
    assert (who.role, who.scope, who.key_id) == ("grid_worker", "370402001001001", record["id"])
    secret = token.split("_", 2)[2]
    raw = raw_sql(location(tmp_path / "toy.gpkg"), "SELECT * FROM api_keys")
    assert secret not in repr(raw)


@pytest.mark.parametrize("mangle", [
    lambda t: None, lambda t: "", lambda t: "Bearer", lambda t: t.replace("gg_", "xx_"),
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "gg_0000000000000000_" + t.split("_", 2)[2],
])
def test_bad_tokens_are_refused(store, mangle):
    _, token = keys.create_key(store, "planner", "370402")
    with pytest.raises(keys.AuthenticationError):
        keys.authenticate(store, mangle(token))


def test_revoked_and_expired_keys_are_refused(store):
    record, token = keys.create_key(store, "auditor", "370402", days=1)
    later = datetime.now(timezone.utc) + timedelta(days=2)
    with pytest.raises(keys.AuthenticationError, match="expired"):
        keys.authenticate(store, token, now=later)
    store.revoke_key(record["id"], datetime.now(timezone.utc).isoformat())
    with pytest.raises(keys.AuthenticationError, match="revoked"):
        keys.authenticate(store, token)
    assert store.keys()[0]["revoked"] is not None


def _fill(store, n):
    for i in range(n):
        store.append_audit(audit.new_record(key_id="k", role="grid_worker", scope="370402001001001",
                                            action="residents.read", resource=f"grid/{i}",
                                            fields=("name", "phone"), masked=False, purpose="visit"))


def test_chain_verifies_and_detects_edits_and_deletions(store, tmp_path):
    _fill(store, 5)
    assert audit.verify_store(store)[0]
    raw_sql(location(tmp_path / "toy.gpkg"), "UPDATE audit_log SET purpose = 'curiosity' WHERE seq = 3")
    ok, seq, msg = audit.verify_store(store)
    assert not ok and seq == 3 and "altered" in msg


@pytest.mark.parametrize("victim", [2, 5])
def test_deleting_a_record_is_detected(store, tmp_path, victim):
    _fill(store, 5)
    raw_sql(location(tmp_path / "toy.gpkg"), "DELETE FROM audit_log WHERE seq = ?", (victim,))
    ok, seq, _ = audit.verify_store(store)
    assert not ok and seq == victim


def test_concurrent_appends_keep_one_chain(tmp_path):
    path = location(tmp_path / "toy.gpkg")
    make_toy_store(path).close()
    from gis_grid.store import open_store
    stores = [open_store(path) for _ in range(4)]
    threads = [threading.Thread(target=_fill, args=(s, 25)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = stores[0].audit_records()
    assert [r["seq"] for r in records] == list(range(1, 101))
    ok, _, message = audit.verify_store(stores[0])
    assert ok and message.startswith("100 records, chain intact"), message


def test_cli_keys_and_audit_verify(store, tmp_path, capsys):
    db = location(tmp_path / "toy.gpkg")
    assert cli(["keys", "create", "--db", db, "--role", "command_center", "--scope", "370402"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert keys.authenticate(store, token).role == "command_center"
    assert cli(["keys", "create", "--db", db, "--role", "grid_worker", "--scope", "370402"]) == 2
    # a well-formed scope that names no division in the store is refused too, and makes no key
    assert cli(["keys", "create", "--db", db, "--role", "street_admin", "--scope", "370402099"]) == 2
    assert cli(["keys", "create", "--db", db, "--role", "grid_worker", "--scope", "370402001001099"]) == 2
    assert len(store.keys()) == 1
    assert cli(["keys", "create", "--db", db, "--role", "grid_worker", "--scope", "370402001001001"]) == 0
    capsys.readouterr()
    assert cli(["audit", "verify", "--db", db]) == 0  # the key creation was audited
    assert [r["action"] for r in store.audit_records()] == ["key.create", "key.create"]
    raw_sql(db, "UPDATE audit_log SET action = 'nothing'")
    assert cli(["audit", "verify", "--db", db]) == 1


# -- a keyed chain (issue 13, point 6) ------------------------------------------------------
AUDIT_KEY = "k" * 32


def _rewrite(db, victim: int, key: bytes | None) -> None:
    """What someone with write access to the store does: edit a record, recompute every hash
    after it (under ``key``, or plain SHA-256) and move the head."""
    from gis_grid.store import open_store
    with open_store(db) as s:
        records = s.audit_records()
    prev = records[victim - 2]["hash"] if victim > 1 else audit.GENESIS
    for r in records[victim - 1:]:
        if r["seq"] == victim:
            r["action"] = "nothing to see"
        r["prev_hash"] = prev
        r["hash"] = prev = audit.chain_hash(prev, r, key)
        raw_sql(db, "UPDATE audit_log SET action = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (r["action"], r["prev_hash"], r["hash"], r["seq"]))
    raw_sql(db, "UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{records[-1]['seq']}:{prev}",))


@pytest.mark.parametrize("forger_key", [None, b"not the audit key at all"])
def test_a_rewrite_with_recomputed_hashes_fails_verify_under_the_key(store, tmp_path, monkeypatch, capsys,
                                                                     forger_key):
    db = location(tmp_path / "toy.gpkg")
    monkeypatch.setenv(audit.KEY_ENV, AUDIT_KEY)
    _fill(store, 5)
    assert all(r["hash"].startswith("hmac:") for r in store.audit_records())
    assert audit.verify_store(store) == (True, None, "5 records, chain intact, keyed")
    _rewrite(db, 3, forger_key)
    ok, seq, message = audit.verify_store(store)
    assert not ok and seq == 3, message
    assert cli(["audit", "verify", "--db", db]) == 1
    assert "BROKEN at record 3" in capsys.readouterr().out


def test_without_the_key_such_a_rewrite_passes_and_verify_says_the_chain_is_unkeyed(store, tmp_path):
    db = location(tmp_path / "toy.gpkg")
    _fill(store, 5)
    _rewrite(db, 3, None)
    ok, _, message = audit.verify_store(store)
    assert ok and "unkeyed" in message  # the weakness the key closes, stated by verify itself


def test_keyed_records_need_the_key_and_old_unkeyed_ones_need_saying_so(store, tmp_path, monkeypatch, capsys):
    db = location(tmp_path / "toy.gpkg")
    _fill(store, 2)  # before the key was introduced
    key_file = tmp_path / "audit.key"
    key_file.write_text(AUDIT_KEY)
    monkeypatch.setenv(audit.KEY_FILE_ENV, str(key_file))
    _fill(store, 2)
    ok, seq, _ = audit.verify_store(store)
    assert not ok and seq == 1
    assert cli(["audit", "verify", "--db", db, "--unkeyed-until", "2"]) == 0
    assert "2 from before the key" in capsys.readouterr().out
    monkeypatch.delenv(audit.KEY_FILE_ENV)
    ok, seq, message = audit.verify_store(store)
    assert not ok and seq == 3 and audit.KEY_FILE_ENV in message


def test_a_plan_apply_commits_its_audit_record_in_its_own_transaction(tmp_path, monkeypatch):
    from common import X0, Y0, Y1, XM
    import json
    import shapely
    from gis_grid.atlas import Atlas
    from gis_grid.planning.workflow import apply_plan, create_plan
    west, g1, g2 = "370402001001", "370402001001001", "370402001001002"
    store = make_toy_store(location(tmp_path / "apply.gpkg"))
    atlas = Atlas.from_store(store)
    moved = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}
        for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
    plan, _ = create_plan(store, atlas, west, moved)
    rec = audit.new_record(key_id="k1", role="planner", scope="370402", action="apply_plan",
                           resource=f"plan:{plan.id}")

    def broken(*a, **k):
        raise RuntimeError("the audit write failed")

    # the record cannot be written: the apply is rolled back with it
    monkeypatch.setattr(audit, "chain_hash", broken)
    with pytest.raises(RuntimeError):
        apply_plan(store, atlas, plan, plan.base_version, audit=rec)
    assert store.atlas_version() == 1 and store.grid_changes() == [] and store.audit_records() == []
    monkeypatch.undo()
    out = apply_plan(store, atlas, plan, plan.base_version, audit=rec)
    [written] = store.audit_records()
    assert out["atlas_version"] == 2 and written["resource"] == f"plan:{plan.id}"
    assert written["result"] == "ok: version 1 -> 2" and audit.verify_store(store)[0]
    store.close()
