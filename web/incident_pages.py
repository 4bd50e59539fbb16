"""The standalone incident page (GET /map/incidents, ``gis-grid map``): heatmap and
response choropleths as one light HTML page, drawn from :mod:`gis_grid.incidents.layers`.

A month slider (or "all months") re-weights Leaflet.heat (vendored, no CDN) in the browser;
choropleths per base grid and community carry a legend naming their classification scheme;
warnings (optional) come from :mod:`gis_grid.incidents.early_warning`.

:func:`incident_page` returns the HTML; with ``asset_prefix=None`` the Leaflet
and Leaflet.heat sources are inlined, so the file works offline on its own
(``gis-grid map --layer heatmap -o FILE.html``).
"""
from __future__ import annotations

import argparse
import html as html_mod
import json
import sys
from pathlib import Path

import shapely

from gis_grid import layers as level_layers
from gis_grid.atlas import Atlas
from gis_grid.errors import InvalidInputError
from gis_grid.incidents import aggregate, early_warning, layers
from gis_grid.store import open_store

from .assets import STATIC_DIR
from .i18n import LANG_CSS, LANG_JS, bi

LAYERS = ("heatmap", "choropleth", "warnings", "all")


def _asset(prefix: str | None, rel: str, kind: str) -> str:
    if prefix is None:
        text = (STATIC_DIR / rel).read_text(encoding="utf-8")
        return f"<style>{text}</style>" if kind == "css" else f"<script>{text}</script>"
    url = f"{prefix.rstrip('/')}/{rel}"
    return f'<link rel="stylesheet" href="{url}"/>' if kind == "css" else f'<script src="{url}"></script>'


def incident_page(atlas: Atlas, t: aggregate.CaseTable, *, layer: str = "all", category=None, start=None,
                  end=None, at=None, warnings: dict | None = None, asset_prefix: str | None = None,
                  scope: str | None = None,
                  title: str = "市中区 社情民意事件 热力图与处置分布",
                  title_en: str = "Shizhong District incidents: density and response") -> str:
    """The whole page as HTML (see the module docstring)."""
    if layer not in LAYERS:
        raise InvalidInputError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    cats = [category] if isinstance(category, str) else list(category or [])
    m = aggregate._mask(t, start, end, cats or None)
    data: dict = {"title": title, "titleEn": title_en, "filters": {"category": cats, "from": start, "to": end},
                  "cases": int(m.sum())}
    if layer in ("heatmap", "all"):
        data["heat"] = layers.heat_bins(t, m)
    if layer in ("choropleth", "all"):
        data["choropleth"] = {lvl: layers.choropleth_layer(t, atlas, lvl, start, end, cats or None, at, within=scope)
                              for lvl in ("grid", "community")}
        data["metrics"] = {k: v[0] for k, v in layers.CHORO_METRICS.items()}
    if layer in ("warnings", "all") and warnings is not None:
        data["warnings"] = warnings
    d = atlas.divisions[atlas.divisions["level"] == "district"]
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(d["geometry"].to_numpy()))
    data["bounds"] = [[miny, minx], [maxy, maxx]]
    # every page shows where it is: the district outline, the streets and their names
    data["outline"] = {lvl: level_layers.level_features(atlas, lvl) for lvl in ("district", "street")}
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    head = "\n".join([_asset(asset_prefix, LANG_CSS, "css"), _asset(asset_prefix, LANG_JS, "js"),
                      _asset(asset_prefix, "leaflet/leaflet.css", "css"),
                      _asset(asset_prefix, "leaflet/leaflet.js", "js"),
                      _asset(asset_prefix, "leaflet-heat/leaflet-heat.js", "js")])
    page = _PAGE
    for zh, en in _LABELS:  # the page's fixed labels, Chinese first
        page = page.replace(f"{{{{{zh}}}}}", bi(zh, en))
    return page.replace("__TITLE__", html_mod.escape(title)).replace("__HEAD__", head) \
        .replace("__DATA__", payload)


