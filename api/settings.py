"""Service settings, read from GIS_GRID_* environment variables inside the app factory."""
from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GIS_GRID_", extra="ignore")

    db: str | None = None                     # store path or postgresql:// URL; None = demo store
    host: str = "127.0.0.1"
    port: int = 8000
    # the address clients reach the service at (behind a proxy: its https URL); every absolute link
    # (OGC links, paging "next", tilejson) is built from it, never from the request's Host header
    public_url: str | None = None
    # published limits (GET /capabilities)
    max_batch_points: int = 100_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_polygon_vertices: int = 10_000
    # a drawn area on a personal-data endpoint (POST /residents/search): about a large community; a bigger
    # polygon is a bulk harvest of people, which goes through division reads (scoped, paged) instead
    max_personal_area_km2: float = 10.0
    default_page_size: int = 100
    max_page_size: int = 1_000
    rate_limit_per_minute: int = 300_000      # per API key (5,000/s): room for a busy system, a cap on abuse
    unmask_per_minute: int = 10               # per API key, the unmasked personal-data endpoint
    # requests without a key or session, per client address (the sign-in page, static files, docs, 401s)
    anonymous_per_minute: int = 600
    # failed sign-ins (a bad key at /login or in a Bearer header) within failed_auth_window_s: past
    # failed_auth_per_client from one address, or failed_auth_per_key for one key id from anywhere,
    # sign-ins from it are refused (429) for failed_auth_lockout_s, and the audit log gets one record
    failed_auth_per_client: int = 10
    failed_auth_per_key: int = 50
    failed_auth_window_s: float = 60.0
    failed_auth_lockout_s: float = 300.0
    # browser origins (scheme://host[:port]) whose pages may call the API, e.g. a MapLibre or OpenLayers
    # page elsewhere reading tiles and items: GIS_GRID_CORS_ORIGINS='["https://map.example.cn"]'; "*" = any
    cors_origins: list[str] = []
    # a browser session (the viewer's cookie) lasts this long at most; sign-out revokes it at once
    session_hours: float = 12.0
    # while the store is unreachable, keys verified this recently keep working on atlas routes
    auth_grace_s: float = 300.0
    # bounded work: a proposal past this many seconds is stopped (its worker killed) and answers 503
    propose_budget_s: float = 120.0
    # ?at= atlases (each about as large as the current one): kept and being built within this many MB,
    # at most this many kept and this many built at once; past it a 503 with Retry-After
    asof_budget_mb: int = 1024
    asof_max_entries: int = 4
    asof_max_builds: int = 1
    # an impact report (GET /plans/{id}/impact, its map, a comparison) and an as-of atlas (?at=) past
    # these many seconds stop at their next step and answer 503 naming the steps done
    impact_budget_s: float = 60.0
    asof_budget_s: float = 60.0
    # on SIGTERM, in-flight requests get this many seconds before the server exits anyway
    shutdown_grace_s: float = 5.0
    # map viewer
    # "mbtiles": an offline package (a Tianditu or AMap export, or the one `gis-grid demo` renders);
    # without the file the viewer falls back to "none". tianditu / amap are online tile servers.
    basemap: Literal["none", "tianditu", "amap", "mbtiles"] = "mbtiles"
    basemap_mbtiles: str = ""                 # the package; "" = beside the GeoPackage store, <stem>-basemap.mbtiles
    basemap_crs: Literal["cgcs2000", "gcj02"] = "cgcs2000"  # gcj02 for AMap-style packages: overlays are shifted
    tianditu_key: str = ""

    def graceful_shutdown_s(self) -> int:
        """uvicorn's ``timeout_graceful_shutdown`` (whole seconds, at least 1)."""
        return max(1, int(self.shutdown_grace_s))
