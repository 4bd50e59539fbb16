"""Statistics of cases per grid (any level), department or category over a time range.

The store's cases are loaded once per (atlas version, incidents version) into
plain numpy columns (:class:`CaseTable`), then every aggregation is a few
``bincount`` calls, and medians/percentiles are read off one ``lexsort`` per
group key. Definitions (all over cases **created** in ``[start, end)``):

- ``cases``: cases logged; ``closed``: cases now closed or assessed;
  ``closure_rate`` = closed / cases (cancelled cases count as not closed);
- ``on_time_rate`` = closed cases closed by their deadline / closed cases;
- ``median_handling_h``, ``p90_handling_h``: close - first dispatch, hours;
- ``rework_rate`` = cases sent back at least once / cases;
- ``satisfaction`` = closed cases rated 3-5 / closed cases rated (the
  seed's 99.95 %); ``dissatisfied``: closed cases rated 1-2;
- ``open``: cases not closed and not cancelled; ``open_red``/``open_yellow``:
  open cases of that supervision colour at ``at`` (default: ``end``).

Rates are percentages (0-100) rounded to 2 decimals; ``None`` when the
denominator is 0.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd

from .. import timebounds
from ..atlas import Atlas
from ..errors import InvalidInputError
from ..hierarchy import Level
from ..store import Store
from . import model

_MEMO_KEY = "incidents.case_table"
_LOCK = threading.Lock()  # serialises patches of the memoised table (note_write)
_COLS = ["id", "category", "department", "priority", "status", "grid_code", "lon", "lat", "created",
         "dispatched", "closed", "deadline", "cancelled", "satisfaction", "rework_count"]
NONE = np.iinfo(np.int64).min  # missing timestamp
GROUPINGS = ("district", "street", "community", "grid", "department", "category")
METRICS = ("cases", "closed", "closure_rate", "on_time_rate", "median_handling_h", "p90_handling_h",
           "rework_rate", "satisfaction", "dissatisfied", "open", "open_red", "open_yellow")
#: the seed's rule: a department below this satisfaction (percent) is not eligible for "advanced"
ADVANCED_MIN_SATISFACTION = 90.0


def _seconds(col) -> np.ndarray:
    t = pd.to_datetime(pd.Series(col, dtype=object), utc=True, format="ISO8601")
    v = t.to_numpy(dtype="datetime64[s]").astype(np.int64)
    v[t.isna().to_numpy()] = NONE
    return v


@dataclass
class CaseTable:
    """All cases as numpy columns (times in UTC epoch seconds, NONE when missing)."""

    ids: np.ndarray
    grid: np.ndarray          # position in atlas.grid_codes (-1: not in the atlas)
    category: np.ndarray      # index into CATEGORY_CODES
    department: np.ndarray    # index into DEPARTMENT_CODES
    status: np.ndarray        # str
    lon: np.ndarray
    lat: np.ndarray
    created: np.ndarray
    dispatched: np.ndarray
    closed: np.ndarray
    deadline: np.ndarray
    satisfaction: np.ndarray  # 0 = not rated
    rework: np.ndarray        # bool
    priority: np.ndarray      # index into PRIORITY_CODES
    version: tuple = (0, 0)

    CATEGORY_CODES = tuple(model.CATEGORIES)
    DEPARTMENT_CODES = tuple(model.DEPARTMENTS)
    PRIORITY_CODES = tuple(p.value for p in model.Priority)

    def __len__(self) -> int:
        return len(self.ids)

    def __post_init__(self):
        # derived once: string comparisons over 140k objects cost more than a whole aggregation
        self.done = (self.status == model.Status.CLOSED.value) | (self.status == model.Status.ASSESSED.value)
        self.cancelled = self.status == model.Status.CANCELLED.value
        self.open = ~self.done & ~self.cancelled
        ok = self.done & (self.dispatched != NONE) & (self.closed != NONE)
        self.handled_h = np.where(ok, (self.closed - self.dispatched) / 3600.0, np.nan)
        self.has_handling = ok
        # cases with a handling time, ordered by it: per-group quantiles then need one stable int sort
        rows = np.flatnonzero(ok)
        self.by_handling = rows[np.argsort(self.handled_h[rows], kind="stable")]
        self.has_deadline = self.done & (self.deadline != NONE) & (self.closed != NONE)
        self.on_time = self.has_deadline & (self.closed <= self.deadline)
        self.rated = self.done & (self.satisfaction > 0)
        self.satisfied = self.rated & (self.satisfaction >= model.SATISFIED_FROM)
        # every per-case flag in one byte: a group aggregation is then one bincount
        self.state = np.zeros(len(self.ids), dtype=np.int64)
        for bit, flag in enumerate(self._FLAGS):
            self.state |= getattr(self, flag).astype(np.int64) << bit

    _FLAGS = ("done", "on_time", "has_deadline", "rework", "rated", "satisfied", "open")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, atlas: Atlas, version=(0, 0), by_location: bool = False) -> "CaseTable":
        """``by_location``: place cases by where their point lies in ``atlas`` instead of by their
        stored (current) grid code: for an atlas of another state than the store's, e.g. as of a date."""
        codes = df["grid_code"].astype(str).to_numpy(dtype=object)
        gc = atlas.grid_codes
        if by_location and len(codes):
            grid = atlas.grid_index.lookup(pd.to_numeric(df["lon"]).to_numpy(dtype=float),
                                           pd.to_numeric(df["lat"]).to_numpy(dtype=float))
            grid = np.where(grid >= 0, grid, -1).astype(np.int64)
        elif len(codes) and len(gc):
            i = np.searchsorted(gc, codes).clip(max=len(gc) - 1)
            grid = np.where(gc[i] == codes, i, -1).astype(np.int64)
        else:
            grid = np.full(len(codes), -1, dtype=np.int64)
        cat = pd.Categorical(df["category"], categories=cls.CATEGORY_CODES).codes.astype(np.int64)
        dep = pd.Categorical(df["department"], categories=cls.DEPARTMENT_CODES).codes.astype(np.int64)
        sat = pd.to_numeric(df["satisfaction"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
        rw = pd.to_numeric(df["rework_count"], errors="coerce").fillna(0).to_numpy() > 0
        pri = pd.Categorical(df["priority"], categories=cls.PRIORITY_CODES).codes.astype(np.int64)
        return cls(ids=df["id"].to_numpy(dtype=object), grid=grid, category=cat, department=dep,
                   status=df["status"].astype(str).to_numpy(dtype=object),
                   lon=pd.to_numeric(df["lon"]).to_numpy(dtype=float), lat=pd.to_numeric(df["lat"]).to_numpy(dtype=float),
                   created=_seconds(df["created"]), dispatched=_seconds(df["dispatched"]),
                   closed=_seconds(df["closed"]), deadline=_seconds(df["deadline"]), satisfaction=sat, rework=rw,
                   priority=pri, version=version)

    def colours(self, at_s: int, ladder: model.SupervisionLadder = model.DEFAULT_LADDER,
                rows: np.ndarray | None = None) -> np.ndarray:
        """Supervision colour index at ``at_s`` (0 green, 1 blue, 2 yellow, 3 red, -1 none), of all or ``rows``."""
        r = slice(None) if rows is None else rows
        done, closed, disp, dl = self.done[r], self.closed[r], self.dispatched[r], self.deadline[r]
        t = np.where(done & (closed != NONE), closed, at_s).astype(float)
        has = (disp != NONE) & (dl != NONE)
        span = np.where(has, dl - disp, 1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(span > 0, (t - disp) / span, np.inf)
        out = np.select([u >= ladder.red_from, u >= ladder.yellow_from, u >= ladder.blue_from], [3, 2, 1], 0)
        out[~has] = 0
        out[self.cancelled[r]] = -1
        return out


COLOUR_NAMES = ("green", "blue", "yellow", "red")


def case_table(store: Store, atlas: Atlas) -> CaseTable:
    """The store's cases as a :class:`CaseTable`, cached on the atlas per incidents version.

    Cases count in their stored grid (kept current by every boundary apply). An atlas of
    another version (as of a date before an apply, or one not yet swapped for the applied
    state) places them by their point instead, so it reports by its own grids."""
    key = (atlas.version, store.incidents_version())

    def build() -> CaseTable:
        df = store.incidents(columns=_COLS)
        return CaseTable.from_frame(df, atlas, version=key, by_location=atlas.version != store.atlas_version())
    return atlas.memo.get(_MEMO_KEY, build, fresh=lambda t: t.version == key)


def scoped(t: CaseTable, atlas: Atlas, scope: str | None) -> CaseTable:
    """Only the cases of base grids under ``scope`` (None: all), so every aggregate of it is confined.

    Cached on the atlas per (table version, scope): a confined key's statistics, warnings and map
    layers are then computed from its own cases, never from the district's and filtered after.
    """
    if not scope:
        return t
    lo, hi = atlas.grid_positions(scope)

    def build() -> CaseTable:
        rows = np.flatnonzero((t.grid >= lo) & (t.grid < hi))
        return CaseTable(**{a: getattr(t, a)[rows] for a in _ARRAYS}, version=t.version)
    return atlas.memo.get(("incidents.case_table.scoped", scope, t.version[2:]), build,
                          fresh=lambda s: s.version == t.version)


def for_key(store: Store, atlas: Atlas, who) -> CaseTable:
    """The case table as a key may aggregate it: a department key's only its department's cases
    (division scope is applied by the caller, through :func:`scoped` or a ``scope`` argument)."""
    t = case_table(store, atlas)
    department = getattr(who, "department", None)
    if not department:
        return t
    index = t.DEPARTMENT_CODES.index(department)

    # the department in the version too: every answer cached by (version, scope, ...) then tells
    # a department's figures from the district's
    version = (*t.version, f"department:{department}")

    def build() -> CaseTable:
        rows = np.flatnonzero(t.department == index)
        return CaseTable(**{a: getattr(t, a)[rows] for a in _ARRAYS}, version=version)
    return atlas.memo.get(("incidents.case_table.department", department), build,
                          fresh=lambda s: s.version == version)


_ARRAYS = ("ids", "grid", "category", "department", "status", "lon", "lat", "created", "dispatched", "closed",
           "deadline", "satisfaction", "rework", "priority")


def note_write(store: Store, atlas: Atlas, row: dict, version_before: int) -> None:
    """Patch the cached case table with one case just written, instead of reloading ~140k rows.

    Safe only when the cache was current right before this write and the store moved by
    exactly this one write; otherwise the cache is left alone and the next read reloads it.
    """
    cached = atlas.memo.peek(_MEMO_KEY)
    now = store.incidents_version()
    if cached is None or cached.version != (atlas.version, version_before) or now != version_before + 1:
        return
    one = CaseTable.from_frame(pd.DataFrame([{c: row.get(c) for c in _COLS}]), atlas)
    with _LOCK:
        hit = np.flatnonzero(cached.ids == row["id"])
        cols = {}
        for name in _ARRAYS:
            a = getattr(cached, name)
            if len(hit):
                a = a.copy()
                a[hit[0]] = getattr(one, name)[0]
            else:
                a = np.concatenate([a, getattr(one, name)])
            cols[name] = a
        atlas.memo.put(_MEMO_KEY, CaseTable(**cols, version=(atlas.version, now)))


# -- time ranges ----------------------------------------------------------------------------
def parse_time(value, *, end: bool = False) -> datetime | None:
    """A date or date-time (naive = China Standard Time) -> aware datetime; a bare end date is inclusive."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        timebounds.check(value)
        return value if value.tzinfo else value.replace(tzinfo=model.CST)
    if isinstance(value, date):
        value = value.isoformat()
    s = str(value).strip()
    if len(s) == 10:  # a bare date: start of that day, or the start of the next day for an end
        try:
            d = date.fromisoformat(s)
        except ValueError:
            raise InvalidInputError(f"{value!r} is not a date (YYYY-MM-DD) or ISO-8601 date-time") from None
        timebounds.check_date(d)
        t = datetime(d.year, d.month, d.day, tzinfo=model.CST)
        return t + pd.Timedelta(days=1).to_pytimedelta() if end else t
    return model.to_aware(s, "time")


def time_range(start=None, end=None) -> tuple[int, int]:
    """``[start, end)`` in epoch seconds; refuses an end before the start."""
    a, b = parse_time(start), parse_time(end, end=True)
    if a is not None and b is not None and b < a:
        raise InvalidInputError(f"the time range ends ({end}) before it starts ({start}); swap from and to")
    lo = int(a.timestamp()) if a else np.iinfo(np.int64).min + 1
    hi = int(b.timestamp()) if b else np.iinfo(np.int64).max
    return lo, hi


def _mask(t: CaseTable, start=None, end=None, category=None, department=None) -> np.ndarray:
    lo, hi = time_range(start, end)
    m = np.ones(len(t), dtype=bool)
    if start is not None and start != "":
        m &= t.created >= lo
    if end is not None and end != "":
        m &= t.created < hi
    if category:
        codes = [category] if isinstance(category, str) else list(category)
        m &= np.isin(t.category, [t.CATEGORY_CODES.index(model.check_category(c).code) for c in codes])
    if department:
        m &= t.department == t.DEPARTMENT_CODES.index(model.check_department(department).code)
    return m


def _pct(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.round(100 * num / np.where(den > 0, den, 1), 2), np.nan)


def _group_quantiles(group: np.ndarray, values: np.ndarray, n_groups: int, qs) -> np.ndarray:
    """Per-group quantiles (linear interpolation, as numpy); NaN for empty groups."""
    order = np.lexsort((values, group))
    return _sorted_quantiles(group[order], values[order], n_groups, qs)


def _sorted_quantiles(g: np.ndarray, v: np.ndarray, n_groups: int, qs) -> np.ndarray:
    """Quantiles of values already sorted by (group, value)."""
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((len(qs), n_groups), np.nan)
    ok = counts > 0
    for k, q in enumerate(qs):
        pos = starts[ok] + q * (counts[ok] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts[ok] + counts[ok] - 1)
        frac = pos - lo
        out[k, ok] = v[lo] * (1 - frac) + v[hi] * frac
    return out


def _keys(t: CaseTable, atlas: Atlas, by: str) -> tuple[np.ndarray, np.ndarray]:
    """(group index per case, -1 = not in any group; group labels)."""
    if by == "department":
        return t.department, np.array(t.DEPARTMENT_CODES, dtype=object)
    if by == "category":
        return t.category, np.array(t.CATEGORY_CODES, dtype=object)
    level = Level.parse(by)
    per_grid = atlas.level_codes[level][:-1]
    labels, inv = np.unique(per_grid.astype(str), return_inverse=True)
    gi = np.where(t.grid >= 0, inv[np.maximum(t.grid, 0)], -1)
    return gi.astype(np.int64), labels.astype(object)


def group_stats(t: CaseTable, atlas: Atlas, by: str = "grid", start=None, end=None, *, at=None,
                category=None, department=None, within: str | None = None,
                ladder: model.SupervisionLadder = model.DEFAULT_LADDER) -> pd.DataFrame:
    """One row per group (every group of the level, including those with no cases)."""
    if by not in GROUPINGS:
        raise InvalidInputError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")
    m = _mask(t, start, end, category, department)
    key, labels = _keys(t, atlas, by)
    n = len(labels)
    if within:
        lo, hi = atlas.grid_positions(within)
        m &= (t.grid >= lo) & (t.grid < hi)
        if by not in ("department", "category"):
            keep = np.array([str(c).startswith(within) or within.startswith(str(c)) for c in labels])
        else:
            keep = np.ones(n, dtype=bool)
    else:
        keep = np.ones(n, dtype=bool)
    m &= key >= 0
    nf = len(t._FLAGS)
    combo = (key * (1 << nf) + t.state) if m.all() else (key[m] * (1 << nf) + t.state[m])
    per_state = np.bincount(combo, minlength=n << nf)[:n << nf].reshape(n, 1 << nf)
    bits = (np.arange(1 << nf)[:, None] >> np.arange(nf)) & 1
    flags = dict(zip(t._FLAGS, (per_state @ bits).T))

    def bc(flag=None):
        return per_state.sum(axis=1) if flag is None else flags[flag]

    cases, closed = bc(), bc("done")
    # open cases only need a colour (closed ones are not counted in open_red / open_yellow)
    open_rows = np.flatnonzero(m & t.open)
    col = t.colours(_at_seconds(at, end), ladder, open_rows)
    ko = key[open_rows]
    open_red = np.bincount(ko[col == 3], minlength=n)[:n]
    open_yellow = np.bincount(ko[col == 2], minlength=n)[:n]
    # quantiles: the rows already ordered by handling time, then a stable sort by group
    rows = t.by_handling[m[t.by_handling]]
    g = key[rows].astype(np.int32 if n > 32000 else np.int16)
    order = np.argsort(g, kind="stable")
    q = _sorted_quantiles(g[order], t.handled_h[rows][order], n, (0.5, 0.9))
    rated = bc("rated")
    df = pd.DataFrame({
        "cases": cases, "closed": closed, "closure_rate": _pct(closed, cases),
        "on_time_rate": _pct(bc("on_time"), bc("has_deadline")),
        "median_handling_h": np.round(q[0], 2), "p90_handling_h": np.round(q[1], 2),
        "rework_rate": _pct(bc("rework"), cases),
        "satisfaction": _pct(bc("satisfied"), rated), "dissatisfied": rated - bc("satisfied"),
        "open": bc("open"), "open_red": open_red, "open_yellow": open_yellow,
    }, index=pd.Index(labels, name="department" if by == "department" else
                      "category" if by == "category" else "code"))
    return df[keep]


def _at_seconds(at, end) -> int:
    # parse first: an empty parameter (``?to=``) means "not given", like a missing one
    when = parse_time(at) or parse_time(end, end=True) or datetime.now(timezone.utc)
    return int(when.timestamp())


def summary(t: CaseTable, start=None, end=None) -> dict:
    """District totals with the seed report's keys (rates in percent)."""
    m = _mask(t, start, end)
    done = t.done[m]
    disp = t.category[m] == t.CATEGORY_CODES.index("dispute")
    rated = done & (t.satisfaction[m] > 0)
    ok = rated & (t.satisfaction[m] >= model.SATISFIED_FROM)
    has_dl = done & (t.deadline[m] != NONE) & (t.closed[m] != NONE)
    on_time = has_dl & (t.closed[m] <= t.deadline[m])
    n, c = int(m.sum()), int(done.sum())

    def pct(a, b):
        return None if b == 0 else round(100.0 * a / b, 2)

    return {"cases": n, "closed": c, "closure_rate": pct(c, n), "disputes": int(disp.sum()),
            "disputes_closed": int((disp & done).sum()),
            "disputes_closure_rate": pct(int((disp & done).sum()), int(disp.sum())),
            "satisfaction": pct(int(ok.sum()), int(rated.sum())), "rated": int(rated.sum()),
            "on_time_rate": pct(int(on_time.sum()), int(has_dl.sum())),
            "cancelled": int(t.cancelled[m].sum()), "open": int((~done & ~t.cancelled[m]).sum())}


def department_assessment(t: CaseTable, atlas: Atlas, start=None, end=None,
                          min_satisfaction: float = ADVANCED_MIN_SATISFACTION) -> pd.DataFrame:
    """Per department: the figures plus ``eligible_advanced`` (satisfaction >= the line)."""
    df = group_stats(t, atlas, "department", start, end)
    df = df[df["cases"] > 0].copy()
    df.insert(0, "name", [model.DEPARTMENTS[d].name_zh for d in df.index])
    df["eligible_advanced"] = df["satisfaction"].fillna(-1) >= min_satisfaction
    df["reason"] = np.where(df["eligible_advanced"], "",
                            [f"satisfaction {s:.2f} % is below {min_satisfaction:g} %" if s == s else
                             "no rated closed cases" for s in df["satisfaction"]])
    return df.sort_values("satisfaction")


#: metrics where lower is better (rankings sort ascending)
LOWER_IS_BETTER = frozenset({"median_handling_h", "p90_handling_h", "rework_rate", "dissatisfied", "open",
                             "open_red", "open_yellow"})


def ranking(table: pd.DataFrame, metric: str, min_cases: int = 30, limit: int | None = None) -> pd.DataFrame:
    """Rank groups by a metric, best first, among groups with at least ``min_cases`` cases."""
    if metric not in METRICS or metric not in table.columns:
        raise InvalidInputError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if min_cases < 1:
        raise InvalidInputError("min_cases must be at least 1, so one fast case cannot top a table")
    r = table[(table["cases"] >= min_cases) & table[metric].notna()].copy()
    asc = metric in LOWER_IS_BETTER
    r = r.sort_values([metric, "cases"], ascending=[asc, False], kind="stable")
    r.insert(0, "rank", r[metric].rank(method="min", ascending=asc).astype(int))
    return r.head(limit) if limit else r


# -- filtering (GET /incidents, exports) ------------------------------------------------------
def select(t: CaseTable, atlas: Atlas, *, bbox=None, code: str | None = None, category=None, status=None,
           colour=None, department=None, start=None, end=None, at=None, priority=None,
           ladder: model.SupervisionLadder = model.DEFAULT_LADDER) -> tuple[np.ndarray, np.ndarray]:
    """Rows matching every given filter, newest first, and every case's colour index at ``at``.

    ``bbox`` is (min lon, min lat, max lon, max lat) in the storage CRS; ``code``
    a division of any level; ``category``/``status``/``colour``/``department``
    one value or a list; the time range applies to the creation time.
    """
    m = _mask(t, start, end, None, None)
    if category:
        cats = [category] if isinstance(category, str) else list(category)
        m &= np.isin(t.category, [t.CATEGORY_CODES.index(model.check_category(c).code) for c in cats])
    if department:
        deps = [department] if isinstance(department, str) else list(department)
        m &= np.isin(t.department, [t.DEPARTMENT_CODES.index(model.check_department(d).code) for d in deps])
    if priority:
        ps = [priority] if isinstance(priority, str) else list(priority)
        m &= np.isin(t.priority, [t.PRIORITY_CODES.index(model.parse_enum(model.Priority, p, "priority").value)
                                  for p in ps])
    if status:
        sts = [status] if isinstance(status, str) else list(status)
        m &= np.isin(t.status, [model.parse_enum(model.Status, s, "status").value for s in sts])
    if code:
        lo, hi = atlas.grid_positions(code)
        m &= (t.grid >= lo) & (t.grid < hi)
    if bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        if not (x0 <= x1 and y0 <= y1) or not np.isfinite([x0, y0, x1, y1]).all():
            raise InvalidInputError("bbox must be min lon, min lat, max lon, max lat with min <= max")
        m &= (t.lon >= x0) & (t.lon <= x1) & (t.lat >= y0) & (t.lat <= y1)
    at_s = _at_seconds(at, None)
    col = t.colours(at_s, ladder)
    if colour:
        cols = [colour] if isinstance(colour, str) else list(colour)
        m &= np.isin(col, [COLOUR_NAMES.index(model.parse_enum(model.Colour, c, "colour").value) for c in cols])
    rows = np.flatnonzero(m)
    rows = rows[np.argsort(-t.created[rows], kind="stable")]
    return rows, col
