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


def test_incidents_filter_by_current_grid(tmp_path):
    """The impact reads only the replaced grids' cases (gis_grid/planning/impact.py)."""
    from datetime import datetime, timezone

    from gis_grid.atlas import Atlas
    from gis_grid.incidents import service
    with make_toy_store(tmp_path / "toy.gpkg") as store:
        atlas = Atlas.from_store(store)
        now = datetime(2026, 6, 1, tzinfo=timezone.utc)
        made = [service.create(store, atlas, lon=x, lat=y, crs="EPSG:4490", category="dispute", reporter="张三",
                               role="grid_worker", at=now, now=now) for x, y in ((117.505, 34.815), (117.515, 34.805))]
        got = store.incidents(columns=["id", "grid_code"], grid_codes=np.array([made[1].grid_code], dtype=object))
        assert list(got["id"]) == [made[1].id] and list(got["grid_code"]) == [made[1].grid_code]
        assert store.incidents(grid_codes=["370402001001001"], ids=[made[1].id]).empty
