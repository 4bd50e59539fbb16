"""Early warning (超前预警研判): anomalous grids against their own baseline, and spatial hot spots.

At a date ``at`` every base grid has ``recent`` cases in the window
``[at - window_days, at)`` and ``baseline`` cases in the ``baseline_days``
before that window.

**Anomaly test (per grid, against its own baseline).** Under "nothing changed
here beyond what changed everywhere", a grid's recent cases, given its recent
plus baseline total ``n``, are binomial with the district-wide recent share
``p0 = K_recent / (K_recent + K_baseline)`` (the exact conditional test for
two Poisson rates; conditioning on the district share removes seasons and
trends that hit all grids alike). The one-sided p-value is
``P(X >= recent | n, p0)``. Benjamini-Hochberg adjusts for testing every grid
(``q``); a grid is flagged when ``q < alpha`` and it has at least
``min_recent`` recent cases.

**Hot spots (Getis-Ord Gi\\*) of the rise against each grid's own baseline.** Raw counts would
map city against countryside (a dense grid always has more cases), so the variable is each
grid's ``rise = (recent + 0.5) / (expected + 0.5)``: its recent cases over what its own baseline
predicts (1 = as usual; the 0.5 keeps empty grids finite and non-negative, as Gi\\* needs).
``esda.G_Local(star=True)`` with queen contiguity (grids sharing an edge or a vertex; the grid
itself included): ``gi_z`` is the standardised Gi\\*, ``gi_p`` its two-sided normal p-value (the
ArcGIS convention), ``gi_q`` that p-value Benjamini-Hochberg adjusted over all grids (false
discovery control, as for the anomalies) and ``gi_p_sim`` the pseudo p-value of 999 conditional
permutations (fixed seed). A hot spot is ``gi_z > 0`` with ``gi_q < 0.01`` / ``0.05`` / ``0.10``
(99 / 95 / 90 %); cold spots likewise with ``gi_z < 0``.
"""
from __future__ import annotations

import warnings as _warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..atlas import Atlas
from ..errors import InvalidInputError
from ..layers import level_features
from . import aggregate

PERMUTATIONS = 999
SEED = 370402


def queen_weights(atlas: Atlas):
    """Binary queen contiguity of the base grids (cached per atlas); Gi* adds each grid to itself."""
    def build():
        import geopandas as gpd
        from libpysal.weights import Queen
        gdf = gpd.GeoDataFrame({"code": atlas.grid_codes}, geometry=list(atlas.grid_geometries), crs=4490)
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            w = Queen.from_dataframe(gdf, use_index=False)
        w.transform = "b"
        return w
    return atlas.memo.get("warnings.queen_weights", build)


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values)."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def detect(t: aggregate.CaseTable, atlas: Atlas, at, *, window_days: int = 28, baseline_days: int = 364,
           alpha: float = 0.05, min_recent: int = 5, category=None) -> pd.DataFrame:
    """One row per base grid with the anomaly test and Gi* (see the module docstring)."""
    if window_days < 1 or baseline_days < window_days:
        raise InvalidInputError("window_days must be >= 1 and baseline_days >= window_days")
    if not 0 < alpha < 1:
        raise InvalidInputError("alpha must be between 0 and 1")
    at_t = aggregate.parse_time(at)
    if at_t is None:
        raise InvalidInputError("give the date to evaluate warnings at (at=YYYY-MM-DD)")
    if len(str(at).strip()) == 10:  # a bare date means the end of that day
        at_t = aggregate.parse_time(at, end=True)
    a = int(at_t.timestamp())
    w0 = a - window_days * 86400
    b0 = w0 - baseline_days * 86400
    n = len(atlas.grid_codes)
    m = (t.grid >= 0) & ~t.cancelled
    if category:
        m &= aggregate._mask(t, category=category)
    g, c = t.grid[m], t.created[m]
    recent = np.bincount(g[(c >= w0) & (c < a)], minlength=n)[:n]
    base = np.bincount(g[(c >= b0) & (c < w0)], minlength=n)[:n]
    K_r, K_b = int(recent.sum()), int(base.sum())
    if K_r + K_b == 0:
        raise InvalidInputError(f"no cases in the {baseline_days + window_days} days before {at}; "
                                "pick a date inside the history")
    p0 = K_r / (K_r + K_b)
    tot = recent + base
    expected = tot * p0
    pval = np.where(tot > 0, sps.binom.sf(recent - 1, tot, p0), 1.0)
    q = bh_adjust(pval)
    anomaly = (q < alpha) & (recent >= min_recent)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, recent / expected, np.nan)
    rise = (recent + 0.5) / (expected + 0.5)   # against the grid's own baseline, never raw counts

    from esda.getisord import G_Local
    w = queen_weights(atlas)
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        gi = G_Local(rise, w, star=True, permutations=PERMUTATIONS, seed=SEED, transform="B")
    gz, gp = np.asarray(gi.Zs, dtype=float), np.minimum(np.asarray(gi.p_norm, dtype=float) * 2, 1.0)  # two-sided
    gq = bh_adjust(gp)
    gsim = np.asarray(gi.p_sim, dtype=float)
    level = np.select([gq < 0.01, gq < 0.05, gq < 0.10], ["99%", "95%", "90%"], "")
    hot = np.where(level == "", "", np.where(gz > 0, "hot " + level, "cold " + level))

    names = dict(zip(atlas.divisions["code"], atlas.divisions["name"]))
    df = pd.DataFrame({
        "code": atlas.grid_codes, "name": [names.get(c, "") for c in atlas.grid_codes],
        "recent": recent, "baseline": base, "expected": np.round(expected, 2), "ratio": np.round(ratio, 2),
        "rise": np.round(rise, 3), "p_value": pval, "q_value": q, "anomaly": anomaly, "gi_z": np.round(gz, 3),
        "gi_p": gp, "gi_q": gq, "gi_p_sim": gsim, "hotspot": hot,
    })
    df.attrs.update(at=at_t.isoformat(), window_start=pd.Timestamp(w0, unit="s", tz="UTC").isoformat(),
                    baseline_start=pd.Timestamp(b0, unit="s", tz="UTC").isoformat(), district_recent=K_r,
                    district_baseline=K_b, p0=p0, alpha=alpha)
    return df


