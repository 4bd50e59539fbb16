"""GET /map (the folium/Leaflet viewer), its vendored assets and the grid layer GeoJSON."""
from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod

from api.app import create_app
from api.settings import Settings
from gis_grid import crs as crs_mod
from web import viewer
from web.assets import external_asset_urls

GEOD = Geod(ellps="WGS84")
COUNTS = {"street": 11, "community": 170, "grid": 445}
ASSET_RE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def client_for(client: TestClient, **settings) -> TestClient:
    """Another app over the same (already loaded) atlas; no lifespan, so the shared store stays open."""
    return TestClient(create_app(Settings(**settings), holder=client.app.state.holder), headers=client.headers)


@pytest.fixture(scope="module")
def amap(client):
    return client_for(client, basemap="amap")


@pytest.fixture(scope="module")
def tianditu(client):
    return client_for(client, basemap="tianditu", tianditu_key="testkey123")


def test_map_page_is_html_without_external_assets(client):
    r = client.get("/map")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "GisGridViewer.init(" in page and "L.control.scale()" in page and "L.control.layers(" in page
    assert external_asset_urls(page) == []
    # the default basemap is offline: nothing at all points off the host
    assert "https://" not in page and "http://" not in page
    for cdn in ("cdn.jsdelivr", "cdnjs", "code.jquery", "bootstrapcdn", "unpkg"):
        assert cdn not in page
    assets = ASSET_RE.findall(page)
    assert any(a.endswith("/leaflet.js") for a in assets)
    assert any(a.endswith("Leaflet.VectorGrid.bundled.min.js") for a in assets)
    for a in assets:
        if a.startswith("data:"):
            continue
        assert a.startswith("/map/static/"), a
        got = client.get(a)
        assert got.status_code == 200, a
        want = "application/javascript" if a.endswith(".js") else "text/css"
        assert got.headers["content-type"].startswith(want), (a, got.headers["content-type"])


