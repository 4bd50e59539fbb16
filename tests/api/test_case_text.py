"""Personal data in a case's free text and reporter is masked on every route, for every role.

A hotline case quoting the caller's name, ID number, mobile and landline is read back by every
role that reads cases, through every route that carries case data: the create and transition
answers, the single case (events and their notes included), the list, the CSV export and the
OGC incidents collection. None may carry the originals. Only ``GET /incidents/{id}/unmasked``,
to a grid worker of the case's grid with a purpose, returns them, and every attempt there is
audited.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store, scope_of
from gis_grid.masking import mask_case, mask_reporter, mask_text
from gis_grid.security.roles import ROLES
from gis_grid.testing import find_pii

G1 = "370402001001001"
ID = "370402195905109475"
MOBILE = "18293588087"
LANDLINE = "0632-3312345"
NAME = "刘德华"
TEXT = f"来电人{NAME} 身份证{ID} 电话{MOBILE} 座机{LANDLINE} 反映楼道堆物"
NOTE = f"已联系{NAME}，回电 138 1234 5678"
ORIGINALS = (ID, MOBILE, "3312345", NAME[1:], "12345678")


def scope_for(role: str) -> str:
    return scope_of(role, G1)


def leaks(text: str) -> list[str]:
    return [o for o in ORIGINALS if o in text] + find_pii(text)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("casetext") / "toy.gpkg")
    heads = {role: bearer(store, role, scope_for(role)) for role in ROLES}
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    with TestClient(create_app(Settings(db=store.url))) as client:
        r = client.post("/incidents", headers=heads["hotline"],
                        json=dict(lon=117.505, lat=34.815, category="dispute", reporter=NAME, description=TEXT,
                                  at=past))
        assert r.status_code == 201, r.text
        created = r.text
        case_id = r.json()["id"]
        r = client.post(f"/incidents/{case_id}/transitions", headers=heads["command_center"],
                        json=dict(action="register", note=NOTE))
        assert r.status_code == 200, r.text
        yield client, store, heads, case_id, created, r.text


def test_write_answers_are_masked(env):
    _, _, _, _, created, transitioned = env
    for text in (created, transitioned):
        assert leaks(text) == [], leaks(text)
    assert "刘**" in created and "370402********9475" in created and "182****8087" in created


@pytest.mark.parametrize("role", [r for r, p in ROLES.items() if p.cases_read])
def test_every_read_route_masks_for_every_role(env, role):
    client, _, heads, case_id, _, _ = env
    h = heads[role]
    one = client.get(f"/incidents/{case_id}", headers=h)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["reporter"] == "刘**"
    assert body["description"].startswith("来电人刘** 身份证370402********9475 电话182****8087 座机0***-*****45")
    assert [e.get("note") for e in body["events"]] == [None, "已联系刘**，回电 138****5678"]
    for url in (f"/incidents/{case_id}", "/incidents", "/incidents/export.csv",
                "/ogc/collections/incidents/items", f"/ogc/collections/incidents/items/{case_id}"):
        r = client.get(url, headers=h)
        if url.startswith("/ogc") and not ROLES[role].maps:
            assert r.status_code == 403, (url, r.text[:300])  # OGC needs the maps right
            continue
        assert r.status_code == 200, (url, r.text[:300])
        assert case_id in r.text, url  # the case is there, and still nothing personal
        assert leaks(r.text) == [], (url, leaks(r.text))
    rows = list(csv.DictReader(io.StringIO(client.get("/incidents/export.csv", headers=h).text)))
    assert [row["reporter"] for row in rows if row["id"] == case_id] == ["刘**"]


def test_unmasked_case_only_to_full_roles_in_scope_and_audited(env):
    client, store, heads, case_id, _, _ = env
    before = len(store.audit_records())
    r = client.get(f"/incidents/{case_id}/unmasked?purpose=call+back+resident", headers=heads["grid_worker"])
    assert r.status_code == 200, r.text
    assert r.json()["description"] == TEXT and r.json()["reporter"] == NAME
    assert r.json()["events"][1]["note"] == NOTE
    other = bearer(store, "grid_worker", "370402002001001")
    assert client.get(f"/incidents/{case_id}/unmasked?purpose=call+back", headers=other).status_code == 404
    for role in ("command_center", "street_admin", "community_admin", "hotline", "department", "supervisor"):
        r = client.get(f"/incidents/{case_id}/unmasked?purpose=call+back", headers=heads[role])
        assert r.status_code == 403, (role, r.text)
        assert leaks(r.text) == []
    assert client.get(f"/incidents/{case_id}/unmasked", headers=heads["grid_worker"]).status_code == 400  # no purpose
    recs = [x for x in store.audit_records()[before:] if x["action"] == "incident.unmask"]
    assert [x["result"] for x in recs] == ["ok", "not found"] + ["denied"] * 6
    ok = recs[0]
    assert ok["role"] == "grid_worker" and ok["resource"] == f"incident/{case_id}" and ok["masked"] is False
    assert ok["purpose"] == "call back resident" and "description" in ok["fields"]


def test_the_store_keeps_the_original(env):
    _, store, _, case_id, _, _ = env
    row = store.incidents(ids=[case_id]).iloc[0]
    assert row["description"] == TEXT and row["reporter"] == NAME


@pytest.mark.parametrize("text, masked", [
    (f"身份证{ID}", "身份证370402********9475"),
    ("旧证370402590510947", "旧证370402******947"),
    ("手机+86 138-1234-5678", "手机138****5678"),
    ("(0632)3312345", "(0***)*****45"),
    ("电话3312345", "电话*****45"),
    ("卡号6222021234567890123", "卡号*****************23"),
    ("联系人：欧阳娜娜反映", "联系人：欧阳**反映"),
    ("来电人张三反映噪音", "来电人张**映噪音"),
    ("3号楼2单元 12元 2024年", "3号楼2单元 12元 2024年"),  # short numbers are not personal data
])
def test_mask_text(text, masked):
    assert mask_text(text) == masked


def test_mask_reporter_and_case():
    assert mask_reporter("张三丰") == "张**" and mask_reporter("18293588087") == "182****8087"
    assert mask_reporter("key:0a1b-2c3d-4e5f-6a7b") == "key:0a1b-2c3d-4e5f-6a7b"  # an API key, no person
    case = {"reporter": "王小明", "description": "王小明说邻居吵", "events": [{"action": "collect"},
                                                                       {"action": "register", "note": "王小明已回访"}]}
    out = mask_case(case)
    assert out == {"reporter": "王**", "description": "王**说邻居吵",
                   "events": [{"action": "collect"}, {"action": "register", "note": "王**已回访"}]}
    assert case["reporter"] == "王小明"  # the input is left alone
