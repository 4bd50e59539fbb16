"""Persistence behind one interface: :func:`open_store` picks the backend from the URL.

Backends live in ``gpkg/`` (the embedded default, one GeoPackage file) and ``postgis/``;
each owns all of its SQL and imports only from :mod:`.base`, never from the other.
Tables, all geometry in EPSG:4490: ``divisions`` (every level, with ``version``,
``valid_from`` and ``valid_to`` for history), ``buildings``, ``households``,
``residents``, ``workers``, ``incidents``, plans, keys and the audit log.
"""
from __future__ import annotations

from pathlib import Path

from ..paths import is_database_url, store_url
from .base import (DATABASE_URL_ENV, DEFAULT_STORE_NAME, INCIDENT_COLUMNS, SCHEMA_VERSION, SYSTEM_SCOPE, Store,
                   default_store_path)

__all__ = ["Store", "open_store", "is_database_url", "default_store_path", "DATABASE_URL_ENV",
           "DEFAULT_STORE_NAME", "INCIDENT_COLUMNS", "SCHEMA_VERSION", "SYSTEM_SCOPE"]




def open_store(url: str | Path | None = None, *, create: bool = False) -> Store:
    """Open a store by path or URL; ``postgresql://`` URLs select PostGIS.

    Without one: ``$GIS_GRID_DATABASE_URL`` if set, else the default GeoPackage path.
    """
    url = store_url(url)
    if is_database_url(url):
        from .postgis import PostGISStore  # psycopg is loaded only for PostGIS URLs
        return PostGISStore(url, create=create)
    from .gpkg import GeoPackageStore
    return GeoPackageStore(url.removeprefix("sqlite:///").removeprefix("gpkg://"), create=create)
