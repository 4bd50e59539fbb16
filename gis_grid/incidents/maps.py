"""Heatmaps of incidents and choropleths of responses, as one light HTML page.

Nothing raw is shipped: cases are binned on the server.

- **Density heatmap**: cases counted per 150 m square bin (EPSG:4548) and per
  month (China Standard Time); the page holds the bin centres once and, per
  month, the sparse (bin, count) pairs. A month slider (or "all months")
  re-weights Leaflet.heat (vendored, no CDN) in the browser.
- **Response choropleths** per base grid and per community: closure rate,
  on-time rate, median handling time, satisfaction and open red / yellow
  cases, classified with mapclassify, the scheme chosen per indicator (see
  :data:`CHORO_METRICS`: natural breaks, quantiles, fixed breaks at the 90 % line,
  head/tail breaks), with a legend naming it. Colours run from light (good) to
  dark red (bad) whichever way the metric points.
- **Warnings** (optional): grids flagged by :mod:`gis_grid.incidents.early_warning`.

:func:`incident_page` returns the HTML; with ``asset_prefix=None`` the Leaflet
and Leaflet.heat sources are inlined, so the file works offline on its own
(``python -m gis_grid.incidents.maps --layer heatmap -o FILE.html``).
"""
from __future__ import annotations

import argparse
import html as html_mod
import json
import sys
import warnings
from pathlib import Path

import mapclassify
import numpy as np

from .. import crs as crs_mod
from .. import layers as grid_layers
from ..atlas import Atlas
from ..errors import InvalidInputError
from ..hierarchy import Level
from . import aggregate

BIN_M = 150.0
LAYERS = ("heatmap", "choropleth", "warnings", "all")
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
CHORO_METRICS = {
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
STATIC_DIR = Path(__file__).resolve().parents[2] / "api" / "static"


def heat_bins(t: aggregate.CaseTable, mask: np.ndarray, bin_m: float = BIN_M) -> dict:
    """Sparse per-month counts on square metric bins (bin centres in lat, lon)."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return {"bin_m": bin_m, "centres": [], "months": [], "counts": []}
    x, y = crs_mod.to_metric(t.lon[idx], t.lat[idx])
    ix, iy = np.floor(np.asarray(x) / bin_m).astype(np.int64), np.floor(np.asarray(y) / bin_m).astype(np.int64)
    key = ix * 1_000_003 + iy
    ukey, b = np.unique(key, return_inverse=True)
    cx, cy = (ukey // 1_000_003 + 0.5) * bin_m, (ukey % 1_000_003 + 0.5) * bin_m
    lon, lat = crs_mod.from_metric(cx, cy)
    local = (t.created[idx] + 8 * 3600).astype("datetime64[s]").astype("datetime64[M]")
    months, m = np.unique(local, return_inverse=True)
    pair = m.astype(np.int64) * len(ukey) + b
    up, n = np.unique(pair, return_counts=True)
    mm, bb = up // len(ukey), up % len(ukey)
    counts = []
    for k in range(len(months)):
        s = mm == k
        counts.append([bb[s].tolist(), n[s].tolist()])
    return {"bin_m": bin_m, "centres": np.round(np.column_stack([lat, lon]), 5).tolist(),
            "months": [str(v) for v in months], "counts": counts}


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
    distinct values; ``integer`` labels classes of counts by the whole numbers they hold.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    cls = np.full(len(v), -1, dtype=int)
    if not ok.any():
        return cls, [{"label": "no cases", "colour": NO_DATA}]
    uniq = np.unique(v[ok])
    kk = int(min(k, len(uniq)))
    if kk <= 1:
        cls[ok] = 0
        bins = [float(uniq[0])]
    else:
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


def choropleth_values(t: aggregate.CaseTable, atlas: Atlas, level: str, start=None, end=None, category=None,
                      at=None) -> dict:
    """Per division of ``level``: each metric's value and class colour, and one legend per metric.

    No geometry: the viewer draws these on the grid layers it already holds.
    ``{"level", "legends": {metric: {title, scheme, entries}}, "values": {code: {cases, metric: value,
    "c_" + metric: colour}}}``.
    """
    stats = aggregate.group_stats(t, atlas, level, start, end, category=category, at=at)
    legends, values = {}, {str(c): {"cases": int(n)} for c, n in zip(stats.index, stats["cases"])}
    for metric, (title, good_high, scheme) in CHORO_METRICS.items():
        vals = stats[metric].to_numpy(dtype=float)
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
                     at=None) -> dict:
    """:func:`choropleth_values` joined to the level's (simplified) polygons, for a page of its own."""
    cv = choropleth_values(t, atlas, level, start, end, category, at)
    fc = grid_layers.level_features(atlas, Level.parse(level))
    empty = {"cases": 0, **{m: None for m in CHORO_METRICS}, **{"c_" + m: NO_DATA for m in CHORO_METRICS}}
    for f in fc["features"]:
        p = f["properties"]
        p.pop("label", None)
        p.update(cv["values"].get(p["code"], empty))
    return {"geojson": fc, "legends": cv["legends"]}


def _asset(prefix: str | None, rel: str, kind: str) -> str:
    if prefix is None:
        text = (STATIC_DIR / rel).read_text(encoding="utf-8")
        return f"<style>{text}</style>" if kind == "css" else f"<script>{text}</script>"
    url = f"{prefix.rstrip('/')}/{rel}"
    return f'<link rel="stylesheet" href="{url}"/>' if kind == "css" else f'<script src="{url}"></script>'


def incident_page(atlas: Atlas, t: aggregate.CaseTable, *, layer: str = "all", category=None, start=None,
                  end=None, at=None, warnings: dict | None = None, asset_prefix: str | None = None,
                  title: str = "市中区 社情民意事件 热力图与处置分布") -> str:
    """The whole page as HTML (see the module docstring)."""
    if layer not in LAYERS:
        raise InvalidInputError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    cats = [category] if isinstance(category, str) else list(category or [])
    m = aggregate._mask(t, start, end, cats or None)
    data: dict = {"title": title, "filters": {"category": cats, "from": start, "to": end},
                  "cases": int(m.sum())}
    if layer in ("heatmap", "all"):
        data["heat"] = heat_bins(t, m)
    if layer in ("choropleth", "all"):
        data["choropleth"] = {lvl: choropleth_layer(t, atlas, lvl, start, end, cats or None, at)
                              for lvl in ("grid", "community")}
        data["metrics"] = {k: v[0] for k, v in CHORO_METRICS.items()}
    if layer in ("warnings", "all") and warnings is not None:
        data["warnings"] = warnings
    d = atlas.divisions[atlas.divisions["level"] == "district"]
    minx, miny, maxx, maxy = (float(v) for v in np.asarray(
        __import__("shapely").total_bounds(d["geometry"].to_numpy())))
    data["bounds"] = [[miny, minx], [maxy, maxx]]
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    head = "\n".join([_asset(asset_prefix, "leaflet/leaflet.css", "css"),
                      _asset(asset_prefix, "leaflet/leaflet.js", "js"),
                      _asset(asset_prefix, "leaflet-heat/leaflet-heat.js", "js")])
    return _PAGE.replace("__TITLE__", html_mod.escape(title)).replace("__HEAD__", head) \
        .replace("__DATA__", payload)


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"/><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1"/><link rel="icon" href="data:,"/>
__HEAD__
<style>
html,body,#map{height:100%;margin:0;font:13px/1.4 sans-serif}
#panel{position:absolute;top:10px;right:10px;z-index:1000;background:#fff;padding:8px 10px;border-radius:4px;
 box-shadow:0 1px 5px rgba(0,0,0,.4);max-width:280px}
