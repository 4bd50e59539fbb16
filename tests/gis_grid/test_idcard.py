import datetime as dt
import time

import numpy as np
import pytest

from gis_grid.errors import InvalidInputError
from gis_grid.idcard import (birth_date_of, birth_dates_of, check_digit, gender_of,
                             is_valid_id, make_ids, validate_ids)

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend

# Public example numbers: the GB 11643-1999 standard's own examples.
KNOWN_VALID = ["11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_check_digit_of_public_examples(number):
    assert check_digit(number[:17]) == number[17]
    assert is_valid_id(number)


def test_check_digit_by_hand():
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167; 167 % 11 = 2 -> 'X'
    assert check_digit("11010519491231002") == "X"
    assert check_digit("44052418800101001") == "4"


@pytest.mark.parametrize("bad", ["1101051949123100", "110105194912310021", "1101051949123100a",
                                 "١١٠١٠٥١٩٤٩١٢٣١٠٠٢", 11010519491231002, None])
def test_check_digit_rejects_malformed(bad):
    with pytest.raises(InvalidInputError):
        check_digit(bad)


@pytest.mark.parametrize("bad", [
    "110105194912310021",      # wrong check digit
    "11010519491231002",       # 17 chars
    "11010519491231002XX",     # 19 chars
    "110105194902300025",      # 30 February
    "110105170001010010",      # year 1700
    "11010519491231002Y",
    "",
    None,
    11010519491231002,
])
def test_is_valid_id_rejects(bad):
    assert not is_valid_id(bad)


def test_lowercase_x_accepted_and_future_dates_with_as_of():
    assert is_valid_id("11010519491231002x")
    future = make_ids("370402", np.datetime64("2030-01-01"), 10, True).item()
    assert is_valid_id(future)
    assert not is_valid_id(future, as_of=dt.date(2025, 1, 1))


def test_birth_date_and_gender():
    assert birth_date_of("11010519491231002X") == dt.date(1949, 12, 31)
    assert birth_date_of("440524188001010014") == dt.date(1880, 1, 1)
    assert gender_of("11010519491231002X") == "F"   # 17th digit 2: even
    assert gender_of("440524188001010014") == "M"   # 17th digit 1: odd
    with pytest.raises(InvalidInputError) as err:
        birth_date_of("110105194912310021")
    assert "19491231" not in str(err.value)          # never echo the number


def test_make_ids_reproduces_known_examples():
    ids = make_ids(np.array(["110105", "440524"]),
                   np.array(["1949-12-31", "1880-01-01"], dtype="datetime64[D]"),
                   np.array([2, 1]), np.array([True, False]))
    assert list(ids) == KNOWN_VALID


def test_make_ids_forces_gender_parity():
    seq = np.arange(1000)
    born = np.full(1000, np.datetime64("1990-05-17"))
    female = np.arange(1000) % 3 == 0
    ids = make_ids(np.full(1000, "370402"), born, seq, female)
    seventeenth = np.array([int(s[16]) for s in ids])
    assert np.all(seventeenth[female] % 2 == 0)
    assert np.all(seventeenth[~female] % 2 == 1)
    assert all(s[6:14] == "19900517" for s in ids)
    assert all(abs(int(s[14:17]) - q) <= 1 for s, q in zip(ids, seq))


def test_make_ids_rejects_bad_input():
    d = np.array(["1990-01-01"], dtype="datetime64[D]")
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["37040"]), d, np.array([1]), np.array([True]))
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["3704021"]), d, np.array([1]), np.array([True]))
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["37040a"]), d, np.array([1]), np.array([True]))
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["370402"]), d, np.array([1000]), np.array([True]))
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["370402"]), np.array(["NaT"], dtype="datetime64[D]"), np.array([1]),
                 np.array([True]))
    with pytest.raises(InvalidInputError):
        make_ids(np.array(["370402", "370402"]), d, np.array([1, 2, 3]), np.array([True]))


def test_vectorised_validation_matches_scalar():
    rng = np.random.default_rng(3)
    n = 3000
    born = np.datetime64("1930-01-01") + rng.integers(0, 35000, n)
    ids = make_ids(np.full(n, "370402"), born, rng.integers(0, 1000, n), rng.random(n) < 0.5)
    # Corrupt a third: change one digit somewhere.
    bad = ids.copy()
    for i in range(0, n, 3):
        s = list(bad[i])
        j = rng.integers(0, 17)
        s[j] = str((int(s[j]) + 1 + rng.integers(0, 8)) % 10)
        bad[i] = "".join(s)
    mixed = np.concatenate([ids, bad, np.array(["", "x", "11010519490230002X"])])
    vec = validate_ids(mixed)
    assert list(vec) == [is_valid_id(s) for s in mixed]
    assert vec[:n].all()
    assert not vec[n::3][: n // 3].any()              # every corrupted one is caught
    assert (birth_dates_of(ids) == born).all()
    assert np.isnat(birth_dates_of(np.array(["x", "110105194912310021"]))).all()
    assert validate_ids(np.array(["11010519491231002X", None], dtype=object)).tolist() == [True, False]


def test_make_ids_is_fast():
    rng = np.random.default_rng(0)
    n = 600_000
    areas = rng.choice(np.array(["370402", "370403", "370481"]), n)
    born = np.datetime64("1930-01-01") + rng.integers(0, 35000, n)
    seq = rng.integers(0, 1000, n)
    female = rng.random(n) < 0.5
    make_ids(areas[:10], born[:10], seq[:10], female[:10])
    t = time.perf_counter()
    ids = make_ids(areas, born, seq, female)
    elapsed = time.perf_counter() - t
    assert ids.shape == (n,) and ids.dtype == np.dtype("<U18")
    assert elapsed < 2.0, f"make_ids took {elapsed:.2f}s for {n} IDs"
    assert validate_ids(ids).all()
    assert (birth_dates_of(ids) == born).all()
