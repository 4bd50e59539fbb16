"""FastAPI dependencies shared by the routers."""
from __future__ import annotations

from fastapi import Query, Request

from gis_grid.atlas import Atlas

from .settings import Settings
from .state import AtlasHolder


def holder(request: Request) -> AtlasHolder:
    return request.app.state.holder


def atlas_dep(request: Request) -> Atlas:
    return request.app.state.holder.atlas


def settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def crs_query(crs: str | None = Query(None, description="EPSG:4326 (= CRS84, default), EPSG:4490, EPSG:4548, gcj02, bd09")) -> str | None:
    return crs
