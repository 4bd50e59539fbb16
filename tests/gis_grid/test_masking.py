import re

import numpy as np
import pandas as pd
import pytest

from gis_grid.idcard import make_ids
from gis_grid.masking import (COMPOUND_SURNAMES, PERSONAL_FIELDS, VULNERABILITY_FIELDS, mask_id,
                              mask_ids, mask_name, mask_names, mask_phone, mask_phones)

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend

LONG_ID_RUN = re.compile(r"[0-9]{15,}[0-9Xx]?")
PHONE_RUN = re.compile(r"[0-9]{11}")
# Anything that could still be a birth date: 8 consecutive digits.
DATE_RUN = re.compile(r"[0-9]{8}")


def test_mask_id_examples():
    assert mask_id("370402199001011234") == "370402********1234"
    assert mask_id("11010519491231002X") == "110105********002X"
    assert mask_id("  370402199001011234 ") == "370402********1234"
    assert mask_id(370402199001011234) == "370402********1234"
    assert mask_id("370402900101123") == "370402******123"      # legacy 15-digit
    assert mask_id(None) == ""
    assert mask_id("") == ""
    assert mask_id(float("nan")) == ""
    assert mask_id(pd.NA) == ""


@pytest.mark.parametrize("bad", [
    "3704021990010112345", "37040219900101123", "37040219900101123Y", "ID 370402199001011234",
    "370402-19900101-1234", "３７０４０２１９９００１０１１２３４", "123", "12", "1234567890",
])
def test_malformed_ids_show_at_most_two_characters(bad):
    masked = mask_id(bad)
    assert len(masked) == len(bad.strip())
    visible = [c for c in masked if c != "*"]
    assert len(visible) <= 2
    assert masked.startswith(bad[:2] if len(bad) >= 6 else "")
    assert not re.search(r"[0-9]{3}", masked)


def test_masked_ids_never_reveal_birth_dates():
    rng = np.random.default_rng(11)
    n = 5000
    born = np.datetime64("1930-01-01") + rng.integers(0, 35000, n)
    ids = make_ids(np.full(n, "370402"), born, rng.integers(0, 1000, n), rng.random(n) < 0.5)
    masked = mask_ids(ids)
    assert masked.shape == ids.shape
    for original, m in zip(ids, masked):
        assert m[:6] == original[:6] and m[-4:] == original[-4:]
        assert m[6:14] == "*" * 8
        assert original[6:14] not in m
        assert not LONG_ID_RUN.search(m) and not DATE_RUN.search(m)
        assert sum(c != "*" for c in m) <= 10


def test_mask_phone_examples():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "138****5678"
    assert mask_phone("008613812345678") == "138****5678"
    assert mask_phone(13812345678) == "138****5678"
    assert mask_phone(13812345678.0) == "138****5678"         # read from a spreadsheet
    assert mask_phone("0632-1234567") == "06********67"        # Zaozhuang landline
    assert mask_phone("12345") == "*****"
    assert mask_phone(None) == "" and mask_phone("") == ""


def test_mask_name_examples():
    assert mask_name("张三") == "张*"
    assert mask_name("王小明") == "王**"
    assert mask_name("欧阳娜娜") == "欧阳**"
    assert mask_name("司马光") == "司马*"
    assert mask_name("李") == "*"
    assert mask_name("欧阳") == "欧*"   # too short for a compound surname plus a given name
    assert mask_name(None) == "" and mask_name("") == "" and mask_name("  ") == ""
    for surname in COMPOUND_SURNAMES:
        assert mask_name(surname + "明") == surname + "*"


def test_vectorised_equals_scalar():
    ids = ["370402199001011234", " 37040219900101123x ", "370402900101123", "3704021990", "12345",
           "", None, float("nan"), 370402199001011234, "ID:370402199001011234", "1"]
    phones = ["13812345678", "+86 138-1234-5678", "8613812345678", "0632-1234567", "12345678901",
              "123", None, 13812345678, "1381234567", "1381234567８"]
    names = ["张三", "欧阳娜娜", "李", "欧阳", "司马光", " 王小明 ", None, "", "买买提·艾力", "A"]
    for scalar, vector, values in [(mask_id, mask_ids, ids), (mask_phone, mask_phones, phones),
                                   (mask_name, mask_names, names)]:
        expected = [scalar(v) for v in values]
        assert list(vector(values)) == expected
        assert list(vector(np.array(values, dtype=object))) == expected
        series = pd.Series(values, index=range(100, 100 + len(values)), name="x", dtype=object)
        out = vector(series)
        assert isinstance(out, pd.Series) and list(out.index) == list(series.index)
        assert out.name == "x" and list(out) == expected


def test_vectorised_on_numpy_string_arrays():
    phones = np.array(["13812345678", "15912345678", "19912345678"])
    out = mask_phones(phones)
    assert list(out) == ["138****5678", "159****5678", "199****5678"]
    assert not any(PHONE_RUN.search(p) for p in out)
    names = pd.Series(["张三", "欧阳娜娜", "李"], dtype="str")
    assert list(mask_names(names)) == ["张*", "欧阳**", "*"]
    assert mask_ids(np.array([], dtype=str)).shape == (0,)
    grid = np.array([["370402199001011234", "x"], ["", "11010519491231002X"]])
    assert mask_ids(grid).tolist() == [["370402********1234", "*"], ["", "110105********002X"]]


def test_field_sets():
    assert PERSONAL_FIELDS == {"name", "id_number", "phone", "birth_date", "head_name"}
    assert {"disabled", "low_income", "elderly_alone", "extreme_poverty", "left_behind_child",
            "veteran", "community_correction", "flags"} == VULNERABILITY_FIELDS
    assert not PERSONAL_FIELDS & VULNERABILITY_FIELDS
