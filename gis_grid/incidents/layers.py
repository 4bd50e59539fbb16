"""Incident map data: server-binned density, classified response values per division.

Nothing raw is shipped: cases are binned on the server. The pages that draw these
(the /map viewer's overlays, the standalone incident page) are in ``web``.

- **Density**: cases counted per 150 m square bin (EPSG:4548) and per month (China
  Standard Time): the bin centres once and, per month, the sparse (bin, count) pairs; or, as
  an option, a rate per bin: cases per 100 households of their grid, or cases per km².
- **Response choropleths** per base grid and per community: closure rate,
  on-time rate, median handling time, satisfaction and open red / yellow
  cases, classified with mapclassify, the scheme chosen per indicator (see
  :data:`CHORO_METRICS`: natural breaks, quantiles, fixed breaks at the 90 % line,
  head/tail breaks), with a legend naming it. Colours run from light (good) to
  dark red (bad) whichever way the metric points.
- **Warnings**: grids flagged by :mod:`gis_grid.incidents.early_warning` (its ``warnings_layer``).
"""
from __future__ import annotations

import warnings

import mapclassify
import numpy as np
import pandas as pd

from .. import crs as crs_mod
from .. import layers as grid_layers
from ..atlas import Atlas
from ..errors import InvalidInputError
from ..hierarchy import Level
from ..stats import division_area_m2
from . import aggregate

BIN_M = 150.0
#: metric -> (title, higher is better, classification scheme). The scheme is chosen per indicator:
#: - closure and on-time rates bunch just under 100 % with a thin tail of weak grids. Natural breaks
#:   (Fisher-Jenks, the optimal variance-minimising breaks) give that tail classes of its own; quantiles
#:   would put it in one fifth together with ordinary grids and spend four classes on 97-100 %.
#: - median handling time is continuous and right-skewed with no policy threshold: quantiles rank the
#:   divisions into fifths (slowest 20 % ...), which is the comparison the command centre makes.
#: - satisfaction has a policy line: below 90 % a department is not eligible for "advanced" (the seed's
#:   rule). Fixed breaks at 90 / 95 / 99 / 100 keep that line visible and comparable across months and
#:   categories; data-driven breaks would move it (and nearly every grid is at 100 %).
#: - open red / yellow cases are counts, mostly zero with a few busy grids (heavy-tailed): head/tail breaks
#:   (Jiang 2013) split repeatedly at the mean of the tail, so the classes follow the hot spots.
#: - cases per 100 households and per km² put a busy city grid and a quiet village on one footing
#:   (raw counts only map where people live); both are right-skewed rates: quantiles rank them in fifths.
CHORO_METRICS = {
    "cases_per_100hh": ("每百户案件 cases per 100 households", False, "quantiles"),
    "cases_per_km2": ("每平方公里案件 cases per km²", False, "quantiles"),
    "closure_rate": ("结案率 closure rate (%)", True, "natural_breaks"),
    "on_time_rate": ("按期率 on-time rate (%)", True, "natural_breaks"),
    "median_handling_h": ("处置时长中位数 median handling (h)", False, "quantiles"),
    "satisfaction": ("满意率 satisfaction (%)", True, "policy_breaks"),
    "open_red": ("红色督办 open red cases", False, "head_tail"),
    "open_yellow": ("黄色督办 open yellow cases", False, "head_tail"),
}
SCHEME_NAMES = {"natural_breaks": "natural breaks (Fisher-Jenks)", "quantiles": "quantiles",
                "policy_breaks": "fixed breaks at the 90 % line", "head_tail": "head/tail breaks"}
SATISFACTION_BREAKS = (90.0, 95.0, 99.0, 100.0)
PALETTE = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
NO_DATA = "#d9d9d9"


