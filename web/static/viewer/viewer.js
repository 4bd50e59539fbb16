/* gis_grid command-centre map viewer. Served by the app; no external requests.
 *
 * GisGridViewer.init({map, layers: {street, community, grid, labels, buildings}, control, config})
 * is called by the folium page. Grid layers come from config.layerUrl, grid cards from
 * config.gridUrl (/grids/{code}), building residents from config.residentsUrl and building
 * vector tiles from config.buildingTilesUrl (layer config.buildingLayer). The incident layers
 * (config.incidents) are overlays in the layer control, off until toggled; then the server sends
 * binned counts or per-division values (never cases), drawn on the grid polygons loaded here.
 */
(function () {
  "use strict";

  var V = (window.GisGridViewer = { ready: false, features: {}, geojson: {}, labelGroups: {}, fc: {} });

  var STYLES = {
    street: { color: "#b2182b", weight: 3, opacity: 0.9, fill: true, fillOpacity: 0 },
    community: { color: "#2166ac", weight: 2, opacity: 0.85, dashArray: "6 4", fill: true, fillOpacity: 0 },
    grid: { color: "#555555", weight: 1, opacity: 0.8, fill: true, fillColor: "#fdb863", fillOpacity: 0.12 }
  };
  var SELECTED = { color: "#ffd700", weight: 4, opacity: 1, fillOpacity: 0.25 };
  // Chinese first, English on the toggle (static/i18n/lang.js, loaded before this script)
  var bi = GgLang.bi, biSplit = GgLang.biSplit;
  var GROUP_NAMES = { disabled: "残疾", low_income: "低保", elderly_alone: "独居老人",
                      extreme_poverty: "特困", left_behind_child: "留守儿童", veteran: "退役军人",
                      community_correction: "社区矫正" };
  var LEVEL_NAMES = { district: ["区", "District"], street: ["街道", "Street"], community: ["社区", "Community"],
                      grid: ["网格", "Grid"] };
  function levelName(lv) { var n = LEVEL_NAMES[lv]; return n ? bi(n[0], n[1]) : esc(lv); }
  var KIND_NAMES = { residential_block: ["住宅楼", "residential block"], courtyard_house: ["平房院落", "courtyard house"],
                    clinic: ["诊所", "clinic"], commercial: ["商业楼", "commercial"], market: ["市场", "market"],
                    office: ["办公楼", "office"], school: ["学校", "school"], shop: ["商铺", "shop"],
                    workshop: ["厂房作坊", "workshop"], agricultural: ["农用房", "agricultural"] };
  // supervision colours (四色单), most urgent first, as the case workflow names them
  var COLOURS = [["red", "红色", "red", "#d7301f"], ["yellow", "黄色", "yellow", "#e6b800"],
                 ["blue", "蓝色", "blue", "#3a78c3"], ["green", "绿色", "green", "#2e9e44"]];
  var STATUS_NAMES = { collected: ["信息采集", "collected"], registered: ["案卷建立", "registered"],
                       dispatched: ["任务派遣", "dispatched"], handled: ["任务处理", "handled"],
                       fed_back: ["处理反馈", "fed back"], closed: ["核查结案", "closed"],
                       assessed: ["综合评价", "assessed"], cancelled: ["已撤销", "cancelled"] };
  var GENDER_NAMES = { F: ["女", "F"], M: ["男", "M"] };
  var BUILDING_SELECTED = { fill: true, fillColor: "#ffd700", fillOpacity: 0.95, color: "#d7301f", weight: 3, opacity: 1 };
  function named(table, k) { var n = table[k]; return n ? bi(n[0], n[1]) : esc(k); }
  var STAT_LABELS = [
    ["households", "户数 Households"],
    ["residents", "人口 Residents"],
    ["buildings", "建筑 Buildings"],
    ["workers", "网格员 Workers"],
    ["special_groups", "特殊人群 Special groups"],
    ["grids", "网格数 Grids"]
  ];

  function fmt(template, params) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(params[k]); });
  }
  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function el(id) { return document.getElementById(id); }
  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) {
        return r.text().then(function (t) {
          var detail = t;
          try { detail = JSON.parse(t).detail || t; } catch (e) { /* not JSON */ }
          var err = new Error("HTTP " + r.status + ": " + detail);
          err.status = r.status;
          throw err;
        });
      }
      return r.json();
    });
  }

  // -- panel -------------------------------------------------------------------------
  function buildPanel(map) {
    var panel = L.DomUtil.create("div", "gg-panel");
    panel.id = "gg-panel";
    panel.innerHTML =
      '<div class="gg-title"><span data-gg-lang-slot class="gg-lang-slot"></span>' +
      bi(V.cfg.title || "", V.cfg.titleEn || V.cfg.title || "") + "</div>" +
      '<form id="gg-search-form" class="gg-search" autocomplete="off">' +
      '<input id="gg-search" type="search" placeholder="网格编码 / 社区名称 / 经度,纬度" aria-label="search" ' +
      'data-zh-placeholder="网格编码 / 社区名称 / 经度,纬度" data-en-placeholder="grid code / community name / lon,lat">' +
      '<button type="submit" id="gg-search-go">' + bi("搜索", "Search") + "</button></form>" +
      '<div id="gg-search-results" class="gg-results"></div>' +
      '<div id="grid-card" class="gg-card" hidden></div>' +
      '<div id="building-card" class="gg-card" hidden></div>';
    map.getContainer().appendChild(panel);
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);
    el("gg-search-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      V.search(el("gg-search").value);
    });
  }

  // -- grid layers and labels --------------------------------------------------------
  function loadLevels() {
    var cfg = V.cfg;
    return Promise.all(cfg.levels.map(function (lv) {
      return getJSON(fmt(cfg.layerUrl, { level: lv }));
    })).then(function (collections) {
      collections.forEach(function (fc, i) {
        var lv = cfg.levels[i];
        V.fc[lv] = fc;  // kept: the incident choropleths and warnings are drawn on these polygons
        var style = L.Util.extend({ className: "gg-" + lv }, STYLES[lv] || STYLES.grid);
        var gj = L.geoJSON(fc, {
          style: function () { return style; },
          onEachFeature: function (f, layer) {
            V.features[f.properties.code] = { feature: f, layer: layer, level: lv };
            layer.on("click", function (e) {
              L.DomEvent.stopPropagation(e);
              V.select(f.properties.code);
            });
          }
        });
        V.geojson[lv] = gj;
        V.groups[lv].addLayer(gj);
        var labels = L.layerGroup();
        fc.features.forEach(function (f) {
          var p = f.properties;
          if (!p.label) { return; }
          L.marker([p.label[1], p.label[0]], {
            interactive: false, keyboard: false,
            icon: L.divIcon({ className: "gg-label gg-label-" + lv, iconSize: null,
                              html: "<span>" + esc(p.name) + "</span>" })
          }).addTo(labels);
        });
        V.labelGroups[lv] = labels;
      });
      restack();
      updateLabels();
    });
  }

  // finer levels on top, so a click lands on the finest visible level
  function restack() {
    V.cfg.levels.forEach(function (lv) {
      if (V.geojson[lv] && V.map.hasLayer(V.groups[lv])) { V.geojson[lv].bringToFront(); }
    });
  }

  function updateLabels() {
    var z = V.map.getZoom(), zooms = V.cfg.labelZooms || {};
    Object.keys(V.labelGroups).forEach(function (lv) {
      var range = zooms[lv] || [0, 99];
      var show = z >= range[0] && z <= range[1] && V.map.hasLayer(V.groups[lv]);
      var has = V.groups.labels.hasLayer(V.labelGroups[lv]);
      if (show && !has) { V.groups.labels.addLayer(V.labelGroups[lv]); }
      if (!show && has) { V.groups.labels.removeLayer(V.labelGroups[lv]); }
    });
  }

  // -- building vector tiles ---------------------------------------------------------
  function addBuildings() {
    var cfg = V.cfg, map = V.map;
    if (!L.vectorGrid || !cfg.buildingTilesUrl) { return; }
    var pane = map.createPane("gg-buildings");
    pane.style.zIndex = 450; // above the grid polygons (400), below labels (600)
    var styles = {};
    styles[cfg.buildingLayer] = { fill: true, fillColor: "#8c510a", fillOpacity: 0.55,
                                  color: "#543005", weight: 1, opacity: 0.9 };
    var vg = L.vectorGrid.protobuf(cfg.buildingTilesUrl, {
      pane: "gg-buildings",
      rendererFactory: L.svg.tile,
      vectorTileLayerStyles: styles,
      interactive: true,
      minZoom: cfg.buildingMinZoom,
      maxNativeZoom: 18,
      maxZoom: V.cfg.maxZoom || 20,
      getFeatureId: function (f) { return f.properties && f.properties.id; }
    });
    vg.on("click", function (e) {
      L.DomEvent.stopPropagation(e);
      var props = (e.layer && e.layer.properties) || {};
      if (props.id !== undefined) { V.showBuilding(props); }
    });
    V.buildings = vg;
    V.groups.buildings.addLayer(vg);
    if (cfg.tileShift) {
      // tiles are in CGCS2000/WGS84 but the basemap is GCJ-02: shift the pane by the
      // (nearly constant across the district) GCJ offset, recomputed per zoom
      var shift = function () {
        var a = map.project([cfg.tileShift.from[1], cfg.tileShift.from[0]]);
        var b = map.project([cfg.tileShift.to[1], cfg.tileShift.to[0]]);
        pane.style.transform = "translate(" + (b.x - a.x) + "px," + (b.y - a.y) + "px)";
      };
      map.on("zoomend", shift);
      shift();
    }
  }

  // -- cards ---------------------------------------------------------------------------
  function statValue(v) {
    if (v === null || v === undefined) { return "—"; }
    if (Array.isArray(v)) {
      return v.length + (v.length ? "（" + v.map(function (x) {
        return typeof x === "object" ? esc(x.name || x.id || JSON.stringify(x)) : esc(x);
      }).join("、") + "）" : "");
    }
    if (typeof v === "object") {
      var total = 0, parts = [];
      Object.keys(v).forEach(function (k) {
        if (typeof v[k] === "number") { total += v[k]; if (!v[k]) { return; } }
        parts.push((GROUP_NAMES[k] ? bi(GROUP_NAMES[k], k.replace(/_/g, " ")) : esc(k)) + " " + statValue(v[k]));
      });
      return total + (parts.length ? '<div class="gg-groups">' + parts.join("，") + "</div>" : "");
    }
    return esc(v);
  }

  function renderStats(card) {
    var stats = card.statistics || card.stats || {};
    var rows = [], seen = {};
    STAT_LABELS.forEach(function (pair) {
      var key = pair[0], alt = key.replace("_", " "), v = stats[key];
      if (v === undefined) { v = stats[alt]; }
      if (v === undefined) { v = stats[key.replace("_", "")]; }
      seen[key] = seen[alt] = true;
      if (v === undefined && key === "grids") { return; }  // a base grid does not count itself
      rows.push('<tr data-stat="' + key + '"><th>' + biSplit(pair[1]) + "</th><td>" + statValue(v) + "</td></tr>");
    });
    Object.keys(stats).forEach(function (k) {
      if (!seen[k] && !seen[k.replace(" ", "_")]) {
        rows.push("<tr><th>" + esc(k) + "</th><td>" + statValue(stats[k]) + "</td></tr>");
      }
    });
    return '<table class="gg-stats">' + rows.join("") + "</table>" + (card.suppressed_below
      ? '<div class="gg-note">' + bi("特殊人群少于 " + card.suppressed_below + " 人的格子不显示（—）",
        "special groups under " + card.suppressed_below + " are not shown (—)") + "</div>" : "");
  }

  V.select = function (code, opts) {
    opts = opts || {};
    var hit = V.features[code];
    if (V.selected && V.selected.layer) { V.geojson[V.selected.level].resetStyle(V.selected.layer); }
    V.selected = hit || null;
    if (hit) {
      hit.layer.setStyle(SELECTED);
      if (opts.fly) { V.map.flyToBounds(hit.layer.getBounds(), { maxZoom: 16, duration: 0.8 }); }
    }
    var p = hit ? hit.feature.properties : { code: code, name: "", level: "" };
    var card = el("grid-card");
    card.hidden = false;
    card.setAttribute("data-code", code);
    card.setAttribute("data-state", "loading");
    card.innerHTML = '<div class="gg-card-head"><span class="gg-level">' + levelName(p.level) +
      '</span> <b class="gg-name">' + esc(p.name) + '</b><button class="gg-close" title="关闭">×</button></div>' +
      '<div class="gg-code">' + bi("编码", "Code") + " <code>" + esc(code) + "</code></div>" +
      '<div class="gg-body">' + bi("加载中…", "Loading…") + "</div>" +
      '<div class="gg-cases" data-state="loading"></div>';
    card.querySelector(".gg-close").onclick = function () { card.hidden = true; };
    loadCases(code, card);
    return getJSON(fmt(V.cfg.gridUrl, { code: code }) + "?geometry=false").then(function (data) {
      if (card.getAttribute("data-code") !== code) { return; }
      if (data.name) { card.querySelector(".gg-name").textContent = data.name; }
      var parent = data.parent && typeof data.parent === "object"
        ? (data.parent.name || "") + " " + (data.parent.code || "") : (data.parent || "");
      var kids = Array.isArray(data.children) ? data.children.length : data.children;
      card.querySelector(".gg-body").innerHTML =
        (parent ? '<div class="gg-parent">' + bi("上级", "Parent") + " " + esc(parent) + "</div>" : "") +
        renderStats(data) +
        (kids ? '<div class="gg-children">' + bi("下级 " + kids + " 个", kids + " sub-divisions") + "</div>" : "") +
        (Array.isArray(data.workers) && data.workers.length ? '<div class="gg-workers">' +
          bi("网格员", "Grid workers") + " " +
          data.workers.map(function (w) {
            return esc(w.name) + (w.role ? "（" + esc(w.role) + "）" : "") + (w.phone ? " " + esc(w.phone) : "");
          }).join("；") + "</div>" : "");
      card.setAttribute("data-state", "loaded");
    }).catch(function (err) {
      if (card.getAttribute("data-code") !== code) { return; }
      card.querySelector(".gg-body").innerHTML = bi("统计不可用：", "Statistics unavailable: ") + esc(err.message);
      card.setAttribute("data-state", "error");
    });
  };

  // -- a division's cases: open ones by supervision colour, the latest few, and a CSV of the last 30 days
  function categoryName(code) {
    var c = (V.cfg.incidents.categories || []).filter(function (x) { return x[0] === code; })[0];
    return c ? bi(c[1], c[2] || c[0]) : esc(code);
  }
  function colourHex(name) {
    var c = COLOURS.filter(function (x) { return x[0] === name; })[0];
    return c ? c[3] : "#bbb";
  }
  function daysBefore(isoDate, n) {
    var t = Date.parse(isoDate + "T00:00:00Z");
    return isNaN(t) ? null : new Date(t - n * 86400000).toISOString().slice(0, 10);
  }

  function loadCases(code, card) {
    var ic = V.cfg.incidents, box = card.querySelector(".gg-cases");
    if (!ic || !ic.listUrl) { box.hidden = true; return Promise.resolve(); }
    // colours at the data's own date: the demo's open cases are not all overdue "now"
    var at = V.cfg.asOf ? "&at=" + encodeURIComponent(V.cfg.asOf) : "";
    var q = "?grid=" + encodeURIComponent(code) + "&limit=5" + at +
      ic.openStatuses.map(function (st) { return "&status=" + encodeURIComponent(st); }).join("");
    return getJSON(ic.listUrl + q).then(function (d) {
      if (card.getAttribute("data-code") !== code) { return; }
      var chips = COLOURS.map(function (c) {
        return '<span class="gg-chip" data-colour="' + c[0] + '"><i style="background:' + c[3] + '"></i>' +
          bi(c[1], c[2]) + " <b>" + esc((d.by_colour || {})[c[0]] || 0) + "</b></span>";
      }).join("");
      var recent = (d.items || []).map(function (it) {
        return '<li data-case="' + esc(it.id) + '"><i class="gg-dot" style="background:' + colourHex(it.colour) +
          '"></i>' + esc(String(it.created || "").slice(0, 10)) + " " + categoryName(it.category) + " · " +
          named(STATUS_NAMES, it.status) + "</li>";
      }).join("");
      var from = V.cfg.asOf ? daysBefore(V.cfg.asOf, 30) : null;
      var csv = ic.exportUrl + "?grid=" + encodeURIComponent(code) + (from ? "&from=" + from + "&to=" + V.cfg.asOf : "");
      box.innerHTML = '<div class="gg-cases-head">' + bi("在办案件 " + d.numberMatched + " 件",
          d.numberMatched + " open cases") + '</div><div class="gg-chips">' + chips + "</div>" +
        (recent ? '<div class="gg-recent-head">' + bi("最新在办", "latest open") + '</div><ol class="gg-recent">' +
          recent + "</ol>" : "") +
        '<a class="gg-cases-link" href="' + esc(csv) + '" download>' +
        bi("近 30 天全部案件（CSV）", "all cases of the last 30 days (CSV)") + "</a>";
      box.setAttribute("data-state", "loaded");
    }).catch(function (err) {
      if (card.getAttribute("data-code") !== code) { return; }
      if (err.status === 403) { box.hidden = true; box.setAttribute("data-state", "forbidden"); return; }
      box.innerHTML = bi("案件不可用：", "Cases unavailable: ") + esc(err.message);
      box.setAttribute("data-state", "error");
    });
  }

  function residentLine(r) {
    if (typeof r !== "object" || r === null) { return esc(r); }
    var keys = ["name", "gender", "sex", "age", "age_band", "relation", "id_number", "id_card", "phone", "tags"];
    var parts = [];
    keys.forEach(function (k) {
      if (r[k] !== undefined && r[k] !== null && r[k] !== "") {
        var v = (k === "gender" || k === "sex") && GENDER_NAMES[r[k]] ? named(GENDER_NAMES, r[k])
          : esc(Array.isArray(r[k]) ? r[k].join(",") : r[k]);
        parts.push('<span class="gg-r-' + k + '">' + v + "</span>");
      }
    });
    if (!parts.length) { parts.push(esc(JSON.stringify(r))); }
    return parts.join(" ");
  }

  V.showBuilding = function (props, url) {
    var card = el("building-card");
    var id = props.id;
    card.hidden = false;
    card.setAttribute("data-building", id);
    card.setAttribute("data-state", "loading");
    card.innerHTML = '<div class="gg-card-head"><span class="gg-level">' + bi("建筑", "Building") + "</span> <b>" +
      esc(props.name || "") + '</b> <span class="gg-kind">' + (props.kind ? named(KIND_NAMES, props.kind) : "") +
      '</span><button class="gg-close" title="关闭">×</button></div>' +
      '<div class="gg-body">' + bi("加载中…", "Loading…") + "</div>";
    card.querySelector(".gg-close").onclick = function () { card.hidden = true; highlightBuilding(null); };
    if (!url) { highlightBuilding(id); }
    return getJSON(url || fmt(V.cfg.residentsUrl, { id: id })).then(function (data) {
      if (card.getAttribute("data-building") !== String(id)) { return; }
      var hhs = data.households || data.items || data.results || (Array.isArray(data) ? data : []);
      var total = data.total !== undefined ? data.total : (data.numberMatched !== undefined ? data.numberMatched : null);
      var html = '<div class="gg-hh-count">' + bi((total !== null ? "共 " + total + " 户，" : "") + "本页 " + hhs.length + " 户",
        (total !== null ? total + " households, " : "") + hhs.length + " on this page") +
        '</div><ol class="gg-households">';
      hhs.forEach(function (h) {
        var members = h.residents || h.members || h.people || [];
        // the building is named in the card's head: each household once, by its room (e.g. 1单元101)
        html += '<li><div class="gg-hh">' + esc(h.room || h.address || "") +
          (h.size ? " · " + bi(h.size + " 人", h.size + (h.size === 1 ? " person" : " people")) : "") + "</div><ul>" +
          members.map(function (r) { return "<li>" + residentLine(r) + "</li>"; }).join("") + "</ul></li>";
      });
      html += "</ol>";
      var next = Array.isArray(data.links) ?
        (data.links.filter(function (l) { return l.rel === "next"; })[0] || {}).href : null;
      if (!next && typeof data.next === "string" && data.next) {  // a bare page token
        next = fmt(V.cfg.residentsUrl, { id: id }) + "?next=" + encodeURIComponent(data.next);
      }
      if (next) { html += '<button class="gg-next">' + bi("下一页", "Next page") + "</button>"; }
      card.querySelector(".gg-body").innerHTML = html;
      if (next) { card.querySelector(".gg-next").onclick = function () { V.showBuilding(props, next); }; }
      card.setAttribute("data-state", "loaded");
    }).catch(function (err) {
      card.querySelector(".gg-body").innerHTML = bi("住户不可用：", "Households unavailable: ") + esc(err.message);
      card.setAttribute("data-state", "error");
    });
  };

  /** the clicked building drawn over the others until its card is closed or another is clicked */
  function highlightBuilding(id) {
    if (!V.buildings) { return; }
    if (V.highlighted !== undefined && V.highlighted !== null) { V.buildings.resetFeatureStyle(V.highlighted); }
    V.highlighted = id;
    if (id !== null && id !== undefined) { V.buildings.setFeatureStyle(id, BUILDING_SELECTED); }
  }

  // -- search --------------------------------------------------------------------------
  V.search = function (q) {
    var box = el("gg-search-results");
    q = (q || "").trim();
    if (!q) { box.innerHTML = ""; return Promise.resolve(null); }
    box.innerHTML = bi("搜索中…", "Searching…");
    return getJSON(V.cfg.searchUrl + "?q=" + encodeURIComponent(q)).then(function (data) {
      var res = data.results || [];
      if (!res.length) { box.innerHTML = bi("未找到 “" + q + "”", "Nothing found for “" + q + "”"); return null; }
      box.innerHTML = res.length > 1 ? res.map(function (r, i) {
        return '<a href="#" data-i="' + i + '">' + esc(r.name || "") + " <code>" + esc(r.code || "") + "</code></a>";
      }).join("") : "";
      Array.prototype.forEach.call(box.querySelectorAll("a"), function (a) {
        a.onclick = function (ev) { ev.preventDefault(); go(res[+a.getAttribute("data-i")]); };
      });
      go(res[0]);
      return res[0];
    }).catch(function (err) { box.innerHTML = bi("搜索失败：", "Search failed: ") + esc(err.message); });
  };

  function go(r) {
    if (V.marker) { V.map.removeLayer(V.marker); V.marker = null; }
    if (r.kind === "point") {
      V.marker = L.circleMarker([r.center[1], r.center[0]], { radius: 7, color: "#d7301f", weight: 3 }).addTo(V.map);
      V.map.flyTo([r.center[1], r.center[0]], Math.max(V.map.getZoom(), 16), { duration: 0.8 });
      if (r.code) { V.select(r.code); } else { el("gg-search-results").innerHTML = bi("该点不在辖区内", "The point is outside the district"); }
      return;
    }
    if (V.features[r.code]) { V.select(r.code, { fly: true }); return; }
    V.map.flyToBounds([[r.bbox[1], r.bbox[0]], [r.bbox[3], r.bbox[2]]], { maxZoom: 16, duration: 0.8 });
    V.select(r.code);
  }

  // -- incident layers -----------------------------------------------------------------
  // heat: cases per 150 m bin and month (month slider re-weights in the browser);
  // grid / community: response metrics classified on the server, with their legends;
  // warnings: grids flagged by the early warning. Category filter: heat and choropleths.
  var INC = (V.incident = { groups: {}, layers: {}, data: {}, on: {}, count: {} });
  var INC_ORDER = ["heat", "grid", "community", "warnings"];

  function incCategoryQuery() {
    var sel = el("gg-inc-category"), cat = sel ? sel.value : "";
    return cat ? "?category=" + encodeURIComponent(cat) : "";
  }
  /** the heat layer's query: category and, unless raw counts, the rate the bins are weighted by */
  function heatQuery() {
    var q = incCategoryQuery(), rate = el("gg-inc-rate").value;
    return rate && rate !== "count" ? q + (q ? "&" : "?") + "rate=" + encodeURIComponent(rate) : q;
  }

  function buildIncidentPanel() {
    var ic = V.cfg.incidents;
    var box = L.DomUtil.create("div", "gg-card gg-incidents");
    box.id = "gg-incidents";
    box.hidden = true;
    box.innerHTML =
      '<div class="gg-card-head"><b>' + bi("事件图层", "Incidents") + "</b></div>" +
      '<label class="gg-inc-row">' + bi("类别", "Category") + ' <select id="gg-inc-category">' +
      option("", "全部", "all") + ic.categories.map(function (c) { return option(c[0], c[1], c[2] || c[0]); }).join("") +
      "</select></label>" +
      '<div id="gg-inc-heat-controls" hidden><label class="gg-inc-row">' + bi("热力值", "Heat shows") +
      ' <select id="gg-inc-rate">' + option("count", "案件数", "case count") +
      option("per_100hh", "每百户案件（按网格户数）", "cases per 100 households (of the grid)") +
      option("per_km2", "每平方公里案件", "cases per km²") + "</select></label>" +
      '<label><input type="checkbox" id="gg-inc-all-months" checked> ' +
      bi("全部月份", "all months") + '</label> <b id="gg-inc-month-label"></b>' +
      '<div class="gg-inc-row"><button type="button" id="gg-inc-play" aria-label="play months">' + playLabel(false) +
      '</button><input type="range" id="gg-inc-month" min="0" max="0" value="0" aria-label="month"></div></div>' +
      '<div id="gg-inc-warn-controls" hidden><label class="gg-inc-row">' + bi("预警日期", "Warnings at") +
      ' <input type="date" id="gg-inc-date" value="' + esc(V.cfg.asOf || "") + '" max="' + esc(V.cfg.asOf || "") +
      '"></label><div id="gg-inc-ranked"></div></div>' +
      '<div id="gg-inc-metric-controls" hidden><label class="gg-inc-row">' + bi("指标", "Metric") +
      ' <select id="gg-inc-metric">' +
      Object.keys(ic.metrics).map(function (k) {
        var t = GgLang.split(ic.metrics[k]);
        return option(k, t[0], t[1]);
      }).join("") + "</select></label></div>" +
      '<div id="gg-inc-legend"></div>';
    el("gg-panel").appendChild(box);
    GgLang.refresh(box);
    el("gg-inc-category").addEventListener("change", function () {
      INC_ORDER.forEach(function (k) { if (INC.on[k]) { loadIncident(k); } });
    });
    el("gg-inc-date").addEventListener("change", function () { if (INC.on.warnings) { loadIncident("warnings"); } });
    el("gg-inc-metric").addEventListener("change", function () {
      ["grid", "community"].forEach(function (k) { if (INC.on[k] && INC.data[k]) { drawChoropleth(k); } });
      renderIncidentLegend();
    });
    el("gg-inc-rate").addEventListener("change", function () { if (INC.on.heat) { loadIncident("heat"); } });
    el("gg-inc-month").addEventListener("input", function () { el("gg-inc-all-months").checked = false; drawHeat(); });
    el("gg-inc-all-months").addEventListener("change", drawHeat);
    el("gg-inc-play").addEventListener("click", togglePlay);
  }

  /** an <option> (text only, no markup): both languages in attributes, swapped by lang.js */
  function option(value, zh, en) {
    return '<option value="' + esc(value) + '" data-zh="' + esc(zh) + '" data-en="' + esc(en) + '">' +
      esc(GgLang.t(zh, en)) + "</option>";
  }
  function playLabel(playing) { return playing ? "⏸ " + bi("暂停", "pause") : "▶ " + bi("播放", "play"); }

  // play: step through the months on the fixed scale, so a month's colours mean the same counts
  function togglePlay() {
    var btn = el("gg-inc-play"), m = el("gg-inc-month");
    if (INC.playing) { clearInterval(INC.playing); INC.playing = null; btn.innerHTML = playLabel(false); return; }
    if (!INC.data.heat || !INC.data.heat.months.length) { return; }
    if (el("gg-inc-all-months").checked || Number(m.value) >= Number(m.max)) { m.value = "0"; }
    el("gg-inc-all-months").checked = false;
    btn.innerHTML = playLabel(true);
    drawHeat();
    INC.playing = setInterval(function () {
      if (Number(m.value) >= Number(m.max)) { togglePlay(); return; }
      m.value = String(Number(m.value) + 1);
      drawHeat();
    }, 700);
  }

  /** Heat radius in pixels for about 1.2 bins on the ground: no blob at district zoom, no specks at street zoom. */
  function heatRadius(binM) {
    var c = V.map.getCenter(), mpp = 40075016.686 * Math.cos(c.lat * Math.PI / 180) / Math.pow(2, V.map.getZoom() + 8);
    return Math.max(5, Math.min(25, Math.round(1.2 * binM / mpp)));
  }

  function heatGradient(h) {
    var g = {};
    h.gradient.forEach(function (s) { g[s[0]] = s[1]; });
    return g;
  }

  function incState(key, state) { document.body.setAttribute("data-gg-inc-" + key, state); }

  function loadIncident(key) {
    var ic = V.cfg.incidents, url;
    if (key === "heat") { url = ic.heatUrl + heatQuery(); }
    else if (key === "warnings") {
      var day = el("gg-inc-date").value, cq = incCategoryQuery();
      url = ic.warningsUrl + cq + (day ? (cq ? "&" : "?") + "at=" + encodeURIComponent(day) : "");
    }
    else { url = fmt(ic.choroplethUrl, { level: key }) + incCategoryQuery(); }
    incState(key, "loading");
    var ticket = (INC.ticket = (INC.ticket || 0) + 1);
    INC[key + "Ticket"] = ticket;
    return Promise.all([getJSON(url), V.levelsLoaded]).then(function (res) {
      if (INC[key + "Ticket"] !== ticket || !INC.on[key]) { return; }  // toggled off or asked again meanwhile
      INC.data[key] = res[0];
      if (key === "heat") {
        var m = el("gg-inc-month");
        m.max = String(Math.max(0, res[0].months.length - 1));
        if (Number(m.value) > Number(m.max)) { m.value = m.max; }
        drawHeat();
      } else if (key === "warnings") { drawWarnings(); } else { drawChoropleth(key); }
      renderIncidentLegend();
      incState(key, "ready");
    }).catch(function (err) {
      incState(key, "error");
      el("gg-inc-legend").innerHTML = bi("事件图层加载失败：", "Incident layer failed: ") + esc(err.message);
    });
  }

  function drawHeat() {
    var h = INC.data.heat, group = INC.groups.heat;
    if (!h || !INC.on.heat) { return; }
    var all = el("gg-inc-all-months").checked, k = Number(el("gg-inc-month").value);
    var w = new Float64Array(h.centres.length), months = all ? h.counts.map(function (_, i) { return i; }) : [k];
    months.forEach(function (mi) {
      var pair = h.counts[mi] || [[], []];
      for (var i = 0; i < pair[0].length; i++) { w[pair[0][i]] += pair[1][i]; }
    });
    // one fixed top per view (a month, or all months summed), never this frame's own maximum
    var top = all ? h.scale.all : h.scale.month, pts = [], shown = 0;
    for (var j = 0; j < w.length; j++) {
      if (w[j] > 0) { pts.push([h.centres[j][0], h.centres[j][1], Math.min(1, Math.sqrt(w[j] / top))]); }
    }
    // cases drawn (whatever the rate weighs them by)
    months.forEach(function (mi) { shown += (h.month_cases || [])[mi] || 0; });
    INC.heatShown = shown;
    INC.heatScale = all ? "all" : "month";
    if (all) { el("gg-inc-month-label").innerHTML = bi("全部", "all"); } else { el("gg-inc-month-label").textContent = h.months[k] || ""; }
    group.clearLayers();
    if (L.heatLayer) {
      var r = heatRadius(h.bin_m);
      // maxZoom 0: the plugin's own zoom damping off, the radius follows the ground instead
      INC.layers.heat = L.heatLayer(pts, { radius: r, blur: Math.round(r * 0.8), maxZoom: 0, max: 1,
                                           minOpacity: 0.05, gradient: heatGradient(h) });
      group.addLayer(INC.layers.heat);
    }
    INC.count.heat = pts.length;
    renderIncidentLegend();
  }

  function incTooltip(p, lines) {
    return "<b>" + esc(p.name) + "</b> " + esc(p.code) + "<br>" + lines.join("<br>");
  }

  function drawChoropleth(key) {
    var d = INC.data[key], group = INC.groups[key], metric = el("gg-inc-metric").value;
    var title = V.cfg.incidents.metrics[metric];
    group.clearLayers();
    var layer = L.geoJSON(V.fc[key], {
      pane: "gg-incidents",
      style: function (f) {
        var v = d.values[f.properties.code] || {};
        return { color: "#444", weight: key === "grid" ? 0.5 : 1.2, opacity: 0.8, fillOpacity: 0.72,
                 fillColor: v["c_" + metric] || "#d9d9d9", className: "gg-inc-" + key };
      },
      onEachFeature: function (f, l) {
        var v = d.values[f.properties.code] || {};
        l.bindTooltip(incTooltip(f.properties, [biSplit(title) + ": " + (v[metric] === null || v[metric] === undefined
          ? "—" : esc(v[metric])), bi((v.cases || 0) + " 件", (v.cases || 0) + " cases")]));
        l.on("click", function (e) { L.DomEvent.stopPropagation(e); V.select(f.properties.code); });
      }
    });
    group.addLayer(layer);
    INC.layers[key] = layer;
    INC.count[key] = layer.getLayers().length;
  }

  function drawWarnings() {
    var d = INC.data.warnings, group = INC.groups.warnings;
    group.clearLayers();
    var fc = { type: "FeatureCollection", features: (V.fc.grid ? V.fc.grid.features : []).filter(function (f) {
      return d.items[f.properties.code];
    }) };
    var layer = L.geoJSON(fc, {
      pane: "gg-incident-warnings",
      style: function (f) {
        var c = d.items[f.properties.code].colour;
        // a thick border in the warning's colour stays readable over a choropleth fill
        return { color: c, weight: 3, opacity: 1, fillOpacity: 0.6, fillColor: c,
                 className: "gg-inc-warning gg-warn-" + d.items[f.properties.code].kind.replace("+", "-") };
      },
      onEachFeature: function (f, l) {
        var it = d.items[f.properties.code];
        l.bindTooltip(incTooltip(f.properties, [bi(it.why_zh || it.why, it.why)]));
        l.on("click", function (e) { L.DomEvent.stopPropagation(e); V.select(f.properties.code); });
      }
    });
    group.addLayer(layer);
    INC.layers.warnings = layer;
    INC.count.warnings = layer.getLayers().length;
    renderRanked(d);
  }

  var WARN_KIND_NAMES = { "anomaly+hot": ["异常且热点", "anomaly and hot spot"], anomaly: ["高于自身基线", "above own baseline"],
                          hot: ["上升热点", "rising hot spot"], cold: ["下降冷点", "falling cold spot"] };
  /** the flagged grids beside the map, most significant first; a click flies to the grid and opens its card */
  function renderRanked(d) {
    var box = el("gg-inc-ranked"), rows = d.ranked || [];
    if (!rows.length) {
      box.innerHTML = '<div class="gg-note">' + bi(d.at + " 无预警网格", "no grid flagged at " + d.at) + "</div>";
      return;
    }
    box.innerHTML = '<ol class="gg-ranked">' + rows.map(function (r) {
      return '<li><a href="#" data-code="' + esc(r.code) + '"><i style="background:' +
        esc((d.items[r.code] || {}).colour || "#888") + '"></i>' + esc(r.name) + "</a> " +
        '<span class="gg-ranked-why">' + named(WARN_KIND_NAMES, r.kind) + " · " +
        bi(r.recent + " 件 / 预期 " + r.expected, r.recent + " vs " + r.expected + " expected") + "</span></li>";
    }).join("") + "</ol>";
    Array.prototype.forEach.call(box.querySelectorAll("a[data-code]"), function (a) {
      a.onclick = function (ev) { ev.preventDefault(); V.select(a.getAttribute("data-code"), { fly: true }); };
    });
  }

  // the server's English legend words, in Chinese first
  var LEGEND_ZH = { "no cases": "无案件", "anomaly and hot spot": "异常且热点", "anomaly vs own baseline": "高于自身基线",
                    "Gi* hot spot (95 %+)": "Gi* 热点（95%+）", "Gi* cold spot (95 %+)": "Gi* 冷点（95%+）" };
  /** titleHtml: markup already (bilingual); entry labels are numbers or the words above */
  function legendBlock(key, titleHtml, entries) {
    return '<div class="gg-inc-legend-block" data-layer="' + key + '"><b>' + titleHtml + "</b>" +
      entries.map(function (e) {
        var zh = e.label_zh || LEGEND_ZH[e.label], label = zh ? bi(zh, e.label) : esc(e.label);
        return '<div class="gg-inc-entry"><i style="background:' + esc(e.colour) + '"></i><span>' + label +
          (e.count !== undefined ? " (" + esc(e.count) + ")" : "") + "</span></div>";
      }).join("") + "</div>";
  }

  var SCHEME_ZH = { "natural breaks (Fisher-Jenks)": "自然断点（Fisher-Jenks）", "quantiles": "分位数",
                    "fixed breaks at the 90 % line": "以 90% 为界的固定分级", "head/tail breaks": "头尾断点" };

  function renderIncidentLegend() {
    var html = [], metric = el("gg-inc-metric").value;
    INC_ORDER.forEach(function (key) {
      var d = INC.data[key];
      if (!INC.on[key] || !d) { return; }
      if (key === "heat") {
        var all = INC.heatScale !== "month", shown = INC.heatShown || 0, u = d.unit || { zh: "件", en: "cases" };
        var per = d.rate && d.rate !== "count";
        // rates: the value's unit, then the bin it is measured on; per 100 households says what it leaves out
        var zh = per ? "事件密度 " + u.zh + "（" + d.bin_m + " 米格）" : "事件密度 每 " + d.bin_m + " 米格";
        var en = per ? u.en + " (" + d.bin_m + " m bins)" : "cases per " + d.bin_m + " m bin";
        var left = d.rate === "per_100hh" ? [" · 无户数网格不计入（" + d.unweighted + " 件）",
          " · grids without households add nothing (" + d.unweighted + " cases)"] : ["", ""];
        html.push(legendBlock(key, bi(zh + " · " + (all ? "全部月份" : "每月") +
          "（固定色标）· 显示 " + shown + " / 共 " + d.cases + " 件" + left[0],
          en + ", " + (all ? "all months" : "per month") + " (fixed scale) · " +
          shown + " of " + d.cases + " cases" + left[1]), d.legend[INC.heatScale || "all"]));
      } else if (key === "warnings") {
        var cat = d.category && d.category.length ? " · " + d.category.join(", ") : "";
        html.push(legendBlock(key, bi("超前预警 " + d.at + cat + "（相对自身基线，FDR 5%）",
          "early warnings at " + d.at + cat + " (vs own baseline, FDR 5 %)"), d.legend));
      } else {
        var lg = d.legends[metric], t = GgLang.split(lg.title), n = GgLang.split(V.cfg.incidents.layers[key]);
        html.push(legendBlock(key, bi(n[0] + "：" + t[0] + " · " + (SCHEME_ZH[lg.scheme] || lg.scheme),
          n[1] + ": " + t[1] + " · " + lg.scheme), lg.entries));
      }
    });
    el("gg-inc-legend").innerHTML = html.join("");
  }

  function refreshIncidentPanel() {
    var any = INC_ORDER.some(function (k) { return INC.on[k]; });
    el("gg-incidents").hidden = !any;
    el("gg-inc-heat-controls").hidden = !INC.on.heat;
    el("gg-inc-warn-controls").hidden = !INC.on.warnings;
    el("gg-inc-metric-controls").hidden = !(INC.on.grid || INC.on.community);
    renderIncidentLegend();
  }

  function addIncidentLayers() {
    var ic = V.cfg.incidents;
    if (!ic) { return; }
    var pane = V.map.createPane("gg-incidents");
    pane.style.zIndex = 420; // above the grid outlines (400), below building tiles (450) and labels (600)
    V.map.createPane("gg-incident-warnings").style.zIndex = 430; // flagged grids stay visible over a choropleth
    buildIncidentPanel();
    INC_ORDER.forEach(function (key) {
      var g = L.layerGroup();
      INC.groups[key] = g;
      if (V.control && V.control.addOverlay) { V.control.addOverlay(g, biSplit(ic.layers[key])); }
    });
    V.map.on("overlayadd", function (e) {
      INC_ORDER.forEach(function (key) {
        if (e.layer === INC.groups[key]) { INC.on[key] = true; refreshIncidentPanel(); loadIncident(key); }
      });
    });
    V.map.on("zoomend", function () {
      if (INC.on.heat && INC.layers.heat && INC.data.heat) {
        var r = heatRadius(INC.data.heat.bin_m);
        INC.layers.heat.setOptions({ radius: r, blur: Math.round(r * 0.8) });
      }
    });
    V.map.on("overlayremove", function (e) {
      INC_ORDER.forEach(function (key) {
        if (e.layer === INC.groups[key]) {
          if (key === "heat" && INC.playing) { togglePlay(); }
          INC.on[key] = false;
          INC.groups[key].clearLayers();
          INC.count[key] = 0;
          incState(key, "off");
          refreshIncidentPanel();
        }
      });
    });
  }

  /** Drawn features per incident layer (heat: bins with cases), for tests and the console. */
  INC.counts = function () {
    var out = {};
    INC_ORDER.forEach(function (k) { out[k] = INC.on[k] ? (INC.count[k] || 0) : 0; });
    return out;
  };

  // "data as of": which day the map shows, and which version of the grids
  function addStamp(map) {
    var Stamp = L.Control.extend({
      options: { position: "bottomleft" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "gg-asof");
        div.id = "gg-asof";
        div.innerHTML = bi("数据截至 " + (V.cfg.asOf || "—") + " · 网格版本 v" + V.cfg.atlasVersion,
          "data as of " + (V.cfg.asOf || "—") + " · grids version v" + V.cfg.atlasVersion);
        return div;
      }
    });
    new Stamp().addTo(map);
  }

  // -- init ----------------------------------------------------------------------------
  V.init = function (opts) {
    V.map = opts.map;
    V.groups = opts.layers;
    V.control = opts.control;
    V.cfg = opts.config;
    var map = V.map;
    map.getContainer().classList.add("gg-map", "gg-basemap-" + V.cfg.basemap);
    // explicit limits: otherwise Leaflet derives them from the layers (the building tiles' minZoom)
    map.setMinZoom(V.cfg.minZoom || 8);
    map.setMaxZoom(V.cfg.maxZoom || 20);
    if (V.cfg.bounds) { map.fitBounds(V.cfg.bounds); }
    buildPanel(map);
    addStamp(map);
    map.on("zoomend", updateLabels);
    map.on("overlayadd overlayremove", function () { restack(); updateLabels(); });
    addBuildings();
    V.levelsLoaded = loadLevels();
    addIncidentLayers();
    V.levelsLoaded.then(function () {
      V.ready = true;
      document.body.setAttribute("data-gg-ready", "1");
      var m = /[#&]q=([^&]+)/.exec(window.location.hash);
      if (m) { V.search(decodeURIComponent(m[1])); }
    }).catch(function (err) {
      document.body.setAttribute("data-gg-ready", "error");
      var box = el("gg-search-results");
      if (box) { box.innerHTML = bi("图层加载失败：", "Layers failed to load: ") + esc(err.message); }
    });
  };
})();