@pytest.mark.parametrize("path, ctype", [
    ("leaflet/leaflet.js", "application/javascript"),
    ("leaflet/leaflet.css", "text/css"),
    ("leaflet/images/layers.png", "image/png"),
    ("leaflet/images/marker-icon.png", "image/png"),
    ("vectorgrid/Leaflet.VectorGrid.bundled.min.js", "application/javascript"),
    ("viewer/viewer.js", "application/javascript"),
    ("viewer/viewer.css", "text/css"),
    ("leaflet/LICENSE", "text/plain"),
    ("vectorgrid/LICENSE", "text/plain"),
])
def test_static_assets(client, path, ctype):
    r = client.get(f"/map/static/{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(ctype)
    assert len(r.content) > 100


def test_docs_use_the_vendored_swagger_ui(client):
    """/docs works offline: every script and stylesheet from this host; /redoc points there."""
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert external_asset_urls(page.text) == [] and "cdn" not in page.text
    assets = ASSET_RE.findall(page.text)
    assert "/map/static/swagger-ui/swagger-ui-bundle.js" in assets and "/map/static/swagger-ui/swagger-ui.css" in assets
    for a in (a for a in assets if a.endswith((".js", ".css"))):
        got = client.get(a)
        assert got.status_code == 200 and len(got.content) > 100_000, a
    assert "/openapi.json" in page.text
    r = client.get("/redoc", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/docs"
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_static_assets_stay_inside_the_static_dir(client):
    for path in ("../app.py", "..%2Fapp.py", "nope.js", "viewer"):
        assert client.get(f"/map/static/{path}").status_code in (400, 404), path


@pytest.mark.parametrize("level", sorted(COUNTS))
def test_layer_geojson_counts(client, demo_atlas, level):
    r = client.get(f"/map/layers/{level}.geojson")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    feats = fc["features"]
    assert len(feats) == COUNTS[level]
    d = demo_atlas.divisions
    assert sorted(f["properties"]["code"] for f in feats) == sorted(d[d["level"] == level]["code"])
    for f in feats:
        p = f["properties"]
        assert p["level"] == level and p["name"]
        g = shapely.geometry.shape(f["geometry"])
        assert g.geom_type in ("Polygon", "MultiPolygon") and g.is_valid and not g.is_empty
        # the label point lies inside its polygon
        assert g.buffer(1e-6).covers(shapely.Point(p["label"]))


def test_layer_geojson_is_simplified_but_close(client, demo_atlas):
    fc = client.get("/map/layers/street.geojson").json()
    d = demo_atlas.divisions.set_index("code")
    for f in fc["features"]:
        orig = d.loc[f["id"], "geometry"]
        simple = shapely.geometry.shape(f["geometry"])
        assert shapely.get_num_coordinates(simple) <= shapely.get_num_coordinates(orig)
        assert shapely.hausdorff_distance(orig, simple) < 5e-4  # < ~50 m


def test_layer_aliases_and_errors(client):
    assert len(client.get("/map/layers/grids.geojson").json()["features"]) == 445
    assert client.get("/map/layers/planet.geojson").status_code == 400
    r = client.get("/map/layers/grid.geojson")
    assert client.get("/map/layers/grid.geojson", headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def _coords(feature) -> np.ndarray:
    return shapely.get_coordinates(shapely.geometry.shape(feature["geometry"]))


def test_amap_mode_shifts_overlays_to_gcj02(client, amap):
    page = amap.get("/map").text
    assert "autonavi.com" in page              # the basemap tiles (not a script or stylesheet)
    assert external_asset_urls(page) == []
    assert '"tileShift": {' in page            # building tiles are shifted client-side
    for level in ("street", "grid"):
        plain = {f["id"]: f for f in client.get(f"/map/layers/{level}.geojson").json()["features"]}
        shifted = {f["id"]: f for f in amap.get(f"/map/layers/{level}.geojson").json()["features"]}
        assert plain.keys() == shifted.keys()
        for code in list(plain)[:20]:
            a, b = _coords(plain[code]), _coords(shifted[code])
            assert a.shape == b.shape
            _, _, dist = GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
            assert 300 < dist.min() and dist.max() < 800, (code, dist.min(), dist.max())
            gx, gy = crs_mod.wgs84_to_gcj02(a[:, 0], a[:, 1])
            np.testing.assert_allclose(b, np.column_stack([gx, gy]), atol=2e-6)
            la, lb = plain[code]["properties"]["label"], shifted[code]["properties"]["label"]
            assert 300 < GEOD.inv(la[0], la[1], lb[0], lb[1])[2] < 800


def test_tianditu_mode_has_no_shift(client, tianditu):
    page = tianditu.get("/map").text
    assert "tianditu.gov.cn" in page and "tk=testkey123" in page
    assert external_asset_urls(page) == []
    a = client.get("/map/layers/community.geojson").json()["features"]
    b = tianditu.get("/map/layers/community.geojson").json()["features"]
    assert a == b


def test_search(client, demo_atlas):
    d = demo_atlas.divisions
    grid = d[d["level"] == "grid"].iloc[7]
    hit = client.get("/map/search", params={"q": grid["code"]}).json()["results"][0]
    assert hit["code"] == grid["code"] and hit["level"] == "grid" and len(hit["bbox"]) == 4

    comm = d[d["level"] == "community"].iloc[3]
    hits = client.get("/map/search", params={"q": comm["name"]}).json()["results"]
    assert hits[0]["code"] == comm["code"]

    p = shapely.point_on_surface(grid["geometry"])
    hit = client.get("/map/search", params={"q": f"{p.x:.6f},{p.y:.6f}"}).json()["results"][0]
    assert hit["kind"] == "point" and hit["code"] == grid["code"]
    assert hit["center"] == pytest.approx([p.x, p.y], abs=1e-6)

    assert client.get("/map/search", params={"q": "no such place"}).json()["results"] == []
    outside = client.get("/map/search", params={"q": "100.0,30.0"}).json()["results"][0]
    assert outside["outside"] is True and outside["code"] is None


def test_search_point_in_amap_mode_is_shifted(amap):
    hit = amap.get("/map/search", params={"q": "117.55,34.86"}).json()["results"][0]
    gx, gy = crs_mod.wgs84_to_gcj02(117.55, 34.86)
    assert hit["center"] == pytest.approx([float(gx), float(gy)], abs=1e-6)
    assert hit["code"]  # the grid is located with the original (CGCS2000) coordinate


def test_viewer_html_is_framework_free(demo_atlas):
    page = viewer.viewer_html(demo_atlas, "none", "/assets")
    assert "/assets/leaflet/leaflet.js" in page and "/map/static" not in page
    assert external_asset_urls(page) == []
    with pytest.raises(ValueError):
        viewer.viewer_html(demo_atlas, "osm")


# -- the offline basemap package (MBTiles) ---------------------------------------------------------

@pytest.fixture(scope="module")
def basemap_files(client, tmp_path_factory):
    """The demo's own basemap, rendered at a few zooms in both datums (as a Tianditu / an AMap package)."""
    from gis_grid import basemap
    atlas = client.app.state.holder.atlas
    out = tmp_path_factory.mktemp("basemap")
    return {crs: (basemap.render_basemap(atlas, out / f"{crs}.mbtiles", zooms=(10, 12), crs=crs), out / f"{crs}.mbtiles")
            for crs in ("cgcs2000", "gcj02")}


def _tile_at(lon, lat, z):
    import math
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_offline_basemap_is_served_from_the_package(client, basemap_files):
    from io import BytesIO

    from PIL import Image
    summary, path = basemap_files["cgcs2000"]
    assert summary["tiles"] > 10 and summary["bytes"] < 2_000_000
    c = client_for(client, basemap="mbtiles", basemap_mbtiles=str(path))
    page = c.get("/map").text
    assert '"/map/basemap/{z}/{x}/{y}.png"' in page and '"maxNativeZoom": 12' in page
    assert "https://" not in page and "http://" not in page
    # a tile over the district centre shows drawn land; a tile far outside is transparent, not a 404
    x, y = _tile_at(117.56, 34.86, 12)
    r = c.get(f"/map/basemap/12/{x}/{y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(BytesIO(r.content)).convert("RGBA")
    assert img.getchannel("A").getextrema()[1] == 255 and len(img.getcolors(maxcolors=65536)) > 3
    empty = c.get("/map/basemap/12/0/0.png")
    assert empty.status_code == 200
    assert Image.open(BytesIO(empty.content)).convert("RGBA").getchannel("A").getextrema() == (0, 0)
    assert c.get(f"/map/basemap/12/{x}/{y}.jpg").status_code == 404
    # a basemap tile is not public: it needs the maps permission like the layers
    assert TestClient(c.app).get(f"/map/basemap/12/{x}/{y}.png").status_code == 401


def test_missing_package_falls_back_to_no_basemap(client, tmp_path):
    c = client_for(client, basemap="mbtiles", basemap_mbtiles=str(tmp_path / "absent.mbtiles"))
    assert "/map/basemap/" not in c.get("/map").text
    assert c.get("/map/basemap/12/0/0.png").status_code == 404


def test_gcj02_package_shifts_the_overlays(client, basemap_files):
    plain = client_for(client, basemap="mbtiles", basemap_mbtiles=str(basemap_files["cgcs2000"][1]))
    gcj = client_for(client, basemap="mbtiles", basemap_mbtiles=str(basemap_files["gcj02"][1]), basemap_crs="gcj02")
    a = plain.get("/map/layers/street.geojson").json()["features"][0]["geometry"]
    b = gcj.get("/map/layers/street.geojson").json()["features"][0]["geometry"]
    pa = np.asarray(shapely.get_coordinates(shapely.geometry.shape(a)))
    pb = np.asarray(shapely.get_coordinates(shapely.geometry.shape(b)))
    want = np.column_stack(crs_mod.wgs84_to_gcj02(pa[:, 0], pa[:, 1]))
    assert np.abs(pb - want).max() < 1e-5          # the overlays moved by the GCJ-02 offset (~500 m here)
    assert np.abs(pb - pa).max() > 1e-3
    assert '"tileShift": {' in gcj.get("/map").text  # the building vector tiles follow on the client
    # and the package itself was drawn in GCJ-02: its bounds are shifted the same way
    from gis_grid.basemap import MBTiles
    b0 = [float(v) for v in MBTiles(basemap_files["cgcs2000"][1]).metadata["bounds"].split(",")]
    b1 = [float(v) for v in MBTiles(basemap_files["gcj02"][1]).metadata["bounds"].split(",")]
    gx, gy = crs_mod.wgs84_to_gcj02(b0[0], b0[1])
    assert abs(b1[0] - b0[0]) > 2e-3                 # moved by the offset (~500 m) ...
    assert abs(b1[0] - gx) < 5e-4 and abs(b1[1] - gy) < 5e-4  # ... to where GCJ-02 puts it (the extent's corner
    # is not one vertex, so the offset, which varies across the district, is matched to ~50 m)


def test_data_as_of_stamp(client):
    page = client.get("/map").text
    assert '"asOf": "2016-12-31"' in page
