"""The command-centre map viewer: folium page plus GeoJSON of the grid levels.

Framework-free: the API serves what these functions return. Every script and
stylesheet the page loads comes from ``asset_prefix`` (vendored copies served
by the app), never from a CDN; folium's default CDN assets are replaced.

Display coordinates: the store holds EPSG:4490 (CGCS2000), treated as WGS84 for
display (they differ by well under a metre). With the ``amap`` basemap the tiles
are GCJ-02, so every overlay coordinate is shifted with :func:`crs.wgs84_to_gcj02`.
"""
from __future__ import annotations

import html
import json
import re
from typing import Literal

import folium
import numpy as np
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

from . import crs as crs_mod
from .atlas import Atlas
from .errors import InvalidCoordinatesError
from .hierarchy import Level

Basemap = Literal["none", "tianditu", "amap"]
BASEMAPS = ("none", "tianditu", "amap")

# levels drawn on the map, bottom to top; grids on top so a click hits the finest level
MAP_LEVELS = (Level.STREET, Level.COMMUNITY, Level.GRID)
LAYER_TITLES = {Level.STREET: "街道 Streets", Level.COMMUNITY: "社区 Communities", Level.GRID: "网格 Base grids"}
# simplification tolerance per level, in degrees (~1e-5 deg = 1 m); coverage-aware so neighbours share edges
SIMPLIFY_DEG = {Level.DISTRICT: 2e-4, Level.STREET: 1e-4, Level.COMMUNITY: 5e-5, Level.GRID: 2e-5}
# zooms at which each level's labels are shown [min, max]
LABEL_ZOOMS = {Level.STREET: (11, 13), Level.COMMUNITY: (14, 15), Level.GRID: (16, 22)}
COORD_DECIMALS = 6

_COORD_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[,，\s]\s*(-?\d+(?:\.\d+)?)\s*$")


def check_basemap(basemap: str) -> str:
    if basemap not in BASEMAPS:
        raise ValueError(f"unknown basemap {basemap!r}; use one of {', '.join(BASEMAPS)}")
    return basemap


def to_display(lon, lat, basemap: str = "none"):
    """Storage lon/lat -> the basemap's display lon/lat (GCJ-02 for amap)."""
    if check_basemap(basemap) == "amap":
        return crs_mod.wgs84_to_gcj02(lon, lat)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _display_geoms(geoms: np.ndarray, basemap: str) -> np.ndarray:
    if basemap != "amap":
        return geoms
    return crs_mod.transform_geoms(geoms, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GCJ02)


def simplify_level(geoms: np.ndarray, level: Level) -> np.ndarray:
    """Simplify one level's polygons; shared edges stay shared (coverage simplification)."""
    tol = SIMPLIFY_DEG[level]
    geoms = np.asarray(geoms, dtype=object)
    try:
        out = shapely.coverage_simplify(geoms, tol)
    except Exception:  # GEOS < 3.12, or an input that is not a clean coverage
        out = shapely.simplify(geoms, tol, preserve_topology=True)
    bad = shapely.is_empty(out) | ~shapely.is_valid(out)
    if bad.any():
        out = np.where(bad, shapely.make_valid(out), out)
    return out


def _round(geoms: np.ndarray) -> np.ndarray:
    """Coordinates to COORD_DECIMALS (~0.1 m); where rounding breaks validity, snap with GEOS instead."""
    grid = 10 ** -COORD_DECIMALS
    out = shapely.set_precision(geoms, grid, mode="pointwise")
    bad = ~shapely.is_valid(out)
    if bad.any():
        out[bad] = shapely.set_precision(geoms[bad], grid, mode="valid_output")
    return out