#panel select,#panel input[type=range]{width:100%;margin:2px 0 6px}
#legend div{display:flex;align-items:center;gap:6px}
#legend i{display:inline-block;width:18px;height:12px;border:1px solid #888}
#month-label{font-weight:bold}
</style></head>
<body><div id="map"></div>
<div id="panel">
 <div><b id="title"></b></div><div id="summary"></div>
 <label>图层 Layer <select id="layer"></select></label>
 <div id="heat-controls"><label><input type="checkbox" id="all-months" checked/> 全部月份 all months</label>
  <input type="range" id="month" min="0" max="0" value="0"/><div id="month-label"></div></div>
 <div id="choro-controls"><label>指标 Metric <select id="metric"></select></label></div>
 <div id="legend"></div>
</div>
<script>
const D = __DATA__;
const map = L.map('map', {preferCanvas: true}).fitBounds(D.bounds);
document.getElementById('title').textContent = D.title;
document.getElementById('summary').textContent = D.cases + ' cases' +
  (D.filters.category.length ? ' · ' + D.filters.category.join(', ') : '') +
  (D.filters.from || D.filters.to ? ' · ' + (D.filters.from || '…') + ' – ' + (D.filters.to || '…') : '');
const layerSel = document.getElementById('layer'), metricSel = document.getElementById('metric');
const opts = [];
if (D.heat) opts.push(['heatmap', '事件热力 incident density']);
if (D.choropleth) { opts.push(['grid', '网格处置 response per base grid']);
                    opts.push(['community', '社区处置 response per community']); }
