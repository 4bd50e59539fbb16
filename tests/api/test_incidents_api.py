"""/incidents and /stats: the workflow over HTTP, bad input (4xx, nothing half-written), the seed figures."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from gis_grid.incidents.acting import actor_of
from common import bearer, make_toy_store
from stores import location
from incident_demo import incident_store_path

PAST = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()


#: one key per workflow role on the toy district (grid 370402001001001 is where new() logs cases)
KEYS = {"centre": ("command_center", "370402"), "worker": ("grid_worker", "370402001001001"),
        "department": ("department", "370402:justice"), "supervisor": ("supervisor", "370402"),
        "hotline": ("hotline", "370402"), "street": ("street_admin", "370402001"),
        "community": ("community_admin", "370402001001"),
        "other_worker": ("grid_worker", "370402002001001"), "other_street": ("street_admin", "370402002"),
        "planner": ("planner", "370402")}
#: who performs each step of the walk-through
BY = {"register": "centre", "dispatch": "centre", "handle": "department", "feedback": "department",
      "close": "worker", "assess": "supervisor", "cancel": "centre", "rework": "centre"}


class Keys(dict):
    """Authorization headers by KEYS name, plus each key's name as the recorded actor."""

    def __init__(self, store):
        from gis_grid.security.keys import create_key
        super().__init__()
        self.ids = {}
        for name, (role, scope) in KEYS.items():
            record, token = create_key(store, role, scope, days=1, note="test")
            self[name], self.ids[name] = {"Authorization": f"Bearer {token}"}, actor_of(record["id"])


@pytest.fixture()
def toy_env(tmp_path):
    path = location(tmp_path / "toy.gpkg")
    store = make_toy_store(path)
    keys = Keys(store)
    store.close()
    with TestClient(create_app(Settings(db=str(path), default_page_size=2, max_page_size=3)),
                    headers=keys["centre"]) as c:
        yield c, keys


@pytest.fixture()
def toy(toy_env):
    return toy_env[0]


@pytest.fixture(scope="module")
def demo(demo_store_path, tmp_path_factory):
    path = incident_store_path(demo_store_path, tmp_path_factory)
    with TestClient(create_app(Settings(db=str(path))), headers=bearer(path)) as c:
        yield c


def new(client, headers=None, **kw):
    body = dict(lon=117.505, lat=34.815, category="dispute", reporter="W1", at=PAST)
    body.update(kw)
    return client.post("/incidents", json=body, headers=headers)


def go(client, cid, action, headers, minutes, **kw):
    """One transition sent with ``headers`` (the key decides the acting role)."""
    at = (datetime.now(timezone.utc) - timedelta(days=2) + timedelta(minutes=minutes)).isoformat()
    return client.post(f"/incidents/{cid}/transitions", json=dict(action=action, at=at, **kw), headers=headers)


def walk(client, keys, cid, actions, start=1):
    r = None
    for k, a in enumerate(actions, start):
        extra = {"satisfaction": 4} if a == "close" else {}
        r = go(client, cid, a, keys[BY[a]], 10 * k, **extra)
        assert r.status_code == 200, (a, r.text)
    return r


def test_create_locates_and_walks_the_workflow(toy_env):
    toy, keys = toy_env
    r = new(toy, keys["worker"])
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["grid_code"] == "370402001001001" and case["status"] == "collected" and case["colour"] == "green"
    assert case["department"] == "justice" and case["building_id"] == 1 and case["reporter_role"] == "grid_worker"
    cid = case["id"]
    r = walk(toy, keys, cid, ["register", "dispatch", "handle", "feedback", "close", "assess"])
    assert r.json()["status"] == "assessed" and r.json()["satisfaction"] == 4
    events = toy.get(f"/incidents/{cid}").json()["events"]
    assert [e["action"] for e in events] == ["collect", "register", "dispatch", "handle", "feedback", "close",
                                             "assess"]
    # who acted and in which role come from the keys, not from any body
    assert [(e["actor"], e["role"]) for e in events] == [
        (keys.ids[n], r) for n, r in [("worker", "grid_worker"), ("centre", "command_centre"),
                                      ("centre", "command_centre"), ("department", "department"),
                                      ("department", "department"), ("worker", "grid_worker"),
                                      ("supervisor", "supervisor")]]
    assert toy.get("/incidents/Enothere").status_code == 404


