"""Boundary planning on the toy district: validation failures with locations, numbering,
impact, atomic apply with history, stale/concurrent applies and a kill mid-apply."""
from __future__ import annotations

import json
import time
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pandas as pd
import pytest
import shapely

from common import X0, XM, Y0, Y1, YM, make_toy_store
from stores import location
from gis_grid.atlas import Atlas
from gis_grid.coverage import check_store
from gis_grid.errors import PreconditionError, PreconditionRequiredError
from gis_grid.planning import edits
from gis_grid.planning.impact import balance, polsby_popper
from gis_grid.planning.workflow import (PlanInvalidError, apply_plan, create_plan, impact_of,
                                        plan_from_record)
from gis_grid.store import open_store

WEST = "370402001001"
G1, G2 = WEST + "001", WEST + "002"


def fc(*geoms, props=None):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": (props or [{}] * len(geoms))[i],
         "geometry": json.loads(shapely.to_geojson(g))} for i, g in enumerate(geoms)]}


@pytest.fixture
def toy(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    yield store
    store.close()


def moved_edge(y=34.804):
    """The west community with the 001/002 edge moved from 34.81 to ``y``.

    At 34.804 the north grid keeps its code (it holds all of old 001, which is more than half
    of it), the south one is less than half of old 002 and gets the fresh code 003 (002 is
    retired), and building 2 (at 34.805) moves north into 001.
    """
    return fc(shapely.box(X0, y, XM, Y1), shapely.box(X0, Y0, XM, y))


# -- validation ----------------------------------------------------------------------
def failures(toy, collection, scope=WEST):
    atlas = Atlas.from_store(toy)
    with pytest.raises(PlanInvalidError) as ei:
        create_plan(toy, atlas, scope, collection)
    assert toy.plans() == []  # nothing stored
    return ei.value.detail


def test_overlap_is_rejected_with_its_location(toy):
    out = failures(toy, fc(shapely.box(X0, 34.809, XM, Y1), shapely.box(X0, Y0, XM, YM)))
    ov = [f for f in out if f["rule"] == "overlap"]
    assert len(ov) == 1 and ov[0]["features"] == [0, 1]
    loc = shapely.from_geojson(json.dumps(ov[0]["location"]))
    assert loc.bounds == pytest.approx((X0, 34.809, XM, YM), abs=1e-6)
    assert ov[0]["area_m2"] > 1000


def test_gap_is_rejected_with_its_location(toy):
    out = failures(toy, fc(shapely.box(X0, 34.811, XM, Y1), shapely.box(X0, Y0, XM, YM)))
    gap = [f for f in out if f["rule"] == "gap"]
    assert len(gap) == 1
    assert shapely.from_geojson(json.dumps(gap[0]["location"])).bounds == pytest.approx((X0, YM, XM, 34.811), abs=1e-6)


def test_invalid_geometry_is_rejected_with_the_point(toy):
    bowtie = shapely.Polygon([(X0, YM), (XM, Y1), (XM, YM), (X0, Y1), (X0, YM)])
    out = failures(toy, fc(bowtie, shapely.box(X0, Y0, XM, YM)))
    assert [f["rule"] for f in out] == ["valid"]
    pt = shapely.from_geojson(json.dumps(out[0]["location"]))
    assert pt.geom_type == "Point" and pt.distance(shapely.Point((X0 + XM) / 2, (YM + Y1) / 2)) < 1e-6


def test_out_of_parent_and_out_of_scope_are_rejected(toy):
    # the north grid reaches 0.001 deg into the east community
    out = failures(toy, fc(shapely.box(X0, YM, XM + 0.001, Y1), shapely.box(X0, Y0, XM, YM)))
    rules = {f["rule"] for f in out}
    assert {"within_parent", "within_scope"} <= rules
    spill = shapely.from_geojson(json.dumps(next(f for f in out if f["rule"] == "within_parent")["location"]))
    assert spill.bounds == pytest.approx((XM, YM, XM + 0.001, Y1), abs=1e-6)


def test_a_grid_in_two_pieces_is_rejected(toy):
    two = shapely.MultiPolygon([shapely.box(X0, YM, 117.504, Y1), shapely.box(117.506, YM, XM, Y1)])
    out = failures(toy, fc(two, shapely.box(X0, Y0, XM, YM), shapely.box(117.504, YM, 117.506, Y1)))
    assert [f["rule"] for f in out] == ["contiguous"]


def test_small_slivers_within_tolerance_pass(toy):
    # strips thinner than the 5 cm snap tolerance are closed before validation (planning/snap.py):
    # 2 mm (~2 m2 over 914 m) passes and is stored without the strip; 20 cm (~200 m2) is a gap
    atlas = Atlas.from_store(toy)
    assert [f["rule"] for f in failures(toy, fc(shapely.box(X0, YM + 2e-6, XM, Y1),
                                                shapely.box(X0, Y0, XM, YM)))] == ["gap"]
    plan, report = create_plan(toy, atlas, WEST, fc(shapely.box(X0, YM + 2e-8, XM, Y1), shapely.box(X0, Y0, XM, YM)))
    assert report.ok and plan.id == 1
    assert shapely.union_all(plan.geometries).symmetric_difference(shapely.box(X0, Y0, XM, Y1)).area < 1e-14


# -- impact ----------------------------------------------------------------------------
def test_impact_of_a_moved_boundary(toy):
    atlas = Atlas.from_store(toy)
    plan, _ = create_plan(toy, atlas, WEST, moved_edge())
    imp = impact_of(toy, atlas, plan, target_households=2)
    # building 2 (household Hc3, 1 resident) now lies north of the edge
    assert imp["changes"] == {"buildings": 1, "households": 1, "residents": 1, "workers": 0, "open_cases": None}
    assert imp["moved_buildings"] == [{"id": 2, "from": G2, "to": G1}]
    assert imp["redrawn"] == [G1] and imp["created"] == [WEST + "003"] and imp["retired"] == [G2]
    by = {g["code"]: g for g in imp["grids"]}
    assert by[G1]["households"] == 3 and by[G1]["residents"] == 4 and by[WEST + "003"]["households"] == 0
    total = sum(g["area_m2"] for g in imp["old_grids"])
    assert by[G1]["area_m2"] == pytest.approx(0.8 * total, rel=1e-3)
    assert by[G1]["polsby_popper"] < 0.785  # a 1 x 1.8 rectangle is less compact than a square
    assert imp["balance"]["before"]["max_abs_deviation"] == pytest.approx(0.5)
    assert imp["balance"]["after"]["max_abs_deviation"] == pytest.approx(1.0)


def test_a_small_move_keeps_both_codes_and_moves_nobody(toy):
    atlas = Atlas.from_store(toy)
    plan, _ = create_plan(toy, atlas, WEST, moved_edge(34.8135))
    imp = impact_of(toy, atlas, plan)
    assert imp["redrawn"] == [G1, G2] and imp["created"] == [] and imp["retired"] == []
    assert imp["changes"]["buildings"] == 0 and imp["moved_buildings"] == []


def test_polsby_popper_and_balance():
    assert polsby_popper(shapely.box(0, 0, 10, 10)) == pytest.approx(3.14159 / 4, rel=1e-4)
    assert polsby_popper(shapely.Point(0, 0).buffer(10, 256)) == pytest.approx(1.0, rel=1e-3)
    b = balance([300, 500, 400], 400, band=0.2)
    assert b["within_band"] == 1 and b["max_abs_deviation"] == 0.25


# -- numbering and apply ---------------------------------------------------------------
def test_fresh_codes_follow_reading_order(toy):
    # three strips of 30/40/30 % of grid 001: none holds more than half of it, so all are new
    atlas = Atlas.from_store(toy)
    xs = [X0, 117.503, 117.507, XM]
    strips = [shapely.box(xs[k], YM, xs[k + 1], Y1) for k in (2, 0, 1)]  # drawn out of order
    plan, _ = create_plan(toy, atlas, WEST, fc(*strips, shapely.box(X0, Y0, XM, YM)), replaces=None)
    imp = impact_of(toy, atlas, plan)
    assert imp["retired"] == [G1] and imp["created"] == [WEST + "005", WEST + "003", WEST + "004"]
    assert imp["grids"][3]["status"] == "unchanged" and imp["grids"][3]["code"] == G2
    assert imp["moved_buildings"] == [{"id": 1, "from": G1, "to": WEST + "004"}]


def test_split_merge_split_never_reuses_a_retired_code(toy):
    atlas = Atlas.from_store(toy)
    line = {"type": "LineString", "coordinates": [[117.503, 34.805], [117.503, 34.83]]}
    scope, col = edits.split_grid(atlas, G1, line)
    plan, _ = create_plan(toy, atlas, scope, col)
    out = apply_plan(toy, atlas, plan, plan.base_version)
    # the east 70 % keeps 001 (a new version), the west 30 % is new
    assert out["atlas_version"] == 2 and out["redrawn"] == [G1] and out["created"] == [WEST + "003"]
    atlas = Atlas.from_store(toy)
    scope, col = edits.merge_grids(atlas, [G1, WEST + "003"])
    plan, _ = create_plan(toy, atlas, scope, col)
    out = apply_plan(toy, atlas, plan, 2)
    assert out["retired"] == [WEST + "003"] and out["redrawn"] == [G1]
    atlas = Atlas.from_store(toy)
    scope, col = edits.split_grid(atlas, G1, {"type": "LineString", "coordinates": [[117.49, 34.817], [117.52, 34.817]]})
    plan, _ = create_plan(toy, atlas, scope, col)
    out = apply_plan(toy, atlas, plan, 3)
    assert out["created"] == [WEST + "004"]  # 003 was retired: never issued again
    assert list(toy.grid_history(G1)["version"]) == [1, 2, 3, 4]
    assert toy.grid_codes_ever(WEST) == [WEST + s for s in ("001", "002", "003", "004")]
    assert check_store(toy).ok, check_store(toy).to_text()


def test_move_boundary_edit(toy):
    atlas = Atlas.from_store(toy)
    scope, col = edits.move_boundary(atlas, G1, G2, {"type": "LineString",
                                                     "coordinates": [[117.49, 34.8135], [117.52, 34.8135]]})
    plan, _ = create_plan(toy, atlas, scope, col)
    g = [shapely.from_geojson(json.dumps(f["geometry"])) for f in col["features"]]
    assert g[0].bounds == pytest.approx((X0, 34.8135, XM, Y1)) and g[1].bounds == pytest.approx((X0, Y0, XM, 34.8135))
    with pytest.raises(Exception):
        edits.move_boundary(atlas, G1, "370402002001001", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]})


