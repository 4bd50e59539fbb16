"""Incident maps: the standalone page GET /map/incidents, and the /map viewer's incident layers.

Everything is aggregated or binned on the server; no route here ships a case. The viewer's
layers (``/map/incidents/heat.json``, ``/map/incidents/choropleth/{level}.json``,
``/map/incidents/warnings.json``) carry values only and are drawn on the grid polygons the
viewer already holds, so toggling a layer costs tens of kilobytes, not a second copy of the
geometry. Like ``/stats``, they need map access (aggregates, no case records), and like
``/stats`` a confined key's layers are computed from the cases of its scope only.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from gis_grid import layers
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.atlas.memo import ResponseCache
from gis_grid.errors import InvalidInputError
from gis_grid.incidents import aggregate, early_warning
from gis_grid.incidents import layers as incident_layers
from gis_grid.security.roles import Principal
from web.incident_pages import incident_page

from ..deps import holder
from .mapview import display_basemap
from ..security import require

router = APIRouter(tags=["map"], dependencies=[Depends(require("maps"))])
_who = require("maps")

# answers keyed first by the case table's version (atlas, cases): a write empties the cache
_cached = ResponseCache(max_items=64).get_or_build


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})


def _dumps(obj) -> bytes:
    import json
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _categories(category: list[str] | None) -> list[str] | None:
    cats = [c.strip() for v in (category or []) for c in v.split(",") if c.strip()]
    return cats or None


def _default_at(t: aggregate.CaseTable) -> str:
    """Warnings default to the day of the newest case (the demo history ends in 2016), else today."""
    if len(t):
        newest = int(t.created.max()) + 8 * 3600  # China Standard Time
        return str(np.datetime64(newest, "s").astype("datetime64[D]"))
    return datetime.now(timezone.utc).date().isoformat()


@router.get("/map/incidents", response_class=HTMLResponse,
            summary="Incident density heatmap (monthly slider), response choropleths per grid/community, warnings")
def incident_map(request: Request, layer: str = Query("all", description="heatmap, choropleth, warnings or all"),
                 category: list[str] | None = Query(None),
                 start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
                 at: str | None = Query(None, description="warnings and open-case colours at this date "
                                                          "(default: the range end, else 2016-12-31)"),
                 h: AtlasHolder = Depends(holder), who: Principal = Depends(_who)) -> HTMLResponse:
    aggregate.time_range(start, end)
    atlas = h.atlas
    full = aggregate.for_key(h.store, atlas, who)
    t = aggregate.scoped(full, atlas, who.confined_to)
    warn = None
    if layer in ("warnings", "all") and len(t):
        warn = early_warning.warnings_layer(full, atlas, at or end or "2016-12-31", scope=who.confined_to)
    prefix = request.scope.get("root_path", "").rstrip("/")
    page = incident_page(atlas, t, layer=layer, category=category, start=start, end=end, at=at,
                         warnings=warn, asset_prefix=f"{prefix}/map/static", scope=who.confined_to)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/map/incidents/heat.json",
            summary="Viewer layer: cases (or a rate) per 150 m bin and month (sparse), for the density heatmap")
def heat(request: Request,
         category: list[str] | None = Query(None, description="one or more categories (default all)"),
         start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
         rate: str = Query("count", description="what a bin's value counts: count (cases), per_100hh (each "
                                                 "case weighted by 100 / households of its grid; grids without "
                                                 "households add nothing) or per_km2 (cases per km²)"),
         h: AtlasHolder = Depends(holder), who: Principal = Depends(_who)) -> Response:
    aggregate.time_range(start, end)
    rate = incident_layers.heat_rate(rate)
    cats = _categories(category)
    basemap = display_basemap(request)
    atlas = h.atlas
    scope = who.confined_to
    t = aggregate.scoped(aggregate.for_key(h.store, atlas, who), atlas, scope)

    def build() -> bytes:
        m = aggregate._mask(t, start, end, cats)
        bins = incident_layers.heat_bins(t, m, rate=rate, atlas=atlas)
        if bins["centres"] and basemap in layers.GCJ02_BASEMAPS:  # the basemap is GCJ-02: shift the bin centres
            c = np.asarray(bins["centres"])
            x, y = layers.to_display(c[:, 1], c[:, 0], basemap)
            bins["centres"] = np.round(np.column_stack([y, x]), 5).tolist()
        return _dumps({"cases": int(m.sum()), "category": cats, "from": start, "to": end, **bins})

    return _json(_cached((t.version, scope, "heat", tuple(cats or ()), start, end, basemap, rate), build))


@router.get("/map/incidents/choropleth/{level}.json",
            summary="Viewer layer: response metrics per base grid or community, classified, with legends")
def choropleth(level: str, category: list[str] | None = Query(None),
               start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
               at: str | None = Query(None, description="open red/yellow counted at this time (default: the "
                                                        "range end, else now)"),
               h: AtlasHolder = Depends(holder), who: Principal = Depends(_who)) -> Response:
    if level not in ("grid", "community"):
        raise InvalidInputError(f"no choropleth for level {level!r}; use grid or community")
    aggregate.time_range(start, end)
    if at:
        aggregate.parse_time(at)
    cats = _categories(category)
    atlas = h.atlas
    scope = who.confined_to
    t = aggregate.scoped(aggregate.for_key(h.store, atlas, who), atlas, scope)
    # without a time, open cases are coloured "now": that answer ages, so it is cached for a minute only
    now_bucket = None if (at or end) else int(datetime.now(timezone.utc).timestamp() // 60)
    return _json(_cached((t.version, scope, "choro", level, tuple(cats or ()), start, end, at, now_bucket),
                         lambda: _dumps(incident_layers.choropleth_values(t, atlas, level, start, end, cats, at,
                                                                          within=scope))))


@router.get("/map/incidents/warnings.json",
            summary="Viewer layer: grids flagged by the early warning (anomaly vs own baseline, Gi* hot/cold)")
def warnings(at: str | None = Query(None, description="date of the warning (default: the newest case's day)"),
             category: list[str] | None = Query(None, description="only these categories' cases (default all)"),
             h: AtlasHolder = Depends(holder), who: Principal = Depends(_who)) -> Response:
    atlas = h.atlas
    t = aggregate.for_key(h.store, atlas, who)
    scope = who.confined_to
    if at:
        aggregate.parse_time(at)  # a malformed or out-of-range date is a 400 even with no cases
    cats = _categories(category)
    if cats:
        aggregate._mask(t, category=cats)  # an unknown category is a 400 naming the known ones
    when = at or _default_at(t)
    if not len(t):
        return _json(_dumps({"at": when, "legend": [], "items": {}, "ranked": [], "category": cats}))
    return _json(_cached((t.version, scope, "warn", when, tuple(cats or ())),
                         lambda: _dumps(early_warning.warnings_info(t, atlas, when, scope=scope, category=cats))))
