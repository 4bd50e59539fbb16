import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from gis_grid.demo.people import (AREA_CODE_WEIGHTS, FLAG_COLUMNS, NEIGHBOUR_AREA_CODES,
                                  generate_people)
from gis_grid.errors import InvalidInputError
from gis_grid.idcard import birth_dates_of, validate_ids

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend

AS_OF = dt.date(2025, 6, 30)
SIZE_P_URBAN = [.22, .30, .28, .13, .05, .015, .005]
SIZE_P_RURAL = [.18, .28, .22, .16, .09, .05, .02]


def draw_households(seed, n):
    rng = np.random.default_rng(seed)
    rural = rng.random(n) < 0.4
    sizes = np.where(rural, rng.choice(np.arange(1, 8), n, p=SIZE_P_RURAL),
                     rng.choice(np.arange(1, 8), n, p=SIZE_P_URBAN))
    return sizes, rural


def ages_at(birth, as_of=AS_OF):
    """Completed years, by the calendar."""
    b = pd.DatetimeIndex(birth)
    return (as_of.year - b.year - ((b.month * 100 + b.day) > (as_of.month * 100 + as_of.day))).to_numpy()


@pytest.fixture(scope="module")
def small():
    sizes, rural = draw_households(1, 2000)
    households, residents = generate_people(np.random.default_rng(42), sizes, rural, AS_OF)
    return sizes, rural, households, residents


@pytest.fixture(scope="module")
def large():
    # Big enough for rate checks on rare flags; still well under a second.
    sizes, rural = draw_households(2, 20_000)
    households, residents = generate_people(np.random.default_rng(7), sizes, rural, AS_OF)
    residents = residents.assign(age=ages_at(residents["birth_date"]),
                                 rural=rural[residents["household"].to_numpy()])
    return sizes, rural, households, residents


def test_shapes_and_columns(small):
    sizes, rural, households, residents = small
    assert list(households.columns) == ["head_name", "size", "flags", "elderly_alone", "low_income"]
    assert len(households) == len(sizes)
    assert (households.index == np.arange(len(sizes))).all()
    assert (households["size"].to_numpy() == sizes).all()
    assert set(residents.columns) >= {"household", "name", "gender", "birth_date", "id_number", "phone",
                                      "relation", *FLAG_COLUMNS}
    assert len(residents) == sizes.sum()
    counts = residents.groupby("household").size().reindex(households.index, fill_value=0)
    assert (counts.to_numpy() == sizes).all()
    assert residents["household"].is_monotonic_increasing
    assert set(residents["gender"]) == {"M", "F"}
    assert set(residents["relation"]) <= {"户主", "配偶", "子女", "父母", "孙子女", "其他"}
    heads = residents[residents["relation"] == "户主"]
    assert (heads["household"].to_numpy() == np.arange(len(sizes))).all()
    assert (heads["name"].to_numpy() == households["head_name"].to_numpy()).all()
    for col in FLAG_COLUMNS:
        assert residents[col].dtype == bool


def test_id_numbers_valid_unique_and_consistent(large):
    _, _, _, residents = large
    ids = residents["id_number"].to_numpy(dtype=str)
    assert all(len(s) == 18 for s in ids)
    assert validate_ids(ids, as_of=AS_OF).all()
    assert residents["id_number"].is_unique
    born = residents["birth_date"].to_numpy().astype("datetime64[D]")
    assert (birth_dates_of(ids) == born).all()
    assert (np.array([s[6:14] for s in ids]) == pd.DatetimeIndex(born).strftime("%Y%m%d").to_numpy()).all()
    gender_digit = np.array([int(s[16]) for s in ids])
    female = residents["gender"].to_numpy() == "F"
    assert (gender_digit[female] % 2 == 0).all() and (gender_digit[~female] % 2 == 1).all()
    prefix = pd.Series([s[:6] for s in ids]).value_counts(normalize=True)
    assert set(prefix.index) <= set(AREA_CODE_WEIGHTS)
    assert 0.7 < prefix["370402"] < 0.9
    assert 0.05 < prefix.reindex(list(NEIGHBOUR_AREA_CODES)).sum() < 0.3
    assert 0.005 < prefix.reindex(["370102", "370811", "370883", "371302"]).sum() < 0.06


