"""The command-centre map viewer: GET /map, its vendored assets and the grid layers."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from gis_grid import basemap as bm
from gis_grid import layers
from gis_grid.atlas import Atlas
from gis_grid.errors import AuthenticationError, InvalidInputError, NotFoundError, PermissionDeniedError
from gis_grid.hierarchy import Level
from gis_grid.security.roles import Principal
from web import viewer
from web.assets import STATIC_DIR

from ..deps import atlas_dep, settings_dep
from ..security import principal_dep, require
from ..settings import Settings

router = APIRouter(tags=["map"])
_maps = require("maps")

CONTENT_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE, VERSION
}

def display_basemap(request: Request) -> str:
    """The basemap the overlays are drawn for (``mbtiles`` falls back to ``none`` without its file)."""
    return request.app.state.basemap[0]


async def _viewer(request: Request) -> Principal | None:
    try:
        return await principal_dep(request)
    except AuthenticationError:
        return None


@router.get("/map", response_class=HTMLResponse, summary="The command-centre map viewer (HTML)")
def map_page(request: Request, atlas: Atlas = Depends(atlas_dep),
             settings: Settings = Depends(settings_dep), who: Principal | None = Depends(_viewer)):
    if who is None:  # a browser without a session goes to the sign-in page, not to a JSON 401
        return RedirectResponse("/login?next=/map", status_code=303)
    if not who.permission.maps:
        raise PermissionDeniedError(f"the {who.role} role has no map access")
    prefix = request.scope.get("root_path", "").rstrip("/")
    # the page is derived from the snapshot (its extent, its divisions): kept in the snapshot's memo
    basemap, package = request.app.state.basemap
    key = ("web.viewer_html", basemap, settings.tianditu_key, prefix)
    body = atlas.memo.get(key, lambda: viewer.viewer_html(
        atlas, basemap, f"{prefix}/map/static", tianditu_key=settings.tianditu_key, api_prefix=prefix,
        package=None if package is None else {"minzoom": package.minzoom, "maxzoom": package.maxzoom,
                                              "format": package.format,
                                              "attribution": package.metadata.get("attribution", "")},
        as_of=_data_as_of(request.app.state.holder.store)).encode("utf-8"))
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


@router.get("/map/layers/{level}.geojson", summary="One grid level as simplified GeoJSON for the viewer",
            response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def map_layer(request: Request, level: str = PathParam(..., json_schema_extra={"enum": [l.value for l in Level]}),
              atlas: Atlas = Depends(atlas_dep),
              settings: Settings = Depends(settings_dep), who: Principal = Depends(_maps)) -> Response:
    lvl = Level.parse(level)
    basemap = display_basemap(request)
    etag = f'"{atlas.version}-{lvl.value}-{basemap}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    key = ("layers.level_geojson", lvl.value, basemap)
    body = atlas.memo.get(key, lambda: layers.level_geojson_bytes(atlas, lvl, basemap))
    return Response(body, media_type="application/geo+json",
                    headers={"ETag": etag, "Cache-Control": "no-cache"})


@router.get("/map/search", summary="Find a grid by code or name, or a 'lon,lat' point (display coordinates)")
def map_search(request: Request,
               q: str = Query(..., max_length=200, description="grid/division code, name, or 'lon,lat'"),
               atlas: Atlas = Depends(atlas_dep), who: Principal = Depends(_maps)) -> dict:
    return layers.search(atlas, q, display_basemap(request))


def _data_as_of(store) -> str:
    """The stamp's date: the store's own "as of" (the demo's snapshot day), else today."""
    return store.meta().get("as_of") or date.today().isoformat()


@router.get("/map/basemap/{z}/{x}/{y}.{ext}", summary="One tile of the offline basemap package (XYZ)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def basemap_tile(request: Request, z: int, x: int, y: int, ext: str, who: Principal = Depends(_maps)) -> Response:
    package = request.app.state.basemap[1]
    if package is None:
        raise NotFoundError("no offline basemap is configured (GIS_GRID_BASEMAP=mbtiles, GIS_GRID_BASEMAP_MBTILES)")
    if ext != package.format:
        raise NotFoundError(f"the basemap package holds {package.format} tiles, not {ext}")
    data = package.tile(z, x, y)
    if data is None:  # outside the package: an empty tile, so the browser logs no failed request
        if package.format != "png":
            raise NotFoundError(f"no basemap tile {z}/{x}/{y}")
        data = bm.empty_png()
    return Response(data, media_type=package.media_type, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/map/static/{path:path}", include_in_schema=False)
def map_static(path: str) -> FileResponse:
    try:
        target = (STATIC_DIR / path).resolve()
        found = target.is_relative_to(STATIC_DIR) and target.is_file()
    except (ValueError, OSError):  # a NUL byte, a name longer than the file system allows
        found = False
    if not found:
        raise NotFoundError(f"no static asset {path[:80]!r}")
    ctype = CONTENT_TYPES.get(target.suffix.lower())
    if ctype is None:
        raise InvalidInputError(f"{path!r} is not a servable asset type")
    return FileResponse(target, media_type=ctype, headers={"Cache-Control": "public, max-age=3600"})