@pytest.mark.parametrize("who, role", [("hotline", "hotline"), ("centre", "command_centre"),
                                       ("community", "grid_worker")])
def test_collect_role_is_the_keys(toy_env, who, role):
    toy, keys = toy_env
    r = new(toy, keys[who], reporter=None)
    assert r.status_code == 201, r.text
    assert r.json()["reporter_role"] == role and r.json()["reporter"] == keys.ids[who]


@pytest.mark.parametrize("who", ["department", "supervisor", "planner"])
def test_roles_that_may_not_collect(toy_env, who):
    toy, keys = toy_env
    r = new(toy, keys[who])
    assert r.status_code == 403, r.text
    assert "collect" in r.json()["detail"] or "may not use" in r.json()["detail"]
    assert _snapshot(toy)["numberMatched"] == 0


#: (step, the keys that may take it, keys that may not); each runs on a case standing just before the step
STEP_RULES = [
    ("register", ["centre", "street"], ["worker", "department", "supervisor", "hotline", "community"]),
    ("dispatch", ["centre", "street"], ["worker", "department", "supervisor", "hotline"]),
    ("handle", ["department"], ["centre", "worker", "supervisor", "hotline", "street"]),
    ("feedback", ["department"], ["centre", "worker", "supervisor", "hotline"]),
    ("close", ["worker", "centre", "community", "street"], ["department", "supervisor", "hotline"]),
    ("assess", ["supervisor"], ["centre", "worker", "department", "hotline", "street"]),
]
BEFORE = ["register", "dispatch", "handle", "feedback", "close", "assess"]


@pytest.mark.parametrize("step, right, wrong", STEP_RULES, ids=[s[0] for s in STEP_RULES])
def test_each_step_by_the_keys_role(toy_env, step, right, wrong):
    """Every step: each wrong key is a 403 that changes nothing, each right key succeeds."""
    toy, keys = toy_env
    for n, who in enumerate(right):
        cid = new(toy, keys["worker"]).json()["id"]
        walk(toy, keys, cid, BEFORE[:BEFORE.index(step)])
        before = toy.get(f"/incidents/{cid}").json()
        extra = {"satisfaction": 5} if step == "close" else {}
        if n == 0:
            for bad in wrong:
                r = go(toy, cid, step, keys[bad], 100, **extra)
                assert r.status_code == 403, (step, bad, r.text)
                assert f"may not {step}" in r.json()["detail"]
            assert toy.get(f"/incidents/{cid}").json() == before
        r = go(toy, cid, step, keys[who], 100, **extra)
        assert r.status_code == 200, (step, who, r.text)
        assert r.json()["events"][-1]["actor"] == keys.ids[who]


@pytest.mark.parametrize("step, who", [("cancel", "centre"), ("rework", "worker"), ("rework", "centre")])
def test_cancel_and_rework_roles(toy_env, step, who):
    toy, keys = toy_env
    cid = new(toy, keys["worker"]).json()["id"]
    walk(toy, keys, cid, ["register", "dispatch", "handle", "feedback"])
    for bad in ("department", "supervisor", "hotline"):
        assert go(toy, cid, step, keys[bad], 100).status_code == 403
    r = go(toy, cid, step, keys[who], 100)
    assert r.status_code == 200 and r.json()["status"] == ("cancelled" if step == "cancel" else "dispatched")


