"""Every personal-data read over HTTP is in the audit log, matched by request id.

Each personal-data route x each role the role table lets read it (personal data masked,
counts or full; the unmask route only for full) is called with its own ``X-Request-ID``;
afterwards the log must hold exactly one record per request, with that id, the caller's
role and scope, the resource, and whether the values were masked. The chain must still
verify. (Tampering with a record making ``gis-grid audit verify`` exit 1 is covered in
tests/gis_grid/test_security.py::test_cli_keys_and_audit_verify and the chain tests next to it.)
"""
from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import X0, XM, Y0, Y1, bearer, make_toy_store, scope_of
from gis_grid.security import audit
from gis_grid.security.roles import ROLES, PersonalData, split_scope

G1 = "370402001001001"
WEST = {"type": "Polygon", "coordinates": [[[X0, Y0], [XM, Y0], [XM, Y1], [X0, Y1], [X0, Y0]]]}
# (method, route, the URL called, body, the record's resource, who may call it)
PERSONAL_ROUTES = [
    ("GET", "/grids/{code}/residents", f"/grids/{G1}/residents", None, f"grid/{G1}", "any"),
    ("GET", "/buildings/{building_id}/residents", "/buildings/1/residents", None, "building/1", "any"),
    ("POST", "/residents/search", "/residents/search", WEST, "polygon/", "any"),
    ("GET", "/residents/{resident_id}/unmasked", "/residents/Rq1/unmasked?purpose=home+visit", None,
     "resident/Rq1", "full"),
]


def scope_for(role: str) -> str:
    return scope_of(role, G1)


def readers(who: str) -> list[str]:
    if who == "full":
        return [r for r, p in ROLES.items() if p.personal is PersonalData.FULL]
    return [r for r, p in ROLES.items() if p.personal is not PersonalData.NONE]


def test_every_personal_route_is_listed():
    """A new route under /residents or ending in /residents must be added above."""
    from api.routers import ROUTERS
    routes = {(m, r.path) for router in ROUTERS for r in router.routes for m in getattr(r, "methods", ()) or ()
              if "resident" in r.path}
    assert routes == {(m, p) for m, p, *_ in PERSONAL_ROUTES}


@pytest.fixture
def env(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url))) as client:
        yield client, store


def test_every_personal_read_is_audited_once_with_its_request_id(env):
    client, store = env
    sent = {}  # request id -> (role, scope, resource, masked)
    for method, _, url, body, resource, who in PERSONAL_ROUTES:
        assert readers(who), f"no role may call {url}: the matrix would prove nothing"
        for role in readers(who):
            rid = uuid.uuid4().hex
            r = client.request(method, url, json=body,
                               headers={**bearer(store, role, scope_for(role)), "X-Request-ID": rid})
            assert r.status_code == 200, (role, url, r.text[:300])
            sent[rid] = (role, split_scope(scope_for(role))[0], resource, who != "full")
    reads = [r for r in store.audit_records() if r["action"].startswith(("residents.", "resident."))]
    got = {r["request_id"]: r for r in reads}
    assert len(reads) == len(got), "a request was audited more than once"
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} of {len(sent)} personal-data reads were not audited"
    assert set(got) == set(sent), "audit records for requests this test did not make"
    for rid, (role, scope, resource, masked) in sent.items():
        rec = got[rid]
        assert (rec["role"], rec["scope"], rec["masked"], rec["result"]) == (role, scope, masked, "ok"), rec
        assert rec["resource"].startswith(resource) and rec["key_id"], rec
        if not masked:
            assert rec["purpose"] == "home visit" and "id_number" in rec["fields"]
    assert audit.verify_store(store)[0]
