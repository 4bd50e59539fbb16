"""The /map viewer in headless Chromium: draws the grids, opens cards, loads nothing off the host."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import shapely

from gis_grid.testing import find_pii, skip_or_fail_on_ci

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
KIND_ZH = {"residential_block": "住宅楼", "courtyard_house": "平房院落", "clinic": "诊所", "commercial": "商业楼",
           "market": "市场", "office": "办公楼", "school": "学校", "shop": "商铺", "workshop": "厂房作坊",
           "agricultural": "农用房"}


@pytest.fixture
def page(browser, live_server, demo_store_path):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    pg = context.new_page()
    pg.errors, pg.blocked = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(f"console: {m.text} @ {m.location}"))
    pg.on("pageerror", lambda exc: pg.errors.append(f"pageerror: {exc}"))

    def guard(route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            pg.blocked.append(url)
            return route.abort()
        return route.continue_()

    pg.route("**/*", guard)
    pg.set_default_timeout(30_000)
    # sign in through the real login page: the session cookie then authorises the viewer
    from common import bearer
    token = bearer(demo_store_path)["Authorization"].removeprefix("Bearer ")
    pg.goto(live_server + "/map", wait_until="load")
    assert "/login" in pg.url  # no session: the viewer sends the browser to sign in
    pg.fill("input[name=key]", token)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/map")
    yield pg
    context.close()


def _open_map(page, base):
    page.goto(base + "/map", wait_until="load")
    page.wait_for_function("() => document.body.dataset.ggReady === '1'", timeout=60_000)


def _click_latlng(page, lon: float, lat: float, zoom: int):
    """Centre the map on a point (no animation) and click its pixel like a user would."""
    xy = page.evaluate(
        """([lon, lat, zoom]) => {
            const m = GisGridViewer.map;
            m.setView([lat, lon], zoom, {animate: false});
            const p = m.latLngToContainerPoint([lat, lon]);
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""", [lon, lat, zoom])
    page.wait_for_timeout(300)
    page.mouse.click(xy[0], xy[1])


def _check_open_cases(page, card, code, store_path, atlas):
    """The card's open cases by supervision colour agree with the division statistics at the data's date."""
    from gis_grid.incidents import aggregate
    from gis_grid.store import open_store
    with open_store(store_path) as store:
        t = aggregate.case_table(store, atlas)
    if not len(t.ids):
        skip_or_fail_on_ci("the demo store has no case history")
    want = aggregate.group_stats(t, atlas, "grid", at="2016-12-31").loc[code]
    cases = card.locator('.gg-cases[data-state="loaded"]')
    cases.wait_for()
    chip = {c: int(cases.locator(f'.gg-chip[data-colour="{c}"] b').inner_text()) for c in ("red", "yellow", "blue", "green")}
    assert sum(chip.values()) == int(want["open"]), (chip, want)
    assert (chip["red"], chip["yellow"]) == (int(want["open_red"]), int(want["open_yellow"]))
    assert f"在办案件 {int(want['open'])} 件" in cases.inner_text()
    recent = cases.locator(".gg-recent li")
    assert recent.count() == min(5, int(want["open"]))
    if recent.count():   # categories and steps in Chinese, never the codes
        line = recent.first.inner_text()
        assert not any(w in line for w in ("sanitation", "fed_back", "dispatched", "handled")), line
    href = cases.locator("a.gg-cases-link").get_attribute("href")
    assert href.startswith("/incidents/export.csv?grid=" + code) and "from=2016-12-01" in href


def test_map_viewer(page, live_server, demo_atlas, demo_store_path, artifacts_dir):
    _open_map(page, live_server)

    # the three grid levels are drawn as SVG paths
    counts = page.evaluate("""() => Object.fromEntries(['street', 'community', 'grid'].map(
        lv => [lv, document.querySelectorAll('path.gg-' + lv).length]))""")
    assert counts["grid"] > 400 and counts["grid"] == 445, counts
    assert counts == {"street": 11, "community": 170, "grid": 445}
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator(".gg-label-street").count() == 11   # street labels at the start zoom

    # click a grid at its representative point: its card opens with the right code and statistics
    d = demo_atlas.divisions
    grid = d[d["level"] == "grid"].iloc[100]
    p = shapely.point_on_surface(grid["geometry"])
    _click_latlng(page, p.x, p.y, 14)
    card = page.locator(f'#grid-card[data-code="{grid["code"]}"]')
    card.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#grid-card').dataset.state !== 'loading'")
    assert grid["code"] in card.inner_text() and grid["name"] in card.inner_text()
    assert card.get_attribute("data-state") == "loaded", card.inner_text()
    households = int(card.locator('[data-stat="households"] td').inner_text())
    assert households == len(demo_atlas.household_ids_in(grid["code"]))
    text = card.inner_text()
    assert "网格数" not in text and "suppressed_below" not in text   # only statistics under statistics
    assert card.locator(".gg-workers").count() == 1 and "****" not in card.locator(".gg-workers").inner_text()
    _check_open_cases(page, card, grid["code"], demo_store_path, demo_atlas)
    assert page.locator(".gg-label-community").count() == 170   # community labels at zoom 14
    page.screenshot(path=str(artifacts_dir / "map.png"))

    # Chinese first; the toggle turns every label of the page to English and back, without reloading
    stats = card.locator("table.gg-stats").inner_text()
    assert "户数" in stats and "Households" not in stats
    assert "事件热力" in page.inner_text(".leaflet-control-layers") and "数据截至" in page.inner_text("#gg-asof")
    assert page.get_attribute("#gg-search", "placeholder").startswith("网格编码")
    page.click("#gg-lang")
    assert page.evaluate("document.documentElement.lang") == "en"
    stats = card.locator("table.gg-stats").inner_text()
    assert "Households" in stats and "户数" not in stats
    layers_text = page.inner_text(".leaflet-control-layers")
    assert "Incident density" in layers_text and "事件热力" not in layers_text
    assert page.inner_text("#gg-asof").startswith("data as of")
    assert page.get_attribute("#gg-search", "placeholder").startswith("grid code")
    assert page.inner_text("#gg-lang") == "中文"
    page.screenshot(path=str(artifacts_dir / "map_english.png"))
    page.reload(wait_until="load")      # the choice is kept for the next page
    page.wait_for_function("() => document.body.dataset.ggReady === '1'", timeout=60_000)
    assert page.evaluate("document.documentElement.dataset.lang") == "en"
    page.click("#gg-lang")
    assert "数据截至" in page.inner_text("#gg-asof")
    assert page.inner_text("#gg-lang") == "English"

    # search by community name: flies there and opens that community's card
    comm = d[d["level"] == "community"].iloc[5]
    page.fill("#gg-search", comm["name"])
    page.click("#gg-search-go")
    page.locator(f'#grid-card[data-code="{comm["code"]}"][data-state="loaded"]').wait_for()

    # search by "lon,lat": the grid containing the point
    other = d[d["level"] == "grid"].iloc[300]
    q = shapely.point_on_surface(other["geometry"])
    page.fill("#gg-search", f"{q.x:.6f},{q.y:.6f}")
    page.press("#gg-search", "Enter")
    page.locator(f'#grid-card[data-code="{other["code"]}"][data-state="loaded"]').wait_for()

    assert page.errors == [], page.errors
    assert page.blocked == [], f"requests off the host: {page.blocked}"


def test_offline_basemap_and_stamp(page, live_server, artifacts_dir):
    """The first screen is a map: basemap tiles from the local package under the grids, and a data-as-of stamp."""
    _open_map(page, live_server)
    page.wait_for_function("""() => { const t = [...document.querySelectorAll('img.leaflet-tile')]
        .filter(i => i.src.includes('/map/basemap/')); return t.length > 0 && t.every(i => i.complete); }""")
    # the tiles hold drawn land: sample the pixels of the tile under the district centre
    opaque = page.evaluate("""() => { const m = GisGridViewer.map, c = m.getCenter();
        const img = [...document.querySelectorAll('img.leaflet-tile.leaflet-tile-loaded')]
            .filter(i => i.src.includes('/map/basemap/'));
        let best = 0;
        for (const i of img) { const cv = document.createElement('canvas'); cv.width = cv.height = 256;
            const g = cv.getContext('2d'); g.drawImage(i, 0, 0); const d = g.getImageData(0, 0, 256, 256).data;
            let n = 0; for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++; best = Math.max(best, n); }
        return best; }""")
    assert opaque > 30_000, opaque      # at least one tile mostly covered by the district's land
    stamp = page.inner_text("#gg-asof")
    assert "数据截至" in stamp and "2016-12-31" in stamp, stamp
    page.screenshot(path=str(artifacts_dir / "map_basemap.png"))
    _click_latlng(page, 117.5565, 34.8635, 14)   # street zoom in the urban core
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts_dir / "map_basemap_z14.png"))
    assert page.errors == [], page.errors
    assert page.blocked == [], page.blocked


def test_building_click_lists_households(page, live_server, demo_atlas, artifacts_dir):
    _open_map(page, live_server)
    # a building with households, large enough to hit at zoom 18
    counts = demo_atlas.households.groupby("building_id").size()
    b = demo_atlas.buildings.set_index("id").loc[counts.index]
    b = b.assign(area=shapely.area(b["geometry"].to_numpy())).sort_values("area", ascending=False)
    bid = int(b.index[0])
    p = shapely.point_on_surface(b.loc[bid, "geometry"])
    page.evaluate("([lon, lat]) => GisGridViewer.map.setView([lat, lon], 18, {animate: false})", [p.x, p.y])
    page.wait_for_function("() => document.querySelectorAll('.leaflet-gg-buildings-pane path').length > 0",
                           timeout=30_000)
    _click_latlng(page, p.x, p.y, 18)
    card = page.locator(f'#building-card[data-building="{bid}"][data-state="loaded"]')
    card.wait_for()
    text = card.inner_text()
    assert f"共 {int(counts[bid])} 户" in text
    assert "户" in text and not find_pii(text)   # masked as served
    # each household once, by its room; no raw ids; the kind in Chinese
    hh = demo_atlas.households[demo_atlas.households["building_id"] == bid]
    name = b.loc[bid, "name"]
    lines = card.locator(".gg-hh").all_inner_texts()
    assert lines and all(name not in ln for ln in lines), lines[:3]
    assert sum(str(hh["room"].iloc[0]) in ln for ln in lines) == 1
    assert not re.search(r"\bH[0-9a-f]{12}\b", text) and not re.search(r"\bR[0-9a-f]{12}\b", text)
    kind = b.loc[bid, "kind"]
    assert kind not in text and card.locator(".gg-kind").inner_text() in KIND_ZH[kind]
    # the clicked building is highlighted, and only it; closing the card clears it
    lit = """() => [...document.querySelectorAll('.leaflet-gg-buildings-pane path')]
        .filter(p => p.getAttribute('fill') === '#ffd700').length"""
    page.wait_for_function(f"() => ({lit})() > 0")
    assert page.evaluate("Object.keys(GisGridViewer.buildings._overriddenStyles)") == [str(bid)]
    page.screenshot(path=str(artifacts_dir / "map_building_card.png"))
    card.locator(".gg-close").click()
    page.wait_for_function(f"() => ({lit})() === 0")
    assert page.errors == [], page.errors
    assert page.blocked == []


def _toggle_overlay(page, name: str, on: bool = True):
    """Tick or untick an overlay in the viewer's layer control, as a user would."""
    box = page.locator(".leaflet-control-layers-overlays label", has_text=name).locator("input")
    box.check() if on else box.uncheck()


def _check_warnings_controls(page, store_path, artifacts_dir):
    """Date picker, category filter and the ranked list with click-to-zoom, on a date with a planted surge."""
    import pandas as pd
    from gis_grid.atlas import Atlas
    from gis_grid.incidents import aggregate, early_warning as ew
    from gis_grid.store import open_store
    with open_store(store_path) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
    for day in pd.date_range("2016-12-31", "2015-03-01", freq="-7D"):
        df = ew.detect(t, atlas, day.date().isoformat())
        if df["anomaly"].any():
            break
    else:
        skip_or_fail_on_ci("no date with an anomaly in the demo history")
    day = day.date().isoformat()
    want = ew.warnings_info(t, atlas, day)
    page.fill("#gg-inc-date", day)
    page.dispatch_event("#gg-inc-date", "change")
    page.wait_for_function(f"() => GisGridViewer.incident.data.warnings.at === '{day}' && "
                           "document.body.dataset.ggIncWarnings === 'ready'", timeout=60_000)
    assert page.evaluate("GisGridViewer.incident.counts().warnings") == len(want["items"]) > 0
    links = page.locator("#gg-inc-ranked a[data-code]")
    assert links.count() == len(want["ranked"]) > 0
    assert [links.nth(i).get_attribute("data-code") for i in range(links.count())] == [r["code"] for r in want["ranked"]]
    # colours apart from the choropleth classes drawn under them
    fills = set(page.evaluate("() => [...document.querySelectorAll('path.gg-inc-warning')].map(p => p.getAttribute('fill'))"))
    assert fills and fills <= set(ew.WARN_COLOURS.values()), fills
    first = want["ranked"][0]["code"]
    links.first.click()
    page.locator(f'#grid-card[data-code="{first}"][data-state="loaded"]').wait_for()
    page.wait_for_function("() => GisGridViewer.map.getZoom() >= 13", timeout=10_000)
    page.wait_for_timeout(1000)   # the fly-to animation
    centre = page.evaluate("(() => { const c = GisGridViewer.map.getCenter(); return [c.lng, c.lat]; })()")
    g = atlas.division(first)["geometry"]
    assert shapely.distance(g, shapely.Point(centre)) < 0.005, (centre, first)
    page.screenshot(path=str(artifacts_dir / "map_warnings_ranked.png"))
    # the category filter applies to warnings too
    page.select_option("#gg-inc-category", "fire_safety")
    page.wait_for_function("() => (GisGridViewer.incident.data.warnings.category || [])[0] === 'fire_safety' && "
                           "document.body.dataset.ggIncWarnings === 'ready'", timeout=60_000)
    only = ew.warnings_info(t, atlas, day, category=["fire_safety"])
    assert page.evaluate("GisGridViewer.incident.counts().warnings") == len(only["items"])
    assert "fire_safety" in page.inner_text('#gg-inc-legend [data-layer="warnings"]')
    page.select_option("#gg-inc-category", "")
    page.wait_for_function("() => !GisGridViewer.incident.data.warnings.category && "
                           "document.body.dataset.ggIncWarnings === 'ready'", timeout=60_000)


def _check_heat_rates(page, legend, stops, artifacts_dir):
    """The heat as a rate (per km², per 100 households): reloaded from the server, drawn on its fixed scale
    in that unit, the legend naming the unit (and, per household, what it leaves out), Chinese first."""
    heat = "GisGridViewer.incident.data.heat"
    for rate, unit in (("per_km2", "cases per km²"), ("per_100hh", "cases per 100 households")):
        page.select_option("#gg-inc-rate", rate)
        page.wait_for_function(f"() => {heat}.rate === '{rate}' && !{heat}.category && "
                               "document.body.dataset.ggIncHeat === 'ready'", timeout=60_000)
        text = legend.inner_text()
        assert unit in text and "per month" in text and "fixed scale" in text, text
        cases = page.evaluate(f"{heat}.month_cases[30]")
        assert f"{cases} of {page.evaluate(f'{heat}.cases')} cases" in text
        top = page.evaluate(f"{heat}.scale.month")
        assert stops.all_inner_texts()[-1] == f"≥ {top:g}"
        busiest = page.evaluate(f"Math.max(...{heat}.counts[30][1])")
        weights = page.evaluate("GisGridViewer.incident.layers.heat._latlngs.map(p => p[2])")
        assert max(weights) == pytest.approx(min(1.0, (busiest / top) ** 0.5))
        if rate == "per_100hh":
            left = page.evaluate(f"{heat}.unweighted")
            assert f"grids without households add nothing ({left} cases)" in text
        page.screenshot(path=str(artifacts_dir / f"map_incident_heat_{rate}.png"))
    page.click("#gg-lang")      # Chinese: the control and the legend's unit
    assert page.evaluate("document.querySelector('#gg-inc-rate option:checked').textContent") == "每百户案件（按网格户数）"
    assert "每百户件数" in legend.inner_text() and "无户数网格不计入" in legend.inner_text()
    page.screenshot(path=str(artifacts_dir / "map_incident_heat_per_100hh_zh.png"))
    page.click("#gg-lang")
    page.select_option("#gg-inc-rate", "count")
    page.wait_for_function(f"() => {heat}.rate === 'count' && document.body.dataset.ggIncHeat === 'ready'",
                           timeout=60_000)
    assert "cases per 150 m bin" in legend.inner_text()


def test_incident_layers_in_the_viewer(page, live_server, demo_store_path, artifacts_dir):
    """Heatmap, response choropleths and warnings as layers of /map: toggled, legended, drawn from binned data."""
    from gis_grid.store import open_store
    with open_store(demo_store_path) as store:
        cases = len(store.incidents(columns=["id"]))
    if not cases:
        skip_or_fail_on_ci("the demo store has no case history (GIS_GRID_TEST_DEMO names a store made without it)")
    sizes = {}
    page.on("response", lambda r: "/incidents" in r.url and sizes.__setitem__(r.url, len(r.body())))
    _open_map(page, live_server)
    page.click("#gg-lang")     # the legend wording below is checked in English
    assert page.locator("#gg-incidents").is_hidden()   # off until asked for: the page stays light
    assert page.evaluate("GisGridViewer.incident.counts()") == {"heat": 0, "grid": 0, "community": 0, "warnings": 0}

    def ready(key):
        page.wait_for_function(f"() => document.body.dataset.ggInc{key.capitalize()} === 'ready'", timeout=60_000)

    # density heatmap: all months, then one month, then one category
    _toggle_overlay(page, "Incident density")
    ready("heat")
    bins_all = page.evaluate("GisGridViewer.incident.counts().heat")
    assert bins_all > 1000, bins_all
    painted = page.evaluate("""() => { const c = document.querySelector('canvas.leaflet-heatmap-layer');
        if (!c) return -1; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 1000, painted
    legend = page.locator('#gg-inc-legend [data-layer="heat"]')
    assert f"{cases} of {cases} cases" in legend.inner_text() and "150" in legend.inner_text()
    page.fill("#gg-inc-month", "30")
    page.dispatch_event("#gg-inc-month", "input")
    assert page.inner_text("#gg-inc-month-label") == page.evaluate("GisGridViewer.incident.data.heat.months[30]")
    assert 0 < page.evaluate("GisGridViewer.incident.counts().heat") < bins_all
    month = page.evaluate("GisGridViewer.incident.data.heat.counts[30][1].reduce((a, b) => a + b, 0)")
    assert f"{month} of {cases} cases" in legend.inner_text()
    # a fixed colour scale: five stops, the same for every month, from the server's scale
    stops = legend.locator(".gg-inc-entry")
    assert stops.count() == 5
    labels = stops.all_inner_texts()
    top = page.evaluate("GisGridViewer.incident.data.heat.scale.month")
    assert labels[-1] == f"≥ {top}" and labels == page.evaluate(
        "GisGridViewer.incident.data.heat.legend.month.map(e => e.label)")
    assert "fixed scale" in legend.inner_text()
    quiet = page.evaluate("""() => { const c = GisGridViewer.incident.data.heat.counts;
        let best = 0, low = Infinity; c.forEach((p, i) => { const n = p[1].reduce((a, b) => a + b, 0);
        if (n > 0 && n < low) { low = n; best = i; } }); return best; }""")
    page.fill("#gg-inc-month", str(quiet))
    page.dispatch_event("#gg-inc-month", "input")
    assert stops.all_inner_texts() == labels          # the legend did not rescale to the quiet month
    busiest = page.evaluate(f"Math.max(...GisGridViewer.incident.data.heat.counts[{quiet}][1])")
    weights = page.evaluate("GisGridViewer.incident.layers.heat._latlngs.map(p => p[2])")
    # on the fixed scale; a quiet month whose busiest bin is under the scale's top stays below full colour
    # (a month rescaled to its own maximum would reach 1); one with a bin over the top saturates there
    assert max(weights) == pytest.approx(min(1.0, (busiest / top) ** 0.5))
    assert busiest >= top or max(weights) < 1
    # radius follows the ground: small at district zoom, larger at street zoom
    r_district = page.evaluate("GisGridViewer.incident.layers.heat.options.radius")
    z0 = page.evaluate("GisGridViewer.map.getZoom()")
    assert z0 <= 12 and r_district <= 8
    page.evaluate("GisGridViewer.map.setZoom(15, {animate: false})")
    page.wait_for_function(f"() => GisGridViewer.incident.layers.heat.options.radius > {r_district}")
    page.evaluate(f"GisGridViewer.map.setZoom({z0}, {{animate: false}})")
    # play steps through the months
    page.click("#gg-inc-play")
    first = page.evaluate("GisGridViewer.incident.data.heat.months[0]")
    page.wait_for_function(f"() => document.getElementById('gg-inc-month-label').textContent > '{first}'", timeout=10_000)
    assert "pause" in page.inner_text("#gg-inc-play")
    page.click("#gg-inc-play")
    assert "play" in page.inner_text("#gg-inc-play")
    page.fill("#gg-inc-month", "30")
    page.dispatch_event("#gg-inc-month", "input")
    page.select_option("#gg-inc-category", "sanitation")
    page.wait_for_function("() => GisGridViewer.incident.data.heat.category && "
                           "document.body.dataset.ggIncHeat === 'ready'", timeout=60_000)
    sanitation = page.evaluate("GisGridViewer.incident.data.heat.cases")
    assert 0 < sanitation < cases and f" of {sanitation} cases" in legend.inner_text()
    page.screenshot(path=str(artifacts_dir / "map_incident_heat.png"))
    page.select_option("#gg-inc-category", "")
    _check_heat_rates(page, legend, stops, artifacts_dir)
    _toggle_overlay(page, "Incident density", on=False)
    assert page.evaluate("GisGridViewer.incident.counts().heat") == 0
    assert page.locator('#gg-inc-legend [data-layer="heat"]').count() == 0

    # response choropleths per base grid and per community, with the scheme named in the legend
    for key, label, n in (("grid", "Response per base grid", 445), ("community", "Response per community", 170)):
        _toggle_overlay(page, label)
        ready(key)
        assert page.evaluate(f"GisGridViewer.incident.counts().{key}") == n
        for metric, scheme in (("closure_rate", "natural breaks"), ("median_handling_h", "quantiles"),
                               ("satisfaction", "90 % line"), ("open_red", "head/tail"),
                               ("cases_per_100hh", "quantiles"), ("cases_per_km2", "quantiles")):
            page.select_option("#gg-inc-metric", metric)
            block = page.locator(f'#gg-inc-legend [data-layer="{key}"]')
            assert scheme in block.inner_text(), block.inner_text()
            swatches = block.locator("i").count()
            fills = page.evaluate(f"""() => new Set([...document.querySelectorAll('path.gg-inc-{key}')]
                .map(p => p.getAttribute('fill'))).size""")
            spread = 1 if metric == "satisfaction" else 3   # satisfaction is 100 % nearly everywhere
            assert fills >= spread and swatches >= spread, (key, metric, fills, swatches)
        page.select_option("#gg-inc-metric", "cases_per_100hh")   # rates, not raw counts, as an option
        assert "cases per 100 households" in page.inner_text(f'#gg-inc-legend [data-layer="{key}"]')
        page.screenshot(path=str(artifacts_dir / f"map_incident_{key}_per_household.png"))
        page.select_option("#gg-inc-metric", "closure_rate")
        page.screenshot(path=str(artifacts_dir / f"map_incident_{key}.png"))
        _toggle_overlay(page, label, on=False)

    # early warning: the flagged grids, with the date and the legend
    _toggle_overlay(page, "Early warnings")
    ready("warnings")
    assert "early warnings at 2016-12-31" in page.inner_text('#gg-inc-legend [data-layer="warnings"]')
    assert page.input_value("#gg-inc-date") == "2016-12-31"
    _check_warnings_controls(page, demo_store_path, artifacts_dir)
    _toggle_overlay(page, "Response per base grid")
    ready("grid")
    page.screenshot(path=str(artifacts_dir / "map_incidents.png"))

    # binned and aggregated only: every incident response is small, and no case list was asked for
    assert sizes and all(n < 1_500_000 for n in sizes.values()), sizes
    # (a clicked grid's card asks for its five latest open cases: that is the card, not a layer)
    assert not [u for u in sizes if "/map/incidents/" not in u and "/incidents?grid=" not in u], sizes
    assert all("limit=5" in u for u in sizes if "/incidents?grid=" in u), sizes
    assert page.errors == [], page.errors
    assert page.blocked == [], page.blocked


def test_login_and_refusal_pages_in_the_browser(browser, live_server, artifacts_dir):
    """Signing in is bilingual (Chinese first), and a refused navigation is a page, not JSON."""
    context = browser.new_context(viewport={"width": 1000, "height": 700}, locale="zh-CN")
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(live_server + "/map", wait_until="load")
    assert "/login" in pg.url
    body = pg.inner_text("body")
    assert "请使用 API 密钥登录" in body and "Sign in with your API key" not in body
    assert pg.inner_text("button[type=submit]") == "登录"
    pg.fill("input[name=key]", "gg_not_a_key")
    pg.click("button[type=submit]")
    pg.wait_for_selector("#login-error")
    assert "登录失败" in pg.inner_text("#login-error")
    pg.screenshot(path=str(artifacts_dir / "login_zh.png"))
    pg.click("#gg-lang")
    body = pg.inner_text("body")
    assert "Sign in with your API key." in body and "请使用" not in body and "Sign-in failed." in body
    assert pg.inner_text("button[type=submit]") == "Sign in"
    pg.screenshot(path=str(artifacts_dir / "login_en.png"))
    pg.click("#gg-lang")
    # a page the browser may not open without signing in: a 401 page linking to the sign-in
    resp = pg.goto(live_server + "/grids/370402001001001", wait_until="load")
    assert resp.status == 401 and resp.headers["content-type"].startswith("text/html")
    assert "需要登录" in pg.inner_text("h1") and pg.locator('a[href^="/login?next="]').count() == 1
    pg.screenshot(path=str(artifacts_dir / "refusal_401.png"))
    resp = pg.goto(live_server + "/no/such/page", wait_until="load")
    assert resp.status == 404 and "未找到" in pg.inner_text("h1")
    assert errors == [], errors
    context.close()


def test_api_docs_offline(watched_page, live_server, artifacts_dir):
    """/docs draws Swagger UI from the app's vendored copy: no CDN, nothing refused by the CSP."""
    pg = watched_page(viewport={"width": 1280, "height": 900})
    errors, blocked = pg.errors, pg.blocked
    pg.goto(live_server + "/docs", wait_until="load")
    pg.wait_for_function("() => document.querySelectorAll('.swagger-ui .opblock').length > 20", timeout=60_000)
    assert "gis_grid" in pg.inner_text(".swagger-ui .info .title")
    tags = pg.locator(".swagger-ui .opblock-tag").all_inner_texts()
    assert any("map" in t for t in tags) and any("locate" in t for t in tags), tags
    pg.screenshot(path=str(artifacts_dir / "api_docs.png"))
    assert pg.goto(live_server + "/redoc", wait_until="load").url.endswith("/docs")
    assert errors == [] and blocked == [], (errors, blocked)
