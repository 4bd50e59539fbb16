"""Who and what changes grid under a plan, per-grid figures, and balance against a target.

Planners see personal data only as counts: buildings are listed by id (not
personal), households, residents, workers and cases only as numbers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from ..atlas import Atlas
from ..budget import Budget, unlimited
from ..incidents import model
from .changeset import PointPlacer, assign_buildings, number_grids, staff
from .plan import Plan
from .validate import to_metric

OPEN_STATUSES = tuple(s.value for s in model.OPEN_STATUSES)

#: households per base grid a planner aims at (a grid team of 5-6 workers serves about 300-500)
DEFAULT_TARGET_HOUSEHOLDS = 400
#: a grid within +-25 % of the target counts as balanced
DEFAULT_BAND = 0.25


def polsby_popper(geom_m) -> float:
    """4 pi A / P^2 of a metric polygon: 1 for a disc, ~0.785 for a square, -> 0 for slivers."""
    p = geom_m.length
    return float(4 * np.pi * geom_m.area / (p * p)) if p > 0 else 0.0


def balance(households: list[int] | np.ndarray, target: float, band: float = DEFAULT_BAND) -> dict:
    """How far grids are from ``target`` households: deviations as fractions of the target."""
    h = np.asarray(households, dtype=float)
    if len(h) == 0:
        return {"grids": 0}
    dev = (h - target) / target
    return {"grids": int(len(h)), "target": target, "band": band, "min": int(h.min()), "max": int(h.max()),
            "mean": round(float(h.mean()), 1), "std": round(float(h.std()), 1),
            "max_abs_deviation": round(float(np.abs(dev).max()), 4),
            "mean_abs_deviation": round(float(np.abs(dev).mean()), 4),
            "within_band": int((np.abs(dev) <= band).sum())}


def people_per_building(atlas: Atlas, store) -> tuple[np.ndarray, np.ndarray]:
    """Households and registered residents per building row, computed once per buildings frame
    (``atlas.people_memo``: a boundary apply moves no building and no person)."""
    return atlas.people_memo.get("planning.people_per_building", lambda: _people_per_building(atlas, store))


def _people_per_building(atlas: Atlas, store) -> tuple[np.ndarray, np.ndarray]:
    n = len(atlas.building_ids)
    hh = np.diff(atlas._hh_by_building).astype(np.int64)
    members = store.residents(columns=["household_id"])["household_id"].value_counts()
    per_hh = members.reindex(atlas.household_ids).fillna(0).to_numpy(dtype=np.int64)
    res = np.bincount(atlas.households["_b"].to_numpy(dtype=np.int64), weights=per_hh, minlength=n).astype(np.int64)
    return hh, res


def _case_figures(store, plan: Plan, placer, codes: list):
    """(cases per year per new grid, open cases changing grid); Nones without cases.

    Only the replaced grids' cases are read (by their current grid: the index, not the whole
    table, which an apply's re-homing has just made stale) and placed by the apply's own rule
    (changeset.PointPlacer: lowest code on a shared edge, untouched neighbours included); a
    year is the span of those cases' dates (at least one)."""
    try:
        cases = store.incidents(columns=["id", "status", "lon", "lat", "created", "grid_code"],
                                grid_codes=list(plan.scope.replaces))
    except Exception:  # an older store without the table
        cases = ()
    if not len(cases):
        return [None] * len(codes), None
    new = placer.place(shapely.points(cases["lon"].to_numpy(dtype=float), cases["lat"].to_numpy(dtype=float)))
    created = pd.to_datetime(cases["created"], utc=True, errors="coerce", format="ISO8601")
    years = max((created.max() - created.min()).days / 365.25, 1.0) if created.notna().any() else 1.0
    counts = pd.Series(new, dtype=object).value_counts()
    is_open = cases["status"].isin(OPEN_STATUSES).to_numpy()
    moving = np.array([n is not None and n != c for n, c in zip(new, cases["grid_code"].to_numpy(dtype=object))])
    return [round(float(counts.get(c, 0)) / years, 1) for c in codes], int((is_open & moving).sum())


