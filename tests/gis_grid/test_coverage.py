"""check_store: the four invariants on the toy store, each broken in turn."""
from __future__ import annotations

import pandas as pd
import shapely

from common import XM, X0, X1, Y0, Y1, YM, box, make_toy_store, toy_buildings, toy_divisions, toy_people
from stores import location
from gis_grid.cli import main as cli_main
from gis_grid.coverage import check_store


def _check(tmp_path, name="s.gpkg", **tables):
    store = make_toy_store(tmp_path / name, **tables)
    try:
        return check_store(store)
    finally:
        store.close()


def _features(report, rule=None):
    return [v["feature"] for v in report.violations if rule is None or v["rule"] == rule]


def test_toy_store_is_ok(tmp_path):
    report = _check(tmp_path)
    assert report.ok, report.violations
    assert report.counts["grids"] == 4
    assert report.counts["streets"] == 2
    assert report.counts["communities (urban)"] == 1
    assert report.counts["grids (rural)"] == 2
    assert report.counts["households"] == 5 and report.counts["residents"] == 6
    assert "OK" in report.to_text()


def _with_grid(d, code, geom):
    d = d.copy()
    d.loc[d["code"] == code, "geometry"] = geom
    return d


def test_overlapping_grids(tmp_path):
    # west-north grid grows 0.001 deg south into its sibling
    d = _with_grid(toy_divisions(), "370402001001001", box(X0, YM - 0.001, XM, Y1))
    report = _check(tmp_path, divisions=d)
    assert not report.ok
    overlaps = [v for v in report.violations if "overlap" in v["problem"]]
    assert overlaps and overlaps[0]["feature"] == "370402001001001 / 370402001001002"
    assert overlaps[0]["rule"] == "区不漏地"
    assert "FAILED" in report.to_text()


def test_gap_between_grids(tmp_path):
    d = _with_grid(toy_divisions(), "370402002001002", box(XM, Y0, X1, YM - 0.001))
    report = _check(tmp_path, divisions=d)
    gaps = [v for v in report.violations if "not covered" in v["problem"]]
    assert [v["feature"] for v in gaps] == ["370402002001"]   # the parent community names the gap


def test_grid_spilling_out_of_its_community(tmp_path):
    d = _with_grid(toy_divisions(), "370402001001001", box(X0, YM, XM + 0.001, Y1))
    report = _check(tmp_path, divisions=d)
    assert any(v["feature"] == "370402001001" and "beyond" in v["problem"] for v in report.violations)


def test_missing_parent_and_childless_parent(tmp_path):
    d = toy_divisions()
    d.loc[d["code"] == "370402002001002", "parent_code"] = "370402002009"
    d = d[d["code"] != "370402002001001"]
    report = _check(tmp_path, divisions=d)
    assert any(v["feature"] == "370402002001002" and "does not exist" in v["problem"] for v in report.violations)
    assert any(v["feature"] == "370402002001" and "has no grid" in v["problem"] for v in report.violations)


def test_building_crossing_a_grid_edge(tmp_path):
    b = toy_buildings()
    b.loc[b["id"] == 2, "geometry"] = shapely.box(117.5049, YM - 0.0002, 117.5051, YM + 0.0001)
    report = _check(tmp_path, buildings=b)
    hits = [v for v in report.violations if v["rule"] == "地不漏房"]
    assert hits and hits[0]["feature"] == "building 2"
    assert "crosses the boundary" in hits[0]["problem"]


def test_building_outside_every_grid_and_stale_grid_code(tmp_path):
    b = toy_buildings()
    b.loc[b["id"] == 3, "geometry"] = shapely.box(117.53, 34.81, 117.531, 34.811)
    b.loc[b["id"] == 4, "grid_code"] = "370402002001001"
    report = _check(tmp_path, buildings=b)
    feats = {v["feature"]: v["problem"] for v in report.violations}
    assert "outside every base grid" in feats["building 3"]
    assert "recorded in grid 370402002001001" in feats["building 4"]


def test_household_with_missing_building(tmp_path):
    hh, res = toy_people()
    hh.loc[hh["id"] == "Hc3", "building_id"] = 99
    report = _check(tmp_path, households=hh)
    assert _features(report, "房不漏户") == ["household Hc3"]
    assert "99" in report.violations[0]["problem"]


def test_resident_with_missing_household(tmp_path):
    hh, res = toy_people()
    res.loc[res["id"] == "Rq2", "household_id"] = "Hzz"
    report = _check(tmp_path, residents=res)
    assert _features(report, "户不漏人") == ["resident Rq2"]
    assert "Hzz" in report.violations[0]["problem"]


def test_empty_household(tmp_path):
    hh, res = toy_people()
    hh = pd.concat([hh, hh.iloc[[0]].assign(id="Hempty")], ignore_index=True)
    report = _check(tmp_path, households=hh)
    assert _features(report) == ["household Hempty"]
    assert "no registered residents" in report.violations[0]["problem"]


def test_cli_check_exit_codes(tmp_path, capsys):
    make_toy_store(tmp_path / "ok.gpkg").close()
    assert cli_main(["check", "--db", location(tmp_path / "ok.gpkg")]) == 0
    assert "OK" in capsys.readouterr().out
    hh, _ = toy_people()
    hh.loc[hh["id"] == "Hd4", "building_id"] = 77
    make_toy_store(tmp_path / "bad.gpkg", households=hh).close()
    assert cli_main(["check", "--db", location(tmp_path / "bad.gpkg")]) != 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "household Hd4" in out
    assert cli_main(["check", "--db", str(tmp_path / "missing.gpkg")]) != 0
    assert "no store" in capsys.readouterr().err


def _square(x0, y0, side):
    return shapely.box(x0, y0, x0 + side, y0 + side)


def test_shape_problems_finds_spikes_and_slivers():
    from gis_grid.coverage import shape_problems
    clean = shapely.Polygon([(0, 0), (400, 0), (380, 300), (0, 250)])
    assert shape_problems(clean) == []
    # a 30-degree wedge and a 4 m wide lane are honest shapes
    assert shape_problems(shapely.Polygon([(0, 0), (500, 0), (433, 250)])) == []
    lane = shapely.union(_square(0, 0, 200), shapely.box(200, 98, 260, 102))
    assert shape_problems(lane) == []
    # a zero-width spike of 365 m has no area, so only its vertex angle gives it away
    spike = shapely.Polygon([(0, 0), (200, 0), (200, 100), (565, 100.001), (200, 100.002), (200, 200), (0, 200)])
    found = shape_problems(spike)
    assert any(p.startswith("spike: vertex angle 0.00") for p in found), found
    # a 1 m wide, 60 m long strip hanging off a grid
    strip = shapely.union(_square(0, 0, 200), shapely.box(200, 50, 260, 51))
    assert [p for p in shape_problems(strip) if p.startswith("sliver: 6")], shape_problems(strip)
    # two blocks joined by a 1 m neck
    neck = shapely.union_all([_square(0, 0, 100), shapely.box(100, 50, 104, 51), _square(104, 0, 100)])
    assert "sliver: a neck narrower than 2 m" in shape_problems(neck)
