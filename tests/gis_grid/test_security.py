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
    assert audit.verify_store(stores[0]) == (True, None, "100 records, chain intact")


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
