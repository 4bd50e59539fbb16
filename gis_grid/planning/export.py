"""A plan as files: its grids as GeoPackage or GeoJSON, and a unit -> grid assignment CSV.

The assignment file is the block-assignment format redistricting tools exchange
(one row per unit, its id and its district): here one row per building in the
plan's scope, ``building_id,grid_code``, with the code the building will have
once the plan is applied (and, for reference, ``current_grid_code``).
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from .. import csvsafe
from ..atlas import Atlas
from ..errors import InvalidInputError
from .changeset import assign_buildings, number_grids
from .impact import plan_impact
from .plan import Plan
from .validate import validate_plan

FORMATS = {"gpkg": "application/geopackage+sqlite3", "geojson": "application/geo+json", "csv": "text/csv"}


def plan_frame(atlas: Atlas, store, plan: Plan, impact: dict | None = None) -> gpd.GeoDataFrame:
    """The plan's grids with their codes, names, status and per-grid figures (EPSG:4490).

    ``impact``: an applied plan's impact as of its apply (then nothing is recomputed)."""
    imp = impact
    if imp is None:
        report = validate_plan(atlas, plan)
        if not report.ok:
            raise InvalidInputError("the plan does not validate on this atlas; export a valid plan",
                                    detail=report.failures)
        imp = plan_impact(atlas, store, plan, report.parents)
    rows = pd.DataFrame(imp["grids"]).drop(columns=["index"])
    rows["plan_id"] = plan.id
    rows["base_version"] = plan.base_version
    return gpd.GeoDataFrame(rows, geometry=list(plan.geometries), crs=4490)


def assignment(atlas: Atlas, store, plan: Plan, codes: list[str] | None = None) -> pd.DataFrame:
    """Every building in the plan's scope with its grid after the plan (and on ``atlas``).

    ``codes``: the codes an applied plan's grids were given (``atlas`` then is the one before it)."""
    if codes is None:
        report = validate_plan(atlas, plan)
        if not report.ok:
            raise InvalidInputError("the plan does not validate on this atlas", detail=report.failures)
        codes = number_grids(atlas, plan, report.parents, store.grid_codes_ever(plan.scope.code)).codes
    moves = assign_buildings(atlas, plan, codes).set_index("id")["new"]
    pos = [atlas.grid_positions(c)[0] for c in plan.scope.replaces]
    rows = np.flatnonzero(np.isin(atlas.building_grid, pos))
    ids = atlas.building_ids[rows]
    current = atlas.grid_codes[atlas.building_grid[rows]]
    after = np.array([moves.get(int(b), c) for b, c in zip(ids, current)], dtype=object)
    extra = moves.index.difference(pd.Index(ids))  # buildings drawn in from outside the scope
    df = pd.DataFrame({"building_id": ids.astype(int), "grid_code": after, "current_grid_code": current})
    if len(extra):
        rx = [atlas._building_rows[int(b)] for b in extra]
        df = pd.concat([df, pd.DataFrame({"building_id": extra.astype(int), "grid_code": moves.loc[extra].to_numpy(),
                                          "current_grid_code": atlas.grid_codes[atlas.building_grid[rx]]})])
    return df.sort_values("building_id").reset_index(drop=True)


def export_plan(atlas: Atlas, store, plan: Plan, fmt: str, impact: dict | None = None) -> bytes:
    """The plan as ``gpkg``, ``geojson`` (its grids) or ``csv`` (the assignment) bytes.

    An applied plan: ``atlas`` as it stood before the apply and ``impact`` as kept by it."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    if fmt == "csv":
        buf = io.StringIO()
        codes = None if impact is None else [g["code"] for g in impact["grids"]]
        csvsafe.frame(assignment(atlas, store, plan, codes)).to_csv(buf, index=False)
        return buf.getvalue().encode()
    gdf = plan_frame(atlas, store, plan, impact)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"plan_{plan.id}.{fmt}"
        if fmt == "gpkg":
            gdf.to_file(path, driver="GPKG", layer=f"plan_{plan.id}")
        else:
            gdf.to_file(path, driver="GeoJSON")
        return path.read_bytes()