#: Leaflet.heat colour ramp (position in [0, 1] -> colour); blue to red, none of it is a choropleth class
HEAT_GRADIENT = [(0.2, "#2c7bb6"), (0.4, "#00a6ca"), (0.6, "#90eb9d"), (0.8, "#f9d057"), (1.0, "#d7191c")]
#: the scale's top is this percentile of all bin values, so one freak bin does not fade every other
HEAT_SCALE_PERCENTILE = 99.5
#: what a heat bin's value counts: rate -> (Chinese unit, English unit). Raw counts map where people live;
#: per 100 households weighs each case by 100 / the households of its grid (a busy city bin and a village
#: on one footing); per km² divides by the bin's area, so the value is a density whatever the bin size.
HEAT_RATES = {"count": ("件", "cases"),
              "per_100hh": ("每百户件数", "cases per 100 households"),
              "per_km2": ("件/平方公里", "cases per km²")}


def heat_rate(rate: str | None) -> str:
    """``rate`` checked against :data:`HEAT_RATES` (None: raw counts)."""
    rate = rate or "count"
    if rate not in HEAT_RATES:
        raise InvalidInputError(f"unknown heat rate {rate!r}; use one of {', '.join(HEAT_RATES)}")
    return rate


def _nice_ceil(x: float) -> float:
    """``x`` rounded up to two significant digits (a legend's top reads 4.5, not 4.4731)."""
    e = 10.0 ** (np.floor(np.log10(x)) - 1)
    return float(np.round(np.ceil(x / e - 1e-9) * e, 10))


def heat_scale(values: np.ndarray, integer: bool = True) -> float:
    """The bin value that reaches the top colour, fixed for every frame drawn with it."""
    values = np.asarray(values, dtype=float)
    top = float(np.percentile(values, HEAT_SCALE_PERCENTILE)) if len(values) else 0.0
    if integer:
        return max(1, int(np.ceil(top)))
    return _nice_ceil(top) if top > 0 else 1.0


def heat_legend(top: float) -> list[dict]:
    """Legend entries for a heat scale: a bin drawn alone takes colour at sqrt(value / top)."""
    entries = []
    for pos, colour in HEAT_GRADIENT:
        n = pos * pos * top
        label = f"≥ {top:g}" if pos >= 1.0 else f"{n:.2g}" if n < 1 else f"{n:.1f}" if n < 10 else f"{n:.0f}"
        entries.append({"label": label, "colour": colour, "value": round(n, 4)})
    return entries


def case_weights(t: aggregate.CaseTable, idx: np.ndarray, rate: str, atlas: Atlas | None = None,
                 bin_m: float = BIN_M) -> np.ndarray:
    """What each case ``idx`` adds to its bin in ``rate``'s unit (0: it counts for nothing there).

    per_100hh: 100 / households of the case's grid; a case outside every grid, or in a grid with no
    households, weighs 0 (there is no rate to add to). per_km2: 1 / the bin's area in km².
    """
    rate = heat_rate(rate)
    if rate == "count":
        return np.ones(len(idx))
    if rate == "per_km2":
        return np.full(len(idx), 1e6 / (bin_m * bin_m))
    if atlas is None:
        raise InvalidInputError("rate per_100hh needs the atlas (households per grid)")
    hh = denominators(atlas, "grid")["households"].reindex(
        pd.Index(atlas.grid_codes).astype(str), fill_value=0).to_numpy(dtype=float)
    g = t.grid[idx]
    h = np.where(g >= 0, hh[np.clip(g, 0, None)], 0.0) if len(hh) else np.zeros(len(idx))
    with np.errstate(divide="ignore"):
        return np.where(h > 0, 100.0 / h, 0.0)


