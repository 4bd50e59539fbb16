"""Boundary planning: draft, validate, impact, diff map, apply with If-Match, history.

Thin: the work is in :mod:`gis_grid.planning`. Planners see personal data only as counts.
"""
from __future__ import annotations

import json

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from gis_grid.atlas.holder import AtlasHolder
from gis_grid.budget import Budget
from gis_grid.errors import InvalidInputError
from gis_grid.hierarchy import level_of
from gis_grid.planning import edits
from gis_grid.planning.impact import DEFAULT_BAND, DEFAULT_TARGET_HOUSEHOLDS
from gis_grid.planning.plan import check_vertex_limit
from gis_grid.planning.workflow import (apply_plan, applied_impact, before_apply, create_plan, impact_of,
                                       parse_if_match, plan_from_record)

from ..asof import asof_budget
from ..deps import holder
from ..security import audit_record, check_scope, record, require

router = APIRouter(tags=["planning"])


planner_dep = require("plans")  # plans are read and written by the planner role
maps_dep = require("maps")


class PlanBody(BaseModel):
    community: str | None = Field(None, description="12-digit community/village code the plan redraws")
    street: str | None = Field(None, description="or a 9-digit street/town code (grids of several communities)")
    grids: dict | None = Field(None, description="the new grids: a GeoJSON FeatureCollection of Polygons")
    edit: dict | None = Field(None, description='or an edit: {"op": "split", "grid": CODE, "line": LineString}, '
                              '{"op": "merge", "grids": [CODES]}, {"op": "move", "grids": [A, B], "line": LineString}')
    replaces: list[str] | None = Field(None, description="only these current grids (default: all in scope)")
    crs: str | None = Field(None, description="CRS of the coordinates (default EPSG:4326 lon/lat)")
    note: str = ""


def _etag(version: int) -> str:
    return f'"{version}"'


def plan_body(record: dict) -> dict:
    return {"id": record["id"], "scope": record["scope"], "level": level_of(record["scope"]).value,
            "base_version": record["base_version"], "created_at": record["created_at"], "status": record["status"],
            "source": record["source"], "note": record["note"], "replaces": record["replaces"],
            "applied_at": record.get("applied_at"), "applied_version": record.get("applied_version"),
            "grids": record["grids"],
            "links": {"self": f"/plans/{record['id']}", "impact": f"/plans/{record['id']}/impact",
                      "map": f"/plans/{record['id']}/map", "apply": f"/plans/{record['id']}/apply",
                      "export": f"/plans/{record['id']}/export"}}


def _edit_collection(atlas, edit: dict):
    op = edit.get("op")
    if op == "split":
        return edits.split_grid(atlas, str(edit.get("grid")), edit.get("line"))
    if op == "merge":
        return edits.merge_grids(atlas, [str(c) for c in edit.get("grids") or []])
    if op == "move":
        g = [str(c) for c in edit.get("grids") or []]
        if len(g) != 2:
            raise InvalidInputError('"move" takes "grids": [A, B], two neighbouring grids')
        return edits.move_boundary(atlas, g[0], g[1], edit.get("line"))
    raise InvalidInputError(f'unknown edit op {op!r}: use "split", "merge" or "move"')


@router.post("/plans", status_code=201, summary="Draft a plan (GeoJSON or an edit); validated before it is stored")
def post_plan(request: Request, body: PlanBody, h: AtlasHolder = Depends(holder),
              who=Depends(planner_dep)) -> JSONResponse:
    atlas = h.atlas
    check_vertex_limit(request.app.state.settings.max_polygon_vertices, body.grids, body.edit)
    if body.edit is not None:
        scope, grids = _edit_collection(atlas, body.edit)
        source = f"edit:{body.edit.get('op')}"
    else:
        scope = body.community or body.street
        grids, source = body.grids, "geojson"
        if not scope:
            raise InvalidInputError('name the area: {"community": CODE} or {"street": CODE}')
        if grids is None:
            raise InvalidInputError('send the new grids as "grids": a FeatureCollection, or an "edit"')
    plan, report = create_plan(h.store, atlas, scope, grids, crs=body.crs, replaces=body.replaces,
                               note=body.note, source=source)
    out = plan_body(h.store.plan(plan.id))
    out["validation"] = report.to_dict()
    return JSONResponse(out, status_code=201, headers={"ETag": _etag(plan.base_version),
                                                       "Location": f"/plans/{plan.id}"})


