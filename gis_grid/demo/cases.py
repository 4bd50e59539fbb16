"""The demo case history: 2014-2016 in Shizhong, reproducing the seed report's figures.

:func:`build_history` draws every case with numpy in a few seconds:

- **where**: a building drawn with a category-specific weight, the point
  jittered inside its footprint's neighbourhood, then located by the atlas.
  Most categories follow where people live (households per building); disputes
  weigh dense housing super-linearly (``households ** 1.4``), sanitation
  multiplies by closeness to the nearest market (``1 + 6 exp(-d / 250 m)``),
  work safety prefers workshops, education schools, health clinics, food and
  drugs shops and markets, environmental protection farmland;
- **when**: a day drawn from a platform ramp-up over 2014, category seasons
  (sanitation in summer, heating and fire in winter, disputes around the Spring
  Festival), a weekly rhythm (weekends 0.6-0.7) and office hours;
- **how**: register/dispatch delays, then a handling time that is a lognormal
  share of the deadline (median 45 %, about 7 % late), per-department speed,
  rework on ~1.5 % of cases, assessment 1-10 days after close;
- **outcomes, exactly**: of :data:`TOTAL_CASES` cases, :data:`TOTAL_CLOSED` are
  closed (closed or assessed) at :data:`END`; :data:`DISPUTES` are disputes of
  which :data:`DISPUTES_CLOSED` closed; :data:`DISSATISFIED` closed cases rated
  below "basically satisfied" (99.95 %), most of them in the
  :data:`WEAK_DEPARTMENTS`, which end up under the 90 % line. The cases that
  are not closed are the ones whose natural close falls latest (still open at
  the end of 2016) plus a random tail of stuck (long overdue) and cancelled ones;
- **surges**: :data:`N_EPISODES` local episodes, each moving
  :data:`EPISODE_CASES` cases of one category onto up to three buildings of one grid within
  :data:`EPISODE_DAYS` days (listed in ``frame.attrs["episodes"]``), for the
  early warning to find.

Deterministic for a seed (its own generator stream, independent of the
district's).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from .. import crs as crs_mod
from ..errors import GisGridError
from ..atlas import Atlas
from ..store import Store
from ..incidents import model
from .ids import unique_ids

TOTAL_CASES = 139_345
TOTAL_CLOSED = 137_901
DISPUTES = 4_424
DISPUTES_CLOSED = 4_186
#: closed cases rated 1-2: 137,832 / 137,901 satisfied = 99.95 %
DISSATISFIED = 69
#: departments that end under the 90 % satisfaction line over 2014-2016
WEAK_DEPARTMENTS = ("organization", "education", "food_drug")

START = pd.Timestamp("2014-01-01 00:00", tz=model.CST)
END = pd.Timestamp("2016-12-31 23:59:59", tz=model.CST)   # the seed report's snapshot (AS_OF)

#: expected share of the non-dispute cases per content area (normalised)
CATEGORY_WEIGHTS = {
    "city_management": 0.17, "sanitation": 0.16, "public_security": 0.08, "petition_stability": 0.035,
    "environmental_protection": 0.06, "work_safety": 0.05, "food_drugs": 0.0012, "party_building": 0.0010,
    "fire_safety": 0.045, "traffic_safety": 0.05, "social_assistance": 0.07, "labour_security": 0.04,
    "health_family_planning": 0.05, "housing_construction": 0.06, "public_utilities": 0.07,
    "education": 0.0011, "other": 0.06,
}
#: building-kind affinity added to the household weight (per building, in household-equivalents)
KIND_AFFINITY = {
    "work_safety": {"workshop": 60, "commercial": 10},
    "education": {"school": 80},
    "health_family_planning": {"clinic": 40},
    "food_drugs": {"shop": 30, "market": 60, "commercial": 20},
    "environmental_protection": {"agricultural": 12, "workshop": 25},
    "city_management": {"shop": 25, "commercial": 25, "market": 40},
    "sanitation": {"market": 80},
    "fire_safety": {"commercial": 15, "workshop": 15},
    "traffic_safety": {"commercial": 10, "school": 20},
    "party_building": {"office": 40},
    "other": {"office": 5},
}
#: local surges planted in the history (early warning should find them)
N_EPISODES = 6
EPISODE_CASES = 45
EPISODE_DAYS = 21
EPISODE_CATEGORIES = ("dispute", "sanitation", "city_management")
_PRIORITIES = (["routine", "urgent", "critical"], [0.85, 0.12, 0.03])


def _season(category: str, doy: np.ndarray) -> np.ndarray:
    """Relative intensity by day of year (1 = average)."""
    def peak(day, width, amp):
        d = np.minimum(np.abs(doy - day), 365 - np.abs(doy - day))
        return amp * np.exp(-0.5 * (d / width) ** 2)
    base = np.ones_like(doy, dtype=float)
    if category == "sanitation":
        base += peak(200, 40, 0.6)
    elif category in ("public_utilities", "fire_safety"):
        base += peak(20, 35, 0.7)
    elif category == "dispute":
        base += peak(35, 20, 0.8) + peak(210, 40, 0.3)
    elif category == "environmental_protection":
        base += peak(160, 12, 0.9) + peak(285, 12, 0.9) + peak(10, 30, 0.4)
    elif category == "traffic_safety":
        base += peak(35, 15, 0.4)
    elif category == "labour_security":
        base += peak(25, 25, 0.8)  # unpaid wages before the Spring Festival
    return base


def _day_weights(category: str, days: pd.DatetimeIndex) -> np.ndarray:
    t = (days - days[0]).days.to_numpy() / 365.25
    ramp = np.clip(0.55 + 0.45 * t, 0.55, 1.0) * (1 + 0.06 * t)  # platform rolled out in 2014
    weekday = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6])[days.day_of_week.to_numpy()]
    w = ramp * weekday * _season(category, days.day_of_year.to_numpy())
    return w / w.sum()


def _hours(rng, n) -> np.ndarray:
    """Seconds into the day: office-hour peaks with a thin night tail."""
    h = np.arange(24)
    w = 0.15 + np.exp(-0.5 * ((h - 10) / 1.6) ** 2) + 0.8 * np.exp(-0.5 * ((h - 15.5) / 1.8) ** 2)
    w[(h < 6)] = 0.05
    hour = rng.choice(24, n, p=w / w.sum())
    return hour * 3600 + rng.integers(0, 3600, n)


def _gumbel_top(rng, score: np.ndarray, k: int) -> np.ndarray:
    """k indices drawn without replacement with probability proportional to exp(score)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    key = score + rng.gumbel(size=len(score))
    return np.argpartition(-key, k - 1)[:k]


