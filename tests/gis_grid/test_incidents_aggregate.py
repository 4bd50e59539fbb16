"""Aggregations on hand-made cases with known answers, and consistency on the demo."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import make_toy_store
from gis_grid.atlas import Atlas
from gis_grid.errors import InvalidInputError
from gis_grid.incidents import aggregate
from incident_demo import incident_store_path
from gis_grid.store import open_store

G1, G2, G3 = "370402001001001", "370402001001002", "370402002001001"


def case(i, grid, cat="sanitation", dept="sanitation", status="closed", created="2015-03-01T02:00:00Z",
         dispatched="2015-03-01T03:00:00Z", closed=None, deadline="2015-03-02T03:00:00Z", sat=None, rework=0):
    return dict(id=f"E{i}", category=cat, department=dept, priority="routine", status=status, grid_code=grid,
                lon=117.5, lat=34.8, created=created, dispatched=dispatched, closed=closed, deadline=deadline,
                cancelled="2015-03-01T04:00:00Z" if status == "cancelled" else None, satisfaction=sat,
                rework_count=rework)


@pytest.fixture(scope="module")
def toy(store_backend, tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("agg") / "toy.gpkg")
    atlas = Atlas.from_store(store)
    rows = [
        case(1, G1, closed="2015-03-01T13:00:00Z", sat=5),                    # 10 h, on time
        case(2, G1, closed="2015-03-01T23:00:00Z", sat=4),                    # 20 h, on time
        case(3, G1, closed="2015-03-03T03:00:00Z", sat=2, rework=1),          # 48 h, late, dissatisfied
        case(4, G1, status="dispatched"),                                     # open; red at 2015-03-04
        case(5, G2, cat="dispute", dept="justice", closed="2015-03-01T07:00:00Z", sat=3),   # 4 h
        case(6, G2, cat="dispute", dept="justice", status="cancelled", dispatched=None, deadline=None),
        case(7, G3, created="2016-07-01T00:00:00Z", dispatched="2016-07-01T01:00:00Z",
             deadline="2016-07-02T01:00:00Z", status="handled"),
    ]
    yield store, atlas, aggregate.CaseTable.from_frame(pd.DataFrame(rows), atlas)
    store.close()


def test_group_by_grid(toy):
    _, atlas, t = toy
    df = aggregate.group_stats(t, atlas, "grid", "2015-01-01", "2015-12-31", at="2015-03-04T12:00:00+08:00")
    assert list(df.index) == list(atlas.grid_codes)
    g1 = df.loc[G1]
    assert (g1["cases"], g1["closed"], g1["open"], g1["open_red"]) == (4, 3, 1, 1)
    assert g1["closure_rate"] == 75.0 and g1["on_time_rate"] == pytest.approx(66.67)
    assert g1["median_handling_h"] == 20.0 and g1["p90_handling_h"] == pytest.approx(20 + 0.8 * 28)
    assert g1["rework_rate"] == 25.0 and g1["satisfaction"] == pytest.approx(66.67) and g1["dissatisfied"] == 1
    g2 = df.loc[G2]
    assert (g2["cases"], g2["closed"], g2["open"], g2["closure_rate"]) == (2, 1, 0, 50.0)
    assert df.loc[G3, "cases"] == 0 and np.isnan(df.loc[G3, "closure_rate"])  # 2016 is outside the range


def test_group_by_upper_levels_sum(toy):
    _, atlas, t = toy
    grid = aggregate.group_stats(t, atlas, "grid")
    for level, n in (("community", 2), ("street", 2), ("district", 1)):
        df = aggregate.group_stats(t, atlas, level)
        assert len(df) == n and df["cases"].sum() == grid["cases"].sum() == 7
    d = aggregate.group_stats(t, atlas, "district").iloc[0]
    assert d["closed"] == 4 and d["median_handling_h"] == 15.0


def test_group_by_department_and_within(toy):
    _, atlas, t = toy
    df = aggregate.group_stats(t, atlas, "department")
    assert df.loc["sanitation", "cases"] == 5 and df.loc["justice", "cases"] == 2
    w = aggregate.group_stats(t, atlas, "grid", within="370402001")
    assert list(w.index) == [G1, G2]


def test_summary_and_range_checks(toy):
    _, _, t = toy
    s = aggregate.summary(t, "2015-01-01", "2015-12-31")
    assert (s["cases"], s["closed"], s["disputes"], s["disputes_closed"]) == (6, 4, 2, 1)
    assert s["closure_rate"] == 66.67 and s["satisfaction"] == 75.0
    assert aggregate.summary(t, "2016-07-01", "2016-07-01")["cases"] == 1  # a bare end date is inclusive
    with pytest.raises(InvalidInputError, match="before it starts"):
        aggregate.summary(t, "2016-01-01", "2015-01-01")
    with pytest.raises(InvalidInputError, match="not a date"):
        aggregate.summary(t, "2016-13-01")
    with pytest.raises(InvalidInputError, match="unknown grouping"):
        aggregate.group_stats(t, None, "planet")


def test_assessment_and_ranking(toy):
    _, atlas, t = toy
    a = aggregate.department_assessment(t, atlas)
    assert not a.loc["sanitation", "eligible_advanced"] and "below 90" in a.loc["sanitation", "reason"]
    assert a.loc["justice", "eligible_advanced"]  # 1 of 1 rated satisfied
    grid = aggregate.group_stats(t, atlas, "grid")
    r = aggregate.ranking(grid, "median_handling_h", min_cases=2)
    assert list(r.index) == [G2, G1] and list(r["rank"]) == [1, 2]
    r3 = aggregate.ranking(grid, "median_handling_h", min_cases=3)
    assert list(r3.index) == [G1]  # the single fast dispute does not top the table
    with pytest.raises(InvalidInputError):
        aggregate.ranking(grid, "median_handling_h", min_cases=0)
    with pytest.raises(InvalidInputError, match="unknown metric"):
        aggregate.ranking(grid, "speed")


def test_demo_levels_agree_and_quantiles_match_pandas(demo_store_path, tmp_path_factory):
    with open_store(incident_store_path(demo_store_path, tmp_path_factory)) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
        assert aggregate.case_table(store, atlas) is t  # cached per version
        df = store.incidents(columns=["grid_code", "status", "dispatched", "closed"])
    by_level = {lvl: aggregate.group_stats(t, atlas, lvl, "2015-01-01", "2015-12-31")
                for lvl in ("grid", "community", "street", "district")}
    tot = by_level["district"]["cases"].iloc[0]
    assert all(v["cases"].sum() == tot for v in by_level.values())
    done = df[df["status"].isin(["closed", "assessed"])]
    h = (pd.to_datetime(done["closed"], utc=True) - pd.to_datetime(done["dispatched"], utc=True)).dt.total_seconds() / 3600
    ref = h.groupby(done["grid_code"].str[:12]).median()
    ours = aggregate.group_stats(t, atlas, "community")["median_handling_h"]
    np.testing.assert_allclose(ours.reindex(ref.index).to_numpy(), ref.round(2).to_numpy(), atol=0.011)


def test_note_write_patches_the_cache_like_a_reload(tmp_path):
    from datetime import datetime, timedelta, timezone
    from gis_grid.incidents import service
    store = make_toy_store(tmp_path / "toy.gpkg")
    atlas = Atlas.from_store(store)
    now = datetime(2016, 6, 1, tzinfo=timezone.utc)
    first = aggregate.case_table(store, atlas)  # empty, current
    v = store.incidents_version()
    c = service.create(store, atlas, lon=117.505, lat=34.815, crs="EPSG:4490", category="sanitation",
                       reporter="W1", role="grid_worker", at=now - timedelta(days=1), now=now)
    aggregate.note_write(store, atlas, service._row(c), v)
    patched = aggregate.case_table(store, atlas)
    assert patched is not first and len(patched) == 1
    v = store.incidents_version()
    c2 = service.transition(store, c.id, "register", actor="a", role="command_centre",
                            at=now - timedelta(hours=20), now=now)
    aggregate.note_write(store, atlas, service._row(c2), v)
    patched = aggregate.case_table(store, atlas)
    atlas.memo.forget(aggregate._MEMO_KEY)
    fresh = aggregate.case_table(store, atlas)
    for name in aggregate._ARRAYS + ("state",):
        np.testing.assert_array_equal(getattr(patched, name), getattr(fresh, name), err_msg=name)
    # a stale cache (someone else wrote in between) is left for a reload
    v_old = store.incidents_version() - 1
    aggregate.note_write(store, atlas, service._row(c2), v_old)
    assert aggregate.case_table(store, atlas) is fresh
    store.close()