def level_features(atlas: Atlas, level: Level | str, basemap: str = "none") -> dict:
    """GeoJSON FeatureCollection of one level, simplified, in display coordinates.

    Properties: code, name, level, parent (code), label ([lon, lat] of a point inside
    the polygon, for the map label).
    """
    level = Level.parse(level) if not isinstance(level, Level) else level
    check_basemap(basemap)
    d = atlas.divisions[atlas.divisions["level"] == level.value]
    geoms = simplify_level(d["geometry"].to_numpy(), level)
    geoms = _display_geoms(geoms, basemap)
    geoms = _round(geoms)
    labels = shapely.point_on_surface(geoms)
    lx, ly = np.round(shapely.get_x(labels), COORD_DECIMALS), np.round(shapely.get_y(labels), COORD_DECIMALS)
    features = []
    parents = d["parent_code"].to_numpy() if "parent_code" in d else [None] * len(d)
    for i, (code, name, parent, g) in enumerate(zip(d["code"], d["name"], parents, geoms)):
        features.append({
            "type": "Feature",
            "id": str(code),
            "geometry": json.loads(shapely.to_geojson(g)),
            "properties": {"code": str(code), "name": str(name), "level": level.value,
                           "parent": None if parent is None or parent != parent else str(parent),
                           "label": [float(lx[i]), float(ly[i])]},
        })
    return {"type": "FeatureCollection", "name": level.value, "basemap": basemap,
            "atlas_version": int(atlas.version), "features": features}


