"""Choropleth classification: one mapclassify scheme per indicator, legends that say which, and the
standalone `gis-grid map --layer choropleth` page carrying them."""
from __future__ import annotations

import json
import re
import warnings

import mapclassify
import numpy as np
import pytest

from gis_grid.errors import InvalidInputError
from gis_grid.incidents import layers


def _ssd(v, bins):
    c = mapclassify.UserDefined(v, bins=bins)
    return sum(float(((v[c.yb == i] - v[c.yb == i].mean()) ** 2).sum()) for i in range(len(bins)) if (c.yb == i).any())


@pytest.mark.store_free
@pytest.mark.parametrize("seed", range(12))
def test_fisher_jenks_is_optimal_like_mapclassify(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(10, 60)), int(rng.integers(2, 6))
    v = np.round(100 - rng.exponential(3, n), 2)
    ours = layers.fisher_jenks_breaks(v, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "numba not installed": the slow reference is fine at this size
        ref = [float(b) for b in mapclassify.FisherJenks(v, k=k).bins]
    assert len(ours) == len(ref) == k and ours[-1] == v.max()
    assert _ssd(v, ours) <= _ssd(v, ref) + 1e-9  # never worse than mapclassify's own optimum


@pytest.mark.store_free
def test_natural_breaks_isolate_a_weak_tail():
    # 40 grids at 97-100 %, three weak ones: natural breaks give the weak ones a class of their own
    v = np.concatenate([np.linspace(97, 100, 40), [80.0, 81.0, 82.5]])
    cls, legend = layers.classify(v, True, scheme="natural_breaks")
    assert not set(cls[-3:]) & set(cls[:40]) and 0 in cls[-3:]
    q, _ = layers.classify(v, True, scheme="quantiles")
    assert (q[:40] == 0).sum() > 0  # quantiles lump ordinary grids in with the weak tail
    assert legend[0]["colour"] == layers.PALETTE[-1]  # the bad end is dark red


@pytest.mark.store_free
def test_satisfaction_keeps_the_90_percent_line():
    v = np.array([85.0, 92.0, 97.0, 99.5, 100.0, 100.0, np.nan])
    cls, legend = layers.classify(v, True, scheme="policy_breaks")
    assert list(cls) == [0, 1, 2, 3, 3, 3, -1]
    assert legend[0]["label"].endswith("90") and legend[-1]["label"] == "no cases"
    # all above the line: the class below 90 % stays in the legend (empty), the line does not move
    cls, legend = layers.classify(np.array([99.2, 99.9, 100.0]), True, scheme="policy_breaks")
    assert [e["label"] for e in legend][:2] == ["≤ 90", "> 90 – 95"] and legend[0]["count"] == 0


@pytest.mark.store_free
def test_counts_get_whole_number_classes():
    v = np.array([0, 0, 0, 0, 0, 1, 1, 2, 3, 8, 15, 40], dtype=float)
    cls, legend = layers.classify(v, False, scheme="head_tail", integer=True)
    assert cls[0] == 0 and cls[-1] == max(cls) and len(legend) >= 3
    assert all(re.fullmatch(r"\d+( – \d+)?", e["label"]) for e in legend), legend


@pytest.mark.store_free
def test_every_indicator_names_its_scheme():
    assert {m[2] for m in layers.CHORO_METRICS.values()} <= set(layers.SCHEME_NAMES)
    assert layers.CHORO_METRICS["satisfaction"][2] == "policy_breaks"
    assert layers.CHORO_METRICS["closure_rate"][2] == "natural_breaks"
    assert layers.CHORO_METRICS["median_handling_h"][2] == "quantiles"


def test_standalone_choropleth_page_has_classes_and_legends(demo_store_path, tmp_path_factory, tmp_path):
    from gis_grid.cli import main
    from incident_demo import incident_store_path
    db = incident_store_path(demo_store_path, tmp_path_factory)
    out = tmp_path / "choro.html"
    assert main(["map", "--db", str(db), "--layer", "choropleth", "--from", "2016-01-01", "--to", "2016-12-31",
                 "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r"const D = (\{.*?\});\n", page, flags=re.S).group(1).replace("<\\/", "</"))
    for level, n in (("grid", 445), ("community", 170)):
        layer = data["choropleth"][level]
        assert len(layer["geojson"]["features"]) == n
        for metric, (title, _, scheme) in layers.CHORO_METRICS.items():
            legend = layer["legends"][metric]
            assert legend["title"] == title and legend["scheme"] == layers.SCHEME_NAMES[scheme]
            colours = {e["colour"] for e in legend["entries"]}
            drawn = {f["properties"]["c_" + metric] for f in layer["geojson"]["features"]}
            assert drawn <= colours  # every polygon's colour is a legend class
        assert len({f["properties"]["c_closure_rate"] for f in layer["geojson"]["features"]}) >= 3
    assert "heat" not in data and len(page.encode()) < 3_000_000


def test_rates_per_household_and_per_km2(demo_store_path, tmp_path_factory):
    """Cases per 100 households and per km² on every level, from counts made here independently."""
    from gis_grid import crs as crs_mod
    from gis_grid.atlas import Atlas
    from gis_grid.incidents import aggregate
    from gis_grid.store import open_store
    from incident_demo import incident_store_path
    with open_store(incident_store_path(demo_store_path, tmp_path_factory)) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
    for level in ("grid", "community"):
        cv = layers.choropleth_values(t, atlas, level, "2016-01-01", "2016-12-31")
        stats = aggregate.group_stats(t, atlas, level, "2016-01-01", "2016-12-31")
        d = atlas.divisions[atlas.divisions["level"] == level]
        checked = 0
        for _, row in d.iloc[::17].iterrows():
            code = row["code"]
            hh = int(atlas.households["grid_code"].astype(str).str.startswith(code).sum())
            km2 = crs_mod.area_m2(row["geometry"]) / 1e6
            cases = int(stats.loc[code, "cases"])
            v = cv["values"][code]
            if hh:
                assert v["cases_per_100hh"] == pytest.approx(100 * cases / hh, abs=0.01), code
            else:
                assert v["cases_per_100hh"] is None   # no households: no data, not infinity
            stored = row.get("area_m2")
            assert v["cases_per_km2"] == pytest.approx(cases / km2, rel=0.02 if stored else 1e-3, abs=0.01), code
            checked += 1
        assert checked >= 10
        for metric in ("cases_per_100hh", "cases_per_km2"):
            legend = cv["legends"][metric]
            assert legend["scheme"] == "quantiles" and len(legend["entries"]) >= 3
            # higher is worse: the top class is the dark red end
            top = max((e for e in legend["entries"] if e["label"] != "no cases"),
                      key=lambda e: float(e["label"].split("–")[-1]))
            assert top["colour"] == layers.PALETTE[-1]


@pytest.mark.store_free
def test_all_equal_values_draw_light_with_no_variation():
    """A metric with one value everywhere (no open yellow case anywhere) has nothing to rank: the lightest
    class, never the dark red end, and a legend that says there is no variation."""
    for values, good_high, integer in (([0, 0, 0, 0], False, True), ([3.0, 3.0], False, False),
                                       ([100.0, 100.0, 100.0], True, False)):
        for scheme in layers.SCHEME_NAMES:
            cls, legend = layers.classify(np.array(values, dtype=float), good_high, scheme=scheme, integer=integer)
            assert cls.tolist() == [0] * len(values)
            assert legend == [{"label": f"no variation: all {values[0]:g}",
                               "label_zh": f"无差异：全部为 {values[0]:g}",
                               "colour": layers.PALETTE[0], "count": len(values)}], (values, scheme, legend)
    cls, legend = layers.classify(np.array([0.0, np.nan, 0.0]), False, scheme="head_tail", integer=True)
    assert cls.tolist() == [0, -1, 0]
    assert [(e["label"], e["colour"], e["count"]) for e in legend] == \
        [("no variation: all 0", layers.PALETTE[0], 2), ("no cases", layers.NO_DATA, 1)]
    # two distinct values still use the scale's dark end for the worse one
    cls, legend = layers.classify(np.array([0.0, 0.0, 2.0]), False, scheme="head_tail", integer=True)
    assert legend[cls[2]]["colour"] == layers.PALETTE[-1] != legend[cls[0]]["colour"]


def _toy_cases():
    """Cases at one point inside each toy grid: 3 + 1 in March 2015 (G1, G2), 1 + 2 in April (G3, G4)."""
    import pandas as pd
    where = {"370402001001001": (117.505, 34.815), "370402001001002": (117.505, 34.805),
             "370402002001001": (117.515, 34.815), "370402002001002": (117.515, 34.805)}
    plan = [("370402001001001", "2015-03-02"), ("370402001001001", "2015-03-05"), ("370402001001001", "2015-03-09"),
            ("370402001001002", "2015-03-03"), ("370402002001001", "2015-04-01"),
            ("370402002001002", "2015-04-02"), ("370402002001002", "2015-04-03")]
    rows = [dict(id=f"E{i}", category="sanitation", department="sanitation", priority="routine", status="closed",
                 grid_code=g, lon=where[g][0], lat=where[g][1], created=f"{day}T02:00:00Z",
                 dispatched=f"{day}T03:00:00Z", closed=f"{day}T09:00:00Z", deadline=f"{day}T23:00:00Z",
                 cancelled=None, satisfaction=5, rework_count=0) for i, (g, day) in enumerate(plan)]
    return pd.DataFrame(rows), where


def test_heat_rates_on_the_toy_district(store_backend, tmp_path_factory):
    """Heat bins per 100 households and per km², against weights worked out here from the toy's tables:
    grid 4's only household is removed, so its two cases add nothing to the per-household heat."""
    from common import make_toy_store, toy_people
    from gis_grid.atlas import Atlas
    from gis_grid.incidents import aggregate
    hh, res = toy_people()
    hh, res = hh[hh["grid_code"] != "370402002001002"], res[res["household_id"].isin(hh["id"])]
    store = make_toy_store(tmp_path_factory.mktemp("heat") / "toy.gpkg", households=hh, residents=res)
    try:
        atlas = Atlas.from_store(store)
        frame, where = _toy_cases()
        t = aggregate.CaseTable.from_frame(frame, atlas)
        mask = np.ones(len(t), dtype=bool)
        households = hh["grid_code"].value_counts().to_dict()        # G1: 2, G2: 1, G3: 1, G4: none
        # expected (month, grid) -> value, each case weighted by hand
        want = {"count": {}, "per_100hh": {}, "per_km2": {}}
        for _, c in frame.iterrows():
            key = (c["created"][:7], c["grid_code"])
            want["count"][key] = want["count"].get(key, 0) + 1
            want["per_km2"][key] = want["per_km2"].get(key, 0) + 1 / (0.150 * 0.150)   # a 150 m bin in km²
            if households.get(c["grid_code"]):
                want["per_100hh"][key] = want["per_100hh"].get(key, 0) + 100 / households[c["grid_code"]]
        assert want["per_100hh"] == {("2015-03", "370402001001001"): 150.0, ("2015-03", "370402001001002"): 100.0,
                                     ("2015-04", "370402002001001"): 100.0}
        for rate, expected in want.items():
            b = layers.heat_bins(t, mask, rate=rate, atlas=atlas)
            assert b["rate"] == rate and b["unit"]["en"] == layers.HEAT_RATES[rate][1]
            got = {}
            for k, (bins, values) in enumerate(b["counts"]):
                for i, v in zip(bins, values):
                    lat, lon = b["centres"][i]
                    # the grid whose point lies in this bin (points are ~1 km apart, bins 150 m)
                    g = min(where, key=lambda c: (where[c][0] - lon) ** 2 + (where[c][1] - lat) ** 2)
                    assert abs(where[g][0] - lon) < 0.002 and abs(where[g][1] - lat) < 0.002
                    got[(b["months"][k], g)] = v
            assert got.keys() == expected.keys(), rate
            for key, v in expected.items():
                assert got[key] == pytest.approx(v, abs=1e-3), (rate, key)
            left_out = 2 if rate == "per_100hh" else 0
            assert b["unweighted"] == left_out
            assert sum(b["month_cases"]) == len(frame) - left_out
            # a fixed scale in the rate's unit: the top is at least the 99.5th percentile of the month values
            month_values = [v for _, vals in b["counts"] for v in vals]
            assert b["scale"]["month"] >= np.percentile(month_values, 99.5)
            assert b["legend"]["month"][-1]["label"] == f"≥ {b['scale']['month']:g}"
        # the per-household heat of a grid adds up to that grid's choropleth rate
        cv = layers.choropleth_values(t, atlas, "grid")
        for g, rate in ((g, cv["values"][g]["cases_per_100hh"]) for g in where):
            total = sum(v for (_, gg), v in want["per_100hh"].items() if gg == g)
            assert (rate is None and total == 0) or rate == pytest.approx(total, abs=0.01), (g, rate, total)
        # no open case anywhere: the open-yellow choropleth is all one light class that says so
        assert {cv["values"][g]["c_open_yellow"] for g in where} == {layers.PALETTE[0]}
        assert cv["legends"]["open_yellow"]["entries"][0]["label"] == "no variation: all 0"
        with pytest.raises(InvalidInputError, match="unknown heat rate"):
            layers.heat_bins(t, mask, rate="per_person", atlas=atlas)
    finally:
        store.close()
