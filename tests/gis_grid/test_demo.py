"""The generated demo district (seed 370402): counts, invariants, codes, people, determinism."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
import shapely

from gis_grid.coverage import check_store
from gis_grid.demo.grids import build_units
from gis_grid.hierarchy import community_kind
from gis_grid.idcard import is_valid_id


@pytest.fixture(scope="module")
def divisions(demo_store):
    return demo_store.divisions()


@pytest.fixture(scope="module")
def report(demo_store):
    return check_store(demo_store)


def test_counts(divisions, demo_store):
    levels = divisions["level"].value_counts().to_dict()
    assert levels == {"district": 1, "street": 11, "community": 170, "grid": 445}
    comm = divisions[divisions["level"] == "community"]
    # classified by name: three 村民委员会 in the reference list are villages (59/111, not 62/108)
    assert (comm["kind"] == "urban").sum() == 59
    assert (comm["kind"] == "rural").sum() == 111
    assert all(community_kind(n) == k for n, k in zip(comm["name"], comm["kind"]))
    grids = divisions[divisions["level"] == "grid"]
    assert (grids["kind"] == "urban").sum() == 228
    assert (grids["kind"] == "rural").sum() == 217
    assert divisions.loc[divisions["level"] == "district", "code"].tolist() == ["370402"]


def test_population_sizes(report):
    c = report.counts
    assert 50_000 <= c["buildings"] <= 70_000
    assert 180_000 <= c["households"] <= 220_000
    assert 540_000 <= c["residents"] <= 660_000
    assert 2.5 <= c["residents"] / c["households"] <= 3.5


def test_invariants_hold(report):
    assert report.ok, report.to_text(10)
    assert report.counts["grids"] == 445


def test_grid_codes(divisions):
    grids = divisions[divisions["level"] == "grid"]
    codes = grids["code"]
    assert codes.str.fullmatch(r"\d{15}").all()
    assert (codes.str[:12] == grids["parent_code"]).all()
    comms = set(divisions.loc[divisions["level"] == "community", "code"])
    assert set(grids["parent_code"]) == comms              # every community has grids
    for parent, seqs in grids.groupby("parent_code")["code"]:
        n = sorted(int(c[12:]) for c in seqs)
        assert n == list(range(1, len(n) + 1)), parent     # 001, 002, ... contiguous
    assert codes.is_unique
    # every community/street code nests in its parent's code
    rest = divisions[divisions["level"].isin(["street", "community"])]
    assert all(c.startswith(p) and len(c) == len(p) + 3 for c, p in zip(rest["code"], rest["parent_code"]))


def test_geometries_valid_and_in_storage_crs(divisions):
    g = divisions["geometry"].to_numpy()
    assert shapely.is_valid(g).all()
    minx, miny, maxx, maxy = shapely.total_bounds(g)
    assert 117.3 < minx < maxx < 117.9 and 34.6 < miny < maxy < 35.1
    grids = divisions[divisions["level"] == "grid"]["geometry"].to_numpy()
    assert shapely.coverage_is_valid(grids)


def test_atlas_locates_every_building_in_its_grid(demo_atlas, demo_store):
    b = demo_store.buildings()
    rep = shapely.point_on_surface(b["geometry"].to_numpy())
    df = demo_atlas.locate_many(shapely.get_x(rep), shapely.get_y(rep))
    assert (df["grid"].to_numpy() == b["grid_code"].to_numpy()).all()
    assert (df["building"].to_numpy() == b["id"].astype(str).to_numpy()).all()


def test_residents_id_numbers(demo_store):
    r = demo_store.residents(columns=["id", "household_id", "id_number", "birth_date", "gender"])
    sample = r.sample(2000, random_state=1)
    assert all(is_valid_id(s) for s in sample["id_number"])
    # the ID number encodes the birth date and the gender (odd 17th digit = male)
    assert (sample["id_number"].str[6:14] == sample["birth_date"].str.replace("-", "")).all()
    odd = sample["id_number"].str[16].astype(int) % 2 == 1
    assert (odd == (sample["gender"] == "M")).all()
    assert r["id_number"].is_unique
    assert (pd.to_datetime(r["birth_date"]) <= pd.Timestamp(dt.date(2016, 12, 31))).all()


def test_households_sizes_match_residents(demo_store):
    h = demo_store.households()
    r = demo_store.residents(columns=["household_id"])
    members = r["household_id"].value_counts()
    assert (members.reindex(h["id"]).to_numpy() == h["size"].to_numpy()).all()


def test_workers_per_grid(demo_store, divisions):
    w = demo_store.workers()
    per = w.groupby("grid_code").size()
    assert set(per.index) == set(divisions.loc[divisions["level"] == "grid", "code"])
    assert per.between(5, 6).all()
    assert w["id"].is_unique


def _assert_not_sequential(ids, name):
    nums = np.sort(np.array([int(s[1:], 16) for s in ids], dtype=np.uint64)).astype(np.float64)
    steps = np.diff(nums)
    # sequential ids step by one; random 48-bit ids are spread over the whole space
    assert np.median(steps) > 1e6, name
    assert (steps == 1).mean() < 0.001, name
    assert nums[-1] - nums[0] > 2 ** 47, name


def test_ids_are_not_sequential(demo_store):
    h = demo_store.households()
    r = demo_store.residents(columns=["id", "household_id"])
    assert h["id"].str.fullmatch(r"H[0-9a-f]{12}").all() and h["id"].is_unique
    assert r["id"].str.fullmatch(r"R[0-9a-f]{12}").all() and r["id"].is_unique
    _assert_not_sequential(h["id"], "households")
    _assert_not_sequential(r["id"], "residents")
    # households of one building, and members of one household, do not get neighbouring ids
    hb = h.sort_values(["building_id", "id"])
    same = hb["building_id"].to_numpy()[1:] == hb["building_id"].to_numpy()[:-1]
    step = np.diff(np.array([int(s[1:], 16) for s in hb["id"]], dtype=np.float64))
    assert np.median(step[same]) > 1e6


def test_build_units_is_deterministic_and_seed_dependent():
    def wkbs(seed):
        district, streets, comms, grids = build_units(np.random.default_rng(seed))
        units = [district, *streets, *comms, *grids]
        return [u.division.code for u in units], shapely.to_wkb(np.array([u.geom_m for u in units], dtype=object))
    codes_a, a = wkbs(5)
    codes_b, b = wkbs(5)
    assert codes_a == codes_b
    assert list(a) == list(b)
    codes_c, c = wkbs(6)
    upper = [i for i, code in enumerate(codes_a) if len(code) < 15]
    assert [codes_c[i] for i in upper] == [codes_a[i] for i in upper]   # the same official units
    assert sum(len(code) == 15 for code in codes_c) == 445               # and grid total
    assert sum(a[i] != c[i] for i in upper) > 150                        # but other shapes


def test_no_spikes_or_slivers(divisions):
    from gis_grid.coverage import Report, check_shapes
    report = Report()
    check_shapes(divisions, report)
    assert report.ok, report.to_text(10)


def test_no_doubled_characters_in_generated_names(divisions, demo_store):
    """Official names may double a character (后村村); the generator must not add one."""
    doubled = re.compile(r"(\D)\1")
    names = dict(zip(divisions["code"], divisions["name"]))
    grids = divisions[divisions["level"] == "grid"]
    for code, name in zip(grids["code"], grids["name"]):
        assert set(doubled.findall(name)) <= set(doubled.findall(names[code[:12]])), name
    b = demo_store.buildings()
    for grid, name in zip(b["grid_code"], b["name"]):
        assert set(doubled.findall(name)) <= set(doubled.findall(names[grid])), name
    # villages of two towns may share a name (丁庄), so names are unique within a grid only
    assert not b.duplicated(["grid_code", "name"]).any()
