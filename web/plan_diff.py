"""The plan diff map (GET /plans/{id}/map), a folium page: the grids a plan replaces (red, dashed)
against the new ones (blue), and the buildings that change grid (orange). Counts only, no personal data.

Assets come from ``asset_prefix`` (the app's vendored Leaflet), never from a CDN.
"""
from __future__ import annotations

import json

import folium
import numpy as np
import shapely

from gis_grid.atlas import Atlas
from gis_grid.planning.plan import Plan

from .i18n import LANG_CSS, LANG_JS, bi

# tooltip field names, Chinese first (folium writes aliases as markup)
_ALIASES = {"code": ("编码", "code"), "households": ("户数", "households"), "state": ("状态", "state"),
            "status": ("状态", "status"), "residents": ("人口", "residents"), "area_m2": ("面积 m²", "area m²"),
            "polsby_popper": ("紧凑度", "Polsby-Popper"), "building": ("建筑", "building"),
            "from": ("原网格", "from"), "to": ("新网格", "to")}


def _tooltip(fields: list[str]) -> folium.GeoJsonTooltip:
    return folium.GeoJsonTooltip(fields, aliases=[bi(*_ALIASES[f]) for f in fields])


def _fc(geoms, props) -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": json.loads(shapely.to_geojson(g))}
        for g, p in zip(geoms, props)]}


def diff_map(atlas: Atlas, plan: Plan, impact: dict, asset_prefix: str = "/map/static") -> folium.Map:
    asset_prefix = asset_prefix.rstrip("/")
    old = [atlas.division(c)["geometry"] for c in plan.scope.replaces]
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(old + list(plan.geometries), dtype=object))
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, control_scale=True)
    m.default_js = [("gg_lang", f"{asset_prefix}/{LANG_JS}"), ("leaflet", f"{asset_prefix}/leaflet/leaflet.js")]
    m.default_css = [("gg_lang_css", f"{asset_prefix}/{LANG_CSS}"),
                     ("leaflet_css", f"{asset_prefix}/leaflet/leaflet.css")]
    m.fit_bounds([[miny, minx], [maxy, maxx]])  # folium wants [lat, lon]
    olds = {g["code"]: g for g in impact["old_grids"]}
    folium.GeoJson(
        _fc(old, [{"code": c, "households": olds[c]["households"], "state": "before"} for c in plan.scope.replaces]),
        name=bi("调整前（被替换的网格）", "before (replaced grids)"),
        style_function=lambda f: {"color": "#d62728", "weight": 3, "dashArray": "6 4", "fillOpacity": 0.05},
        tooltip=_tooltip(["code", "households", "state"])).add_to(m)
    folium.GeoJson(
        _fc(plan.geometries, [{"code": g["code"], "status": g["status"], "households": g["households"],
                               "residents": g["residents"], "area_m2": g["area_m2"],
                               "polsby_popper": g["polsby_popper"]} for g in impact["grids"]]),
        name=bi("调整后（方案）", "after (plan)"),
        style_function=lambda f: {"color": "#1f77b4", "weight": 2, "fillOpacity": 0.15},
        tooltip=_tooltip(["code", "status", "households", "residents", "area_m2", "polsby_popper"])).add_to(m)
    moved = impact["moved_buildings"]
    if moved:
        rows = [atlas._building_rows[b["id"]] for b in moved]
        geoms = atlas.buildings["geometry"].to_numpy()[rows]
        folium.GeoJson(_fc(geoms, [{"building": b["id"], "from": b["from"], "to": b["to"]} for b in moved]),
                       name=bi("改变网格的建筑", "buildings that change grid"),
                       style_function=lambda f: {"color": "#ff7f0e", "weight": 1, "fillOpacity": 0.8},
                       tooltip=_tooltip(["building", "from", "to"])).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def diff_map_html(atlas: Atlas, plan: Plan, impact: dict, asset_prefix: str = "/map/static") -> str:
    return diff_map(atlas, plan, impact, asset_prefix).get_root().render().replace("<html>", '<html lang="zh-CN">', 1)