def test_out_of_scope_case_is_404_for_every_step(toy_env):
    """A key that cannot see the case's grid gets 404 (as for a missing case), even when its role fits."""
    toy, keys = toy_env
    cid = new(toy, keys["worker"]).json()["id"]
    assert go(toy, cid, "register", keys["other_street"], 10).status_code == 404
    walk(toy, keys, cid, ["register", "dispatch", "handle", "feedback"])
    before = toy.get(f"/incidents/{cid}").json()
    for who in ("other_worker", "other_street"):
        r = go(toy, cid, "close", keys[who], 100, satisfaction=5)
        assert r.status_code == 404 and cid in r.json()["detail"], r.text
    assert toy.get(f"/incidents/{cid}").json() == before
    # reading it: the same 404 as a case that does not exist, without naming where it is
    r = toy.get(f"/incidents/{cid}", headers=keys["other_worker"])
    assert r.status_code == 404 and r.json()["detail"] == f"no incident with id {cid!r}"
    # logging a case outside one's own grid is refused too
    assert new(toy, keys["other_worker"]).status_code == 403


@pytest.mark.parametrize("field, value, status", [
    ("role", "command_centre", 403),    # a department key claiming the command centre's role
    ("role", "department", 200),        # agreeing with the key is accepted (older clients)
    ("actor", "somebody-else", 403),
])
def test_body_may_not_claim_a_role_or_actor(toy_env, field, value, status):
    toy, keys = toy_env
    cid = new(toy, keys["worker"]).json()["id"]
    walk(toy, keys, cid, ["register", "dispatch"])
    r = go(toy, cid, "handle", keys["department"], 100, **{field: value})
    assert r.status_code == status, r.text
    if status == 403:
        assert f"leave '{field}' out" in r.json()["detail"]
    # and a grid worker cannot log a case as the command centre
    r = new(toy, keys["worker"], role="command_centre")
    assert r.status_code == 403 and "leave 'role' out" in r.json()["detail"]


def test_meta_lists_the_key_roles(toy):
    meta = toy.get("/incidents-meta").json()
    assert meta["key_roles"]["command_center"] == "command_centre"
    assert meta["key_roles"]["grid_worker"] == "grid_worker"
    assert {"hotline", "department", "supervisor"} <= set(meta["key_roles"])


def _snapshot(client):
    return client.get("/incidents", params={"limit": 3}).json()


@pytest.mark.parametrize("body, status, match", [
    (dict(category="ufo"), 400, "unknown category"),
    (dict(lon=117.7, lat=34.815), 422, "outside"),
    (dict(lon=200, lat=34.815), 422, None),
    (dict(at=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat()), 400, "future"),
    (dict(role="department"), 403, "leave 'role' out"),
    (dict(priority="someday"), 400, "priority"),
])
def test_bad_new_case(toy, body, status, match):
    r = new(toy, **body)
    assert r.status_code == status, r.text
    if match:
        assert match in r.json()["detail"]
    assert _snapshot(toy)["numberMatched"] == 0


@pytest.mark.parametrize("action, who, minutes, extra, status, match", [
    ("handle", "department", 20, {}, 400, "cannot handle"),                   # out of order
    ("close", "worker", 20, {"satisfaction": 5}, 400, "cannot close"),
    ("dispatch", "department", 20, {}, 403, "may not dispatch"),              # wrong role (the key's)
    ("dispatch", "centre", -600, {}, 400, "before"),                          # before the previous step
    ("dispatch", "centre", 60 * 24 * 5, {}, 400, "future"),
    ("dispatch", "centre", 20, {"satisfaction": 4}, 400, "close step"),
    ("teleport", "centre", 20, {}, 400, "unknown action"),
    ("dispatch", "centre", 20, {"expected_version": 9}, 409, "version"),
])
def test_bad_transitions_change_nothing(toy_env, action, who, minutes, extra, status, match):
    toy, keys = toy_env
    cid = new(toy).json()["id"]
    assert go(toy, cid, "register", keys["centre"], 10).status_code == 200
    before = toy.get(f"/incidents/{cid}").json()
    r = go(toy, cid, action, keys[who], minutes, **extra)
    assert r.status_code == status, r.text
    assert match in r.json()["detail"]
    assert toy.get(f"/incidents/{cid}").json() == before


