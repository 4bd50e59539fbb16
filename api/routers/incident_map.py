"""GET /map/incidents: the incident heatmap, response choropleths and warnings page (server-side binned)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from gis_grid.incidents import aggregate, early_warning, maps

from ..deps import holder
from ..security import require
from ..state import AtlasHolder

router = APIRouter(tags=["map"], dependencies=[Depends(require("maps"))])


@router.get("/map/incidents", response_class=HTMLResponse,
            summary="Incident density heatmap (monthly slider), response choropleths per grid/community, warnings")
def incident_map(request: Request, layer: str = Query("all", description="heatmap, choropleth, warnings or all"),
                 category: list[str] | None = Query(None),
                 start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
                 at: str | None = Query(None, description="warnings and open-case colours at this date "
                                                          "(default: the range end, else 2016-12-31)"),
                 h: AtlasHolder = Depends(holder)) -> HTMLResponse:
    aggregate.time_range(start, end)
    atlas = h.atlas
    t = aggregate.case_table(h.store, atlas)
    warn = None
    if layer in ("warnings", "all") and len(t):
        warn = early_warning.warnings_layer(t, atlas, at or end or "2016-12-31")
    prefix = request.scope.get("root_path", "").rstrip("/")
    page = maps.incident_page(atlas, t, layer=layer, category=category, start=start, end=end, at=at,
                              warnings=warn, asset_prefix=f"{prefix}/map/static")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