def flagged(df: pd.DataFrame) -> pd.DataFrame:
    """Grids with an anomaly or a significant (95 %+) hot spot, most significant first."""
    hot95 = df["hotspot"].isin(["hot 99%", "hot 95%"])
    out = df[df["anomaly"] | hot95].copy()
    out["why"] = [_why(r) for r in out.itertuples()]
    return out.sort_values(["anomaly", "q_value", "gi_q"], ascending=[False, True, True])


def _why(r) -> str:
    parts = []
    if r.anomaly:
        parts.append(f"{r.recent} cases in the window vs {r.expected:g} expected from its own baseline "
                     f"(x{r.ratio:g}, q={r.q_value:.2g})")
    if str(r.hotspot).startswith("hot"):
        parts.append(f"Gi* hot spot of the rise vs own baseline at {r.hotspot.split()[1]} "
                     f"(z={r.gi_z:g}, q={r.gi_q:.3g})")
    return "; ".join(parts)


def _why_zh(r) -> str:
    parts = []
    if r.anomaly:
        parts.append(f"近期 {r.recent} 件，按自身基线预期 {r.expected:g} 件（{r.ratio:g} 倍，q={r.q_value:.2g}）")
    if str(r.hotspot).startswith("hot"):
        parts.append(f"相对自身基线上升的 Gi* 热点 {r.hotspot.split()[1]}（z={r.gi_z:g}，q={r.gi_q:.3g}）")
    return "；".join(parts)


def _confine(df: pd.DataFrame, scope: str | None) -> pd.DataFrame:
    """Only the grids under ``scope``: the test is still the district's, the answer the key's."""
    if not scope:
        return df
    out = df[df["code"].astype(str).str.startswith(scope)]
    out.attrs.update(df.attrs)
    return out


def report(t: aggregate.CaseTable, atlas: Atlas, at, *, scope: str | None = None, **kw) -> dict:
    """JSON-ready warnings at ``at``: the method, the flagged grids, and counts.

    ``scope``: a confined key's scope; only its grids are listed and counted, and the district's
    totals (which would tell it about everyone else's cases) are left out.
    """
    df = _confine(detect(t, atlas, at, **kw), scope)
    f = flagged(df)
    out = {
        "at": df.attrs["at"], "window_start": df.attrs["window_start"], "baseline_start": df.attrs["baseline_start"],
        "method": {
            "anomaly": "one-sided exact conditional binomial test of the grid's recent cases given its recent + "
                       "baseline total, against the district-wide recent share; Benjamini-Hochberg q < alpha",
            "hotspot": f"Getis-Ord Gi* (esda.G_Local, star=True) of each grid's rise against its own baseline "
                       f"((recent + 0.5) / (expected + 0.5)), queen contiguity, Benjamini-Hochberg q on the "
                       f"normal p-values, {PERMUTATIONS} permutations",
            "alpha": df.attrs["alpha"], "district_share_recent": round(df.attrs["p0"], 5)},
        "counts": {"grids": int(len(df)), "anomalies": int(df["anomaly"].sum()),
                   "hot_spots_95": int(df["hotspot"].isin(["hot 99%", "hot 95%"]).sum()),
                   "cold_spots_95": int(df["hotspot"].isin(["cold 99%", "cold 95%"]).sum()),
                   "district_recent": df.attrs["district_recent"], "district_baseline": df.attrs["district_baseline"]},
        "items": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                  for r in f.to_dict(orient="records")],
    }
    if scope:
        out["scope"] = scope
        del out["method"]["district_share_recent"]
        c = out["counts"]
        del c["district_recent"], c["district_baseline"]
        c["recent"], c["baseline"] = int(df["recent"].sum()), int(df["baseline"].sum())
    return out


