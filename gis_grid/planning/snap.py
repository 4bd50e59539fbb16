"""Snapping a drawn plan onto the area it replaces, before validation.

A planner's tool rarely reproduces the stored vertices exactly: a split drawn in QGIS in
EPSG:4548 comes back with edges a few millimetres off the stored lon/lat ones, a shapely
split of served (rounded) coordinates leaves hair-thin gaps. Each such piece is a *sliver*:
thinner than :data:`SNAP_TOLERANCE_M` everywhere. Before validation the new grids are

1. snapped vertex-wise onto the replaced area's boundary and onto each other's edges
   (``shapely.snap``, then onto the nearest point of an edge), vertices closer than it merged,
2. clipped to the replaced area when what sticks out is only slivers,
3. freed of overlap slivers (the earlier grid in the plan keeps the strip), and
4. given every gap sliver, each to the new grid that shares the longest edge with it.

Anything thicker is left alone, so validation still reports real gaps, overlaps and
overhangs with their locations. Nothing thinner than the tolerance is ever stored.
"""
from __future__ import annotations

import shapely

from .. import crs as crs_mod

#: vertices this close (metres, EPSG:4548) to the replaced area's boundary or a shared edge are snapped onto it
SNAP_TOLERANCE_M = 0.05
#: the tolerance in degrees: 0.05 m over the metres per degree of latitude, the smaller of the two
#: axes, so it never reaches farther than 5 cm in any direction at Zaozhuang's latitude
SNAP_TOLERANCE_DEG = SNAP_TOLERANCE_M / 111_320.0


def _polygonal(g):
    parts = [p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon) and not p.is_empty]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _sound(g) -> bool:
    """Valid in lon/lat and once projected to EPSG:4548 (what validation demands): a step whose result
    is not sound is not taken, and validation then judges the drawing as it was."""
    if g is None or g.is_empty or not g.is_valid:
        return False
    return bool(crs_mod.transform_geoms(g, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GK117).is_valid)


def _slivers_only(g) -> bool:
    """True when every part of ``g`` is thinner than twice the tolerance (an inward buffer erases it)."""
    if g is None or g.is_empty:
        return True
    return shapely.buffer(g, -SNAP_TOLERANCE_DEG).is_empty


def _onto_edges(g, ref, tol):
    """Move every vertex of ``g`` within ``tol`` of ``ref`` (lines) onto its nearest point there:
    ``shapely.snap`` only snaps to vertices, and a vertex a hair off a straight edge leaves a spike."""
    xy = shapely.get_coordinates(g)
    pts = shapely.points(xy)
    near = shapely.distance(pts, ref) <= tol
    if not near.any():
        return g
    ends = shapely.get_coordinates(shapely.shortest_line(pts[near], ref))[1::2]
    xy[near] = ends
    return shapely.set_coordinates(g, xy)


def snap_plan(geoms: list, replaced) -> list:
    """The plan's polygons (storage CRS) snapped onto ``replaced`` and each other, slivers resolved."""
    tol = SNAP_TOLERANCE_DEG
    if replaced is None or replaced.is_empty or not geoms:
        return list(geoms)
    if not all(shapely.is_valid(g) for g in geoms):
        return list(geoms)  # validation reports invalid drawings as drawn
    ring = replaced.boundary
    out = []
    for drawn in geoms:
        ref = shapely.union_all([ring, *[d.boundary for d in out]])
        g = _onto_edges(shapely.snap(drawn, ref, tol), ref, tol)
        # snapping can leave two vertices centimetres apart: a segment that projection to
        # EPSG:4548 turns into a self-intersection, so such pairs are merged
        g = shapely.remove_repeated_points(g, tol)
        g = _polygonal(shapely.make_valid(g) if not g.is_valid else g)
        if not _sound(g):
            g = drawn
        outside = shapely.difference(g, replaced)
        if _slivers_only(outside):
            clipped = _polygonal(shapely.intersection(g, replaced))
            g = clipped if _sound(clipped) else g
        out.append(_polygonal(g))
    # overlap slivers: the earlier grid keeps the strip
    for i in range(1, len(out)):
        before = shapely.union_all(out[:i])
        lap = shapely.intersection(out[i], before)
        if not lap.is_empty and lap.area > 0 and _slivers_only(lap):
            trimmed = _polygonal(shapely.difference(out[i], before))
            out[i] = trimmed if _sound(trimmed) else out[i]
    # gap slivers: to the grid with the longest shared edge
    gaps = shapely.difference(replaced, shapely.union_all(out))
    for gap in shapely.get_parts(gaps):
        if gap.is_empty or not isinstance(gap, shapely.Polygon) or not _slivers_only(gap):
            continue
        near = shapely.buffer(gap, tol)
        shared = [shapely.intersection(near, g.boundary).length for g in out]
        k = max(range(len(out)), key=shared.__getitem__)
        if shared[k] > 0:
            grown = _polygonal(shapely.union(out[k], gap))
            out[k] = grown if _sound(grown) else out[k]
    return out
