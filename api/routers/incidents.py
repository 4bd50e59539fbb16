"""Cases: create (auto-located), advance through the workflow, list with filters, export as CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gis_grid import crs as crs_mod
from gis_grid import csvsafe
from gis_grid.atlas import Atlas
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.errors import InvalidCoordinatesError, InvalidInputError
from gis_grid.masking import mask_reporter
from gis_grid.security.roles import ROLES, Principal
from gis_grid.incidents import acting, aggregate, model, service

from ..deps import holder, public_href, settings_dep
from ..security import principal_dep, request_id, require
from ..settings import Settings

router = APIRouter(tags=["incidents"], dependencies=[Depends(principal_dep)])
_read, _write = require("cases_read"), require("cases_write")


class NewIncident(BaseModel):
    lon: float = Field(..., description="longitude in `crs`")
    lat: float = Field(..., description="latitude in `crs`")
    crs: str | None = Field(None, description="EPSG:4326 (default), EPSG:4490, EPSG:4548, gcj02, bd09")
    category: str = Field(..., description=f"one of {', '.join(model.CATEGORIES)}")
    reporter: str | None = Field(None, description="who collected it (worker id, '12345', ...); "
                                                   "default: the API key (key:xxxx-...)")
    role: str | None = Field(None, description="deprecated: the workflow role comes from the API key "
                                               "(grid_worker, hotline or command_centre may collect); "
                                               "if sent it must agree with the key (else 403)")
    priority: str = Field("routine", description="routine, urgent or critical")
    department: str | None = Field(None, description="responsible department (default: the category's)")
    description: str = ""
    at: datetime | None = Field(None, description="collect time (default now; naive = UTC+8)")


class Transition(BaseModel):
    action: str = Field(..., description="register, dispatch, handle, feedback, close, assess, cancel, rework")
    actor: str | None = Field(None, description="deprecated: the actor is the API key; if sent it must be "
                                                "the key's id (else 403)")
    role: str | None = Field(None, description="deprecated: the workflow role comes from the API key; if "
                                               "sent it must agree with it (else 403)")
    at: datetime | None = None
    satisfaction: int | float | str | None = Field(None, description="close only: 1-5 (3 and above satisfied)")
    note: str | None = None
    assessment: str | None = None
    department: str | None = Field(None, description="dispatch only: reassign the department")
    expected_version: int | None = Field(None, description="optimistic lock: 409 if the case changed")


def _payload_at(v):
    return v if v is None else model.to_aware(v)


@router.post("/incidents", status_code=201, summary="Log a case; its grid is found by locate (outside: 422)")
def create_incident(body: NewIncident, h: AtlasHolder = Depends(holder),
                    who: Principal = Depends(_write)) -> dict:
    atlas = h.atlas
    role, actor = acting.for_new_case(who, atlas, lon=body.lon, lat=body.lat, crs=body.crs, role=body.role)
    before = h.store.incidents_version()
    case = service.create(h.store, atlas, lon=body.lon, lat=body.lat, crs=body.crs, category=body.category,
                          reporter=body.reporter or actor, role=role, actor=actor, priority=body.priority,
                          department=body.department, description=body.description, at=_payload_at(body.at))
    aggregate.note_write(h.store, atlas, service._row(case), before)
    return acting.shown(service.view(case, atlas=atlas))


@router.post("/incidents/{incident_id}/transitions",
             summary="Advance a case by one workflow action, acting in the API key's workflow role")
def transition(incident_id: str, body: Transition, h: AtlasHolder = Depends(holder),
               who: Principal = Depends(_write)) -> dict:
    role, actor = acting.for_transition(h.store, who, incident_id, role=body.role, actor=body.actor)
    before = h.store.incidents_version()
    case = service.transition(h.store, incident_id, body.action, actor=actor, role=role,
                              at=_payload_at(body.at), satisfaction=body.satisfaction, note=body.note,
                              assessment=body.assessment, department=body.department,
                              expected_version=body.expected_version)
    aggregate.note_write(h.store, h.atlas, service._row(case), before)
    return acting.shown(service.view(case, atlas=h.atlas))


def ladder_query(
    blue_from: float | None = Query(None, description=f"四色单 ladder: blue from this share of the allowed time "
                                                      f"(default {model.DEFAULT_LADDER.blue_from})"),
    yellow_from: float | None = Query(None, description=f"yellow (late) from (default "
                                                        f"{model.DEFAULT_LADDER.yellow_from})"),
    red_from: float | None = Query(None, description=f"red (seriously late) from (default "
                                                     f"{model.DEFAULT_LADDER.red_from})"),
) -> model.SupervisionLadder:
    d = model.DEFAULT_LADDER
    return model.SupervisionLadder(blue_from=d.blue_from if blue_from is None else blue_from,
                                   yellow_from=d.yellow_from if yellow_from is None else yellow_from,
                                   red_from=d.red_from if red_from is None else red_from)


def filters_query(
    bbox: str | None = Query(None, description="min lon, min lat, max lon, max lat (EPSG:4326/4490)"),
    grid: str | None = Query(None, description="division code of any level"),
    category: list[str] | None = Query(None), status: list[str] | None = Query(None),
    colour: list[str] | None = Query(None, description="green, blue, yellow, red (at `at`)"),
    department: list[str] | None = Query(None),
    start: str | None = Query(None, alias="from", description="created from (date or date-time)"),
    end: str | None = Query(None, alias="to", description="created up to (a bare date is inclusive)"),
    at: str | None = Query(None, description="time the supervision colour is evaluated at (default now)"),
) -> dict:
    box = None
    if bbox:
        try:
            box = [float(v) for v in bbox.split(",")]
        except ValueError:
            box = []
        if len(box) != 4:
            raise InvalidInputError(f"bbox {bbox!r} must be four numbers: min lon, min lat, max lon, max lat")
        # each corner as a point: NaN, out of range and (lat, lon) order get named instead of matching nothing
        bad = next((r for r in (crs_mod.check_point(box[0], box[1]), crs_mod.check_point(box[2], box[3])) if r), "")
        if bad:
            raise InvalidCoordinatesError(f"bbox {bbox!r} (min lon, min lat, max lon, max lat): {bad}")
    aggregate.time_range(start, end)  # refuse end before start before any work
    return dict(bbox=box, code=grid, category=category, status=status, colour=colour, department=department,
                start=start, end=end, at=at)


_LIST_COLS = ["id", "category", "department", "priority", "status", "grid_code", "lon", "lat", "created",
              "dispatched", "closed", "deadline", "satisfaction", "rework_count"]


def _rows(h: AtlasHolder, atlas: Atlas, f: dict, who: Principal,
          ladder: model.SupervisionLadder = model.DEFAULT_LADDER):
    t = aggregate.for_key(h.store, atlas, who)
    rows, col = aggregate.select(t, atlas, ladder=ladder, **f)
    return t, rows, col


@router.get("/incidents", summary="Cases filtered by bbox, grid (any level), category, status, colour, "
                                  "department and time range; newest first, paginated")
def list_incidents(request: Request, f: dict = Depends(filters_query),
                   ladder: model.SupervisionLadder = Depends(ladder_query),
                   limit: int | None = Query(None, ge=1), offset: int = Query(0, ge=0),
                   h: AtlasHolder = Depends(holder), settings: Settings = Depends(settings_dep),
                   who: Principal = Depends(_read)) -> dict:
    atlas = h.atlas
    f = acting.scoped_filters(who, f)
    lim = min(limit or settings.default_page_size, settings.max_page_size)
    t, rows, col = _rows(h, atlas, f, who, ladder)
    page = rows[offset:offset + lim]
    df = h.store.incidents(ids=t.ids[page].tolist(), columns=_LIST_COLS).set_index("id")
    items = []
    for r in page:
        d = df.loc[t.ids[r]].to_dict()
        d = {k: (None if isinstance(v, float) and np.isnan(v) and k not in ("lon", "lat") else v)
             for k, v in d.items()}
        d["id"] = t.ids[r]
        d["colour"] = aggregate.COLOUR_NAMES[col[r]] if col[r] >= 0 else None
        d["satisfaction"] = None if d.get("satisfaction") is None else int(d["satisfaction"])
        items.append(d)
    # the matched cases per supervision colour (at `at`): a card's "open cases by colour" in one request
    shown = col[rows]
    by_colour = np.bincount(shown[shown >= 0], minlength=len(aggregate.COLOUR_NAMES))
    out = {"numberMatched": int(len(rows)), "numberReturned": len(items), "offset": offset, "limit": lim,
           "by_colour": dict(zip(aggregate.COLOUR_NAMES, map(int, by_colour))), "items": items}
    if offset + lim < len(rows):
        q = dict(request.query_params)
        q.update(offset=str(offset + lim), limit=str(lim))
        out["next"] = public_href(request, request.url.replace_query_params(**q))
    return out


@router.get("/incidents/export.csv", summary="Every matching case as CSV (same filters as GET /incidents)",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
def export_csv(f: dict = Depends(filters_query), ladder: model.SupervisionLadder = Depends(ladder_query),
               h: AtlasHolder = Depends(holder), who: Principal = Depends(_read)):
    atlas = h.atlas
    f = acting.scoped_filters(who, f)
    t, rows, col = _rows(h, atlas, f, who, ladder)
    ids = t.ids[rows]
    colour = {i: (aggregate.COLOUR_NAMES[c] if c >= 0 else "") for i, c in zip(ids, col[rows])}

    def gen():
        cols = [c for c in _LIST_COLS] + ["registered", "handled", "fed_back", "assessed", "cancelled", "reporter"]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols + ["colour"])
        for k in range(0, len(ids), 20_000):
            chunk = ids[k:k + 20_000].tolist()
            df = h.store.incidents(ids=chunk, columns=cols).set_index("id").reindex(chunk)
            df = df.astype(object).where(df.notna(), "")
            # the reporter is personal data: masked here for every role, like on the single-case route
            df["reporter"] = [mask_reporter(v) for v in df["reporter"]]
            for i, rec in zip(chunk, df.itertuples(index=False, name=None)):
                w.writerow([csvsafe.cell(v) for v in (i, *rec, colour[i])])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        if not len(ids):
            yield buf.getvalue()

    return StreamingResponse(gen(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="incidents.csv"'})


@router.get("/incidents/{incident_id}", summary="One case with its event log and supervision colour")
def get_incident(incident_id: str, at: str | None = Query(None),
                 ladder: model.SupervisionLadder = Depends(ladder_query), h: AtlasHolder = Depends(holder),
                 who: Principal = Depends(_read)) -> dict:
    case = acting.visible_case(h.store, who, incident_id)
    return acting.shown(service.view(case, at=aggregate.parse_time(at) if at else None, ladder=ladder,
                                     atlas=h.atlas))


@router.get("/incidents/{incident_id}/unmasked",
            summary="One case with its original reporter and text: grid workers of the case's grid, with a "
                    "purpose; audited")
def get_incident_unmasked(request: Request, incident_id: str,
                          purpose: str = Query(..., min_length=4, max_length=200,
                                               description="why the unmasked text is needed (kept in the audit "
                                                           "log)"),
                          h: AtlasHolder = Depends(holder), settings: Settings = Depends(settings_dep),
                          who: Principal = Depends(_read)) -> dict:
    request.app.state.rate_limiter.take(who.key_id, "unmask", settings.unmask_per_minute)
    case = acting.unmasked_case(h.store, who, incident_id, purpose=purpose, request_id=request_id(request))
    return service.view(case, atlas=h.atlas)


@router.get("/incidents-meta", summary="Categories, departments, priorities, roles, steps and the colour ladder")
def incidents_meta() -> dict:
    lad = model.DEFAULT_LADDER
    return {
        "categories": [{"code": c.code, "name": c.name_zh, "name_en": c.name_en, "department": c.department,
                        "deadline_h": c.deadline_h} for c in model.CATEGORIES.values()],
        "departments": [{"code": d.code, "name": d.name_zh} for d in model.DEPARTMENTS.values()],
        "priorities": {p.value: f for p, f in model.PRIORITY_FACTOR.items()},
        "steps": list(model.STEPS),
        "transitions": {a.value: {"from": sorted(s.value for s in frm), "to": to.value,
                                  "roles": sorted(r.value for r in model.ROLES[a])}
                        for a, (frm, to) in model.TRANSITIONS.items()},
        # the workflow role each kind of API key acts in (the body cannot choose it)
        "key_roles": {r: p.case_role for r, p in ROLES.items() if p.case_role},
        "satisfaction_scale": list(model.SATISFACTION_SCALE), "satisfied_from": model.SATISFIED_FROM,
        "ladder": {"blue_from": lad.blue_from, "yellow_from": lad.yellow_from, "red_from": lad.red_from,
                   "meaning": "share of the allowed handling time used since dispatch"},
    }