def build_history(atlas: Atlas, workers: pd.DataFrame, seed: int = 370402) -> pd.DataFrame:
    """Every demo case as a frame with the store's incident columns (no event log)."""
    rng = np.random.default_rng([seed, 0x1c1de])
    cats = list(CATEGORY_WEIGHTS)
    w = np.array([CATEGORY_WEIGHTS[c] for c in cats])
    counts = dict(zip(cats, rng.multinomial(TOTAL_CASES - DISPUTES, w / w.sum())))
    counts["dispute"] = DISPUTES

    # -- where ------------------------------------------------------------------
    b = atlas.buildings
    nb = len(b)
    hh = np.bincount(atlas.households["_b"].to_numpy(dtype=np.int64), minlength=nb).astype(float)
    geoms_m = crs_mod.transform_geoms(b["geometry"].to_numpy(), crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GK117)
    rep_m = shapely.point_on_surface(geoms_m)
    xy = np.column_stack([shapely.get_x(rep_m), shapely.get_y(rep_m)])
    size_m = np.sqrt(shapely.area(geoms_m))
    kind = b["kind"].to_numpy()
    from scipy.spatial import cKDTree
    markets = xy[kind == "market"]
    d_market = cKDTree(markets).query(xy)[0] if len(markets) else np.full(nb, np.inf)
    base_w = hh + 0.5  # households, with a little everywhere (streets, yards)

    cat_col, bidx = [], []
    for c, n in counts.items():
        if c == "dispute":
            wb = hh ** 1.4 + 0.1
        else:
            wb = base_w.copy()
            for k, a in KIND_AFFINITY.get(c, {}).items():
                wb[kind == k] += a
            if c == "sanitation":
                wb *= 1 + 6 * np.exp(-d_market / 250.0)
        bidx.append(rng.choice(nb, n, p=wb / wb.sum()))
        cat_col.append(np.full(n, c, dtype=object))
    bidx = np.concatenate(bidx)
    category = np.concatenate(cat_col)
    n = len(category)
    # jitter around the building (doorways, the street outside), then locate exactly
    r = size_m[bidx] * 0.35 + 4.0
    ang = rng.uniform(0, 2 * np.pi, n)
    rad = r * np.sqrt(rng.uniform(0, 1, n))
    px, py = xy[bidx, 0] + rad * np.cos(ang), xy[bidx, 1] + rad * np.sin(ang)
    lon, lat = (np.asarray(v, dtype=float) for v in crs_mod.from_metric(px, py))
    g = atlas.grid_index.lookup(lon, lat)
    out = g < 0
    if out.any():  # a jitter that left the district: back to the building's own point
        rep = shapely.point_on_surface(b["geometry"].to_numpy()[bidx[out]])
        lon[out], lat[out] = shapely.get_x(rep), shapely.get_y(rep)
        g[out] = atlas.grid_index.lookup(lon[out], lat[out])
    g_all = g
    episodes: list[dict] = []

    # -- when -------------------------------------------------------------------
    days = pd.date_range(START.tz_localize(None), END.tz_localize(None).normalize(), freq="D")
    day = np.empty(n, dtype=np.int64)
    for c in counts:
        m = category == c
        day[m] = rng.choice(len(days), int(m.sum()), p=_day_weights(c, days))
    # a few local surges (a dispute over a demolition, a blocked drain ...): what early warning should catch
    bgrid = atlas.building_grid
    for k in range(N_EPISODES):
        c = EPISODE_CATEGORIES[k % len(EPISODE_CATEGORIES)]
        g = int(rng.choice(np.unique(bgrid[bgrid >= 0])))
        in_g = np.flatnonzero(bgrid == g)
        pool = np.flatnonzero(category == c)
        take = rng.choice(pool, EPISODE_CASES, replace=False)
        d0 = int(rng.integers(120, len(days) - 40))
        day[take] = d0 + rng.integers(0, EPISODE_DAYS, EPISODE_CASES)
        focus = rng.choice(in_g, min(3, len(in_g)), replace=False)  # one complex, a market, a lane
        nb_g = focus[rng.integers(0, len(focus), EPISODE_CASES)]
        bidx[take] = nb_g
        rep = shapely.point_on_surface(b["geometry"].to_numpy()[nb_g])
        lon[take], lat[take] = shapely.get_x(rep), shapely.get_y(rep)
        g_all[take] = atlas.grid_index.lookup(lon[take], lat[take])
        episodes.append({"grid": str(atlas.grid_codes[g]), "category": c, "start": str(days[d0].date()),
                         "days": EPISODE_DAYS, "cases": EPISODE_CASES})
    grid_code = atlas.grid_codes[g_all]
    bhit = atlas.building_index.lookup(lon, lat)
    building_id = np.where(bhit >= 0, atlas.building_ids[np.maximum(bhit, 0)], -1)
    t0 = START.value // 10**9
    created = t0 + day * 86400 + _hours(rng, n)
    end_s = END.value // 10**9

    # -- how --------------------------------------------------------------------
    priority = rng.choice(_PRIORITIES[0], n, p=_PRIORITIES[1])
    factor = np.vectorize(lambda p: model.PRIORITY_FACTOR[model.Priority(p)])(priority)
    cat_deadline = np.vectorize(lambda c: model.CATEGORIES[c].deadline_h)(category)
    deadline_s = (cat_deadline * factor * 3600).astype(np.int64)
    department = np.vectorize(lambda c: model.CATEGORIES[c].department, otypes=[object])(category)
    depts = sorted(model.DEPARTMENTS)
    speed = dict(zip(depts, rng.lognormal(0, 0.18, len(depts))))
    dept_speed = np.vectorize(speed.get)(department)
    registered = created + np.clip(rng.exponential(1200, n), 60, 4 * 3600).astype(np.int64)
    dispatched = registered + np.clip(rng.exponential(2400, n), 120, 8 * 3600).astype(np.int64)
    rework = rng.random(n) < 0.015
    frac = rng.lognormal(np.log(0.45), 0.55, n) * dept_speed * np.where(rework, 1.5, 1.0)
    closed = dispatched + (frac * deadline_s).astype(np.int64)
    handled = dispatched + (0.75 * (closed - dispatched)).astype(np.int64)
    fed_back = dispatched + (0.88 * (closed - dispatched)).astype(np.int64)
    deadline = dispatched + deadline_s
    # rework: the first feedback was refused at 60 % of the way; a fresh allowance from then
    rework_at = dispatched + (0.6 * (closed - dispatched)).astype(np.int64)
    deadline = np.where(rework, rework_at + deadline_s, deadline)
    assessed = closed + rng.integers(86400, 10 * 86400, n)

    # -- outcomes: exactly the seed's figures ------------------------------------------
    is_closed = np.ones(n, dtype=bool)
    for mask, n_open in ((category == "dispute", DISPUTES - DISPUTES_CLOSED),
                         (category != "dispute", (TOTAL_CASES - TOTAL_CLOSED) - (DISPUTES - DISPUTES_CLOSED))):
        idx = np.flatnonzero(mask)
        # the latest natural closes are the ones still open; a tail of old stuck ones
        score = np.minimum((closed[idx] - end_s) / (10 * 86400.0), 8.0)
        is_closed[idx[_gumbel_top(rng, score, n_open)]] = False
    late_close = is_closed & (closed > end_s)  # closed, but naturally after the snapshot: squeeze
    if late_close.any():
        c0 = created[late_close]
        span = end_s - c0
        registered[late_close] = c0 + (0.05 * span).astype(np.int64)
        d0 = c0 + (0.1 * span).astype(np.int64)
        dispatched[late_close] = d0
        new_close = d0 + (rng.uniform(0.3, 0.95, late_close.sum()) * (end_s - d0)).astype(np.int64)
        closed[late_close] = new_close
        handled[late_close] = d0 + (0.75 * (new_close - d0)).astype(np.int64)
        fed_back[late_close] = d0 + (0.88 * (new_close - d0)).astype(np.int64)
        rework_at[late_close] = d0 + (0.6 * (new_close - d0)).astype(np.int64)
        deadline[late_close] = np.where(rework[late_close], rework_at[late_close], d0) + deadline_s[late_close]
        assessed[late_close] = new_close + rng.integers(86400, 10 * 86400, late_close.sum())

    not_closed = np.flatnonzero(~is_closed)
    cancel = not_closed[rng.random(len(not_closed)) < 0.35]
    cancelled = np.full(n, -1, dtype=np.int64)
    cancelled[cancel] = np.minimum(created[cancel] + rng.integers(3600, 5 * 86400, len(cancel)), end_s)
    status = np.full(n, model.Status.CLOSED.value, dtype=object)
    status[is_closed & (assessed <= end_s)] = model.Status.ASSESSED.value
    open_ = ~is_closed
    open_[cancel] = False
    # stuck cases that would naturally have closed: stop them at a random step, long overdue
    stuck = open_ & (closed <= end_s)
    stop = rng.choice([2, 3, 4], n, p=[0.5, 0.3, 0.2])  # last step reached: dispatched/handled/fed_back
    reached = np.where(open_, np.select([registered > end_s, dispatched > end_s, handled > end_s, fed_back > end_s],
                                        [0, 1, 2, 3], 4), 9)
    reached = np.where(stuck, stop, reached)
    names = [model.Status.COLLECTED.value, model.Status.REGISTERED.value, model.Status.DISPATCHED.value,
             model.Status.HANDLED.value, model.Status.FED_BACK.value]
    for k, s in enumerate(names):
        status[open_ & (reached == k)] = s
    status[cancel] = model.Status.CANCELLED.value

    # satisfaction: exactly DISSATISFIED ratings of 1-2, most in the weak departments
    sat = np.where(is_closed, rng.choice([3, 4, 5], n, p=[0.05, 0.25, 0.70]), 0)
    bad_total = 0
    for d in WEAK_DEPARTMENTS:
        idx = np.flatnonzero(is_closed & (department == d))
        k = int(len(idx) * 0.10) + 1 + int(rng.integers(0, 3))
        sat[rng.choice(idx, k, replace=False)] = rng.choice([1, 2], k)
        bad_total += k
    if bad_total > DISSATISFIED:
        raise GisGridError(f"weak departments need {bad_total} dissatisfied ratings, over {DISSATISFIED}")
    others = np.flatnonzero(is_closed & ~np.isin(department, WEAK_DEPARTMENTS))
    late = closed[others] > deadline[others]
    pick = others[_gumbel_top(rng, np.where(late | rework[others], 3.0, 0.0), DISSATISFIED - bad_total)]
    sat[pick] = rng.choice([1, 2], len(pick))

    # -- reporters ----------------------------------------------------------------
    role = rng.choice(["grid_worker", "hotline", "command_centre"], n, p=[0.85, 0.12, 0.03])
    wk = workers.sort_values(["grid_code", "id"])
    wcodes = wk["grid_code"].to_numpy(dtype=object)
    lo = np.searchsorted(wcodes, grid_code, side="left")
    hi = np.searchsorted(wcodes, grid_code, side="right")
    has = hi > lo
    pickw = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    wids = wk["id"].to_numpy(dtype=object)
    reporter = np.where(role == "hotline", "12345", np.where(role == "command_centre", "指挥中心", None)).astype(object)
    gw = (role == "grid_worker")
    reporter[gw & has] = wids[np.minimum(pickw[gw & has], len(wids) - 1)] if len(wids) else "网格员"
    reporter[gw & ~has] = "网格员"

    # -- assemble -------------------------------------------------------------------
    def stamp(sec, keep):
        s = pd.to_datetime(sec, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
        s[~keep] = None
        return s

    reached_full = np.where(is_closed, 9, np.where(np.isin(np.arange(n), cancel), -1, reached))
    canc = cancelled >= 0
    ts = {
        "created": stamp(created, np.ones(n, bool)),
        "registered": stamp(registered, (reached_full >= 1) | (canc & (registered <= cancelled))),
        "dispatched": stamp(dispatched, (reached_full >= 2) | (canc & (dispatched <= cancelled))),
        "handled": stamp(handled, reached_full >= 3),
        "fed_back": stamp(fed_back, reached_full >= 4),
        "closed": stamp(closed, is_closed),
        "assessed": stamp(assessed, status == model.Status.ASSESSED.value),
        "cancelled": stamp(cancelled, canc),
    }
    has_deadline = ts["dispatched"] != None  # noqa: E711 (elementwise)
    assessment = np.full(n, None, dtype=object)
    a_mask = status == model.Status.ASSESSED.value
    on_time = closed <= deadline
    assessment[a_mask] = np.select(
        [on_time & (sat >= 4) & ~rework, on_time & (sat >= 3), sat >= 3], ["excellent", "good", "fair"],
        "poor")[a_mask]
    order = np.argsort(created, kind="stable")
    df = pd.DataFrame({
        "id": unique_ids(rng, n, "E"), "category": category, "department": department, "priority": priority,
        "lon": lon, "lat": lat, "grid_code": grid_code,
        "building_id": pd.array(np.where(building_id >= 0, building_id, 0), dtype="Int64"),
        "reporter": reporter, "reporter_role": role, "description": "", "status": status, **ts,
        "deadline": stamp(deadline, has_deadline.astype(bool)),
        "satisfaction": pd.array(np.where(is_closed, sat, 0), dtype="Int64"),
        "assessment": assessment, "rework_count": (rework & (reached_full >= 3)).astype(int), "version": 1,
        "events": None,
    })
    df.loc[building_id < 0, "building_id"] = pd.NA
    df.loc[~is_closed, "satisfaction"] = pd.NA
    out = df.iloc[order].reset_index(drop=True)
    out.attrs["episodes"] = episodes
    return out


def write_incident_history(store: Store, seed: int = 370402, atlas: Atlas | None = None) -> int:
    """Build the demo history for the district in ``store`` and replace its incidents."""
    atlas = atlas or Atlas.from_store(store)
    df = build_history(atlas, store.workers(), seed)
    store.replace_incidents(df)
    return len(df)
