"""Store read filters behave the same on every backend (numpy values, several filters at once)."""
from __future__ import annotations

import numpy as np

from common import make_toy_store


def test_filters_take_numpy_values_and_all_apply(tmp_path):
    with make_toy_store(tmp_path / "toy.gpkg") as store:
        got = store.households(building_ids=np.array([1, 2], dtype=np.int64))
        assert sorted(got["id"]) == ["Ha1", "Hb2", "Hc3"]
        both = store.households(ids=np.array(["Ha1", "Hc3", "Hd4"], dtype=object), building_ids=np.array([1]))
        assert list(both["id"]) == ["Ha1"]
        assert store.households(ids=[], building_ids=[1]).empty
        res = store.residents(household_ids=np.array(["Ha1"], dtype=object), ids=["Rq2", "Rq3"])
        assert list(res["id"]) == ["Rq2"]