def test_ages_are_coherent(large):
    _, _, _, r = large
    assert (r["birth_date"] <= pd.Timestamp(AS_OF)).all()
    head = r[r["relation"] == "户主"].set_index("household")
    head_age = head["age"]
    head_birth = head["birth_date"]
    assert head_age.between(22, 85).all()

    def with_head(rel):
        part = r[r["relation"] == rel]
        return part, head_age.loc[part["household"]].to_numpy(), head_birth.loc[part["household"]].to_numpy()

    spouse, h_age, _ = with_head("配偶")
    assert (np.abs(spouse["age"].to_numpy() - h_age) <= 9).all()
    assert (spouse["age"] >= 20).all()
    hg = head["gender"].loc[spouse["household"]].to_numpy()
    assert (spouse["gender"].to_numpy() != hg).all()

    child, h_age, h_birth = with_head("子女")
    assert child["age"].between(0, 40).all()
    # At least 18 calendar years younger than the head (and than the spouse).
    assert (child["birth_date"].to_numpy() >= (pd.DatetimeIndex(h_birth) + pd.DateOffset(years=18))).all()
    sp_birth = spouse.set_index("household")["birth_date"]
    with_sp = child[child["household"].isin(sp_birth.index)]
    assert (with_sp["birth_date"].to_numpy()
            >= (pd.DatetimeIndex(sp_birth.loc[with_sp["household"]]) + pd.DateOffset(years=18))).all()

    parent, h_age, h_birth = with_head("父母")
    assert (parent["birth_date"].to_numpy() <= (pd.DatetimeIndex(h_birth) - pd.DateOffset(years=20))).all()
    assert (parent["age"] <= 100).all()

    grand, h_age, _ = with_head("孙子女")
    assert (grand["age"].to_numpy() <= h_age - 36).all()
    oldest_child = child.groupby("household")["age"].max()
    g = grand[grand["household"].isin(oldest_child.index)]
    assert (g["age"].to_numpy() <= oldest_child.loc[g["household"]].to_numpy() - 18).all()

    # One-person households skew elderly, more in rural areas.
    single = head[head.index.isin(r.loc[r.groupby("household")["household"].transform("size") == 1,
                                        "household"])]
    old_rural = (single.loc[single["rural"], "age"] >= 60).mean()
    old_urban = (single.loc[~single["rural"], "age"] >= 60).mean()
    assert old_rural > old_urban > 0.1


def test_population_shape(large):
    _, _, _, r = large
    assert 0.12 < (r["age"] < 15).mean() < 0.25
    assert 0.12 < (r["age"] >= 60).mean() < 0.30
    assert 0.45 < (r["gender"] == "M").mean() < 0.56


def test_phones(large):
    _, _, _, r = large
    child = r["age"] < 14
    assert (r.loc[child, "phone"] == "").all()
    phones = r.loc[~child, "phone"]
    assert phones.str.fullmatch(r"1[3579][0-9]{9}|18[0-9]{9}").all()
    prefixes = set(phones.str[:2])
    assert prefixes <= {"13", "15", "17", "18", "19"}
    assert {"13", "15", "18"} <= prefixes


def test_names(large):
    _, _, households, r = large
    names = r["name"]
    assert names.str.fullmatch(r"[\u4e00-\u9fff]{2,4}").all()
    surname = names.str[0]
    top = surname.value_counts(normalize=True)
    assert set(top.index[:4]) == {"王", "张", "李", "刘"}
    assert 0.25 < top.iloc[:4].sum() < 0.45
    assert names.str.len().isin([2, 3]).mean() > 0.99
    assert 0.1 < (names.str.len() == 2).mean() < 0.45          # one-character given names
    # Children mostly share the surname of the head (or of the head's husband).
    head = r[r["relation"] == "户主"].set_index("household")
    child = r[r["relation"] == "子女"]
    male_head = head["gender"].loc[child["household"]].to_numpy() == "M"
    same = child["name"].str[0].to_numpy() == head["name"].str[0].loc[child["household"]].to_numpy()
    assert same[male_head].mean() > 0.85


def test_flag_rates_are_plausible(large):
    _, rural, households, r = large
    assert 0.03 < r["disabled"].mean() < 0.10
    # Disability rises with age.
    assert r.loc[r["age"] >= 60, "disabled"].mean() > 2 * r.loc[r["age"] < 45, "disabled"].mean()
    low = households["low_income"]
    assert 0.015 < low.mean() < 0.06
    assert low[rural].mean() > low[~rural].mean()
    assert 0.0005 < r["extreme_poverty"].mean() < 0.01
    assert 0.01 < r["veteran"].mean() < 0.06
    assert r.loc[r["veteran"], "gender"].eq("M").mean() > 0.8
    assert r["community_correction"].sum() > 0
    assert r["community_correction"].mean() < 0.002
    assert (r.loc[r["community_correction"], "age"] >= 18).all()
    assert 0.01 < households["elderly_alone"].mean() < 0.12


