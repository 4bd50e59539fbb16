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


def public_base(request: Request) -> str:
    """The service's public root (no trailing slash): Settings.public_url, else http://host:port.

    Never the request's Host header, which the client chooses (a forged one would be reflected
    into every link a cache or another client then follows).
    """
    s = request.app.state.settings
    return (s.public_url or f"http://{s.host}:{s.port}").rstrip("/") + request.scope.get("root_path", "").rstrip("/")


def public_href(request: Request, url=None) -> str:
    """``url`` (default: the request's own URL) rebased onto :func:`public_base`."""
    url = request.url if url is None else url
    path = url.path
    root = request.scope.get("root_path", "").rstrip("/")
    if root and path.startswith(root):
        path = path[len(root):]
    return public_base(request) + path + (f"?{url.query}" if url.query else "")
