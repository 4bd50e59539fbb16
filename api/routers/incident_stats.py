"""Statistics of cases: district summary, per division (any level), department, category; assessment, rankings."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from gis_grid import csvsafe, stats
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.errors import InvalidInputError
from gis_grid.incidents import aggregate, model
from gis_grid.security.roles import Principal

from ..deps import holder, settings_dep
from ..security import check_scope, require
from .incidents import ladder_query
from ..settings import Settings

router = APIRouter(tags=["statistics"], dependencies=[Depends(require("maps"))])
_who = require("maps")


def cases_of(who: Principal, h: AtlasHolder) -> aggregate.CaseTable:
    """The cases a key's aggregates are computed from: only those in its scope (the role table's
    subtree_only), so no figure, total or rate says anything about a case outside it."""
    return aggregate.scoped(aggregate.for_key(h.store, h.atlas, who), h.atlas, who.confined_to)


def range_query(start: str | None = Query(None, alias="from", description="date or date-time (UTC+8 if naive)"),
                end: str | None = Query(None, alias="to", description="a bare date is inclusive")) -> tuple:
    aggregate.time_range(start, end)  # 400 when the range ends before it starts
    return start, end


def _records(df: pd.DataFrame) -> list[dict]:
    df = df.reset_index()
    out = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
    return out


def _answer(df: pd.DataFrame, fmt: str, meta: dict, name: str):
    if fmt == "csv":
        buf = io.StringIO()
        csvsafe.frame(df).to_csv(buf)
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt != "json":
        raise InvalidInputError(f"unknown format {fmt!r}; use json or csv")
    return {**meta, "items": _records(df)}


FORMAT = Query("json", description="json or csv", json_schema_extra={"enum": ["json", "csv"]})
# the table endpoints answer JSON or, with format=csv, the same table as CSV
TABLE = {"responses": {200: {"content": {"application/json": {}, "text/csv": {}}}}}


@router.get("/stats/summary", summary="District totals: cases, closed, closure_rate, disputes, disputes_closed, "
                                      "satisfaction (rates in percent)")
def summary(r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
            who: Principal = Depends(_who)) -> dict:
    t = cases_of(who, h)
    return {"from": r[0], "to": r[1], **aggregate.summary(t, *r)}


@router.get("/stats/divisions", **TABLE, summary="Per division of one level: households, residents, buildings, workers; case counts, closure and on-time rate, "
                                        "median/p90 handling time, rework rate, satisfaction, open red/yellow")
def by_division(level: str = Query("grid", description="district, street, community or grid"),
                within: str | None = Query(None, description="only divisions under this code"),
                category: str | None = None, department: str | None = None,
                at: str | None = Query(None, description="colour evaluation time (default: the range end)"),
                format: str = FORMAT,
                ladder: model.SupervisionLadder = Depends(ladder_query),
                r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
                who: Principal = Depends(_who)):
    if level in ("department", "category"):
        raise InvalidInputError("use /stats/departments or /stats/categories")
    if within:
        check_scope(who, within)  # outside the scope (or above it) answers like an unknown division
    within = within or who.confined_to
    t = cases_of(who, h)
    df = aggregate.group_stats(t, h.atlas, level, *r, at=at, category=category, department=department,
                               within=within, ladder=ladder)
    # households, residents, buildings, workers beside the case figures: the most crowded
    # community is one call (open cases are already the "open" column)
    people = stats.level_counts(h.atlas, h.store, level).drop(columns="open_cases")
    df = people.reindex(df.index, fill_value=0).join(df)
    names = dict(zip(h.atlas.divisions["code"], h.atlas.divisions["name"]))
    df.insert(0, "name", [names.get(c, "") for c in df.index])
    return _answer(df, format, {"level": level, "from": r[0], "to": r[1]}, f"stats_{level}")


@router.get("/stats/departments", **TABLE, summary="Per department (same figures as /stats/divisions)")
def by_department(category: str | None = None, format: str = FORMAT,
                  r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
                  who: Principal = Depends(_who)):
    t = cases_of(who, h)
    df = aggregate.group_stats(t, h.atlas, "department", *r, category=category)
    df.insert(0, "name", [model.DEPARTMENTS[d].name_zh for d in df.index])
    return _answer(df, format, {"from": r[0], "to": r[1]}, "stats_departments")


@router.get("/stats/categories", **TABLE, summary="Per category (17 content areas and disputes)")
def by_category(format: str = FORMAT, r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
                who: Principal = Depends(_who)):
    t = cases_of(who, h)
    df = aggregate.group_stats(t, h.atlas, "category", *r)
    df.insert(0, "name", [model.CATEGORIES[c].name_zh for c in df.index])
    return _answer(df, format, {"from": r[0], "to": r[1]}, "stats_categories")


@router.get("/stats/assessment", **TABLE, summary="Department assessment: below 90 % satisfaction is not eligible "
                                         "for 'advanced'")
def assessment(year: int | None = Query(None, ge=2000, le=2100, description="shortcut for from/to of one year"),
               format: str = FORMAT, r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
               who: Principal = Depends(_who)):
    start, end = r
    if year is not None:
        if start or end:
            raise InvalidInputError("give either year or from/to, not both")
        start, end = f"{year}-01-01", f"{year}-12-31"
    t = cases_of(who, h)
    df = aggregate.department_assessment(t, h.atlas, start, end)
    return _answer(df, format, {"from": start, "to": end, "rule": "satisfaction below "
                                f"{aggregate.ADVANCED_MIN_SATISFACTION:g} % -> not eligible for advanced"},
                   "assessment")


@router.get("/stats/ranking", **TABLE, summary="Best first by a metric, among groups with at least min_cases cases")
def ranking(by: str = Query("grid", description="grid, community, street, department or category"),
            metric: str = Query("closure_rate", description=", ".join(aggregate.METRICS)),
            min_cases: int = Query(30, ge=1),
            limit: int = Query(20, ge=1, description="rows; values above max_page_size (/capabilities) are clamped"),
            format: str = FORMAT, r: tuple = Depends(range_query), h: AtlasHolder = Depends(holder),
            settings: Settings = Depends(settings_dep), who: Principal = Depends(_who)):
    limit = min(limit, settings.max_page_size)  # like every paged list: a large limit is clamped, not refused
    t = cases_of(who, h)
    df = aggregate.group_stats(t, h.atlas, by, *r,
                               within=who.confined_to if by not in ("department", "category") else None)
    out = aggregate.ranking(df, metric, min_cases=min_cases, limit=limit)
    return _answer(out, format, {"by": by, "metric": metric, "min_cases": min_cases, "from": r[0], "to": r[1],
                                 "order": "ascending" if metric in aggregate.LOWER_IS_BETTER else "descending"},
                   "ranking")


@router.get("/warnings", summary="Early warning at a date: grids anomalous against their own baseline "
                                 "(exact conditional binomial test, BH-adjusted) and Getis-Ord Gi* hot spots")
def warnings(at: str = Query(..., description="evaluation date (YYYY-MM-DD, end of that day) or date-time"),
             window_days: int = Query(28, ge=1, le=366), baseline_days: int = Query(364, ge=1, le=3660),
             alpha: float = Query(0.05, gt=0, lt=1), category: str | None = None,
             h: AtlasHolder = Depends(holder), who: Principal = Depends(_who)) -> dict:
    from gis_grid.incidents import early_warning
    t = aggregate.for_key(h.store, h.atlas, who)
    # the anomaly test compares a grid with the whole district (its method); only the answer is confined
    return early_warning.report(t, h.atlas, at, window_days=window_days, baseline_days=baseline_days,
                                alpha=alpha, category=category, scope=who.confined_to)