def heat_bins(t: aggregate.CaseTable, mask: np.ndarray, bin_m: float = BIN_M, rate: str = "count",
              atlas: Atlas | None = None) -> dict:
    """Sparse per-month bin values (bin centres in lat, lon) in ``rate``'s unit, with fixed scales.

    ``counts`` holds per month the (bins, values) pairs: cases, or with a rate the summed
    :func:`case_weights`. ``month_cases`` counts the cases per month whatever the rate, ``unweighted``
    the cases a rate leaves out (per_100hh: grids without households). ``scale.month`` (one month
    shown) and ``scale.all`` (all months summed) are the values that reach the top colour: the same
    for every month, so months compare. ``legend`` holds the stops of each scale, ``unit`` what they
    count, ``gradient`` the colour ramp the map draws with.
    """
    rate = heat_rate(rate)
    idx = np.flatnonzero(mask)
    integer = rate == "count"
    fixed = {"gradient": [list(g) for g in HEAT_GRADIENT], "rate": rate,
             "unit": {"zh": HEAT_RATES[rate][0], "en": HEAT_RATES[rate][1]}}
    w = case_weights(t, idx, rate, atlas, bin_m)
    unweighted = int((w == 0).sum())
    idx, w = idx[w > 0], w[w > 0]
    if not len(idx):
        one = heat_scale([], integer)
        return {"bin_m": bin_m, "centres": [], "months": [], "counts": [], "month_cases": [],
                "unweighted": unweighted, **fixed,
                "scale": {"month": one, "all": one}, "legend": {"month": heat_legend(one), "all": heat_legend(one)}}
    x, y = crs_mod.to_metric(t.lon[idx], t.lat[idx])
    ix, iy = np.floor(np.asarray(x) / bin_m).astype(np.int64), np.floor(np.asarray(y) / bin_m).astype(np.int64)
    key = ix * 1_000_003 + iy
    ukey, b = np.unique(key, return_inverse=True)
    cx, cy = (ukey // 1_000_003 + 0.5) * bin_m, (ukey % 1_000_003 + 0.5) * bin_m
    lon, lat = crs_mod.from_metric(cx, cy)
    local = (t.created[idx] + 8 * 3600).astype("datetime64[s]").astype("datetime64[M]")
    months, m = np.unique(local, return_inverse=True)
    pair = m.astype(np.int64) * len(ukey) + b
    up, inv = np.unique(pair, return_inverse=True)
    n = np.bincount(inv, weights=w)
    n = n.round().astype(np.int64) if integer else np.round(n, 4)
    mm, bb = up // len(ukey), up % len(ukey)
    counts = []
    for k in range(len(months)):
        s = mm == k
        counts.append([bb[s].tolist(), n[s].tolist()])
    scale = {"month": heat_scale(n, integer), "all": heat_scale(np.bincount(b, weights=w), integer)}
    return {"bin_m": bin_m, "centres": np.round(np.column_stack([lat, lon]), 5).tolist(),
            "months": [str(v) for v in months], "counts": counts,
            "month_cases": np.bincount(m, minlength=len(months)).tolist(), "unweighted": unweighted, **fixed,
            "scale": scale, "legend": {k: heat_legend(v) for k, v in scale.items()}}


def fisher_jenks_breaks(values, k: int) -> list[float]:
    """Fisher-Jenks natural breaks (the classes with the least within-class squared deviation).

    The same optimum as ``mapclassify.FisherJenks``, whose pure-Python loop (numba is not a
    dependency) takes about 1.2 s for the 445 grids; here each class count is one vectorised
    step over an n x n cost matrix (~5 ms for 445). For the division levels only (n in the
    hundreds): memory grows with n^2.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    k = int(min(k, len(np.unique(x))))
    if k <= 1:
        return [float(x[-1])]
    xc = x - x.mean()  # centred: the prefix sums of squares then lose no precision to cancellation
    s1, s2 = np.concatenate([[0.0], np.cumsum(xc)]), np.concatenate([[0.0], np.cumsum(xc * xc)])
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.maximum(j - i + 1, 1)
    # ssd[i, j]: squared deviation of x[i..j] from its mean; inf where the segment is empty (i > j)
    ssd = np.where(i <= j, (s2[j + 1] - s2[i]) - (s1[j + 1] - s1[i]) ** 2 / m, np.inf)
    cost = ssd[0].copy()               # one class over x[0..j]
    start = []                         # per class count c >= 2: where the last class starts, per end j
    for _ in range(2, k + 1):
        prev = np.concatenate([[np.inf], cost[:-1]])   # the earlier classes end at i - 1
        total = prev[:, None] + ssd                     # [i, j]
        best = np.argmin(total, axis=0)
        cost = total[best, np.arange(n)]
        start.append(best)
    ends, j_end = [n - 1], n - 1
    for best in reversed(start):
        j_end = int(best[j_end]) - 1
        ends.append(j_end)
    return [float(x[e]) for e in reversed(ends)]


def _scheme(v: np.ndarray, scheme: str, k: int):
    """A fitted mapclassify classifier for the finite values ``v`` (at least two distinct)."""
    with warnings.catch_warnings():  # "not enough unique values": k shrinks, which is what we want
        warnings.simplefilter("ignore")
        if scheme == "quantiles":
            return mapclassify.Quantiles(v, k=k)
        if scheme == "natural_breaks":
            return mapclassify.UserDefined(v, bins=fisher_jenks_breaks(v, k))
        if scheme == "policy_breaks":
            return mapclassify.UserDefined(v, bins=[b for b in SATISFACTION_BREAKS if b < v.max()] + [v.max()])
        if scheme == "head_tail":
            return mapclassify.HeadTailBreaks(v)
    raise InvalidInputError(f"unknown classification scheme {scheme!r}; use one of {', '.join(SCHEME_NAMES)}")


def classify(values: np.ndarray, higher_is_better: bool, k: int = 5, scheme: str = "quantiles",
             integer: bool = False) -> tuple[np.ndarray, list[dict]]:
    """Class index per value (-1: no data) and legend entries, classified by mapclassify ``scheme``.

    At most ``k`` classes (head/tail breaks decide their own number), fewer when there are fewer
    distinct values; ``integer`` labels classes of counts by the whole numbers they hold. All values
    equal: one class in the lightest colour, labelled "no variation" (``label_zh`` in Chinese).
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    cls = np.full(len(v), -1, dtype=int)
    if not ok.any():
        return cls, [{"label": "no cases", "colour": NO_DATA}]
    uniq = np.unique(v[ok])
    kk = int(min(k, len(uniq)))
    if kk <= 1:
        # every division alike (say no open yellow cases anywhere): nothing stands out, so nothing
        # is drawn in the bad end's colour; one lightest class that says so
        cls[ok] = 0
        legend = [{"label": f"no variation: all {uniq[0]:g}", "label_zh": f"无差异：全部为 {uniq[0]:g}",
                   "colour": PALETTE[0], "count": int(ok.sum())}]
        if (~ok).any():
            legend.append({"label": "no cases", "colour": NO_DATA, "count": int((~ok).sum())})
        return cls, legend
    c = _scheme(v[ok], scheme, kk)
    cls[ok] = c.yb
    bins = [float(b) for b in c.bins]
    if len(bins) > len(PALETTE):  # head/tail breaks on a very long tail: merge the top classes
        cls[cls >= len(PALETTE)] = len(PALETTE) - 1
        bins = bins[:len(PALETTE) - 1] + [bins[-1]]
    n = len(bins)
    # colour: the bad end is dark red
    pal = PALETTE[-n:] if n < len(PALETTE) else PALETTE
    colours = pal[::-1] if higher_is_better else pal
    lo = float(v[ok].min())
    legend = []
    for i, hi in enumerate(bins):
        a = lo if i == 0 else bins[i - 1]
        if integer:  # counts: the whole numbers in (a, hi]
            first, last = (int(np.ceil(a)) if i == 0 else int(np.floor(a)) + 1), int(np.floor(hi))
            label = f"{first}" if first == last else f"{first} – {last}"
        elif i == 0:  # fixed breaks can lie below every value: the first class is then "up to" its break
            label = f"{a:g} – {hi:g}" if a <= hi else f"≤ {hi:g}"
        else:
            label = f"> {a:g} – {hi:g}"
        legend.append({"label": label, "colour": colours[i], "count": int((cls == i).sum())})
    if (~ok).any():
        legend.append({"label": "no cases", "colour": NO_DATA, "count": int((~ok).sum())})
    return cls, legend


def denominators(atlas: Atlas, level: str) -> pd.DataFrame:
    """Households and area (km²) per division of ``level`` (index: code), memoised per snapshot."""
    lvl = Level.parse(level)

    def build() -> pd.DataFrame:
        d = atlas.divisions[atlas.divisions["level"] == lvl.value]
        width = len(str(d["code"].iloc[0])) if len(d) else 15
        # codes are hierarchical: a household's grid code starts with every division above it
        hh = atlas.households["grid_code"].astype(str).str[:width].value_counts()
        area = [division_area_m2(r) / 1e6 for _, r in d.iterrows()]
        return pd.DataFrame({"households": hh.reindex(d["code"].astype(str), fill_value=0).to_numpy(),
                             "area_km2": area}, index=pd.Index(d["code"].astype(str), name="code"))
    return atlas.memo.get(("incidents.denominators", lvl.value), build)


def _rates(stats: pd.DataFrame, den: pd.DataFrame) -> dict[str, np.ndarray]:
    cases = stats["cases"].to_numpy(dtype=float)
    d = den.reindex(stats.index.astype(str))
    hh, km2 = d["households"].to_numpy(dtype=float), d["area_km2"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):   # no households / no area: no data, not infinity
        return {"cases_per_100hh": np.where(hh > 0, np.round(100 * cases / hh, 2), np.nan),
                "cases_per_km2": np.where(km2 > 0, np.round(cases / km2, 2), np.nan)}


def choropleth_values(t: aggregate.CaseTable, atlas: Atlas, level: str, start=None, end=None, category=None,
                      at=None, within: str | None = None) -> dict:
    """Per division of ``level``: each metric's value and class colour, and one legend per metric.

    No geometry: the viewer draws these on the grid layers it already holds.
    ``{"level", "legends": {metric: {title, scheme, entries}}, "values": {code: {cases, metric: value,
    "c_" + metric: colour}}}``.
    """
    stats = aggregate.group_stats(t, atlas, level, start, end, category=category, at=at, within=within)
    legends, values = {}, {str(c): {"cases": int(n)} for c, n in zip(stats.index, stats["cases"])}
    rates = _rates(stats, denominators(atlas, level))
    for metric, (title, good_high, scheme) in CHORO_METRICS.items():
        vals = rates[metric] if metric in rates else stats[metric].to_numpy(dtype=float)
        if metric.startswith("open_"):
            vals = np.where(stats["cases"].to_numpy() > 0, vals, np.nan)
        cls, legend = classify(vals, good_high, scheme=scheme, integer=metric.startswith("open_"))
        legends[metric] = {"title": title, "scheme": SCHEME_NAMES[scheme], "entries": legend}
        colours = [e["colour"] for e in legend if e["label"] != "no cases"]
        for code, v, c in zip(stats.index, vals, cls):
            d = values[str(code)]
            d[metric] = None if v != v else float(v)
            d["c_" + metric] = colours[c] if c >= 0 else NO_DATA
    return {"level": level, "legends": legends, "values": values}


def choropleth_layer(t: aggregate.CaseTable, atlas: Atlas, level: str, start=None, end=None, category=None,
                     at=None, within: str | None = None) -> dict:
    """:func:`choropleth_values` joined to the level's (simplified) polygons, for a page of its own.

    ``within``: only the divisions under (or containing) that code, as in group_stats.
    """
    cv = choropleth_values(t, atlas, level, start, end, category, at, within=within)
    fc = grid_layers.level_features(atlas, Level.parse(level))
    if within:
        fc = {**fc, "features": [f for f in fc["features"] if f["properties"]["code"] in cv["values"]]}
    empty = {"cases": 0, **{m: None for m in CHORO_METRICS}, **{"c_" + m: NO_DATA for m in CHORO_METRICS}}
    for f in fc["features"]:
        p = f["properties"]
        p.pop("label", None)
        p.update(cv["values"].get(p["code"], empty))
    return {"geojson": fc, "legends": cv["legends"]}