def test_apply_is_complete_with_history_and_as_of(toy):
    atlas = Atlas.from_store(toy)
    before = datetime.now(timezone.utc)
    time.sleep(0.01)
    plan, _ = create_plan(toy, atlas, WEST, moved_edge())
    out = apply_plan(toy, atlas, plan, 1)
    assert out["atlas_version"] == 2 and toy.atlas_version() == 2
    assert toy.plan(plan.id)["status"] == "applied"
    hist = toy.grid_history(G1)
    assert list(hist["version"]) == [1, 2] and isinstance(hist["valid_to"].iloc[0], str) and pd.isna(hist["valid_to"].iloc[1])
    assert list(toy.grid_history(G2)["version"]) == [1] and isinstance(toy.grid_history(G2)["valid_to"].iloc[0], str)
    b = toy.buildings().set_index("id")
    assert b.loc[2, "grid_code"] == G1 and b.loc[1, "grid_code"] == G1
    hh = toy.households().set_index("id")
    assert hh.loc["Hc3", "grid_code"] == G1
    assert toy.workers()["grid_code"].tolist() == [G1]
    new = Atlas.from_store(toy)
    assert new.locate_one(117.505, 34.805).grid[0] == G1
    assert new.locate_one(117.505, 34.802).grid[0] == WEST + "003"
    old = Atlas.from_store(toy, at=before)
    assert old.locate_one(117.505, 34.805).grid[0] == G2
    assert list(old.household_ids_in(G2)) == ["Hc3"]
    assert check_store(toy).ok, check_store(toy).to_text()
    log = toy.grid_changes(G1)
    assert len(log) == 1 and log[0]["from_version"] == 1 and log[0]["to_version"] == 2
    # the stored plan round-trips
    again = plan_from_record(new, toy.plan(plan.id))
    assert again.scope.replaces == (G1, G2) and len(again.geometries) == 2


