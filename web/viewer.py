"""The command-centre map viewer (GET /map): a folium page around ``static/viewer/viewer.js``.

Every script and stylesheet the page loads comes from ``asset_prefix`` (vendored copies served
by the app), never from a CDN; folium's default CDN assets are replaced. The page holds no
geometry: the viewer script fetches the levels from the API (:mod:`gis_grid.layers`).
"""
from __future__ import annotations

import html
import json

import folium
import numpy as np
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

from gis_grid import layers
from gis_grid.atlas import Atlas
from gis_grid.hierarchy import Level
from gis_grid.incidents import layers as incident_layers
from gis_grid.incidents import model

from .i18n import LANG_CSS, LANG_JS, bi

# levels drawn on the map, bottom to top; grids on top so a click hits the finest level
MAP_LEVELS = (Level.STREET, Level.COMMUNITY, Level.GRID)
LAYER_TITLES = {Level.STREET: bi("街道", "Streets"), Level.COMMUNITY: bi("社区", "Communities"),
                Level.GRID: bi("网格", "Base grids")}
# zooms at which each level's labels are shown [min, max]
LABEL_ZOOMS = {Level.STREET: (11, 13), Level.COMMUNITY: (14, 15), Level.GRID: (16, 22)}


def _basemap_layers(basemap: str, tianditu_key: str, api_prefix: str = "",
                    package: dict | None = None) -> list[folium.TileLayer]:
    if basemap in ("mbtiles", "mbtiles-gcj02") and package:
        # the offline package, served by the app (GET /map/basemap/...); Leaflet enlarges its top zoom
        url = f"{api_prefix}/map/basemap/{{z}}/{{x}}/{{y}}.{package['format']}"
        return [folium.TileLayer(url, name=bi("离线底图", "Offline basemap"), attr=package.get("attribution") or "offline",
                                 min_zoom=8, max_zoom=20, min_native_zoom=package["minzoom"],
                                 max_native_zoom=package["maxzoom"])]
    if basemap == "tianditu":
        # CGCS2000 web-mercator ("_w") tiles: no offset against the store's coordinates
        def tdt(layer: str, name: str, overlay: bool) -> folium.TileLayer:
            url = ("https://t{s}.tianditu.gov.cn/" + layer + "_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                   "&LAYER=" + layer + "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
                   "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tianditu_key)
            return folium.TileLayer(url, name=name, attr="天地图 Tianditu", subdomains="01234567",
                                    max_zoom=18, overlay=overlay, control=not overlay)
        return [tdt("vec", "天地图 矢量", False), tdt("cva", "天地图 注记", True)]
    if basemap == "amap":
        url = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
        return [folium.TileLayer(url, name="高德地图 AMap (GCJ-02)", attr="高德地图 AutoNavi",
                                 subdomains="1234", max_zoom=18)]
    return []


_VIEWER_TEMPLATE = """
{% macro script(this, kwargs) %}
    GisGridViewer.init({
        map: {{ this._parent.get_name() }},
        layers: {
            {%- for level, fg in this.groups.items() %}
            {{ level }}: {{ fg.get_name() }},
            {%- endfor %}
        },
        control: {{ this.control.get_name() }},
        config: {{ this.config_json }}
    });
{% endmacro %}
"""


class _ViewerInit(MacroElement):
    """Hands folium's map, feature groups and layer control to the viewer script."""

    _template = Template(_VIEWER_TEMPLATE)

    def __init__(self, groups: dict, control, config: dict):
        super().__init__()
        self._name = "GisGridViewer"
        self.groups = groups
        self.control = control
        self.config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")


def _incident_config(api_prefix: str) -> dict:
    return {
        "heatUrl": f"{api_prefix}/map/incidents/heat.json",
        "choroplethUrl": f"{api_prefix}/map/incidents/choropleth/{{level}}.json",
        "warningsUrl": f"{api_prefix}/map/incidents/warnings.json",
        "categories": [[c.code, c.name_zh, c.name_en] for c in model.CATEGORIES.values()],
        # a grid card's open cases by colour and most recent open cases (GET /incidents), and a CSV of its cases
        "listUrl": f"{api_prefix}/incidents",
        "exportUrl": f"{api_prefix}/incidents/export.csv",
        "openStatuses": sorted(s.value for s in model.OPEN_STATUSES),
        "metrics": {k: v[0] for k, v in incident_layers.CHORO_METRICS.items()},
        "layers": {"heat": "事件热力 Incident density", "grid": "网格处置 Response per base grid",
                   "community": "社区处置 Response per community", "warnings": "超前预警 Early warnings"},
    }


def build_map(atlas: Atlas, basemap: str = "none", asset_prefix: str = "/map/static", *,
              tianditu_key: str = "", api_prefix: str = "", title: str = "市中区网格化社会管理 指挥中心",
              title_en: str = "Shizhong District grid management · command centre",
              package: dict | None = None, as_of: str | None = None) -> folium.Map:
    """The folium map of the viewer (render with :func:`viewer_html`)."""
    layers.check_basemap(basemap)
    asset_prefix = asset_prefix.rstrip("/")
    api_prefix = api_prefix.rstrip("/")
    district = atlas.divisions[atlas.divisions["level"] == Level.DISTRICT.value]
    geoms = (district if len(district) else atlas.divisions)["geometry"].to_numpy()
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    bx, by = layers.to_display(np.array([minx, maxx]), np.array([miny, maxy]), basemap)
    center = [float(by.mean()), float(bx.mean())]

    m = folium.Map(location=center, zoom_start=12, tiles=None, control_scale=True,
                   prefer_canvas=False)
    # replace folium's CDN assets (leaflet, jquery, bootstrap, awesome-markers ...) with vendored copies
    # (in this order: the plugins and the viewer need L)
    m.default_js = [("gg_lang", f"{asset_prefix}/{LANG_JS}"),
                    ("leaflet", f"{asset_prefix}/leaflet/leaflet.js"),
                    ("vectorgrid", f"{asset_prefix}/vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
                    ("leaflet_heat", f"{asset_prefix}/leaflet-heat/leaflet-heat.js"),
                    ("gis_grid_viewer", f"{asset_prefix}/viewer/viewer.js")]
    m.default_css = [("gg_lang_css", f"{asset_prefix}/{LANG_CSS}"),
                     ("leaflet_css", f"{asset_prefix}/leaflet/leaflet.css"),
                     ("gis_grid_viewer_css", f"{asset_prefix}/viewer/viewer.css")]
    header = m.get_root().header
    header.add_child(Element(f"<title>{html.escape(title)}</title>"), name="title")
    header.add_child(Element('<link rel="icon" href="data:,"/>'), name="favicon")

    for layer in _basemap_layers(basemap, tianditu_key, api_prefix, package):
        layer.add_to(m)
    groups = {}
    for level in MAP_LEVELS:
        groups[level.value] = folium.FeatureGroup(name=LAYER_TITLES[level], show=True).add_to(m)
    groups["labels"] = folium.FeatureGroup(name=bi("标注", "Labels"), show=True).add_to(m)
    groups["buildings"] = folium.FeatureGroup(name=bi("建筑（≥ 15 级）", "Buildings (zoom ≥ 15)"), show=True).add_to(m)
    control = folium.LayerControl(collapsed=False, position="topright").add_to(m)

    # the GCJ-02 shift at the district centre, for overlays the server cannot shift (vector tiles)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    gx, gy = layers.to_display(cx, cy, basemap)
    config = {
        "title": title,
        "titleEn": title_en,
        "basemap": basemap,
        "bounds": [[float(by[0]), float(bx[0])], [float(by[1]), float(bx[1])]],
        "levels": [lv.value for lv in MAP_LEVELS],
        "layerUrl": f"{api_prefix}/map/layers/{{level}}.geojson",
        "searchUrl": f"{api_prefix}/map/search",
        "gridUrl": f"{api_prefix}/grids/{{code}}",
        "residentsUrl": f"{api_prefix}/buildings/{{id}}/residents",
        "buildingTilesUrl": f"{api_prefix}/ogc/collections/buildings/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}",
        "buildingLayer": "buildings",
        "buildingMinZoom": 15,
        "minZoom": 8,
        "maxZoom": 20,
        "labelZooms": {lv.value: list(LABEL_ZOOMS[lv]) for lv in MAP_LEVELS},
        "tileShift": ({"from": [float(cx), float(cy)], "to": [float(gx), float(gy)]}
                      if basemap in layers.GCJ02_BASEMAPS else None),
        "atlasVersion": int(atlas.version),
        "asOf": as_of,
        # incident layers: off until toggled, then fetched as binned / aggregated values (api/routers/incident_map.py)
        "incidents": _incident_config(api_prefix),
    }
    _ViewerInit(groups, control, config).add_to(m)
    return m


def viewer_html(atlas: Atlas, basemap: str = "none", asset_prefix: str = "/map/static", **kwargs) -> str:
    """The complete viewer page as HTML (assets under ``asset_prefix``; no CDN URLs)."""
    html_out = build_map(atlas, basemap, asset_prefix, **kwargs).get_root().render()
    return html_out.replace("<html>", '<html lang="zh-CN">', 1)
