"""The committed reference data: official division names/codes and the outline.

Files live in ``data/reference`` (see its README for provenance). The
location can be overridden with ``GIS_GRID_DATA_DIR`` for installed copies.
"""
from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from pathlib import Path

import shapely

from .errors import StoreError
from .hierarchy import Division, Level, community_kind

_LEVELS = {"district": Level.DISTRICT, "street_town": Level.STREET,
           "community_village": Level.COMMUNITY}


def data_dir() -> Path:
    env = os.environ.get("GIS_GRID_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def reference_dir() -> Path:
    return data_dir() / "reference"


@lru_cache(maxsize=1)
def divisions() -> tuple[Division, ...]:
    """District, streets/towns and communities/villages, in file order."""
    path = reference_dir() / "shizhong_divisions.csv"
    if not path.exists():
        raise StoreError(f"reference file {path} is missing; restore data/reference from git")
    out = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            level = _LEVELS[row["level"]]
            kind = community_kind(row["name"]) if level is Level.COMMUNITY else None
            out.append(Division(row["code"], row["name"], level, row["parent_code"], kind))
    return tuple(out)


def outline_gcj02() -> shapely.MultiPolygon:
    """The district outline exactly as published (AMap, so GCJ-02 lon/lat)."""
    path = reference_dir() / "shizhong_boundary.geojson"
    with path.open(encoding="utf-8") as fh:
        return shapely.geometry.shape(json.load(fh))
