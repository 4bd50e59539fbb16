"""The incident heatmap and response choropleths render in headless Chromium (standalone page, no network)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gis_grid.atlas import Atlas
from gis_grid.incidents import aggregate
from gis_grid.store import open_store
from incident_demo import incident_store_path
from web.incident_pages import incident_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_file(demo_store_path, tmp_path_factory):
    with open_store(incident_store_path(demo_store_path, tmp_path_factory)) as store:
        atlas = Atlas.from_store(store)
        t = aggregate.case_table(store, atlas)
        from gis_grid.incidents.early_warning import warnings_layer
        html = incident_page(atlas, t, layer="all", warnings=warnings_layer(t, atlas, "2016-12-31"))
    path = tmp_path_factory.mktemp("incmap") / "incidents.html"
    path.write_text(html, encoding="utf-8")
    assert len(html.encode()) < 3_000_000
    return path


def test_incident_layers_render(watched_page, page_file, artifacts_dir):
    pg = watched_page(network=False, viewport={"width": 1280, "height": 800})
    errors, blocked = pg.errors, pg.blocked
    pg.goto(page_file.as_uri(), wait_until="load")
    pg.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    assert pg.evaluate("document.body.dataset.incidentLayer") == "heatmap"
    # the heat layer drew a canvas with coloured pixels
    painted = pg.evaluate("""() => { const c = document.querySelector('canvas.leaflet-heatmap-layer');
        if (!c) return -1; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 1000, painted
    # one month only: fewer cases in the legend than all months
    all_max = pg.inner_text("#legend")
    pg.fill("#month", "30")
    pg.dispatch_event("#month", "input")
    assert pg.inner_text("#month-label") == "2016-07"
    assert pg.inner_text("#legend") != all_max
    # a fixed scale: five stops from the page's data, unchanged in a quiet month
    stops = pg.locator("#legend div").all_inner_texts()
    assert len(stops) == 5 and stops == pg.evaluate("IncidentMap.data.heat.legend.month.map(e => e.label)")
    assert stops[-1] == f"≥ {pg.evaluate('IncidentMap.data.heat.scale.month')}"
    pg.fill("#month", "0")
    pg.dispatch_event("#month", "input")
    assert pg.locator("#legend div").all_inner_texts() == stops
    # the district outline and every street's name are drawn on the page
    labels = pg.locator(".street-label").all_inner_texts()
    assert len(labels) == 11 and all(n.endswith(("街道", "镇")) for n in labels), labels
    # play steps through the months, pause stops
    pg.click("#play")
    pg.wait_for_function("() => document.getElementById('month-label').textContent > IncidentMap.data.heat.months[0]", timeout=10_000)
    pg.click("#play")
    assert "播放" in pg.inner_text("#play")
    pg.fill("#month", "30")
    pg.dispatch_event("#month", "input")
    pg.screenshot(path=str(artifacts_dir / "incident_heatmap.png"))
    for level, n in (("grid", 445), ("community", 170)):
        pg.select_option("#layer", level)
        for metric in ("closure_rate", "median_handling_h", "satisfaction", "open_red"):
            pg.select_option("#metric", metric)
            drawn = pg.evaluate("""() => { const ls = IncidentMap.layer().getLayers();
                return [ls.length, new Set(ls.map(l => l.options.fillColor)).size]; }""")
            # satisfaction is 100 % in almost every grid: one class is the honest answer there
            spread = 1 if metric == "satisfaction" else 3
            assert drawn[0] == n and drawn[1] >= spread, (level, metric, drawn)
            legend = pg.evaluate("""() => [...document.querySelectorAll('#legend i')].map(i => i.style.background)""")
            assert len(legend) >= spread, legend
    pg.screenshot(path=str(artifacts_dir / "incident_choropleth.png"))
    pg.select_option("#layer", "warnings")
    assert "超前预警 2016-12-31" in pg.inner_text("#legend")     # Chinese first
    # the English toggle: labels, options and legend switch in place
    assert pg.inner_text("#gg-lang") == "English"
    pg.click("#gg-lang")
    assert "warnings at 2016-12-31" in pg.inner_text("#legend") and "超前预警" not in pg.inner_text("#legend")
    assert "Layer" in pg.inner_text("#panel") and "early warnings" in pg.inner_text("#layer")
    pg.screenshot(path=str(artifacts_dir / "incident_warnings.png"))
    assert not errors, errors
    assert not blocked, blocked


def test_served_incident_page(browser, live_server, demo_store_path):
    """GET /map/incidents from the running service: vendored assets load from the host, layers draw."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    errors, blocked = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: m.type == "error" and errors.append(m.text))

    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            blocked.append(route.request.url)
            return route.abort()
        return route.continue_()

    pg.route("**/*", guard)
    from common import bearer  # sign in: the page and its data need a key with map access
    pg.goto(live_server + "/login", wait_until="load")
    pg.fill("input[name=key]", bearer(demo_store_path)["Authorization"].removeprefix("Bearer "))
    pg.click("button[type=submit]")
    pg.wait_for_url("**/map")
    pg.goto(live_server + "/map/incidents?layer=choropleth&from=2016-01-01&to=2016-12-31", wait_until="load")
    pg.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60_000)
    assert pg.evaluate("typeof L.heatLayer") == "function"  # the vendored plugin came from the host
    pg.select_option("#layer", "community")
    n = pg.evaluate("IncidentMap.layer().getLayers().length")
    assert n == 170
    assert not errors and not blocked, (errors, blocked)
    ctx.close()