# purples, violet and blue: apart from the choropleths' yellow-orange-red (incidents.layers.PALETTE),
# so a warning drawn over a choropleth is never read as one of its classes
WARN_COLOURS = {"anomaly+hot": "#49006a", "anomaly": "#ae017e", "hot": "#807dba", "cold": "#2c7fb8"}
WARN_KINDS_ZH = {"anomaly+hot": "异常且热点", "anomaly": "高于自身基线", "hot": "上升热点", "cold": "下降冷点"}


def warnings_info(t: aggregate.CaseTable, atlas: Atlas, at, *, scope: str | None = None, **kw) -> dict:
    """The flagged grids without geometry: ``{"at", "legend", "items": {code: {"colour", "why"}}}``.

    Anomalies and Gi* hot spots (95 %+) as :func:`flagged` lists them, plus Gi* cold spots;
    the viewer colours its own grid polygons with these.
    """
    df = _confine(detect(t, atlas, at, **kw), scope)
    f = flagged(df)
    cold = df[df["hotspot"].isin(["cold 99%", "cold 95%"])].copy()
    cold["why"] = [f"Gi* cold spot of the fall vs own baseline at {h.split()[1]} (z={z:g})"
                   for h, z in zip(cold["hotspot"], cold["gi_z"])]
    items, ranked = {}, []
    for r in f.itertuples():
        kind = "anomaly+hot" if r.anomaly and r.hotspot.startswith("hot") else "anomaly" if r.anomaly else "hot"
        items[r.code] = {"colour": WARN_COLOURS[kind], "why": r.why, "why_zh": _why_zh(r), "kind": kind}
        # the list beside the map, most significant first (flagged() already orders it)
        ranked.append({"code": r.code, "name": r.name, "kind": kind, "recent": int(r.recent),
                       "expected": float(r.expected), "q": float(r.q_value if r.anomaly else r.gi_q)})
    for r in cold.itertuples():
        items.setdefault(r.code, {"colour": WARN_COLOURS["cold"], "why": r.why,
                                  "why_zh": f"相对自身基线下降的 Gi* 冷点 {r.hotspot.split()[1]}（z={r.gi_z:g}）",
                                  "kind": "cold"})
    legend = [{"label": "anomaly and hot spot", "colour": WARN_COLOURS["anomaly+hot"]},
              {"label": "anomaly vs own baseline", "colour": WARN_COLOURS["anomaly"]},
              {"label": "Gi* hot spot (95 %+)", "colour": WARN_COLOURS["hot"]},
              {"label": "Gi* cold spot (95 %+)", "colour": WARN_COLOURS["cold"]}]
    for e in legend:
        kind = next(k for k, c in WARN_COLOURS.items() if c == e["colour"])
        e["count"] = sum(1 for v in items.values() if v["kind"] == kind)
    # a bare date is evaluated at the end of that day (next midnight): label it with the day asked for
    day = str(at).strip()[:10] if len(str(at).strip()) == 10 else df.attrs["at"][:10]
    return {"at": day, "legend": legend, "items": items, "ranked": ranked,
            "category": kw.get("category"), "counts": {k: e["count"] for k, e in zip(WARN_COLOURS, legend)}}


def warnings_layer(t: aggregate.CaseTable, atlas: Atlas, at, *, scope: str | None = None, **kw) -> dict:
    """The flagged grids as GeoJSON with colours and a legend, for the incident map page."""
    info = warnings_info(t, atlas, at, scope=scope, **kw)
    fc = level_features(atlas, "grid")
    fc["features"] = [ft for ft in fc["features"] if ft["properties"]["code"] in info["items"]]
    for ft in fc["features"]:
        p = ft["properties"]
        p.pop("label", None)
        hit = info["items"][p["code"]]
        p["colour"], p["why"] = hit["colour"], hit["why"]
    return {"at": info["at"], "geojson": fc, "legend": info["legend"]}


def warm_up(atlas: Atlas, store) -> None:
    """What the first incident layer request would otherwise pay for (about 5 s on the demo): the case
    table, the grids' contiguity weights and esda's compiled Gi*. The API runs it as a snapshot warmer."""
    t = aggregate.case_table(store, atlas)
    queen_weights(atlas)
    if len(t):
        newest = np.datetime64(int(t.created.max()), "s").astype("datetime64[D]")
        detect(t, atlas, str(newest))
