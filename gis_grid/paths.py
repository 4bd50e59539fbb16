"""Where the store is, and checks on the files a caller names (a typo is a clear error before any work).

Light on imports on purpose: the command line resolves the store here without loading pandas.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInputError


def output_path(path) -> Path:
    """The output file ``path``, refused unless its folder exists (writers would fail after the work)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"the output folder {folder} does not exist; create it or write into an existing one")
    return path


DEFAULT_STORE_NAME = "shizhong.gpkg"
#: a store URL (postgresql://...) or path used when none is given (before the default GeoPackage)
DATABASE_URL_ENV = "GIS_GRID_DATABASE_URL"


def default_store_path() -> Path:
    from .reference import data_dir
    return data_dir() / DEFAULT_STORE_NAME


def is_database_url(url) -> bool:
    return str(url).startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def store_url(url=None) -> str:
    """The store a command means: ``url``, else ``$GIS_GRID_DATABASE_URL``, else the default GeoPackage."""
    return str(url or os.environ.get(DATABASE_URL_ENV) or default_store_path())