def test_flags_follow_their_definitions(large):
    sizes, rural, households, r = large
    size = sizes[r["household"].to_numpy()]
    assert (r["elderly_alone"] == ((r["age"] >= 60) & (size == 1))).all()
    working = ((r["age"] >= 18) & (r["age"] <= 59)).groupby(r["household"]).any()
    no_working = ~working.loc[r["household"]].to_numpy()
    expected_lb = (r["age"] < 16) & r["rural"] & no_working
    assert (r["left_behind_child"] == expected_lb).all()
    assert r["left_behind_child"].sum() > 0
    assert not r.loc[~r["rural"], "left_behind_child"].any()
    # 低保 is household-level: all members or none.
    per_hh = r.groupby("household")["low_income"].agg(["all", "any"])
    assert (per_hh["all"] == per_hh["any"]).all()
    assert (per_hh["all"].to_numpy() == households["low_income"].to_numpy()).all()
    assert (households["elderly_alone"].to_numpy()
            == r.groupby("household")["elderly_alone"].any().to_numpy()).all()
    # flags is the comma-joined union of member flags.
    any_flag = r.groupby("household")[list(FLAG_COLUMNS)].any()
    expected = any_flag.apply(lambda row: ",".join(c for c in FLAG_COLUMNS if row[c]), axis=1)
    assert (households["flags"].to_numpy() == expected.to_numpy()).all()
    assert (households["flags"] == "").mean() > 0.5
    assert households["flags"].str.contains("left_behind_child").any()


def test_deterministic_for_equal_seeds(small):
    sizes, rural, households, residents = small
    h2, r2 = generate_people(np.random.default_rng(42), sizes, rural, AS_OF)
    pd.testing.assert_frame_equal(households, h2)
    pd.testing.assert_frame_equal(residents, r2)
    h3, r3 = generate_people(np.random.default_rng(43), sizes, rural, AS_OF)
    assert (r3["id_number"].to_numpy() != residents["id_number"].to_numpy()).mean() > 0.9
    assert (r3["name"].to_numpy() != residents["name"].to_numpy()).mean() > 0.5
    assert (h3["size"].to_numpy() == sizes).all()


def test_as_of_moves_birth_dates():
    sizes, rural = draw_households(5, 300)
    _, a = generate_people(np.random.default_rng(1), sizes, rural, dt.date(2025, 6, 30))
    _, b = generate_people(np.random.default_rng(1), sizes, rural, dt.date(2030, 6, 30))
    shift = (b["birth_date"] - a["birth_date"]).dt.days
    assert (shift == (dt.date(2030, 6, 30) - dt.date(2025, 6, 30)).days).all()


def test_masked_output_hides_ids_and_phones(small):
    from gis_grid.masking import mask_ids, mask_names, mask_phones
    _, _, _, r = small
    masked = pd.DataFrame({"id": mask_ids(r["id_number"]), "phone": mask_phones(r["phone"]),
                           "name": mask_names(r["name"])})
    text = masked.to_csv()
    assert not re.search(r"[0-9]{11}", text)
    for original, m in zip(r["id_number"], masked["id"]):
        assert original[6:14] not in m


def test_edge_cases_and_errors():
    h, r = generate_people(np.random.default_rng(0), np.array([], dtype=int), np.array([], dtype=bool), AS_OF)
    assert len(h) == 0 and len(r) == 0 and "id_number" in r.columns
    h, r = generate_people(np.random.default_rng(0), np.array([1]), np.array([True]), AS_OF)
    assert len(r) == 1 and r["relation"].iloc[0] == "户主"
    with pytest.raises(InvalidInputError):
        generate_people(np.random.default_rng(0), np.array([0, 2]), np.array([True, False]), AS_OF)
    with pytest.raises(InvalidInputError):
        generate_people(np.random.default_rng(0), np.array([1, 2]), np.array([True]), AS_OF)
    with pytest.raises(InvalidInputError):
        generate_people(42, np.array([1]), np.array([True]), AS_OF)
    with pytest.raises(InvalidInputError):
        generate_people(np.random.default_rng(0), np.array([1.5]), np.array([True]), AS_OF)
