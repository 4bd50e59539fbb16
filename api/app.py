"""The app factory: settings are built here, never at import time."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from gis_grid.store import open_store

from . import errors
from .settings import Settings
from .state import AtlasHolder


def create_app(settings: Settings | None = None, *, holder: AtlasHolder | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.holder.store.close()

    app = FastAPI(title="gis_grid", version="0.1.0", lifespan=lifespan,
                  description="Grid-based social management GIS for Shizhong District, Zaozhuang (370402)")
    app.state.settings = settings
    app.state.holder = holder or AtlasHolder(open_store(settings.db))
    errors.install(app)

    @app.middleware("http")
    async def body_limit(request, call_next):
        # refuse oversized bodies before reading them; the limit is published at /capabilities
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return errors.problem(413, "Payload too large",
                                  f"the body has {length} bytes, over the limit of {settings.max_body_bytes}; "
                                  "split it, or use the bulk CLI `gis-grid locate IN.csv -o OUT.csv` for points")
        return await call_next(request)
    from .routers import ROUTERS
    for router in ROUTERS:
        app.include_router(router)
    return app