def level_geojson_bytes(atlas: Atlas, level: Level | str, basemap: str = "none") -> bytes:
    return json.dumps(level_features(atlas, level, basemap), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


# -- search ------------------------------------------------------------------------
def _division_hit(atlas: Atlas, row, basemap: str) -> dict:
    g = row["geometry"]
    minx, miny, maxx, maxy = shapely.bounds(g)
    bx, by = to_display(np.array([minx, maxx]), np.array([miny, maxy]), basemap)
    p = shapely.point_on_surface(g)
    cx, cy = to_display(p.x, p.y, basemap)
    return {"kind": "division", "code": str(row["code"]), "name": str(row["name"]), "level": str(row["level"]),
            "center": [round(float(cx), COORD_DECIMALS), round(float(cy), COORD_DECIMALS)],
            "bbox": [round(float(v), COORD_DECIMALS) for v in (bx[0], by[0], bx[1], by[1])]}


def search(atlas: Atlas, q: str, basemap: str = "none", limit: int = 10) -> dict:
    """Find a grid/division by code, by name (substring), or a 'lon,lat' point (CGCS2000/WGS84).

    Answers ``{"query", "results": [...]}``; the first result is the best. A point result
    carries the display coordinate and the base grid it falls in (``code``; None outside).
    """
    check_basemap(basemap)
    q = (q or "").strip()
    results: list[dict] = []
    if not q:
        return {"query": q, "results": results}
    d = atlas.divisions
    m = _COORD_RE.match(q)
    if m:
        lon, lat = float(m.group(1)), float(m.group(2))
        reason = crs_mod.check_point(lon, lat)
        if reason:  # a point the caller got wrong (swapped, out of range) says so instead of finding nothing
            raise InvalidCoordinatesError(f"{q!r} reads as a 'lon,lat' point, but {reason}",
                                          detail=[{"row": 0, "reason": reason}])
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            loc = atlas.locate_one(lon, lat, with_building=False)
            x, y = to_display(lon, lat, basemap)
            hit = {"kind": "point", "center": [round(float(x), COORD_DECIMALS), round(float(y), COORD_DECIMALS)],
                   "code": None, "name": None, "level": None, "outside": loc.outside}
            if not loc.outside:
                hit.update(code=loc.grid[0], name=loc.grid[1], level=Level.GRID.value)
            results.append(hit)
        return {"query": q, "results": results}
    if q.isdigit():
        i = atlas.by_code.get(q)
        if i is not None:
            results.append(_division_hit(atlas, d.iloc[i], basemap))
        else:  # a code prefix: the first divisions starting with it
            for _, row in d[d["code"].str.startswith(q)].head(limit).iterrows():
                results.append(_division_hit(atlas, row, basemap))
        return {"query": q, "results": results}
    names = d["name"].astype(str)
    exact = d[names == q]
    part = d[names.str.contains(q, regex=False) & (names != q)]
    for _, row in list(exact.iterrows()) + list(part.head(limit).iterrows()):
        if len(results) >= limit:
            break
        results.append(_division_hit(atlas, row, basemap))
    return {"query": q, "results": results}


# -- the page ----------------------------------------------------------------------
def _basemap_layers(basemap: str, tianditu_key: str) -> list[folium.TileLayer]:
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
    from .incidents import maps as incident_maps
    from .incidents import model
    return {
        "heatUrl": f"{api_prefix}/map/incidents/heat.json",
        "choroplethUrl": f"{api_prefix}/map/incidents/choropleth/{{level}}.json",
        "warningsUrl": f"{api_prefix}/map/incidents/warnings.json",
        "categories": [[c.code, c.name_zh] for c in model.CATEGORIES.values()],
        "metrics": {k: v[0] for k, v in incident_maps.CHORO_METRICS.items()},
        "layers": {"heat": "事件热力 Incident density", "grid": "网格处置 Response per base grid",
                   "community": "社区处置 Response per community", "warnings": "超前预警 Early warnings"},
    }


def build_map(atlas: Atlas, basemap: str = "none", asset_prefix: str = "/map/static", *,
              tianditu_key: str = "", api_prefix: str = "", title: str = "市中区网格化社会管理 指挥中心") -> folium.Map:
    """The folium map of the viewer (render with :func:`viewer_html`)."""
    check_basemap(basemap)
    asset_prefix = asset_prefix.rstrip("/")
    api_prefix = api_prefix.rstrip("/")
    district = atlas.divisions[atlas.divisions["level"] == Level.DISTRICT.value]
    geoms = (district if len(district) else atlas.divisions)["geometry"].to_numpy()
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    bx, by = to_display(np.array([minx, maxx]), np.array([miny, maxy]), basemap)
    center = [float(by.mean()), float(bx.mean())]

    m = folium.Map(location=center, zoom_start=12, tiles=None, control_scale=True,
                   prefer_canvas=False)
    # replace folium's CDN assets (leaflet, jquery, bootstrap, awesome-markers ...) with vendored copies
    # (in this order: the plugins and the viewer need L)
    m.default_js = [("leaflet", f"{asset_prefix}/leaflet/leaflet.js"),
                    ("vectorgrid", f"{asset_prefix}/vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
                    ("leaflet_heat", f"{asset_prefix}/leaflet-heat/leaflet-heat.js"),
                    ("gis_grid_viewer", f"{asset_prefix}/viewer/viewer.js")]
    m.default_css = [("leaflet_css", f"{asset_prefix}/leaflet/leaflet.css"),
                     ("gis_grid_viewer_css", f"{asset_prefix}/viewer/viewer.css")]
    header = m.get_root().header
    header.add_child(Element(f"<title>{html.escape(title)}</title>"), name="title")
    header.add_child(Element('<link rel="icon" href="data:,"/>'), name="favicon")

    for layer in _basemap_layers(basemap, tianditu_key):
        layer.add_to(m)
    groups = {}
    for level in MAP_LEVELS:
        groups[level.value] = folium.FeatureGroup(name=LAYER_TITLES[level], show=True).add_to(m)
    groups["labels"] = folium.FeatureGroup(name="标注 Labels", show=True).add_to(m)
    groups["buildings"] = folium.FeatureGroup(name="建筑 Buildings (zoom ≥ 15)", show=True).add_to(m)
    control = folium.LayerControl(collapsed=False, position="topright").add_to(m)

    # the GCJ-02 shift at the district centre, for overlays the server cannot shift (vector tiles)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    gx, gy = to_display(cx, cy, basemap)
    config = {
        "title": title,
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
        "tileShift": {"from": [float(cx), float(cy)], "to": [float(gx), float(gy)]} if basemap == "amap" else None,
        "atlasVersion": int(atlas.version),
        # incident layers: off until toggled, then fetched as binned / aggregated values (api/routers/incident_map.py)
        "incidents": _incident_config(api_prefix),
    }
    _ViewerInit(groups, control, config).add_to(m)
    return m


def viewer_html(atlas: Atlas, basemap: str = "none", asset_prefix: str = "/map/static", **kwargs) -> str:
    """The complete viewer page as HTML (assets under ``asset_prefix``; no CDN URLs)."""
    html_out = build_map(atlas, basemap, asset_prefix, **kwargs).get_root().render()
    return html_out.replace("<html>", '<html lang="zh-CN">', 1)


_ASSET_RE = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
                       re.IGNORECASE)


def external_asset_urls(page: str) -> list[str]:
    """Script/stylesheet/image URLs in ``page`` that point off the serving host."""
    return _ASSET_RE.findall(page)
