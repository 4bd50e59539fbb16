"""Division cards (any level) and building summaries for the map."""
from __future__ import annotations

import json

import numpy as np
import shapely
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import ORJSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gis_grid import stats
from gis_grid.atlas import Atlas
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.atlas.memo import ResponseCache
from gis_grid.errors import NotFoundError, StoreError
from gis_grid.hierarchy import Level, level_of, parent_code
from gis_grid.masking import mask_names, mask_phones
from gis_grid.security.roles import PersonalData, Principal

from ..asof import atlas_at_dep
from ..deps import holder
from ..security import check_scope, require

router = APIRouter(tags=["grids"])
_maps = require("maps")


def _visible_stats(figures: dict, who: Principal, code: str, atlas: Atlas, h: AtlasHolder) -> dict:
    """Special-group counts as the role may see them: small cells suppressed, or none at all."""
    p = who.permission
    groups = figures.get("special_groups")
    if groups is None:
        return figures
    if p.vulnerability is PersonalData.NONE:
        return {k: v for k, v in figures.items() if k != "special_groups"}
    if p.min_cell:
        # a count of 1-4 people in a small area can identify them: publish it as null, and hide
        # complementary cells too so that no parent minus its children gives it back
        # (the threshold is told beside the statistics, in the card's "suppressed_below": it is no figure)
        hidden = stats.hidden_special_groups(atlas, h.store, p.min_cell)
        figures = {**figures, "special_groups": {k: (None if code in hidden[k] else v) for k, v in groups.items()}}
    return figures


def geojson(geometry) -> dict | None:
    if geometry is None:
        return None
    return json.loads(shapely.to_geojson(geometry))


def _ref(atlas: Atlas, code: str | None) -> dict | None:
    if not code:
        return None
    i = atlas.by_code.get(code)
    if i is None:  # e.g. the prefecture 370400 above the district: not in the atlas
        return {"code": code, "name": None, "level": None}
    r = atlas.divisions.iloc[i]
    return {"code": r["code"], "name": r["name"], "level": r["level"]}


def _none(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


@router.get("/grids/{code}", summary="A division of any level: hierarchy, geometry, statistics",
            response_class=ORJSONResponse)
async def grid_card(request: Request, code: str = Path(..., description="6-, 9-, 12- or 15-digit division code"),
                    geometry: bool = Query(True, description="include the boundary as GeoJSON"),
                    atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
                    who: Principal = Depends(_maps)) -> Response:
    level = level_of(code)  # 400 for malformed codes
    check_scope(who, code)
    # A card is a function of the atlas version (boundaries, figures and workers change only with
    # it) and of the role (what the statistics show): ~5 ms of pandas per card, microseconds cached.
    cache = _card_cache(request)
    key = (atlas.version, "card", code, geometry, who.role)
    body = cache.get(key)
    if body is None:
        card = await run_in_threadpool(_card, code, level, geometry, atlas, h, who)
        body = orjson.dumps(card, option=orjson.OPT_SERIALIZE_NUMPY)
        cache.put(key, body)
    return Response(body, media_type="application/json")


def _card_cache(request: Request) -> ResponseCache:
    cache = getattr(request.app.state, "card_cache", None)
    if cache is None:
        cache = request.app.state.card_cache = ResponseCache(max_items=8192, max_bytes=32 * 1024 * 1024)
    return cache


def _card(code: str, level: Level, geometry: bool, atlas: Atlas, h: AtlasHolder, who: Principal) -> dict:
    if code not in atlas.by_code:
        parent = parent_code(code)
        hint = ""
        if parent and parent in atlas.by_code and who.sees(parent):
            kids = atlas.children(parent)["code"].tolist()
            hint = f"; {parent} has {len(kids)} {level.value} divisions: {', '.join(kids[:10])}" + \
                   (" ..." if len(kids) > 10 else "")
        raise NotFoundError(f"no {level.value} with code {code!r} in atlas version {atlas.version}{hint}",
                            detail={"code": code, "level": level.value, "parent": parent})
    row = atlas.division(code)
    kids = atlas.children(code)
    out = {
        "code": code, "name": row["name"], "level": row["level"], "kind": _none(row.get("kind")),
        "parent": _ref(atlas, parent_code(code) or _none(row.get("parent_code"))),
        "children": [{"code": c, "name": n, "level": lv}
                     for c, n, lv in zip(kids["code"], kids["name"], kids["level"])],
        "area_m2": stats.division_area_m2(row),
        "statistics": _visible_stats(stats.division_stats(atlas, h.store, code), who, code, atlas, h),
        "atlas_version": atlas.version,
    }
    if level is Level.GRID:  # a base grid counting itself ("grids: 1") answers nothing
        out["statistics"].pop("grids", None)
    if who.permission.min_cell and who.permission.vulnerability is not PersonalData.NONE:
        out["suppressed_below"] = who.permission.min_cell
    if level is Level.GRID:
        try:
            w = h.store.workers(grid_codes=[code])
        except StoreError:  # the rest comes from the atlas: answer it through a store outage
            w = None
    if level is Level.GRID and w is None:
        out["workers"] = None
    elif level is Level.GRID:
        w = w.sort_values(["role", "id"], kind="stable") if len(w) else w
        out["workers"] = [{"id": i, "role": r, "name": n, "phone": p} for i, r, n, p in
                          zip(w["id"], w["role"], mask_names(w["name"].to_numpy(dtype=object)),
                              w["phone"].to_numpy(dtype=object) if who.permission.work_phones
                              else mask_phones(w["phone"].to_numpy(dtype=object)))] if len(w) else []
    if geometry:
        out["geometry"] = geojson(row["geometry"])
    return out


@router.get("/buildings/{building_id}", summary="One building: kind, floors, grid, household count")
def building(building_id: int = Path(..., description="building id"),
             geometry: bool = Query(True, description="include the footprint as GeoJSON"),
             atlas: Atlas = Depends(atlas_at_dep), who: Principal = Depends(_maps)) -> dict:
    row = atlas.building_row(building_id)  # 404 for unknown ids
    b = atlas.buildings.iloc[row]
    g = int(atlas.building_grid[row])
    check_scope(who, atlas.grid_codes[g] if g >= 0 else "", "building", shown=building_id)
    n = int(atlas._hh_by_building[row + 1] - atlas._hh_by_building[row])
    out = {"id": int(b["id"]), "name": _none(b["name"]), "kind": b["kind"],
           "floors": None if _none(b["floors"]) is None else int(b["floors"]),
           "units": None if _none(b["units"]) is None else int(b["units"]),
           "grid_code": atlas.grid_codes[g] if g >= 0 else None,
           "households": n, "atlas_version": atlas.version}
    if geometry:
        out["geometry"] = geojson(b["geometry"])
    return out
