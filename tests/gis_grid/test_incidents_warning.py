"""Early warning: the planted surges are found, quiet periods are quiet, the statistics are right."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gis_grid.atlas import Atlas
from gis_grid.errors import InvalidInputError
from gis_grid.demo import cases
from gis_grid.incidents import aggregate, early_warning as ew
from gis_grid.store import open_store
from incident_demo import incident_store_path


@pytest.fixture(scope="module")
def demo(demo_store_path, tmp_path_factory):
    with open_store(incident_store_path(demo_store_path, tmp_path_factory)) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
        episodes = cases.build_history(atlas, store.workers(), int(store.meta().get("seed", 370402))
                                         ).attrs["episodes"]
        yield atlas, t, episodes


def test_bh_adjust_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    q = ew.bh_adjust(p)
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    rng = np.random.default_rng(1)
    p = rng.random(200) ** 3
    np.testing.assert_allclose(ew.bh_adjust(p), sps.false_discovery_control(p, method="bh"))


def test_every_planted_surge_is_flagged_and_little_else(demo):
    atlas, t, episodes = demo
    assert len(episodes) == cases.N_EPISODES
    for e in episodes:
        at = (pd.Timestamp(e["start"]) + pd.Timedelta(days=e["days"])).date().isoformat()
        df = ew.detect(t, atlas, at)
        row = df.set_index("code").loc[e["grid"]]
        assert row["anomaly"] and row["q_value"] < 1e-6 and row["ratio"] > 2, (e, row.to_dict())
        assert df["anomaly"].sum() <= 3  # the surge, not a map full of alarms
        # the reported p-value is the stated test
        p = sps.binom.sf(row["recent"] - 1, row["recent"] + row["baseline"],
                         df.attrs["district_recent"] / (df.attrs["district_recent"] + df.attrs["district_baseline"]))
        assert row["p_value"] == pytest.approx(p)


def test_a_quiet_date_far_from_surges(demo):
    atlas, t, episodes = demo
    starts = [pd.Timestamp(e["start"]) for e in episodes]
    for at in pd.date_range("2015-01-31", "2016-12-31", freq="MS"):
        if all(abs((at - s).days) > 80 for s in starts):
            df = ew.detect(t, atlas, at.date().isoformat())
            assert df["anomaly"].sum() <= 1
            break
    else:
        pytest.skip("no quiet month")


def test_hot_spots_are_gi_star(demo):
    atlas, t, _ = demo
    df = ew.detect(t, atlas, "2016-06-30")
    hot = df["hotspot"].str.startswith("hot")
    assert (df.loc[hot, "gi_z"] > 0).all() and (df.loc[df["hotspot"].str.startswith("cold"), "gi_z"] < 0).all()
    # false discovery control: the levels are Benjamini-Hochberg q-values of the Gi* p-values
    np.testing.assert_allclose(df["gi_q"], ew.bh_adjust(df["gi_p"].to_numpy()))
    assert (df.loc[df["hotspot"].str.endswith("95%"), "gi_q"] < 0.05).all()
    assert (df.loc[df["hotspot"] == "", "gi_q"] >= 0.10).all()
    # the variable is each grid's rise against its own baseline, not its raw count
    # (expected is shown rounded to 0.01, hence the tolerance)
    np.testing.assert_allclose(df["rise"], (df["recent"] + 0.5) / (df["expected"] + 0.5), rtol=5e-3)
    # Gi* from first principles: z of the local sum over the queen neighbourhood incl. the grid itself
    w = ew.queen_weights(atlas)
    y = ((df["recent"] + 0.5) / (df["expected"] + 0.5)).to_numpy(dtype=float)
    i = int(np.argmax(df["gi_z"].to_numpy()))
    nb = [i] + list(w.neighbors[i])
    n = len(y)
    sum_w, mean, s = len(nb), y.mean(), y.std()
    z = (y[nb].sum() - mean * sum_w) / (s * np.sqrt((n * sum_w - sum_w ** 2) / (n - 1)))
    assert df["gi_z"].iloc[i] == pytest.approx(z, abs=1e-2)


def test_report_and_bad_input(demo):
    atlas, t, _ = demo
    r = ew.report(t, atlas, "2016-12-31")
    assert r["counts"]["grids"] == 445 and "binomial" in r["method"]["anomaly"]
    assert all(i["why"] for i in r["items"])
    with pytest.raises(InvalidInputError):
        ew.detect(t, atlas, "1999-01-01")
    with pytest.raises(InvalidInputError):
        ew.detect(t, atlas, "2016-01-01", window_days=0)
    with pytest.raises(InvalidInputError):
        ew.detect(t, atlas, "not a date")


def test_hot_spots_do_not_map_city_against_countryside(demo):
    """On raw counts Gi* flags the dense urban core at any date (the issue found 82 hot and 62 cold
    spots); on the rise against each grid's own baseline, with BH, a normal day flags a handful."""
    from esda.getisord import G_Local
    atlas, t, _ = demo
    df = ew.detect(t, atlas, "2016-12-31")
    raw = G_Local(df["recent"].to_numpy(dtype=float), ew.queen_weights(atlas), star=True, permutations=0,
                  transform="B")
    raw_flagged = int((np.asarray(raw.p_norm) * 2 < 0.05).sum())
    flagged = int(df["hotspot"].str.endswith(("95%", "99%")).sum())
    assert raw_flagged > 40 and flagged <= 0.05 * len(df), (raw_flagged, flagged)
    # doubling a grid's whole history (a denser grid, nothing new) does not make it a hot spot
    busiest = int(np.argmax(df["baseline"].to_numpy()))
    assert df["hotspot"].iloc[busiest] == "" or not df["hotspot"].iloc[busiest].startswith("hot")


