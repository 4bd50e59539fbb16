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
    from .routers import ROUTERS
    for router in ROUTERS:
        app.include_router(router)
    return app