def test_if_match_missing_or_stale(toy):
    atlas = Atlas.from_store(toy)
    plan, _ = create_plan(toy, atlas, WEST, moved_edge())
    with pytest.raises(PreconditionRequiredError):
        apply_plan(toy, atlas, plan, None)
    with pytest.raises(PreconditionError) as ei:
        apply_plan(toy, atlas, plan, 7)
    assert ei.value.detail["current_version"] == 1
    apply_plan(toy, atlas, plan, 1)
    with pytest.raises(PreconditionError) as ei:  # the same plan twice
        apply_plan(toy, atlas, plan, 1)
    assert ei.value.detail["current_version"] == 2
    assert toy.atlas_version() == 2


def test_concurrent_applies_exactly_one_wins(toy):
    atlas = Atlas.from_store(toy)
    p1, _ = create_plan(toy, atlas, WEST, moved_edge(34.804))
    p2, _ = create_plan(toy, atlas, WEST, moved_edge(34.8135))
    results, barrier = {}, threading.Barrier(2)

    def go(plan):
        barrier.wait()
        try:
            results[plan.id] = apply_plan(toy, atlas, plan, 1)["atlas_version"]
        except PreconditionError as exc:
            results[plan.id] = exc

    threads = [threading.Thread(target=go, args=(p,)) for p in (p1, p2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [v for v in results.values() if v == 2]
    losses = [v for v in results.values() if isinstance(v, PreconditionError)]
    assert len(wins) == 1 and len(losses) == 1 and losses[0].detail["current_version"] == 2
    assert toy.atlas_version() == 2 and len(toy.grid_changes()) == 1
    assert list(toy.grid_history(G1)["version"]) == [1, 2]
    assert check_store(toy).ok


KILL_SCRIPT = """
import json
import time
from gis_grid.atlas import Atlas
from gis_grid.store import open_store
from gis_grid.planning.workflow import apply_plan, plan_from_record
store = open_store({db!r})
if {kill!r}:  # pause inside the apply transaction, after the grids are written, so the test kills there
    store.mid_apply = lambda: (print("paused", flush=True), time.sleep(30))
atlas = Atlas.from_store(store)
plan = plan_from_record(atlas, store.plan(1))
print("applying", flush=True)
print(json.dumps(apply_plan(store, atlas, plan, 1)), flush=True)
"""


@pytest.mark.parametrize("kill", [True, False])
def test_kill_mid_apply_leaves_old_or_new_state(tmp_path, kill):
    db = location(tmp_path / "toy.gpkg")
    store = make_toy_store(db)
    atlas = Atlas.from_store(store)
    create_plan(store, atlas, WEST, moved_edge())
    store.close()
    script = KILL_SCRIPT.format(db=db, kill=kill)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "applying"
    if kill:
        # the store's mid_apply prints "paused" inside the apply transaction (grids written)
        assert proc.stdout.readline().strip() == "paused"
        proc.kill()
        proc.wait()
    else:
        assert proc.wait(timeout=60) == 0
    with open_store(db) as after:
        report = check_store(after)
        assert report.ok, report.to_text()
        version = after.atlas_version()
        grids = after.divisions()
        north = grids[grids["code"] == G1]["geometry"].iloc[0]
        if kill:
            assert version == 1 and north.bounds[1] == pytest.approx(YM)
            assert after.buildings().set_index("id").loc[2, "grid_code"] == G2
            assert list(after.grid_history(G1)["version"]) == [1] and after.grid_changes() == []
        else:
            assert version == 2 and north.bounds[1] == pytest.approx(34.804)
            assert after.buildings().set_index("id").loc[2, "grid_code"] == G1


def test_impact_counts_open_cases_and_case_workload(toy):
    from gis_grid.store import INCIDENT_COLUMNS
    rows = []
    for i, (status, created, lon, lat, grid) in enumerate([
            ("dispatched", "2024-01-01T00:00:00+08:00", 117.505, 34.805, G2),   # open, moves to 001
            ("closed", "2026-01-01T00:00:00+08:00", 117.5051, 34.8051, G2),     # closed, moves too
            ("dispatched", "2025-01-01T00:00:00+08:00", 117.505, 34.815, G1),   # open, stays in 001
            ("registered", "2025-06-01T00:00:00+08:00", 117.505, 34.802, G2)]):  # open, goes to 003
        row = {c: None for c in INCIDENT_COLUMNS}
        row.update(id=f"C{i}", category="city", department="d", priority="normal", lon=lon, lat=lat,
                   grid_code=grid, status=status, created=created, rework_count=0, version=1, events=[])
        rows.append(row)
    toy.replace_incidents(pd.DataFrame(rows))
    atlas = Atlas.from_store(toy)
    plan, _ = create_plan(toy, atlas, WEST, moved_edge())
    imp = impact_of(toy, atlas, plan)
    # C0 (open) and C3 (open) change grid; C1 is closed; C2 stays
    assert imp["changes"]["open_cases"] == 2
    by = {g["code"]: g for g in imp["grids"]}
    assert by[G1]["cases_per_year"] == pytest.approx(3 / 2.0, rel=1e-2)  # 3 cases over 2 years
    assert by[WEST + "003"]["cases_per_year"] == pytest.approx(1 / 2.0, rel=1e-2)
