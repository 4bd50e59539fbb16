"""Comparing two drafts of one area, and reverting an area to the grids of an earlier instant.

Both produce ordinary answers of the workflow: a comparison reads two impacts, and a
revert is a new draft (validated, numbered and applied like any other plan).
"""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import shapely

from ..atlas import Atlas
from ..atlas.asof import atlas_at
from ..errors import InvalidInputError
from .impact import DEFAULT_BAND, DEFAULT_TARGET_HOUSEHOLDS
from .plan import Plan, resolve_scope
from .validate import AREA_TOLERANCE_M2, area_m2
from .workflow import create_plan, impact_of


def _summary(plan: Plan, imp: dict) -> dict:
    pp = [g["polsby_popper"] for g in imp["grids"]]
    return {"id": plan.id, "source": plan.source, "note": plan.note, "created_at": plan.created_at,
            "grids": len(imp["grids"]), "balance": imp["balance"]["after"],
            "moved": {k: imp["changes"][k] for k in ("buildings", "households", "residents", "workers", "open_cases")},
            "unstaffed": len(imp["unstaffed"]),
            "shape": {"polsby_popper_mean": round(float(np.mean(pp)), 4), "polsby_popper_min": round(min(pp), 4),
                      "area_m2_mean": round(float(np.mean([g["area_m2"] for g in imp["grids"]])), 1)}}


def compare_plans(store, atlas: Atlas, a: Plan, b: Plan, *, target_households: float = DEFAULT_TARGET_HOUSEHOLDS,
                  band: float = DEFAULT_BAND, budget=None) -> dict:
    """Two drafts replacing the same grids side by side: balance, who moves, shape
    (``budget``: one :class:`~gis_grid.budget.Budget` for both impact reports).

    ``identical_grids``: grids drawn the same in both (within the 1 m² validation tolerance)."""
    if a.id == b.id:
        raise InvalidInputError("compare two different plans")
    if a.scope.code != b.scope.code or set(a.scope.replaces) != set(b.scope.replaces):
        raise InvalidInputError(f"plans {a.id} and {b.id} redraw different areas ({a.scope.code}, {b.scope.code}); "
                                "compare drafts that replace the same grids",
                                detail={"a": list(a.scope.replaces), "b": list(b.scope.replaces)})
    ia = impact_of(store, atlas, a, target_households=target_households, band=band, budget=budget)
    ib = impact_of(store, atlas, b, target_households=target_households, band=band, budget=budget)
    tree = shapely.STRtree(list(b.geometries))
    same = 0
    for g in a.geometries:
        if any(area_m2(shapely.symmetric_difference(g, b.geometries[k])) <= AREA_TOLERANCE_M2
               for k in tree.query(g, predicate="intersects")):
            same += 1
    return {"scope": a.scope.to_dict(), "base_version": atlas.version, "target_households": target_households,
            "band": band, "before": ia["balance"]["before"], "plans": [_summary(a, ia), _summary(b, ib)],
            "identical_grids": same}


def _polygon(g):
    parts = [p for p in shapely.get_parts(g) if p.area > 0]
    return parts[0] if len(parts) == 1 else g


def revert_plan(store, atlas: Atlas, scope: str, when: datetime, *, note: str = "") -> tuple[Plan, object]:
    """A draft restoring the base grids of ``scope`` as they stood at ``when``.

    It replaces every current grid of the scope and is numbered like any plan: a restored
    grid that is (mostly) a current grid keeps that grid's code, every other gets a fresh
    code; a retired code is never issued again, so restored grids do not get their old codes."""
    resolve_scope(atlas, scope)  # 4xx for a code that is not a current community or street
    past = atlas_at(store, when)
    if past.version == atlas.version:
        raise InvalidInputError(f"the grids of {scope} at {when.isoformat()} are today's (atlas version "
                                f"{atlas.version}): nothing to revert", detail={"at_version": past.version})
    d = past.divisions
    rows = d[(d["level"] == "grid") & d["code"].astype(str).str.startswith(scope)]
    if not len(rows):
        raise InvalidInputError(f"{scope} had no base grids at {when.isoformat()}")
    feats = [{"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(_polygon(g)))}
             for g in rows["geometry"]]
    restored = ", ".join(sorted(rows["code"].astype(str)))
    return create_plan(store, atlas, scope, {"type": "FeatureCollection", "features": feats}, source="revert",
                       note=note or f"revert to atlas version {past.version} ({when.isoformat()}): {restored}")