def test_warning_colours_stay_apart_from_the_choropleth_palette():
    """A flagged grid over a choropleth must not read as one of its classes: every warning hue is at
    least 30 degrees from every yellow-orange-red class, and the warning kinds differ from each other."""
    import colorsys
    from gis_grid.incidents.layers import PALETTE

    def hls(c):
        return colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))

    for w in ew.WARN_COLOURS.values():
        for c in PALETTE:
            d = abs(hls(w)[0] - hls(c)[0]) * 360
            assert min(d, 360 - d) >= 30, (w, c)
    cols = [hls(c) for c in ew.WARN_COLOURS.values()]
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            dh = abs(cols[i][0] - cols[j][0]) * 360
            assert min(dh, 360 - dh) >= 20 or abs(cols[i][1] - cols[j][1]) >= 0.15, (i, j)


def test_warnings_info_ranks_and_filters_by_category(demo):
    atlas, t, episodes = demo
    e = episodes[0]
    at = (pd.Timestamp(e["start"]) + pd.Timedelta(days=e["days"])).date().isoformat()
    info = ew.warnings_info(t, atlas, at)
    assert info["ranked"] and info["ranked"][0]["code"] == e["grid"] and info["ranked"][0]["kind"].startswith("anomaly")
    assert [r["code"] for r in info["ranked"]] == [c for c, v in info["items"].items() if v["kind"] != "cold"]
    assert all(v["why_zh"] for v in info["items"].values())
    same = ew.warnings_info(t, atlas, at, category=[e["category"]])
    assert same["category"] == [e["category"]] and e["grid"] in same["items"]
    other = next(c for c in ("fire_safety", "traffic_safety") if c != e["category"])
    assert e["grid"] not in ew.warnings_info(t, atlas, at, category=[other])["items"]


def test_warm_up_builds_what_the_first_request_needs(demo_store_path, tmp_path_factory):
    """The API's snapshot warmer leaves the case table and the Gi* weights in the snapshot's memo,
    so the first warnings request computes only the test itself."""
    with open_store(incident_store_path(demo_store_path, tmp_path_factory)) as store:
        atlas = Atlas.from_store(store)
        assert "warnings.queen_weights" not in atlas.memo
        ew.warm_up(atlas, store)
        assert "warnings.queen_weights" in atlas.memo
        assert aggregate.case_table(store, atlas) is aggregate.case_table(store, atlas)
        assert atlas.memo.peek(aggregate._MEMO_KEY) is aggregate.case_table(store, atlas)
