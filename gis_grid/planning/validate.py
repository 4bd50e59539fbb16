"""Validation of a plan, measured in the metric CRS (EPSG:4548).

The new grids must be valid polygons (in lon/lat and once projected to
EPSG:4548), each in one piece, inside their parent community, inside the area
they replace, and together cover that area exactly: no overlap and no gap piece
larger than :data:`AREA_TOLERANCE_M2`. Every failure carries its location as
GeoJSON (lon/lat): the offending point, part, strip of overlap or gap, and for
overlaps and gaps the edges that shapely's coverage validation
(:func:`shapely.coverage_invalid_edges`) flags around it.

Why the overlays run on the stored lon/lat vertices and only the *measuring* is
metric: a straight lon/lat edge is a slight curve in EPSG:4548. Where one side of
a shared edge has a vertex the other lacks (a T-junction), projecting first
opens phantom slivers of several m2 per km of edge, or breaks near-degenerate
rings. Overlaying the exact stored coordinates and projecting the resulting
pieces to measure their area (as ``gis-grid check`` does) has neither problem,
and tests exactly what will be stored.
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

#: gaps and overlaps up to this area (each piece) are rounding, not planning errors;
#: the same tolerance `gis-grid check` applies, so a plan that validates passes the check
AREA_TOLERANCE_M2 = _CHECK_TOLERANCE_M2
#: neighbours' edges closer than this but not shared are reported as coverage edges (degrees, ~0.5 m)
GAP_WIDTH_DEG = 5e-6
#: edges are densified to ~5 m before projecting for areas and perimeters
DENSIFY_DEG = 5e-5

_METRIC, _STORAGE = crs_mod.InputCRS.GK117, crs_mod.InputCRS.CGCS2000
_POINT_IN_REASON = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)")


def to_metric(geoms):
    """Storage -> EPSG:4548 with densified edges (for areas, perimeters, compactness).

    A geometry that densifying would break (GEOS repairs a near-degenerate ring into
    another type) is projected vertex by vertex instead.
    """
    plain = crs_mod.transform_geoms(geoms, _STORAGE, _METRIC)
    dense = crs_mod.transform_geoms(shapely.segmentize(geoms, DENSIFY_DEG), _STORAGE, _METRIC)
    broken = (shapely.get_type_id(dense) != shapely.get_type_id(geoms)) | \
        (shapely.is_valid(geoms) & ~shapely.is_valid(dense))
    if np.ndim(broken) == 0:
        return plain if broken else dense
    return np.where(broken, plain, dense)


def to_storage(geoms):
    return crs_mod.transform_geoms(geoms, _METRIC, _STORAGE)


def area_m2(geom) -> float:
    """Area in EPSG:4548 of a storage-CRS overlay piece (:func:`gis_grid.crs.overlay_area_m2`: a
    T-junction sliver of no lon/lat area is no phantom gap)."""
    return crs_mod.overlay_area_m2(geom)


def _geojson(geom) -> dict | None:
    if geom is None or geom.is_empty:
        return None
    return json.loads(shapely.to_geojson(geom))


@dataclass
class ValidationReport:
    ok: bool = True
    failures: list[dict] = field(default_factory=list)
    parents: list[str | None] = field(default_factory=list)   # parent community per new grid

    def fail(self, rule: str, message: str, location=None, **extra) -> None:
        """Record a failure; ``location`` is a storage-CRS (lon/lat) geometry."""
        self.ok = False
        self.failures.append({"rule": rule, "message": message, "location": _geojson(location), **extra})

    def to_dict(self) -> dict:
        return {"ok": self.ok, "crs": "EPSG:4548", "tolerance_m2": AREA_TOLERANCE_M2,
                "failures": self.failures, "parents": self.parents}


def _pieces(geom) -> list[tuple[float, object]]:
    """Polygonal parts of ``geom`` with their metric areas, largest first."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and not p.is_empty]
    return sorted(((area_m2(p), p) for p in parts), key=lambda t: -t[0])


def _big(geom) -> list[tuple[float, object]]:
    return [(a, p) for a, p in _pieces(geom) if a > AREA_TOLERANCE_M2]


def _where(reason: str, geom, project_back: bool):
    m = _POINT_IN_REASON.search(reason)
    if not m:
        return geom
    pt = shapely.Point(float(m.group(1)), float(m.group(2)))
    return to_storage(pt) if project_back else pt