@pytest.mark.parametrize("rating", [0, 6, 4.5, "great"])
def test_rating_outside_scale(toy_env, rating):
    toy, keys = toy_env
    cid = new(toy).json()["id"]
    walk(toy, keys, cid, ["register", "dispatch", "handle", "feedback"])
    before = toy.get(f"/incidents/{cid}").json()
    r = go(toy, cid, "close", keys["worker"], 100, satisfaction=rating)
    assert r.status_code == 400 and "satisfaction" in r.json()["detail"]
    assert toy.get(f"/incidents/{cid}").json() == before


def test_list_filters_and_pages(toy):
    ids = [new(toy, category=c, lon=x).json()["id"] for c, x in
           [("dispute", 117.505), ("sanitation", 117.505), ("sanitation", 117.515), ("dispute", 117.515)]]
    r = toy.get("/incidents").json()
    assert r["numberMatched"] == 4 and r["numberReturned"] == 2 and "next" in r
    r2 = toy.get(r["next"].replace("http://testserver", "")).json()
    assert {i["id"] for i in r["items"] + r2["items"]} == set(ids)
    assert toy.get("/incidents", params={"category": "sanitation"}).json()["numberMatched"] == 2
    assert toy.get("/incidents", params={"grid": "370402001"}).json()["numberMatched"] == 2
    assert toy.get("/incidents", params={"bbox": "117.51,34.80,117.52,34.82"}).json()["numberMatched"] == 2
    assert toy.get("/incidents", params={"status": "collected", "colour": "green"}).json()["numberMatched"] == 4
    assert toy.get("/incidents", params={"colour": "red"}).json()["numberMatched"] == 0
    assert toy.get("/incidents", params={"department": "justice"}).json()["numberMatched"] == 2
    for bad, match in [({"from": "2016-02-01", "to": "2016-01-01"}, "before it starts"),
                       ({"category": "ufo"}, "unknown category"), ({"colour": "purple"}, "unknown colour"),
                       ({"bbox": "1,2,3"}, "bbox"), ({"grid": "123"}, "")]:
        resp = toy.get("/incidents", params=bad)
        assert 400 <= resp.status_code < 500 and match in resp.json()["detail"], (bad, resp.text)
    text = toy.get("/incidents/export.csv", params={"category": "dispute"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and {r["category"] for r in rows} == {"dispute"} and rows[0]["colour"] == "green"


def test_summary_reproduces_the_seed(demo):
    s = demo.get("/stats/summary", params={"from": "2014-01-01", "to": "2016-12-31"}).json()
    assert {k: s[k] for k in ("cases", "closed", "closure_rate", "disputes", "disputes_closed", "satisfaction")} == \
        {"cases": 139_345, "closed": 137_901, "closure_rate": 98.96, "disputes": 4_424, "disputes_closed": 4_186,
         "satisfaction": 99.95}
    one = demo.get("/stats/summary", params={"from": "2015-01-01", "to": "2015-12-31"}).json()
    assert 0 < one["cases"] < 139_345
    r = demo.get("/stats/summary", params={"from": "2016-01-01", "to": "2015-01-01"})
    assert r.status_code == 400 and "before it starts" in r.json()["detail"]


def test_division_and_department_stats(demo):
    r = demo.get("/stats/divisions", params={"level": "street", "from": "2016-01-01", "to": "2016-12-31"}).json()
    assert len(r["items"]) == 11 and all(i["cases"] > 0 for i in r["items"])
    assert {"closure_rate", "on_time_rate", "median_handling_h", "p90_handling_h", "rework_rate",
            "satisfaction", "open_red", "open_yellow"} <= set(r["items"][0])
    grids = demo.get("/stats/divisions", params={"level": "grid", "within": r["items"][0]["code"]}).json()["items"]
    assert grids and all(g["code"].startswith(r["items"][0]["code"]) for g in grids)
    csv_text = demo.get("/stats/divisions", params={"level": "community", "format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("code,name,households,residents,buildings,workers,cases") and len(csv_text.splitlines()) == 1 + 170
    d = demo.get("/stats/departments").json()["items"]
    assert sum(x["cases"] for x in d) == 139_345
    a = demo.get("/stats/assessment", params={"from": "2014-01-01", "to": "2016-12-31"}).json()
    below = [x["department"] for x in a["items"] if not x["eligible_advanced"]]
    assert 1 <= len(below) <= 5 and all(x["satisfaction"] < 90 for x in a["items"] if not x["eligible_advanced"])
    rk = demo.get("/stats/ranking", params={"by": "grid", "metric": "median_handling_h", "min_cases": 100}).json()
    assert all(x["cases"] >= 100 for x in rk["items"]) and rk["items"][0]["rank"] == 1
    vals = [x["median_handling_h"] for x in rk["items"]]
    assert vals == sorted(vals)
    assert demo.get("/stats/ranking", params={"metric": "speed"}).status_code == 400
    assert demo.get("/stats/ranking", params={"min_cases": 0}).status_code == 400


def test_demo_list_by_colour_and_grid(demo):
    r = demo.get("/incidents", params={"colour": "red", "status": ["dispatched", "handled", "fed_back"],
                                       "at": "2016-12-31T23:59:59+08:00", "limit": 5}).json()
    assert r["numberMatched"] > 0 and all(i["colour"] == "red" for i in r["items"])
    r = demo.get("/incidents", params={"grid": "370402001", "from": "2016-06-01", "to": "2016-06-30"}).json()
    assert r["numberMatched"] > 0 and all(i["grid_code"].startswith("370402001") for i in r["items"])
    assert all("2016-05-31T16" <= i["created"] <= "2016-06-30T16" for i in r["items"])


def test_demo_open_cases_by_colour(demo):
    """A card's "open cases by colour" in one request: every matched case counted once, in its colour,
    agreeing with the per-grid open_red / open_yellow of the division statistics."""
    open_ = ["collected", "registered", "dispatched", "handled", "fed_back"]
    table = demo.get("/stats/divisions", params={"level": "street", "at": "2016-12-31"}).json()
    street = next(r for r in table["items"] if r["open"])
    code = street["code"]
    r = demo.get("/incidents", params={"grid": code, "status": open_, "at": "2016-12-31", "limit": 3}).json()
    assert set(r["by_colour"]) == {"green", "blue", "yellow", "red"}
    assert sum(r["by_colour"].values()) == r["numberMatched"] == street["open"]
    assert (r["by_colour"]["red"], r["by_colour"]["yellow"]) == (street["open_red"], street["open_yellow"])
    assert r["numberReturned"] == 3      # the counts cover every match, not the page


def test_warnings_endpoint(demo):
    r = demo.get("/warnings", params={"at": "2016-12-31"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["grids"] == 445 and "Gi*" in body["method"]["hotspot"]
    assert all(i["anomaly"] or i["hotspot"].startswith("hot") for i in body["items"])
    for bad in ({"at": "someday"}, {"at": "1990-01-01"}, {"at": "2016-01-01", "alpha": 2}, {}):
        assert demo.get("/warnings", params=bad).status_code == 400, bad


def test_incident_map_page(demo):
    r = demo.get("/map/incidents", params={"category": "sanitation", "from": "2016-01-01", "to": "2016-12-31"})
    assert r.status_code == 200 and len(r.content) < 3_000_000
    assert "/map/static/leaflet-heat/leaflet-heat.js" in r.text and "cdn" not in r.text.lower()
    assert demo.get("/map/static/leaflet-heat/leaflet-heat.js").status_code == 200
    assert demo.get("/map/incidents", params={"layer": "pie"}).status_code == 400
    assert demo.get("/map/incidents", params={"from": "2016-02-01", "to": "2016-01-01"}).status_code == 400


def test_viewer_incident_layers(demo):
    """The /map viewer's incident layers: binned counts and per-division values, never cases."""
    r = demo.get("/map/incidents/heat.json", params={"category": "sanitation", "from": "2016-01-01"})
    assert r.status_code == 200 and len(r.content) < 1_500_000
    heat = r.json()
    want = demo.get("/incidents", params={"category": "sanitation", "from": "2016-01-01", "limit": 1}).json()
    assert heat["cases"] == want["numberMatched"] == sum(sum(n) for _, n in heat["counts"]) > 0
    assert heat["months"][0] == "2016-01" and len(heat["months"]) == len(heat["counts"]) == 12
    assert '"id"' not in r.text and "reporter" not in r.text
    c = demo.get("/map/incidents/choropleth/grid.json", params={"from": "2016-01-01", "to": "2016-12-31"}).json()
    stats = demo.get("/stats/divisions", params={"level": "grid", "from": "2016-01-01", "to": "2016-12-31"}).json()
    assert len(c["values"]) == len(stats["items"]) == 445
    for row in stats["items"][:50]:
        v = c["values"][row["code"]]
        assert (v["cases"], v["closure_rate"], v["median_handling_h"]) == \
            (row["cases"], row["closure_rate"], row["median_handling_h"])
    assert c["legends"]["closure_rate"]["scheme"].startswith("natural breaks")
    assert {v["c_closure_rate"] for v in c["values"].values()} <= \
        {e["colour"] for e in c["legends"]["closure_rate"]["entries"]}
    assert len(demo.get("/map/incidents/choropleth/community.json").json()["values"]) == 170
    w = demo.get("/map/incidents/warnings.json").json()
    assert w["at"] == "2016-12-31"  # the newest case's day (a normal day: few or no grids flagged)
    listed = [i["code"] for i in demo.get("/warnings", params={"at": "2016-12-31"}).json()["items"]]
    assert set(listed) <= set(w["items"]) and [r["code"] for r in w["ranked"]] == listed
    assert sum(w["counts"].values()) == len(w["items"]) <= 0.05 * 445
    for url, params, word in [("/map/incidents/choropleth/street.json", {}, "grid or community"),
                              ("/map/incidents/heat.json", {"category": "ufo"}, "unknown category"),
                              ("/map/incidents/heat.json", {"from": "2016-02-01", "to": "2016-01-01"}, "before"),
                              ("/map/incidents/warnings.json", {"at": "someday"}, "someday"),
                              ("/map/incidents/warnings.json", {"category": "ufo"}, "unknown category")]:
        r = demo.get(url, params=params)
        assert r.status_code == 400 and word in r.json()["detail"], (url, r.text)


def test_heat_rates(demo):
    """The heat layer as a rate: per km² is the count over the bin's area; per 100 households weighs
    each case by its grid's households, its legend in that unit; an unknown rate is a 400 naming the known."""
    q = {"category": "sanitation", "from": "2016-01-01", "to": "2016-06-30"}
    count = demo.get("/map/incidents/heat.json", params=q).json()
    km2 = demo.get("/map/incidents/heat.json", params={**q, "rate": "per_km2"}).json()
    hh = demo.get("/map/incidents/heat.json", params={**q, "rate": "per_100hh"}).json()
    assert (count["rate"], km2["rate"], hh["rate"]) == ("count", "per_km2", "per_100hh")
    assert km2["unit"]["en"] == "cases per km²" and hh["unit"]["en"] == "cases per 100 households"
    per_bin_km2 = (km2["bin_m"] / 1000) ** 2
    for c, k in zip(count["counts"], km2["counts"]):
        assert c[0] == k[0] and k[1] == pytest.approx([n / per_bin_km2 for n in c[1]], abs=1e-3)
    assert km2["month_cases"] == count["month_cases"] == [sum(n) for _, n in count["counts"]]
    # the fixed scale and legend are in the rate's unit (for per km² about the count scale over the bin area)
    assert km2["scale"]["all"] == pytest.approx(count["scale"]["all"] / per_bin_km2, rel=0.15)
    assert km2["legend"]["all"][-1]["label"] == f"≥ {km2['scale']['all']:g}"
    # per household: every case of the window is weighed or counted as left out (grids without households)
    assert sum(hh["month_cases"]) + hh["unweighted"] == hh["cases"] == count["cases"] > 0
    grid = demo.get("/map/incidents/choropleth/grid.json", params=q).json()["values"]
    per_grid = sum(v["cases_per_100hh"] or 0 for v in grid.values())
    assert sum(sum(n) for _, n in hh["counts"]) == pytest.approx(per_grid, rel=1e-3)
    r = demo.get("/map/incidents/heat.json", params={**q, "rate": "per_person"})
    assert r.status_code == 400 and "per_100hh" in r.json()["detail"]


def test_statistics_follow_writes(toy_env):
    toy, keys = toy_env
    assert toy.get("/stats/summary").json()["cases"] == 0
    cid = new(toy).json()["id"]
    s = toy.get("/stats/summary").json()
    assert (s["cases"], s["closed"], s["disputes"]) == (1, 0, 1)
    walk(toy, keys, cid, ["register", "dispatch", "handle", "feedback"])
    assert go(toy, cid, "close", keys["worker"], 100, satisfaction=2).status_code == 200
    s = toy.get("/stats/summary").json()
    assert (s["closed"], s["disputes_closed"], s["satisfaction"], s["closure_rate"]) == (1, 1, 0.0, 100.0)
    g = toy.get("/stats/divisions", params={"level": "grid"}).json()["items"]
    assert {x["code"]: x["cases"] for x in g}["370402001001001"] == 1
    a = toy.get("/stats/assessment").json()["items"]
    assert [x["department"] for x in a] == ["justice"] and a[0]["eligible_advanced"] is False


def test_ladder_is_configurable_per_request(demo):
    q = {"status": ["dispatched", "handled", "fed_back"], "at": "2016-12-31T23:59:59+08:00"}
    default = demo.get("/incidents", params={**q, "colour": "red"}).json()["numberMatched"]
    strict = demo.get("/incidents", params={**q, "colour": "red", "red_from": 1.0, "yellow_from": 1.0}
                      ).json()["numberMatched"]
    assert strict > default > 0
    late = demo.get("/incidents", params={**q, "colour": ["yellow", "red"]}).json()["numberMatched"]
    assert strict == late  # with red from 100 %, every late case is red
    s = demo.get("/stats/divisions", params={"level": "district", "red_from": 1.0, "yellow_from": 1.0,
                                             "to": "2016-12-31"}).json()["items"][0]
    assert s["open_red"] == strict and s["open_yellow"] == 0
    r = demo.get("/incidents", params={"blue_from": 1.5, "yellow_from": 1.0})
    assert r.status_code == 400 and "ladder" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/stats/summary", "/stats/assessment", "/stats/categories",
                                  "/stats/departments", "/stats/ranking", "/stats/divisions?level=grid"])
def test_empty_time_parameters_mean_not_given(toy, path):
    """`?to=&at=` (as forms and fuzzers send them) is the same as leaving them out, never a 500."""
    sep = "&" if "?" in path else "?"
    empty = toy.get(f"{path}{sep}to=&from=&at=")
    plain = toy.get(path)
    assert empty.status_code == plain.status_code == 200, empty.text
    echo = ("from", "to", "at")  # the request's own parameters, echoed back as sent
    assert {k: v for k, v in empty.json().items() if k not in echo} == \
        {k: v for k, v in plain.json().items() if k not in echo}
