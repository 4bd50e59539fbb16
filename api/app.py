"""The app factory: settings are built here, never at import time."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis_grid.atlas.holder import AtlasHolder
from gis_grid.stats import grid_table
from gis_grid.store import open_store

from . import errors
from .settings import Settings


def create_app(settings: Settings | None = None, *, holder: AtlasHolder | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from .shutdown import install
        install(settings.graceful_shutdown_s())
        yield
        # a proposal in flight would keep the process alive past SIGTERM: kill its solver
        from gis_grid.planning.solver import stop_all
        stop_all()
        app.state.holder.store.close()

    # /docs and /redoc are served by api/routers/apidocs.py from vendored assets (FastAPI's load a CDN)
    app = FastAPI(title="gis_grid", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Grid-based social management GIS for Shizhong District, Zaozhuang (370402)")
    app.state.settings = settings
    # the card statistics and the incident layers' derived state (case table, Gi* weights) are warmed
    # off the request path for each new snapshot (~2 s and ~5 s on the demo)
    from gis_grid.incidents.early_warning import warm_up
    app.state.holder = holder or AtlasHolder(
        open_store(settings.db), warmers=[grid_table, warm_up], asof_max_bytes=settings.asof_budget_mb * 2**20,
        asof_max_entries=settings.asof_max_entries, asof_max_builds=settings.asof_max_builds)
    app.state.basemap = resolve_basemap(settings, app.state.holder.store)
    errors.install(app)
    from .security import AuthCache, OneTimeLogins, RateLimiter
    app.state.rate_limiter = RateLimiter()
    app.state.auth_cache = AuthCache(grace_s=settings.auth_grace_s)
    app.state.one_time_logins = OneTimeLogins()
    from gis_grid.security.throttle import FailedSignIns
    app.state.failed_auth = FailedSignIns(
        per_client=settings.failed_auth_per_client, per_key=settings.failed_auth_per_key,
        window_s=settings.failed_auth_window_s, lockout_s=settings.failed_auth_lockout_s)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AnonymousLimit, limiter=app.state.rate_limiter, per_minute=settings.anonymous_per_minute)
    # JSON, GeoJSON and HTML compress 5-10x; vector tiles are cached bytes sent as they are
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6,
                       exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.mapbox-vector-tile"))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "If-None-Match", "Accept"],
                           expose_headers=["ETag", "Content-Crs", "Link"], max_age=600)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)  # outermost: HEAD sees the same headers GET would
    from .routers import ROUTERS
    for router in ROUTERS:
        app.include_router(router)
    return app


class HeadAsGet:
    """Answer HEAD on every GET route (RFC 9110 9.3.2): run the GET, send its headers, drop the body.

    FastAPI registers GET routes without HEAD; GIS clients (GDAL's /vsicurl) and caches probe with it.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message):
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False) and not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def resolve_basemap(settings: Settings, store):
    """(display key for gis_grid.layers, MBTiles or None): an absent offline package means no basemap."""
    if settings.basemap != "mbtiles":
        return settings.basemap, None
    from pathlib import Path

    from gis_grid import basemap as bm
    path = settings.basemap_mbtiles
    if not path and not str(store.url).startswith("postgresql"):
        path = str(bm.default_path(store.url))
    if not path or not Path(path).is_file():
        if settings.basemap_mbtiles:  # named but missing: say so, then serve without one
            print(f"warning: no basemap package at {path}; the map has no basemap")
        return "none", None
    tiles = bm.MBTiles(path)
    return ("mbtiles-gcj02" if settings.basemap_crs == "gcj02" else "mbtiles"), tiles


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside ``receive`` once a body passes the limit.

    An HTTPException because FastAPI re-raises those from its body reading (any other error
    there becomes a 400), so the handler in api/errors.py answers 413.
    """

    def __init__(self, limit: int):
        super().__init__(413, f"the body is over the limit of {limit} bytes; split it, or use the bulk CLI "
                              "`gis-grid locate IN.csv -o OUT.csv` for points")


class BodyLimit:
    """Refuse bodies over the published limit with 413 before parsing them.

    A declared ``Content-Length`` over the limit is refused before a byte is read; any other
    framing (chunked, or a length that lies) is counted as it arrives, and the read stops with
    413 at the first chunk past the limit, so nothing larger is ever buffered or parsed.
    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs about a
    millisecond per request, more than a whole point location.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = errors.problem(
                    413, "Payload too large",
                    f"the body has {int(value)} bytes, over the limit of {self.max_bytes}; split it, "
                    "or use the bulk CLI `gis-grid locate IN.csv -o OUT.csv` for points")
                await response(scope, receive, send)
                return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


class AnonymousLimit:
    """Requests with neither a key nor a session cookie: a token bucket per client address, 429 past it.

    Keyed requests have their own per-key limit; these are the ones nobody answers for (sign-in
    page, static files, docs, and every 401), so a flood of them is cut off before any work.
    """

    def __init__(self, app, limiter, per_minute: int):
        self.app, self.limiter, self.per_minute = app, limiter, per_minute

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _has_credentials(scope):
            await self.app(scope, receive, send)
            return
        from gis_grid.errors import RateLimitedError

        from .security import client_address
        try:
            self.limiter.take(f"client:{client_address(scope)}", "anonymous", self.per_minute,
                              who="requests without a key from this address")
        except RateLimitedError as exc:
            response = errors.problem(429, "RateLimitedError", exc.message)
            response.headers["Retry-After"] = str(exc.detail["retry_after_s"])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_credentials(scope) -> bool:
    from .security import SESSION_COOKIE
    for name, value in scope.get("headers", ()):
        if name == b"authorization" or (name == b"cookie" and SESSION_COOKIE.encode() + b"=" in value):
            return True
    return False


#: on every HTML page: scripts, styles and data only from this origin (the pages inline their
#: own code, hence 'unsafe-inline'), basemap tiles over https, no framing by other sites
HTML_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob: https:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """``nosniff`` on every response; CSP, ``frame-ancestors`` and ``X-Frame-Options`` on HTML."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ())
                           if k.lower() not in (b"x-content-type-options", b"content-security-policy",
                                                b"x-frame-options")]
                headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    headers += [(b"content-security-policy", HTML_CSP.encode()), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