def validate_plan(atlas: Atlas, plan: Plan) -> ValidationReport:
    """Check a plan against the atlas it replaces grids of; never raises for bad geometry."""
    rep = ValidationReport()
    new = list(plan.geometries)
    rows = [atlas.by_code[c] for c in plan.scope.replaces]
    replaced = shapely.union_all(atlas.divisions["geometry"].to_numpy()[rows])
    comm = {c: atlas.division(c)["geometry"] for c in plan.scope.communities}

    # 1. valid geometries, as drawn and in EPSG:4548 (the rest needs valid input)
    for i, g in enumerate(new):
        if not g.is_valid:
            reason = shapely.is_valid_reason(g)
            rep.fail("valid", f"grid {i} is not a valid polygon: {reason}", _where(reason, g, False), feature=i)
            continue
        gm = crs_mod.transform_geoms(g, _STORAGE, _METRIC)
        if not gm.is_valid:  # a near-zero-width spike or sliver that projection turns invalid
            reason = shapely.is_valid_reason(gm)
            rep.fail("valid", f"grid {i} is not valid in EPSG:4548 (a near-zero-width spike or sliver): {reason}",
                     _where(reason, g, True), feature=i)
    if not rep.ok:
        rep.parents = [None] * len(new)
        return rep

    # 2. each grid in one piece
    for i, g in enumerate(new):
        parts = _pieces(g)
        if len(parts) > 1:
            stray = shapely.union_all([p for _, p in parts[1:]])
            rep.fail("contiguous", f"grid {i} has {len(parts)} separate parts; every base grid must be "
                     "one piece: merge the stray parts into a neighbour", stray, feature=i,
                     area_m2=round(sum(a for a, _ in parts[1:]), 2))

    # 3. within the parent community (named, or the one holding most of the grid)
    for i, g in enumerate(new):
        named = plan.properties[i].get("community") if i < len(plan.properties) else None
        if named is not None and str(named) not in comm:
            rep.parents.append(None)
            rep.fail("within_parent", f"grid {i} names community {named}, which is not in the plan's scope "
                     f"{list(comm)}", g, feature=i)
            continue
        parent = str(named) if named is not None else \
            max(comm, key=lambda c: shapely.intersection(g, comm[c]).area)
        rep.parents.append(parent)
        for a, part in _big(shapely.difference(g, comm[parent])):
            rep.fail("within_parent", f"grid {i} extends {a:,.1f} m2 beyond its parent community {parent}",
                     part, feature=i, area_m2=round(a, 2))

    # 4. nothing outside the replaced grids (that land belongs to grids the plan does not touch)
    for i, g in enumerate(new):
        for a, part in _big(shapely.difference(g, replaced)):
            rep.fail("within_scope", f"grid {i} covers {a:,.1f} m2 outside the grids the plan replaces "
                     f"({', '.join(plan.scope.replaces)})", part, feature=i, area_m2=round(a, 2))

    # 5. no overlaps, 6. no gaps: areas decide, coverage edges show where to fix
    geoms = np.asarray(new, dtype=object)
    tree = shapely.STRtree(geoms)
    a_idx, b_idx = tree.query(geoms, predicate="intersects")
    edges = None

    def near_edges(area):
        nonlocal edges
        if edges is None:
            edges = shapely.coverage_invalid_edges(geoms, gap_width=GAP_WIDTH_DEG) if len(geoms) > 1 \
                else np.array([None])
        lines = [e for e in edges if e is not None and not e.is_empty]
        if not lines:
            return None
        hit = shapely.intersection(shapely.union_all(lines), shapely.buffer(area, 1e-5))
        return _geojson(hit)

    for i, j in zip(a_idx, b_idx):
        if i >= j:
            continue
        for a, part in _big(shapely.intersection(geoms[i], geoms[j])):
            rep.fail("overlap", f"grids {i} and {j} overlap by {a:,.1f} m2", part, features=[int(i), int(j)],
                     area_m2=round(a, 2), edges=near_edges(part))
    for a, part in _big(shapely.difference(replaced, shapely.union_all(geoms))):
        rep.fail("gap", f"{a:,.1f} m2 of the replaced grids is covered by no new grid", part,
                 area_m2=round(a, 2), edges=near_edges(part))
    return rep
