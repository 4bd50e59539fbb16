"""An apply carries cases and workers with it (issue 12): cases re-homed from their point in the
apply's transaction, with the reported grid kept; workers follow their households and every
new grid holding households gets one."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import shapely

from common import X0, XM, Y0, Y1, make_toy_store
from gis_grid.atlas import Atlas
from gis_grid.errors import ConflictError, InvalidInputError
from gis_grid.incidents import aggregate, service
from gis_grid.planning.workflow import apply_plan, create_plan, impact_of
from planning_common import make_crowded_store

WEST = "370402001001"
G1, G2, G3 = WEST + "001", WEST + "002", WEST + "003"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def fc(*geoms, props=None):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": (props or [{}] * len(geoms))[i],
         "geometry": json.loads(shapely.to_geojson(g))} for i, g in enumerate(geoms)]}


def log(store, atlas, lon, lat):
    return service.create(store, atlas, lon=lon, lat=lat, crs="EPSG:4490", category="dispute", reporter="张三",
                          role="grid_worker", at=NOW - timedelta(days=1), now=NOW)


@pytest.fixture
def toy(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    yield store
    store.close()


def totals(t, atlas, level):
    return aggregate.group_stats(t, atlas, level)["cases"].astype(int).to_dict()


def test_apply_rehomes_cases_and_keeps_the_reported_grid(toy):
    atlas = Atlas.from_store(toy)
    moving = log(toy, atlas, 117.505, 34.805)     # in 002, north of the new edge: goes to 001
    fresh = log(toy, atlas, 117.505, 34.802)      # in 002, south of it: goes to the new 003
    staying = log(toy, atlas, 117.505, 34.815)    # 001 stays 001
    east = log(toy, atlas, 117.515, 34.815)       # another community: untouched
    before_t = aggregate.case_table(toy, atlas)
    before = {lvl: totals(before_t, atlas, lvl) for lvl in ("grid", "community", "street", "district")}
    iv = toy.incidents_version()
    stamp = datetime.now(timezone.utc)
    time.sleep(0.01)
    plan, _ = create_plan(toy, atlas, WEST, fc(shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804)))
    out = apply_plan(toy, atlas, plan, 1)
    assert out["cases_rehomed"] == 2
    assert toy.incidents_version() == iv + 1  # the cached case tables reload

    cases = toy.incidents().set_index("id")
    assert cases.loc[moving.id, "grid_code"] == G1 and cases.loc[moving.id, "reported_grid_code"] == G2
    assert cases.loc[fresh.id, "grid_code"] == G3 and cases.loc[fresh.id, "reported_grid_code"] == G2
    for c in (staying, east):
        assert cases.loc[c.id, "grid_code"] == c.grid_code == cases.loc[c.id, "reported_grid_code"]
        assert cases.loc[c.id, "version"] == 1
    # the move is in the case's history and bumps its version (a stale writer gets a conflict)
    assert cases.loc[moving.id, "version"] == 2
    ev = cases.loc[moving.id, "events"][-1]
    assert ev["action"] == "rehome" and ev["note"].startswith(f"grid {G2} -> {G1}") and ev["actor"] == f"plan {plan.id}"
    with pytest.raises(ConflictError):
        service.transition(toy, moving.id, "register", actor="x", role="command_centre", expected_version=1, now=NOW)
    assert service.get(toy, moving.id).reported_grid_code == G2

    new = Atlas.from_store(toy)
    t = aggregate.case_table(toy, new)
    grid = totals(t, new, "grid")
    assert (grid[G1], grid[G3], grid.get(G2, 0)) == (2, 1, 0)
    for lvl in ("community", "street", "district"):  # a redraw inside one community changes no total above it
        assert totals(t, new, lvl) == before[lvl]
    assert sum(grid.values()) == aggregate.summary(t)["cases"] == 4
    # as of before the apply: the old grids, placed by the cases' points
    old = Atlas.from_store(toy, at=stamp, version=1)
    assert totals(aggregate.case_table(toy, old), old, "grid") == before["grid"]
    assert before["grid"][G2] == 2


def test_a_transition_after_a_rehome_keeps_both_grids(toy):
    atlas = Atlas.from_store(toy)
    case = log(toy, atlas, 117.505, 34.805)
    plan, _ = create_plan(toy, atlas, WEST, fc(shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804)))
    apply_plan(toy, atlas, plan, 1)
    done = service.transition(toy, case.id, "register", actor="centre 1", role="command_centre", expected_version=2,
                              at=NOW, now=NOW)
    row = toy.incidents(ids=[case.id]).iloc[0]
    assert (done.grid_code, row["grid_code"], row["reported_grid_code"]) == (G1, G1, G2)
    assert [e["action"] for e in row["events"]] == ["collect", "rehome", "register"]


def test_an_old_incidents_table_gains_the_reported_grid_column(tmp_path):
    pytest.importorskip("sqlite3")
    store = make_toy_store(tmp_path / "toy.gpkg")
    if not hasattr(store, "conn"):
        pytest.skip("the GeoPackage migration; PostGIS has Alembic revision 0003_reported_grid")
    atlas = Atlas.from_store(store)
    case = log(store, atlas, 117.505, 34.815)
    c = store.conn
    c.execute("ALTER TABLE incidents DROP COLUMN reported_grid_code")  # as an older store wrote it
    assert store.incidents().iloc[0]["reported_grid_code"] == G1  # read before any write
    log(store, atlas, 117.505, 34.805)  # the first write adds the column, filled from grid_code
    df = store.incidents().set_index("id")
    assert df.loc[case.id, "reported_grid_code"] == G1 and df["reported_grid_code"].notna().all()
    store.close()


# -- workers ------------------------------------------------------------------------------------
def staffed_store(path, workers):
    store = make_crowded_store(path)
    w = pd.DataFrame({"id": list(workers), "grid_code": list(workers.values()), "name": "周八",
                      "role": "网格员", "phone": "13900001111"})
    store.replace_all({"workers": w}, {})
    return store


def quarters():
    """The west community in four horizontal bands (each holds households of the crowded store)."""
    ys = [Y0, 34.805, 34.81, 34.815, Y1]
    return [shapely.box(X0, ys[k], XM, ys[k + 1]) for k in range(4)][::-1]


def test_workers_follow_and_every_grid_with_households_gets_one(tmp_path):
    store = staffed_store(tmp_path / "s.gpkg", {"W1": G1, "W2": G1, "W3": G1, "W4": G2, "W5": G2})
    atlas = Atlas.from_store(store)
    plan, _ = create_plan(store, atlas, WEST, fc(*quarters()))
    imp = impact_of(store, atlas, plan)
    assert imp["unstaffed"] == []
    assert all(g["workers"] >= 1 for g in imp["grids"] if g["households"] > 0)
    assert sum(g["workers"] for g in imp["grids"]) == 5
    out = apply_plan(store, atlas, plan, plan.base_version)
    assert out["unstaffed"] == []
    new = Atlas.from_store(store)
    w = store.workers()
    served = w.groupby("grid_code").size().to_dict()
    with_households = [c for c in new.grid_codes if c.startswith(WEST) and len(new.household_ids_in(c))]
    assert len(with_households) == 4 and all(served.get(c, 0) >= 1 for c in with_households)
    assert set(w["grid_code"]) <= set(new.grid_codes)  # nobody serves a retired grid
    assert imp["grids"] and {g["code"]: g["workers"] for g in imp["grids"]} == \
        {c: served.get(c, 0) for c in (g["code"] for g in imp["grids"])}


def test_a_plan_names_the_assignment(tmp_path):
    store = staffed_store(tmp_path / "s.gpkg", {"W1": G1, "W2": G1, "W3": G1, "W4": G2, "W5": G2})
    atlas = Atlas.from_store(store)
    props = [{"workers": ["W4"]}, {"workers": ["W5", "W1"]}, {}, {}]
    plan, _ = create_plan(store, atlas, WEST, fc(*quarters(), props=props))
    imp = impact_of(store, atlas, plan)
    codes = [g["code"] for g in imp["grids"]]
    apply_plan(store, atlas, plan, plan.base_version)
    w = store.workers().set_index("id")["grid_code"]
    assert w["W4"] == codes[0] and w["W5"] == codes[1] and w["W1"] == codes[1]
    assert w["W2"] in codes[2:] and w["W3"] in codes[2:] and w["W2"] != w["W3"]


def test_a_plan_naming_a_stranger_is_refused(tmp_path):
    store = staffed_store(tmp_path / "s.gpkg", {"W1": G1, "W4": G2, "E1": "370402002001001"})
    atlas = Atlas.from_store(store)
    plan, _ = create_plan(store, atlas, WEST, fc(*quarters(), props=[{"workers": ["E1"]}, {}, {}, {}]))
    with pytest.raises(InvalidInputError, match="E1"):
        impact_of(store, atlas, plan)
    with pytest.raises(InvalidInputError, match="E1"):
        apply_plan(store, atlas, plan, plan.base_version)
    assert store.atlas_version() == plan.base_version


def test_impact_lists_grids_that_cannot_be_staffed(tmp_path):
    store = staffed_store(tmp_path / "s.gpkg", {"W1": G1, "W2": G2})
    atlas = Atlas.from_store(store)
    plan, _ = create_plan(store, atlas, WEST, fc(*quarters()))
    imp = impact_of(store, atlas, plan)
    assert len(imp["unstaffed"]) == 2
    by = {g["code"]: g for g in imp["grids"]}
    assert all(by[c]["workers"] == 0 and by[c]["households"] > 0 for c in imp["unstaffed"])


def test_cases_without_an_event_log_are_rehomed():
    """The demo generator stores cases with no event log (null, read as None or NaN): the re-home starts one."""
    from gis_grid.planning.changeset import PointPlacer
    from gis_grid.planning.rehome import CaseRehoming
    a, b = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    placer = PointPlacer(shapely.union(a, b), (a, b), ("370402001001003", "370402001001004"))
    cases = pd.DataFrame({"id": ["c1", "c2", "c3", "c4"], "lon": [0.5, 1.5, 1.5, 1.5], "lat": 0.5,
                          "grid_code": ["370402001001003", "370402001001001", "370402001001002", "370402001001002"],
                          "version": [1, None, 2, 3],
                          "events": [None, float("nan"), json.dumps([{"action": "collect"}]), [{"action": "collect"}]]})
    moves = CaseRehoming(placer, "2026-06-01T00:00:00Z", 7).moves(cases).set_index("id")
    assert list(moves.index) == ["c2", "c3", "c4"]  # c1 stays where it is
    assert [[e["action"] for e in moves.loc[c, "events"]] for c in moves.index] == \
        [["rehome"], ["collect", "rehome"], ["collect", "rehome"]]
    assert moves["version"].tolist() == [2, 3, 4] and set(moves["new"]) == {"370402001001004"}


def test_a_store_of_cases_without_event_logs_reads_back_after_an_apply(toy):
    """The demo generator stores cases with no event log; once an apply writes logs for the moved
    ones, the column mixes text and null, and every store read must still give lists."""
    atlas = Atlas.from_store(toy)
    moving, staying = log(toy, atlas, 117.505, 34.805), log(toy, atlas, 117.505, 34.815)
    df = toy.incidents()
    df["events"] = None
    toy.replace_incidents(df)
    plan, _ = create_plan(toy, atlas, WEST, fc(shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804)))
    assert apply_plan(toy, atlas, plan, 1)["cases_rehomed"] == 1
    rows = toy.incidents().set_index("id")
    assert [e["action"] for e in rows.loc[moving.id, "events"]] == ["rehome"]
    assert rows.loc[staying.id, "events"] == []
    assert service.get(toy, moving.id).grid_code == G1
