"""``?at=DATE``: the atlas as it stood at a past instant, for the grid, locate and resident endpoints."""
from __future__ import annotations

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool

from gis_grid.atlas import Atlas
from gis_grid.atlas.asof import parse_at
from gis_grid.budget import Budget

AT_DESCRIPTION = ("reproduce a past state: a date (2026-11-27 = the end of that day, China Standard Time) "
                  "or an ISO 8601 date-time; default: now")


async def atlas_at_dep(request: Request, at: str | None = Query(None, description=AT_DESCRIPTION)) -> Atlas:
    holder = request.app.state.holder
    if at is None:
        return holder.atlas  # the hot path: one attribute read, no thread hop
    return await run_in_threadpool(holder.at, parse_at(at), asof_budget(request))


def asof_budget(request: Request) -> Budget:
    return Budget("building the atlas as of that date", request.app.state.settings.asof_budget_s,
                  hint="retry in a minute: a date already built answers from a cache")
