"""Per-division statistics: households, residents, buildings, special groups, workers.

Computed once per atlas snapshot from the store with one pandas aggregation
per table, then kept on the atlas object (keyed by ``atlas.version``), so a
card for any division afterwards costs two array lookups.

Base grids are the unit of counting. Upper levels are sums over their base
grids: grid codes nest by prefix and :attr:`Atlas.grid_codes` is sorted, so
the grids under any division form one contiguous range and a sum is a
difference of prefix sums.

Households and buildings are counted in the grid the *atlas* puts their
building in (the same rule "who lives here" uses); residents follow their
household; workers are counted by their assigned ``grid_code``.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from . import crs as crs_mod
from .atlas import Atlas
from .features import FEATURE_COUNTS
from .hierarchy import Level
from .incidents import aggregate
from .store import Store
from .suppression import suppressed

#: Resident flag columns counted as special groups, in publication order.
SPECIAL_GROUPS = ("disabled", "low_income", "elderly_alone", "extreme_poverty",
                  "left_behind_child", "veteran", "community_correction")
#: Count columns of :func:`grid_table`.
COUNT_COLUMNS = ("households", "residents", "buildings", "workers") + SPECIAL_GROUPS

def grid_table(atlas: Atlas, store: Store) -> pd.DataFrame:
    """Counts per base grid (index: grid code, in atlas order), computed once per atlas snapshot."""
    return atlas.memo.get("stats.grid_table", lambda: _compute(atlas, store))


def _bincount(idx: np.ndarray, n: int, weights=None) -> np.ndarray:
    ok = idx >= 0
    w = None if weights is None else np.asarray(weights, dtype=np.int64)[ok]
    return np.bincount(idx[ok], weights=w, minlength=n).astype(np.int64)[:n]


def _compute(atlas: Atlas, store: Store) -> pd.DataFrame:
    n = len(atlas.grid_codes)
    out: dict[str, np.ndarray] = {}
    out["buildings"] = _bincount(np.asarray(atlas.building_grid, dtype=np.int64), n)
    hh_grid = atlas.households["_g"].to_numpy(dtype=np.int64)
    out["households"] = _bincount(hh_grid, n)

    res = store.residents(columns=["household_id", *SPECIAL_GROUPS])
    # household id -> grid position (households the atlas does not place get -1)
    pos = pd.Series(hh_grid, index=pd.Index(atlas.household_ids))
    rg = pos.reindex(res["household_id"].to_numpy()).fillna(-1).to_numpy(dtype=np.int64)
    out["residents"] = _bincount(rg, n)
    for col in SPECIAL_GROUPS:
        flag = pd.to_numeric(res[col], errors="coerce").fillna(0).to_numpy() != 0
        out[col] = _bincount(rg, n, flag)

    workers = store.workers()
    wg = _grid_positions(atlas, workers["grid_code"].astype(str).to_numpy() if len(workers) else [])
    out["workers"] = _bincount(wg, n)
    return pd.DataFrame({c: out[c] for c in COUNT_COLUMNS}, index=pd.Index(atlas.grid_codes, name="grid_code"))


#: The counts a division feature carries (OGC API, exports): totals only, never personal data.


def level_counts(atlas: Atlas, store: Store, level) -> pd.DataFrame:
    """:data:`FEATURE_COUNTS` per division of one level (index: every code of the level, sorted).

    People and buildings come from :func:`grid_table` (memoised per atlas); open cases from the
    case table, which changes with every case write, so that column is recounted whenever the
    case table's version moves (one bincount)."""
    level = level if isinstance(level, Level) else Level.parse(level)
    d = atlas.divisions
    table = grid_table(atlas, store)
    per_grid = atlas.level_codes[level][:-1].astype(str)
    # every division of the level, also one without grids (zeros)
    codes = np.union1d(d.loc[d["level"] == level.value, "code"].astype(str).to_numpy(dtype=object),
                       np.unique(per_grid)).astype(object)

    def static() -> pd.DataFrame:
        people = table[["households", "residents", "buildings", "workers"]]
        return people.groupby(per_grid).sum().reindex(codes, fill_value=0).astype(np.int64)

    base = atlas.memo.get(("stats.level_counts", level), static)
    t = aggregate.case_table(store, atlas)

    def cases() -> tuple:
        g = t.grid[t.open & (t.grid >= 0)]
        per = pd.Series(np.bincount(g, minlength=len(per_grid))[:len(per_grid)]).groupby(per_grid).sum()
        return t.version, per.reindex(codes, fill_value=0).to_numpy(dtype=np.int64)

    _, open_cases = atlas.memo.get(("stats.level_open_cases", level), cases, fresh=lambda v: v[0] == t.version)
    out = base.copy()
    out["open_cases"] = open_cases
    out.index.name = "code"
    return out[list(FEATURE_COUNTS)]


def _grid_positions(atlas: Atlas, codes) -> np.ndarray:
    codes = np.asarray(codes, dtype=object)
    if not len(codes) or not len(atlas.grid_codes):
        return np.full(len(codes), -1, dtype=np.int64)
    i = np.searchsorted(atlas.grid_codes, codes).clip(max=len(atlas.grid_codes) - 1)
    return np.where(atlas.grid_codes[i] == codes, i, -1).astype(np.int64)


def _prefix_sums(atlas: Atlas, store: Store) -> np.ndarray:
    def build():
        table = grid_table(atlas, store)
        return np.vstack([np.zeros((1, table.shape[1]), dtype=np.int64), table.to_numpy().cumsum(axis=0)])
    return atlas.memo.get("stats.prefix_sums", build)


def division_stats(atlas: Atlas, store: Store, code: str) -> dict:
    """Statistics of one division of any level (raises NotFoundError / InvalidInputError)."""
    lo, hi = atlas.grid_positions(code)
    cs = _prefix_sums(atlas, store)
    v = dict(zip(COUNT_COLUMNS, (int(x) for x in cs[hi] - cs[lo])))
    return {"grids": hi - lo, "households": v["households"], "residents": v["residents"],
            "buildings": v["buildings"], "workers": v["workers"],
            "special_groups": {g: v[g] for g in SPECIAL_GROUPS}}


def hidden_special_groups(atlas: Atlas, store: Store, k: int) -> dict[str, frozenset[str]]:
    """Per special group, the division codes (any level) whose count a reader with threshold ``k``
    does not see: complementary suppression over the whole hierarchy (:mod:`gis_grid.suppression`),
    computed once per atlas snapshot and threshold."""
    def build():
        table = grid_table(atlas, store)
        return {g: suppressed(dict(zip(table.index, table[g].tolist())), k) for g in SPECIAL_GROUPS}
    return atlas.memo.get(("stats.hidden_special_groups", k), build)


def division_area_m2(row: pd.Series) -> float:
    """The stored area when there is one, else computed from the geometry."""
    stored = row.get("area_m2")
    try:
        if stored is not None and np.isfinite(float(stored)) and float(stored) > 0:
            return float(stored)
    except (TypeError, ValueError):
        pass
    return round(crs_mod.area_m2(row.get("geometry")), 1)