_LABELS = (("图层", "Layer"), ("全部月份", "all months"), ("指标", "Metric"))


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
#panel .row{display:flex;gap:6px;align-items:center}
#panel button{white-space:nowrap}
.street-label{background:rgba(255,255,255,.75);border:0;box-shadow:none;font-weight:bold;color:#333;padding:0 3px}
</style></head>
<body><div id="map"></div>
<div id="panel">
 <div><b id="title"></b></div><div id="summary"></div>
 <label>{{图层}} <select id="layer"></select></label>
 <div id="heat-controls"><label><input type="checkbox" id="all-months" checked/> {{全部月份}}</label>
  <div class="row"><button type="button" id="play"></button>
  <input type="range" id="month" min="0" max="0" value="0"/></div><div id="month-label"></div></div>
 <div id="choro-controls"><label>{{指标}} <select id="metric"></select></label></div>
 <div id="legend"></div>
</div>
<script>
const D = __DATA__;
const bi = GgLang.bi, biSplit = GgLang.biSplit;
// an <option> holds no markup: both languages in attributes, swapped by lang.js
function option(value, zhEn) {
  const [zh, en] = GgLang.split(zhEn), o = new Option(GgLang.t(zh, en), value);
  o.dataset.zh = zh; o.dataset.en = en; return o;
}
const LEGEND_ZH = {'no cases': '无案件', 'anomaly and hot spot': '异常且热点', 'anomaly vs own baseline': '高于自身基线',
                   'Gi* hot spot (95 %+)': 'Gi* 热点（95%+）', 'Gi* cold spot (95 %+)': 'Gi* 冷点（95%+）'};
const map = L.map('map', {preferCanvas: true}).fitBounds(D.bounds);
map.createPane('outline').style.zIndex = 450;  // above the heat canvas and the choropleths
map.getPane('outline').style.pointerEvents = 'none';
L.geoJSON(D.outline.street, {pane: 'outline', interactive: false, style: {color: '#444', weight: 1, fill: false, dashArray: '4 3'},
  onEachFeature: (f, l) => L.tooltip({permanent: true, direction: 'center', className: 'street-label', pane: 'outline'})
    .setLatLng([f.properties.label[1], f.properties.label[0]]).setContent(f.properties.name).addTo(map)}).addTo(map);
L.geoJSON(D.outline.district, {pane: 'outline', interactive: false, style: {color: '#222', weight: 2.5, fill: false}}).addTo(map);
document.getElementById('title').innerHTML = bi(D.title, D.titleEn);
const filters = (D.filters.category.length ? ' · ' + D.filters.category.join(', ') : '') +
  (D.filters.from || D.filters.to ? ' · ' + (D.filters.from || '…') + ' – ' + (D.filters.to || '…') : '');
document.getElementById('summary').innerHTML = bi(D.cases + ' 件' + filters, D.cases + ' cases' + filters);
const layerSel = document.getElementById('layer'), metricSel = document.getElementById('metric');
const opts = [];
if (D.heat) opts.push(['heatmap', '事件热力 incident density']);
if (D.choropleth) { opts.push(['grid', '网格处置 response per base grid']);
                    opts.push(['community', '社区处置 response per community']); }
if (D.warnings) opts.push(['warnings', '超前预警 early warnings']);
for (const [v, t] of opts) layerSel.add(option(v, t));
if (D.metrics) for (const [k, t] of Object.entries(D.metrics)) metricSel.add(option(k, t));
let current = null, heat = null, geo = {}, warn = null;
const monthInput = document.getElementById('month'), allMonths = document.getElementById('all-months');
if (D.heat) { monthInput.max = Math.max(0, D.heat.months.length - 1); }

function heatPoints() {
  const h = D.heat, w = new Float64Array(h.centres.length);
  const months = allMonths.checked ? h.counts.map((_, i) => i) : [Number(monthInput.value)];
  for (const k of months) { const [b, n] = h.counts[k] || [[], []]; for (let i = 0; i < b.length; i++) w[b[i]] += n[i]; }
  // a fixed top per view (one month, or all months), never this frame's own maximum: months compare
  const scale = allMonths.checked ? 'all' : 'month', top = h.scale[scale];
  const pts = [];
  for (let i = 0; i < w.length; i++) if (w[i] > 0) pts.push([h.centres[i][0], h.centres[i][1], Math.min(1, Math.sqrt(w[i] / top))]);
  const label = document.getElementById('month-label');
  if (allMonths.checked) label.innerHTML = bi('全部', 'all'); else label.textContent = h.months[Number(monthInput.value)];
  return {pts, scale};
}
// about 1.2 bins on the ground: no red blob at district zoom, no specks at street zoom
function heatRadius() {
  const mpp = 40075016.686 * Math.cos(map.getCenter().lat * Math.PI / 180) / Math.pow(2, map.getZoom() + 8);
  return Math.max(5, Math.min(25, Math.round(1.2 * D.heat.bin_m / mpp)));
}
map.on('zoomend', () => { if (heat && current === heat) { const r = heatRadius(); heat.setOptions({radius: r, blur: Math.round(r * 0.8)}); } });
let playing = null;
const playBtn = document.getElementById('play');
const playLabel = on => on ? '⏸ ' + bi('暂停', 'pause') : '▶ ' + bi('播放', 'play');
playBtn.innerHTML = playLabel(false);
function togglePlay() {
  if (playing) { clearInterval(playing); playing = null; playBtn.innerHTML = playLabel(false); return; }
  if (allMonths.checked || Number(monthInput.value) >= Number(monthInput.max)) monthInput.value = '0';
  allMonths.checked = false; playBtn.innerHTML = playLabel(true); show();
  playing = setInterval(() => {
    if (Number(monthInput.value) >= Number(monthInput.max)) { togglePlay(); return; }
    monthInput.value = String(Number(monthInput.value) + 1); show();
  }, 700);
}
playBtn.onclick = togglePlay;
// titleHtml is bilingual markup already; entry labels are numbers or the words in LEGEND_ZH
function legend(entries, titleHtml) {
  const el = document.getElementById('legend'); el.innerHTML = '<b>' + titleHtml + '</b>';
  for (const e of entries) { const d = document.createElement('div');
    d.innerHTML = '<i style="background:' + e.colour + '"></i><span></span>';
    const n = e.count !== undefined ? ' (' + e.count + ')' : '', span = d.querySelector('span');
    const zh = e.label_zh || LEGEND_ZH[e.label];
    if (zh) span.innerHTML = bi(zh + n, e.label + n); else span.textContent = e.label + n;
    el.appendChild(d); }
}
function show() {
  if (current) { map.removeLayer(current); current = null; }
  const v = layerSel.value;
  document.getElementById('heat-controls').style.display = v === 'heatmap' ? '' : 'none';
  document.getElementById('choro-controls').style.display = (v === 'grid' || v === 'community') ? '' : 'none';
  if (v === 'heatmap') {
    const {pts, scale} = heatPoints(), r = heatRadius();
    // maxZoom 0 turns the plugin's zoom damping off: the radius follows the ground instead
    heat = L.heatLayer(pts, {radius: r, blur: Math.round(r * 0.8), maxZoom: 0, max: 1, minOpacity: 0.05,
                             gradient: Object.fromEntries(D.heat.gradient)});
    current = heat.addTo(map);
    legend(D.heat.legend[scale], bi('事件密度 每 ' + D.heat.bin_m + ' 米格 · ' + (scale === 'all' ? '全部月份' : '每月') +
           '（固定色标）', 'cases per ' + D.heat.bin_m + ' m bin, ' + (scale === 'all' ? 'all months' : 'per month') +
           ' (fixed scale)'));
  } else if (v === 'grid' || v === 'community') {
    const c = D.choropleth[v], m = metricSel.value;
    current = L.geoJSON(c.geojson, {
      style: f => ({color: '#555', weight: v === 'grid' ? 0.6 : 1, fillOpacity: 0.75,
                    fillColor: f.properties['c_' + m]}),
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name + ' ' + f.properties.code + '<br>' + m + ': ' +
                      (f.properties[m] === null ? '–' : f.properties[m]) + ' · ' + bi(f.properties.cases + ' 件', f.properties.cases + ' cases'))
    }).addTo(map);
    legend(c.legends[m].entries, biSplit(c.legends[m].title) + ' · ' + c.legends[m].scheme);
  } else if (v === 'warnings') {
    const w = D.warnings;
    current = L.geoJSON(w.geojson, {
      style: f => ({color: '#333', weight: 0.6, fillOpacity: 0.7, fillColor: f.properties.colour}),
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name + ' ' + f.properties.code + '<br>' + f.properties.why)
    }).addTo(map);
    legend(w.legend, bi('超前预警 ' + w.at, 'warnings at ' + w.at));
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


def main(argv=None, prog: str = "python -m web.incident_pages") -> int:
    """``gis-grid map --layer heatmap -o FILE.html``: a standalone page (assets inlined)."""
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
            warn = early_warning.warnings_layer(t, atlas, a.at or a.end or "2016-12-31")
        page = incident_page(atlas, t, layer=a.layer, category=a.category, start=a.start, end=a.end, at=a.at,
                             warnings=warn)
    Path(a.output).write_text(page, encoding="utf-8")
    print(json.dumps({"output": a.output, "bytes": len(page.encode("utf-8")), "layer": a.layer}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