if (D.warnings) opts.push(['warnings', '超前预警 early warnings']);
for (const [v, t] of opts) layerSel.add(new Option(t, v));
if (D.metrics) for (const [k, t] of Object.entries(D.metrics)) metricSel.add(new Option(t, k));
let current = null, heat = null, geo = {}, warn = null;
const monthInput = document.getElementById('month'), allMonths = document.getElementById('all-months');
if (D.heat) { monthInput.max = Math.max(0, D.heat.months.length - 1); }

function heatPoints() {
  const h = D.heat, w = new Float64Array(h.centres.length);
  const months = allMonths.checked ? h.counts.map((_, i) => i) : [Number(monthInput.value)];
  for (const k of months) { const [b, n] = h.counts[k] || [[], []]; for (let i = 0; i < b.length; i++) w[b[i]] += n[i]; }
  let max = 0; for (const v of w) if (v > max) max = v;
  const pts = [];
  for (let i = 0; i < w.length; i++) if (w[i] > 0) pts.push([h.centres[i][0], h.centres[i][1], Math.sqrt(w[i] / max)]);
  document.getElementById('month-label').textContent = allMonths.checked ? '全部 all' : h.months[Number(monthInput.value)];
  return {pts, max};
}
function legend(entries, title) {
  const el = document.getElementById('legend'); el.innerHTML = '<b>' + title + '</b>';
  for (const e of entries) { const d = document.createElement('div');
    d.innerHTML = '<i style="background:' + e.colour + '"></i><span></span>';
    d.querySelector('span').textContent = e.label + (e.count !== undefined ? ' (' + e.count + ')' : '');
    el.appendChild(d); }
}
function show() {
  if (current) { map.removeLayer(current); current = null; }
  const v = layerSel.value;
  document.getElementById('heat-controls').style.display = v === 'heatmap' ? '' : 'none';
  document.getElementById('choro-controls').style.display = (v === 'grid' || v === 'community') ? '' : 'none';
  if (v === 'heatmap') {
    const {pts, max} = heatPoints();
    heat = L.heatLayer(pts, {radius: 14, blur: 12, maxZoom: 13, max: 0.7});
    current = heat.addTo(map);
    legend([{label: 'low', colour: '#0000ff'}, {label: 'high: ' + max + ' cases / ' + D.heat.bin_m + ' m bin',
            colour: '#ff0000'}], '事件密度 cases per bin');
  } else if (v === 'grid' || v === 'community') {
    const c = D.choropleth[v], m = metricSel.value;
    current = L.geoJSON(c.geojson, {
      style: f => ({color: '#555', weight: v === 'grid' ? 0.6 : 1, fillOpacity: 0.75,
                    fillColor: f.properties['c_' + m]}),
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name + ' ' + f.properties.code + '<br>' + m + ': ' +
                      (f.properties[m] === null ? '–' : f.properties[m]) + ' · ' + f.properties.cases + ' cases')
    }).addTo(map);
    legend(c.legends[m].entries, c.legends[m].title + ' · ' + c.legends[m].scheme);
  } else if (v === 'warnings') {
    const w = D.warnings;
    current = L.geoJSON(w.geojson, {
      style: f => ({color: '#333', weight: 0.6, fillOpacity: 0.7, fillColor: f.properties.colour}),
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name + ' ' + f.properties.code + '<br>' + f.properties.why)
    }).addTo(map);
    legend(w.legend, '超前预警 warnings at ' + w.at);
  }
  document.body.dataset.incidentLayer = v;
  document.body.dataset.ready = '1';
}
layerSel.onchange = show; metricSel.onchange = show;
monthInput.oninput = () => { allMonths.checked = false; show(); };
allMonths.onchange = show;
window.IncidentMap = {map, show, data: D, layer: () => current};
show();
</script></body></html>
"""


def main(argv=None, prog: str = "python -m gis_grid.incidents.maps") -> int:
    """``gis-grid map --layer heatmap -o FILE.html``: a standalone page (assets inlined)."""
    from ..store import open_store
    p = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    p.add_argument("--db", default=None)
    p.add_argument("--layer", choices=LAYERS, default="all")
    p.add_argument("--category", action="append")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--at", default=None, help="warnings / colours at this date (default: the range end)")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    with open_store(a.db) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
        warn = None
        if a.layer in ("warnings", "all"):
            from .early_warning import warnings_layer
            warn = warnings_layer(t, atlas, a.at or a.end or "2016-12-31")
        page = incident_page(atlas, t, layer=a.layer, category=a.category, start=a.start, end=a.end, at=a.at,
                             warnings=warn)
    Path(a.output).write_text(page, encoding="utf-8")
    print(json.dumps({"output": a.output, "bytes": len(page.encode("utf-8")), "layer": a.layer}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
