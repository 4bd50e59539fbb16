"""/incidents and /stats: the workflow over HTTP, bad input (4xx, nothing half-written), the seed figures."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from incident_demo import incident_store_path

PAST = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()


@pytest.fixture()
def toy(tmp_path):
    path = tmp_path / "toy.gpkg"
    make_toy_store(path).close()
    with TestClient(create_app(Settings(db=str(path), default_page_size=2, max_page_size=3)),
                    headers=bearer(path)) as c:
        yield c


@pytest.fixture(scope="module")
def demo(demo_store_path, tmp_path_factory):
    path = incident_store_path(demo_store_path, tmp_path_factory)
    with TestClient(create_app(Settings(db=str(path))), headers=bearer(path)) as c:
        yield c


def new(client, **kw):
    body = dict(lon=117.505, lat=34.815, category="dispute", reporter="W1", role="grid_worker", at=PAST)
    body.update(kw)
    return client.post("/incidents", json=body)


def go(client, cid, action, role, minutes, **kw):
    at = (datetime.now(timezone.utc) - timedelta(days=2) + timedelta(minutes=minutes)).isoformat()
    return client.post(f"/incidents/{cid}/transitions", json=dict(action=action, actor="x", role=role, at=at, **kw))


def test_create_locates_and_walks_the_workflow(toy):
    r = new(toy)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["grid_code"] == "370402001001001" and case["status"] == "collected" and case["colour"] == "green"
    assert case["department"] == "justice" and case["building_id"] == 1
    cid = case["id"]
    steps = [("register", "command_centre"), ("dispatch", "command_centre"), ("handle", "department"),
             ("feedback", "department")]
    for k, (a, role) in enumerate(steps, 1):
        r = go(toy, cid, a, role, 10 * k)
        assert r.status_code == 200, r.text
    r = go(toy, cid, "close", "grid_worker", 60, satisfaction=4)
    assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["satisfaction"] == 4
    r = toy.get(f"/incidents/{cid}")
    assert [e["action"] for e in r.json()["events"]] == ["collect", "register", "dispatch", "handle", "feedback",
                                                         "close"]
    assert toy.get("/incidents/Enothere").status_code == 404


def _snapshot(client):
    return client.get("/incidents", params={"limit": 3}).json()


@pytest.mark.parametrize("body, status, match", [
    (dict(category="ufo"), 400, "unknown category"),
    (dict(lon=117.7, lat=34.815), 422, "outside"),
    (dict(lon=200, lat=34.815), 422, None),
    (dict(at=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat()), 400, "future"),
    (dict(role="department"), 400, "may not collect"),
    (dict(priority="someday"), 400, "priority"),
])
def test_bad_new_case(toy, body, status, match):
    r = new(toy, **body)
    assert r.status_code == status, r.text
    if match:
        assert match in r.json()["detail"]
    assert _snapshot(toy)["numberMatched"] == 0


@pytest.mark.parametrize("action, role, minutes, extra, status, match", [
    ("handle", "department", 20, {}, 400, "cannot handle"),                   # out of order
    ("close", "grid_worker", 20, {"satisfaction": 5}, 400, "cannot close"),
    ("dispatch", "department", 20, {}, 400, "may not dispatch"),              # wrong role
    ("dispatch", "command_centre", -600, {}, 400, "before"),                  # before the previous step
    ("dispatch", "command_centre", 60 * 24 * 5, {}, 400, "future"),
    ("dispatch", "command_centre", 20, {"satisfaction": 4}, 400, "close step"),
    ("teleport", "command_centre", 20, {}, 400, "unknown action"),
    ("dispatch", "command_centre", 20, {"expected_version": 9}, 409, "version"),
])
def test_bad_transitions_change_nothing(toy, action, role, minutes, extra, status, match):
    cid = new(toy).json()["id"]
    assert go(toy, cid, "register", "command_centre", 10).status_code == 200
    before = toy.get(f"/incidents/{cid}").json()
    r = go(toy, cid, action, role, minutes, **extra)
    assert r.status_code == status, r.text
    assert match in r.json()["detail"]
    assert toy.get(f"/incidents/{cid}").json() == before


@pytest.mark.parametrize("rating", [0, 6, 4.5, "great"])
def test_rating_outside_scale(toy, rating):
    cid = new(toy).json()["id"]
    for k, (a, role) in enumerate([("register", "command_centre"), ("dispatch", "command_centre"),
                                   ("handle", "department"), ("feedback", "department")], 1):
        assert go(toy, cid, a, role, k).status_code == 200
    before = toy.get(f"/incidents/{cid}").json()
    r = go(toy, cid, "close", "grid_worker", 10, satisfaction=rating)
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
    assert csv_text.splitlines()[0].startswith("code,name,cases") and len(csv_text.splitlines()) == 1 + 170
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


def test_statistics_follow_writes(toy):
    assert toy.get("/stats/summary").json()["cases"] == 0
    cid = new(toy).json()["id"]
    s = toy.get("/stats/summary").json()
    assert (s["cases"], s["closed"], s["disputes"]) == (1, 0, 1)
    for k, (a, role) in enumerate([("register", "command_centre"), ("dispatch", "command_centre"),
                                   ("handle", "department"), ("feedback", "department")], 1):
        assert go(toy, cid, a, role, k).status_code == 200
    assert go(toy, cid, "close", "grid_worker", 10, satisfaction=2).status_code == 200
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
