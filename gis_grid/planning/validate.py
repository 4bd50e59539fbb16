"""Validation of a plan, in the metric CRS (EPSG:4548).

The new grids must be valid polygons, each in one piece, inside their parent
community, inside the area they replace, and together cover that area exactly:
no overlap and no gap larger than :data:`AREA_TOLERANCE_M2` each. Every failure
carries its location as GeoJSON (lon/lat): the offending point, part, strip of
overlap or gap, and for overlaps and gaps the edges that shapely's coverage
validation (:func:`shapely.coverage_invalid_edges`) flags around it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import shapely

from .. import crs as crs_mod
from ..atlas import Atlas
from ..coverage import AREA_TOLERANCE_M2 as _CHECK_TOLERANCE_M2
from .plan import Plan

#: gaps and overlaps up to this area (each) are rounding, not planning errors;
#: the same tolerance `gis-grid check` applies, so a plan that validates passes the check
AREA_TOLERANCE_M2 = _CHECK_TOLERANCE_M2
#: edges of neighbours closer than this (but not shared) are reported as coverage edges
GAP_WIDTH_M = 0.5

_METRIC, _STORAGE = crs_mod.InputCRS.GK117, crs_mod.InputCRS.CGCS2000
_POINT_IN_REASON = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)")


#: edges are densified to ~5 m in lon/lat before projecting. A straight lon/lat edge is a
#: curve in EPSG:4548; where one side of a shared edge has a vertex the other lacks (a
#: T-junction), projecting the bare vertices would open phantom slivers of several m2 per
#: km of edge. At 5 m segments they shrink below 0.001 m2.
DENSIFY_DEG = 5e-5


def to_metric(geoms):
    return crs_mod.transform_geoms(shapely.segmentize(geoms, DENSIFY_DEG), _STORAGE, _METRIC)


def to_storage(geoms):
    return crs_mod.transform_geoms(geoms, _METRIC, _STORAGE)


#: reported locations are snapped to 1 cm: a straight lon/lat edge is very slightly curved in
#: EPSG:4548, which leaves zero-width spikes on differences that are noise, not places to fix
LOCATION_GRID_M = 0.01


def geojson_of_metric(geom) -> dict | None:
    if geom is None or geom.is_empty:
        return None
    if shapely.get_dimensions(geom) == 2:
        cleaned = shapely.set_precision(geom, LOCATION_GRID_M)
        geom = cleaned if not cleaned.is_empty else geom
    return json.loads(shapely.to_geojson(to_storage(geom)))


@dataclass
class ValidationReport:
    ok: bool = True
    failures: list[dict] = field(default_factory=list)
    parents: list[str | None] = field(default_factory=list)   # parent community per new grid
    area_m2: list[float] = field(default_factory=list)

    def fail(self, rule: str, message: str, location=None, **extra) -> None:
        self.ok = False
        self.failures.append({"rule": rule, "message": message, "location": geojson_of_metric(location),
                              **extra})

    def to_dict(self) -> dict:
        return {"ok": self.ok, "crs": "EPSG:4548", "tolerance_m2": AREA_TOLERANCE_M2,
                "failures": self.failures, "parents": self.parents}


def _largest_first(geom) -> list:
    parts = [p for p in shapely.get_parts(geom) if p.area > 0]
    return sorted(parts, key=lambda p: -p.area)


def validate_plan(atlas: Atlas, plan: Plan) -> ValidationReport:
    """Check a plan against the atlas it replaces grids of; never raises for bad geometry."""
    rep = ValidationReport()
    new = np.asarray(to_metric(np.asarray(plan.geometries, dtype=object)), dtype=object)
    rows = [atlas.by_code[c] for c in plan.scope.replaces]
    old = to_metric(atlas.divisions["geometry"].to_numpy()[rows])
    replaced = shapely.union_all(old)
    comm = {c: to_metric(atlas.division(c)["geometry"]) for c in plan.scope.communities}
    rep.area_m2 = [float(g.area) for g in new]

    # 1. valid geometries (the rest needs valid input, so stop here if any is not)
    # (checked on the drawn vertices: densifying could land a vertex on a crossing)
    for i, g in enumerate(plan.geometries):
        if not g.is_valid:
            reason = shapely.is_valid_reason(g)
            m = _POINT_IN_REASON.search(reason)
            where = shapely.Point(float(m.group(1)), float(m.group(2))) if m else g
            rep.fail("valid", f"grid {i} is not a valid polygon: {reason}", to_metric(where), feature=i)
    if not rep.ok:
        rep.parents = [None] * len(new)
        return rep

    # 2. each grid in one piece
    for i, g in enumerate(new):
        parts = _largest_first(g)
        if len(parts) > 1:
            stray = shapely.MultiPolygon(parts[1:]) if len(parts) > 2 else parts[1]
            rep.fail("contiguous", f"grid {i} has {len(parts)} separate parts; every base grid must be "
                     "one piece: merge the stray parts into a neighbour", stray, feature=i,
                     area_m2=round(float(stray.area), 2))

    # 3. within the parent community (named, or the one holding most of the grid)
    for i, g in enumerate(new):
        named = plan.properties[i].get("community") if i < len(plan.properties) else None
        if named is not None and str(named) not in comm:
            rep.parents.append(None)
            rep.fail("within_parent", f"grid {i} names community {named}, which is not in the plan's scope "
                     f"{list(comm)}", g, feature=i)
            continue
        parent = str(named) if named is not None else max(comm, key=lambda c: shapely.intersection(g, comm[c]).area)
        rep.parents.append(parent)
        spill = shapely.difference(g, comm[parent])
        if spill.area > AREA_TOLERANCE_M2:
            rep.fail("within_parent", f"grid {i} extends {spill.area:,.1f} m2 beyond its parent community "
                     f"{parent}", spill, feature=i, area_m2=round(float(spill.area), 2))

    # 4. nothing outside the replaced grids (that land belongs to grids the plan does not touch)
    for i, g in enumerate(new):
        spill = shapely.difference(g, replaced)
        for part in _largest_first(spill):
            if part.area > AREA_TOLERANCE_M2:
                rep.fail("within_scope", f"grid {i} covers {part.area:,.1f} m2 outside the grids the plan "
                         f"replaces ({', '.join(plan.scope.replaces)})", part, feature=i,
                         area_m2=round(float(part.area), 2))

    # 5. no overlaps, 6. no gaps: areas decide, coverage edges show where to fix
    tree = shapely.STRtree(new)
    a, b = tree.query(new, predicate="intersects")
    edges = shapely.coverage_invalid_edges(new, gap_width=GAP_WIDTH_M) if len(new) > 1 else [None] * len(new)
    for i, j in zip(a, b):
        if i >= j:
            continue
        ov = shapely.intersection(new[i], new[j])
        if ov.area > AREA_TOLERANCE_M2:
            near = [e for e in (edges[i], edges[j]) if e is not None and not e.is_empty]
            bad = shapely.intersection(shapely.union_all(near), ov.buffer(1.0)) if near else None
            rep.fail("overlap", f"grids {i} and {j} overlap by {ov.area:,.1f} m2", ov, features=[int(i), int(j)],
                     area_m2=round(float(ov.area), 2), edges=geojson_of_metric(bad))
    union = shapely.union_all(new)
    gap = shapely.difference(replaced, union)
    for part in _largest_first(gap):
        if part.area > AREA_TOLERANCE_M2:
            near = [e for e in edges if e is not None and not e.is_empty]
            bad = shapely.intersection(shapely.union_all(near), part.buffer(1.0)) if near else None
            rep.fail("gap", f"{part.area:,.1f} m2 of the replaced grids is covered by no new grid", part,
                     area_m2=round(float(part.area), 2), edges=geojson_of_metric(bad))
    return rep