@router.get("/plans", summary="Stored plans (without geometries)")
def list_plans(scope: str | None = Query(None, description="only plans under this code"),
               h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> dict:
    plans = []
    for r in h.store.plans(scope):
        b = plan_body(r)
        b["grids"] = len(r["grids"]["features"])
        plans.append(b)
    return {"plans": plans, "atlas_version": h.version}


def _plan(h: AtlasHolder, plan_id: int):
    atlas = h.atlas
    return atlas, plan_from_record(atlas, h.store.plan(plan_id))


def impact_budget(request: Request) -> Budget:
    return Budget("the impact report", request.app.state.settings.impact_budget_s,
                  hint="retry later, or redraw a smaller area")


def _applied(request: Request, h: AtlasHolder, record: dict, **balance) -> tuple:
    """An applied plan's atlas as it stood just before the apply, and the impact it kept."""
    impact = applied_impact(record, **balance)
    atlas = h.at(before_apply(record), asof_budget(request))
    return atlas, plan_from_record(atlas, record), impact


@router.get("/plans/compare", summary="Two drafts of the same area side by side: balance, households moved, shape")
def compare(request: Request, a: int = Query(..., description="a plan id"), b: int = Query(..., description="another plan id"),
            target_households: float = Query(DEFAULT_TARGET_HOUSEHOLDS, gt=0, description="households per grid aimed at"),
            band: float = Query(DEFAULT_BAND, gt=0, le=1, description="balanced within +-band of the target"),
            h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> dict:
    from gis_grid.planning.lifecycle import compare_plans
    atlas = h.atlas
    pa, pb = (plan_from_record(atlas, h.store.plan(i)) for i in (a, b))
    return compare_plans(h.store, atlas, pa, pb, target_households=target_households, band=band,
                         budget=impact_budget(request))


class RevertBody(BaseModel):
    community: str | None = Field(None, description="12-digit community/village code")
    street: str | None = Field(None, description="or a 9-digit street/town code")
    at: str = Field(..., description="restore the grids as they stood then: a date (end of that day, CST) or an "
                                     "ISO 8601 date-time")
    note: str = ""


@router.post("/plans/revert", status_code=201,
             summary="A draft restoring an area's grids as of an earlier instant (apply it like any plan)")
def post_revert(body: RevertBody, h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> JSONResponse:
    from gis_grid.atlas.asof import parse_at
    from gis_grid.planning.lifecycle import revert_plan
    scope = body.community or body.street
    if not scope:
        raise InvalidInputError('name the area: {"community": CODE} or {"street": CODE}')
    plan, report = revert_plan(h.store, h.atlas, scope, parse_at(body.at), note=body.note)
    out = plan_body(h.store.plan(plan.id))
    out["validation"] = report.to_dict()
    return JSONResponse(out, status_code=201, headers={"ETag": _etag(plan.base_version),
                                                       "Location": f"/plans/{plan.id}"})


@router.get("/plans/{plan_id}", summary="One plan; its ETag is the atlas version it was drawn on")
def get_plan(plan_id: int = Path(...), h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> JSONResponse:
    r = h.store.plan(plan_id)
    return JSONResponse(plan_body(r), headers={"ETag": _etag(r["base_version"])})


@router.delete("/plans/{plan_id}", status_code=204, summary="Delete a draft (an applied plan stays: 409)")
async def delete_plan(request: Request, plan_id: int = Path(...), h: AtlasHolder = Depends(holder),
                      who=Depends(planner_dep)):
    from fastapi.responses import Response
    h.store.delete_plan(plan_id)
    await record(request, who, "delete_plan", f"plan:{plan_id}", result="ok")
    return Response(status_code=204)


@router.get("/plans/{plan_id}/impact", summary="Who and what changes grid; per-grid figures; balance")
def get_impact(request: Request, plan_id: int = Path(...),
               target_households: float = Query(DEFAULT_TARGET_HOUSEHOLDS, gt=0, description="households per grid aimed at"),
               band: float = Query(DEFAULT_BAND, gt=0, le=1, description="balanced within +-band of the target"),
               h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> JSONResponse:
    r = h.store.plan(plan_id)
    if r["status"] == "applied":  # as it stood when applied
        out = applied_impact(r, target_households=target_households, band=band)
        return JSONResponse(out, headers={"ETag": _etag(r["base_version"])})
    atlas, plan = _plan(h, plan_id)
    out = impact_of(h.store, atlas, plan, target_households=target_households, band=band,
                    budget=impact_budget(request))
    return JSONResponse(out, headers={"ETag": _etag(plan.base_version)})


@router.get("/plans/{plan_id}/map", response_class=HTMLResponse, summary="Folium diff map: old grids against new")
def get_map(request: Request, plan_id: int = Path(...), h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> HTMLResponse:
    from web.plan_diff import diff_map_html
    r = h.store.plan(plan_id)
    if r["status"] == "applied":
        atlas, plan, impact = _applied(request, h, r)
    else:
        atlas, plan = _plan(h, plan_id)
        impact = impact_of(h.store, atlas, plan, budget=impact_budget(request))
    return HTMLResponse(diff_map_html(atlas, plan, impact))


@router.post("/plans/{plan_id}/apply", summary="Commit a plan atomically (If-Match: the version it was drawn on)")
async def post_apply(request: Request, plan_id: int = Path(...),
                     if_match: str | None = Header(None, alias="If-Match"),
                     h: AtlasHolder = Depends(holder), who=Depends(planner_dep)) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool
    # the success record commits in the apply's own transaction: no apply without its record
    rec = audit_record(request, who, "apply_plan", f"plan:{plan_id}")
    try:
        out = await run_in_threadpool(_apply, h, plan_id, if_match, rec)
    except Exception as exc:
        await record(request, who, "apply_plan", f"plan:{plan_id}", result=f"refused: {type(exc).__name__}")
        raise
    return JSONResponse(out, headers={"ETag": _etag(out["atlas_version"])})


def _apply(h: AtlasHolder, plan_id: int, if_match: str | None, rec: dict) -> dict:
    atlas, plan = _plan(h, plan_id)
    out = apply_plan(h.store, atlas, plan, parse_if_match(if_match), audit=rec)
    h.reload_boundaries()  # readers switch to the new snapshot in one assignment
    out["serving_version"] = h.version
    return out


@router.get("/grids/{code}/history", summary="Every version of a grid, and the applied plans that changed it")
def grid_history(code: str = Path(..., description="15-digit base-grid code (or any division code)"),
                 geometry: bool = Query(False, description="include each version's boundary"),
                 h: AtlasHolder = Depends(holder), who=Depends(maps_dep)) -> dict:
    level_of(code)
    check_scope(who, code)  # outside the key's scope looks exactly like a code that never existed
    df = h.store.grid_history(code)  # 404 when the code never existed
    versions = []
    for _, r in df.iterrows():
        v = {"version": int(r["version"]), "name": r["name"], "parent": r["parent_code"],
             "valid_from": r["valid_from"], "valid_to": None if r["valid_to"] is None or
             (isinstance(r["valid_to"], float) and np.isnan(r["valid_to"])) else r["valid_to"],
             "area_m2": None if r["area_m2"] is None or np.isnan(r["area_m2"]) else float(r["area_m2"])}
        if geometry:
            v["geometry"] = json.loads(shapely.to_geojson(r["geometry"]))
        versions.append(v)
    current = versions[-1]["valid_to"] is None
    return {"code": code, "current": current, "versions": versions, "changes": h.store.grid_changes(code)}


class ProposeBody(BaseModel):
    community: str | None = Field(None, description="12-digit community/village code")
    street: str | None = Field(None, description="or a 9-digit street/town code")
    min_households: int = Field(..., gt=0, description="fewest households a proposed grid may hold")
    max_households: int = Field(..., gt=0, description="most households a proposed grid may hold")
    seed: int = Field(0, description="random seed of the heuristic (same seed, same proposal)")


@router.post("/plans/propose", status_code=201,
             summary="Propose balanced contiguous grids from whole buildings (PySAL spopt max-p); stored as a plan")
def post_propose(request: Request, body: ProposeBody, h: AtlasHolder = Depends(holder),
                 who=Depends(planner_dep)) -> JSONResponse:
    from gis_grid.planning.rebalance import balance_range
    from gis_grid.planning.workflow import propose_plan
    scope = body.community or body.street
    if not scope:
        raise InvalidInputError('name the area: {"community": CODE} or {"street": CODE}')
    plan, report, impact = propose_plan(h.store, h.atlas, scope, body.min_households, body.max_households,
                                        seed=body.seed, budget_s=request.app.state.settings.propose_budget_s)
    out = plan_body(h.store.plan(plan.id))
    out["proposal"] = {
        **report,
        "balance_before": balance_range([g["households"] for g in impact["old_grids"]], body.min_households,
                                        body.max_households),
        "balance_after": balance_range([g["households"] for g in impact["grids"]], body.min_households,
                                       body.max_households),
        "households_moved": impact["changes"]["households"], "buildings_moved": impact["changes"]["buildings"],
    }
    return JSONResponse(out, status_code=201, headers={"ETag": _etag(plan.base_version),
                                                       "Location": f"/plans/{plan.id}"})


@router.get("/plans/{plan_id}/export", summary="The plan as GeoPackage/GeoJSON, or the building -> grid assignment CSV",
            responses={200: {"content": {"application/geopackage+sqlite3": {}, "application/geo+json": {},
                                         "text/csv": {}}}})
def get_export(request: Request, plan_id: int = Path(...), format: str = Query("geojson", description="gpkg, geojson or csv",
                                                             json_schema_extra={"enum": ["gpkg", "geojson", "csv"]}),
               h: AtlasHolder = Depends(holder), who=Depends(planner_dep)):
    from fastapi.responses import Response

    from gis_grid.planning.export import FORMATS, export_plan
    from gis_grid.planning.workflow import _require_base
    if format not in FORMATS:
        raise InvalidInputError(f"unknown export format {format!r}; use {', '.join(FORMATS)}")
    r = h.store.plan(plan_id)
    if r["status"] == "applied":  # its grids, codes and figures as of the apply
        atlas, plan, impact = _applied(request, h, r)
    else:
        atlas, plan = _plan(h, plan_id)
        _require_base(atlas, plan)
        impact = None
    data = export_plan(atlas, h.store, plan, format, impact)
    ext = {"gpkg": "gpkg", "geojson": "geojson", "csv": "csv"}[format]
    name = f"plan_{plan_id}{'_assignment' if format == 'csv' else ''}.{ext}"
    return Response(data, media_type=FORMATS[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "ETag": _etag(plan.base_version)})
