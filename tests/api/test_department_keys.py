"""Department keys are tied to their department (issue 13, finding 3): a department key's scope
names its department (``370402:justice``), and it reaches only the cases whose responsible
department that is: lists, single cases, steps, exports, OGC features, statistics and map
layers. Another department's case answers like a missing one."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import make_toy_store
from gis_grid.errors import AuthenticationError, InvalidInputError
from gis_grid.security import audit, keys

POINT = dict(lon=117.505, lat=34.815, crs="EPSG:4490")


def test_a_department_key_must_name_a_known_department(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with pytest.raises(InvalidInputError, match="370402:justice"):
        keys.create_key(store, "department", "370402")
    with pytest.raises(InvalidInputError, match="tied to its department"):
        keys.create_key(store, "department", "370402:no_such_office")
    with pytest.raises(InvalidInputError, match="only department keys name a department"):
        keys.create_key(store, "hotline", "370402:justice")
    _, token = keys.create_key(store, "department", "370402:justice")
    who = keys.authenticate(store, token)
    assert (who.scope, who.department) == ("370402", "justice")
    # a department key made before keys were tied (bare district scope) no longer signs in
    store.insert_key({"id": "legacy0", "role": "department", "scope": "370402", "digest": keys._digest("s"),
                      "created": "2020-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00",
                      "revoked": None, "note": ""},
                     audit.new_record(key_id=None, role="cli", scope=None, action="key.create", resource="key/legacy0"))
    with pytest.raises(AuthenticationError, match="names no department"):
        keys.authenticate(store, "gg_legacy0_s")


@pytest.fixture(scope="module")
def env(store_backend, tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("dept") / "toy.gpkg")
    h = {name: {"Authorization": f"Bearer {keys.create_key(store, role, scope)[1]}"} for name, role, scope in [
        ("centre", "command_center", "370402"), ("justice", "department", "370402:justice"),
        ("sanitation", "department", "370402:sanitation")]}
    with TestClient(create_app(Settings(db=store.url))) as client:
        ids = {"justice": [], "sanitation": []}
        for category, dept, n in (("dispute", "justice", 2), ("sanitation", "sanitation", 3)):
            for _ in range(n):
                r = client.post("/incidents", headers=h["centre"], json={**POINT, "category": category})
                assert r.status_code == 201 and r.json()["department"] == dept, r.text
                ids[dept].append(r.json()["id"])
        yield client, h, ids


def listed(client, head) -> set[str]:
    r = client.get("/incidents", headers=head, params={"limit": 100})
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


def test_lists_and_single_cases_are_the_departments_own(env):
    client, h, ids = env
    assert client.get("/me", headers=h["justice"]).json()["department"] == "justice"
    assert "department" not in client.get("/me", headers=h["centre"]).json()
    assert listed(client, h["centre"]) == set(ids["justice"]) | set(ids["sanitation"])
    for dept, other in (("justice", "sanitation"), ("sanitation", "justice")):
        assert listed(client, h[dept]) == set(ids[dept])
        assert client.get(f"/incidents/{ids[dept][0]}", headers=h[dept]).status_code == 200
        r = client.get(f"/incidents/{ids[other][0]}", headers=h[dept])
        missing = client.get("/incidents/E000000000000", headers=h[dept])
        assert r.status_code == missing.status_code == 404
        assert r.json()["detail"].replace(ids[other][0], "X") == missing.json()["detail"].replace("E000000000000", "X")
        # a step on another department's case is refused like a missing case, before the role is judged
        assert client.post(f"/incidents/{ids[other][0]}/transitions", headers=h[dept],
                           json={"action": "handle"}).status_code == 404
        # asking for another department's cases by filter finds nothing
        r = client.get("/incidents", headers=h[dept], params={"department": other})
        assert r.status_code == 200 and r.json()["items"] == []


def test_exports_features_statistics_and_maps_count_only_the_department(env):
    client, h, ids = env
    for dept in ("justice", "sanitation"):
        csv = client.get("/incidents/export.csv", headers=h[dept]).text.splitlines()
        assert len(csv) - 1 == len(ids[dept]) and all(dept in line for line in csv[1:])
        feats = client.get("/ogc/collections/incidents/items", headers=h[dept]).json()["features"]
        assert {f["id"] for f in feats} == set(ids[dept])
        other = ids["justice" if dept == "sanitation" else "sanitation"][0]
        assert client.get(f"/ogc/collections/incidents/items/{other}", headers=h[dept]).status_code == 404
        assert client.get("/stats/summary", headers=h[dept]).json()["cases"] == len(ids[dept])
        deps = client.get("/stats/departments", headers=h[dept]).json()["items"]
        assert {r["department"] for r in deps if r["cases"]} == {dept}
        assert sum(r["cases"] for r in client.get("/stats/divisions", headers=h[dept],
                                                  params={"level": "district"}).json()["items"]) == len(ids[dept])
    # cached map answers are kept apart: the centre's figures first, then each department's
    total = lambda head: sum(r["cases"] for r in client.get(  # noqa: E731
        "/stats/categories", headers=head).json()["items"])
    assert total(h["centre"]) == 5 and total(h["justice"]) == 2 and total(h["sanitation"]) == 3
    for layer in ("/map/incidents/choropleth/grid.json", "/map/incidents/heat.json"):
        bodies = {who: client.get(layer, headers=h[who]).text for who in ("centre", "justice", "sanitation")}
        assert len(set(bodies.values())) == 3, layer


def test_a_reassigned_case_moves_to_the_new_department(env):
    client, h, ids = env
    case = ids["sanitation"][-1]
    r = client.post(f"/incidents/{case}/transitions", headers=h["centre"], json={"action": "register"})
    assert r.status_code == 200, r.text
    r = client.post(f"/incidents/{case}/transitions", headers=h["centre"],
                    json={"action": "dispatch", "department": "justice"})
    assert r.status_code == 200, r.text
    assert case in listed(client, h["justice"]) and case not in listed(client, h["sanitation"])
    r = client.post(f"/incidents/{case}/transitions", headers=h["justice"], json={"action": "handle"})
    assert r.status_code == 200, r.text
    ids["justice"].append(ids["sanitation"].pop())