def plan_impact(atlas: Atlas, store, plan: Plan, parents: list[str], *,
                target_households: float = DEFAULT_TARGET_HOUSEHOLDS, band: float = DEFAULT_BAND,
                used_codes=None, budget: Budget | None = None) -> dict:
    """The impact report of a (valid) plan drawn on ``atlas``; ``budget`` bounds its time."""
    budget = unlimited(budget, "the impact report")
    budget.step("numbering the grids")
    used = used_codes if used_codes is not None else store.grid_codes_ever(plan.scope.code)
    num = number_grids(atlas, plan, parents, used)
    budget.step("assigning buildings")
    moves = assign_buildings(atlas, plan, num.codes)

    # grid of every building in the scope before / after
    rows = [atlas.by_code[c] for c in plan.scope.replaces]
    old_geoms = atlas.divisions["geometry"].to_numpy()[rows]
    lo_hi = [atlas.grid_positions(c) for c in plan.scope.replaces]
    grid_pos = [lo for lo, _ in lo_hi]
    in_scope = np.flatnonzero(np.isin(atlas.building_grid, grid_pos))
    before = pd.Series(atlas.grid_codes[atlas.building_grid[in_scope]], index=atlas.building_ids[in_scope])
    after = before.copy()
    if len(moves):
        after = after.reindex(after.index.union(pd.Index(moves["id"])))
        after.loc[moves["id"].to_numpy()] = moves["new"].to_numpy()
    bids = after.index.to_numpy()
    budget.step("counting households and residents")
    b_rows = np.array([atlas._building_rows[int(x)] for x in bids], dtype=int)
    hh_per_b, res_per_b = people_per_building(atlas, store)
    per_b = pd.DataFrame({"id": bids, "after": after.to_numpy(), "households": hh_per_b[b_rows],
                          "residents": res_per_b[b_rows]})
    per_b["before"] = before.reindex(bids).to_numpy()

    moved = per_b[per_b["before"] != per_b["after"]]
    flows = (moved.groupby(["before", "after"], dropna=False)[["households", "residents"]].sum()
             .assign(buildings=moved.groupby(["before", "after"], dropna=False).size()).reset_index())

    # workers follow their households and every grid with households gets one (planning/staffing.py)
    budget.step("staffing")
    staffing = staff(atlas, plan, num, moves, store.workers(grid_codes=list(plan.scope.replaces)))

    # cases: open ones whose grid changes, and the yearly workload per new grid
    budget.step("counting cases")
    new_m = list(to_metric(np.asarray(plan.geometries, dtype=object)))
    cases_per_year, open_moving = _case_figures(store, plan, PointPlacer.of(atlas, plan, num.codes), num.codes)

    budget.step("per-grid figures")
    grids = []
    for i, code in enumerate(num.codes):
        mine = per_b[per_b["after"] == code]
        grids.append({"index": i, "code": code, "name": num.names[i], "status": num.status[i],
                      "community": parents[i], "successor_of": num.successor_of[i],
                      "households": int(mine["households"].sum()), "residents": int(mine["residents"].sum()),
                      "buildings": int(len(mine)), "area_m2": round(float(new_m[i].area), 1),
                      "polsby_popper": round(polsby_popper(new_m[i]), 4), "cases_per_year": cases_per_year[i],
                      "workers": staffing.workers_per_grid.get(code, 0)})
    old_m = list(to_metric(old_geoms))
    old = []
    for j, code in enumerate(plan.scope.replaces):
        mine = per_b[per_b["before"] == code]
        old.append({"code": code, "households": int(mine["households"].sum()),
                    "residents": int(mine["residents"].sum()), "buildings": int(len(mine)),
                    "area_m2": round(float(old_m[j].area), 1), "polsby_popper": round(polsby_popper(old_m[j]), 4)})
    return {
        "plan_id": plan.id, "base_version": plan.base_version, "scope": plan.scope.to_dict(),
        "rule": "a building belongs to the grid holding its representative point (point_on_surface); "
                "a point on a shared edge goes to the lowest code",
        "changes": {"buildings": int(len(moved)), "households": int(moved["households"].sum()),
                    "residents": int(moved["residents"].sum()), "workers": len(staffing.moves),
                    "open_cases": open_moving},
        "flows": [{"from": r["before"], "to": r["after"], "buildings": int(r["buildings"]),
                   "households": int(r["households"]), "residents": int(r["residents"])} for _, r in flows.iterrows()],
        "moved_buildings": [{"id": int(b), "from": f, "to": t} for b, f, t in
                            zip(moved["id"], moved["before"], moved["after"])],
        "retired": num.retired, "created": [c for c, s in zip(num.codes, num.status) if s == "new"],
        "redrawn": [c for c, s in zip(num.codes, num.status) if s == "successor"],
        "grids": grids, "old_grids": old,
        "unstaffed": staffing.unstaffed,
        "staffing_rule": "named by the plan, else a kept grid's workers stay and a retired grid's follow most "
                         "of its households; a grid with households and no worker takes one from the grid "
                         "with the most workers (at least two)",
        "balance": {"before": balance([g["households"] for g in old], target_households, band),
                    "after": balance([g["households"] for g in grids], target_households, band)},
    }
