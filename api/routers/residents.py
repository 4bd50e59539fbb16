"""Who lives here: households with their residents, in a division, a building or a drawn polygon.

Thin: masking, paging tokens, the area limit and the audit are in :mod:`gis_grid.people_search`;
this module adds the HTTP paging links. Personal fields are always masked here, whatever the
role; unmasked values come only from the purpose-bound ``/residents/{id}/unmasked``.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from gis_grid import people_search
from gis_grid.atlas import Atlas
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.security.roles import Principal

from ..asof import atlas_at_dep
from ..deps import crs_query, holder, public_href, settings_dep
from ..security import principal_dep, request_id
from ..settings import Settings

router = APIRouter(tags=["residents"])


async def _people(request: Request) -> Principal:
    who = await principal_dep(request)
    people_search.check_may_read(who)
    return who


def _page(limit: int | None, offset: int | None, next_token: str | None, key: str,
          settings: Settings, atlas: Atlas) -> people_search.Page:
    return people_search.page(limit, offset, next_token, key, atlas, default_size=settings.default_page_size,
                              max_size=settings.max_page_size)


def _answer(request: Request, atlas: Atlas, h: AtlasHolder, households, page: people_search.Page,
            who: Principal, resource: str, extra: dict | None = None) -> dict:
    body = people_search.households_page(h.store, atlas, households, page, who, resource=resource,
                                         request_id=request_id(request), extra=extra)
    if body["households"] is None:  # counts only: no page to link
        return body
    links = [{"rel": "self", "href": public_href(request)}]
    if body["next"]:
        url = request.url.remove_query_params(["offset", "next"]).include_query_params(next=body["next"])
        link = {"rel": "next", "href": public_href(request, url), "type": "application/json"}
        if request.method == "POST":
            link.update(method="POST", note="send the same body again")
        links.append(link)
    body["links"] = links
    return body


PAGING = dict(
    limit=Query(None, description="page size (default and maximum: see /capabilities); larger values are clamped"),
    offset=Query(None, description="households to skip"),
    next=Query(None, description="opaque token from the previous page's `next`"),
)


@router.get("/grids/{code}/residents", summary="Households and residents in a division of any level")
def grid_residents(request: Request, code: str = Path(...), limit: int | None = PAGING["limit"],
                   offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
                   atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
                   settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    households = people_search.grid_households(atlas, who, code)
    page = _page(limit, offset, next, f"grid:{code}", settings, atlas)
    return _answer(request, atlas, h, households, page, who, f"grid/{code}", {"code": code})


@router.get("/buildings/{building_id}/residents", summary="Households and residents of one building")
def building_residents(request: Request, building_id: int = Path(...), limit: int | None = PAGING["limit"],
                       offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
                       atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
                       settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    households = people_search.building_households(atlas, who, building_id)
    page = _page(limit, offset, next, f"building:{int(building_id)}", settings, atlas)
    return _answer(request, atlas, h, households, page, who, f"building/{int(building_id)}",
                   {"building_id": int(building_id)})


@router.post("/residents/search", summary="Households and residents whose building lies in a drawn polygon")
def search(request: Request, body: Any = Body(..., examples=[{"type": "Polygon", "coordinates": [
        [[117.55, 34.86], [117.56, 34.86], [117.56, 34.87], [117.55, 34.87], [117.55, 34.86]]]}]),
           crs: str | None = Depends(crs_query), limit: int | None = PAGING["limit"],
           offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
           atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
           settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    area = people_search.search_area(body, crs, max_vertices=settings.max_polygon_vertices,
                                     max_km2=settings.max_personal_area_km2)
    rows = atlas.household_rows_in_polygon(area, settings.max_polygon_vertices)
    key = people_search.polygon_key(area)
    page = _page(limit, offset, next, key, settings, atlas)
    buildings = people_search.buildings_matched(atlas, who, area, settings.max_polygon_vertices)
    # only what lies in the caller's scope is returned (filtered in households_page)
    return _answer(request, atlas, h, atlas.households.iloc[rows], page, who,
                   f"polygon/{key}", {"buildingsMatched": buildings})
