"""Choropleth classification: one mapclassify scheme per indicator, legends that say which, and the
standalone `gis-grid map --layer choropleth` page carrying them."""
from __future__ import annotations

import json
import re
import warnings

import mapclassify
import numpy as np
import pytest

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
