"""FastAPI dependencies shared by the routers.

They are async on purpose: FastAPI runs sync dependencies in a thread pool,
and three thread hops cost more than locating a point.
"""
from __future__ import annotations

from fastapi import Query, Request

from gis_grid.atlas import Atlas
from gis_grid.atlas.holder import AtlasHolder

from .settings import Settings


async def holder(request: Request) -> AtlasHolder:
    return request.app.state.holder


async def atlas_dep(request: Request) -> Atlas:
    return request.app.state.holder.atlas


async def settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def crs_query(crs: str | None = Query(None, description="EPSG:4326 (= CRS84, default), EPSG:4490, EPSG:4548, gcj02, bd09")) -> str | None:
    return crs
