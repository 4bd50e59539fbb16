"""Snapping a drawn plan onto the area it replaces, before validation.

A planner's tool rarely reproduces the stored vertices exactly: a split drawn in QGIS in
EPSG:4548 comes back with edges a few millimetres off the stored lon/lat ones, a shapely
split of served (rounded) coordinates leaves hair-thin gaps. Each such piece is a *sliver*:
thinner than :data:`SNAP_TOLERANCE_M` everywhere. Before validation the new grids are

1. snapped vertex-wise onto the replaced area's boundary and onto each other's edges
   (``shapely.snap``, then onto the nearest point of an edge), vertices closer than it merged,
2. clipped to the replaced area when what sticks out is only slivers,
3. freed of overlap slivers (the earlier grid in the plan keeps the strip), and
4. freed of stray sliver parts (a hair beside a grid, left by an overlay: it becomes a gap), and
5. given every gap sliver, each to the new grid sharing the longest edge with it that stays one
   sound piece with it (else to the next; a sliver that fits no grid stays a gap, which
   validation measures like any other).

A drawing invalid only within the tolerance (a served edge rounded to 7 decimals touching
itself) is first made valid. Anything thicker is left alone, so validation still reports real gaps, overlaps and
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
#: stored coordinates have 9 decimals (0.1 mm)
_STORED_PRECISION_DEG = 1e-9


def _polygonal(g):
    parts = _parts(g)
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


def _repaired(g):
    """An invalid drawing whose fault is thinner than the tolerance (a zero-width spike that
    rounding to 7 decimals folds onto itself) made valid: one piece, its area changed by no more
    than a tolerance-wide strip along its outline. Anything else is returned as drawn, for
    validation to report."""
    fixed = [p for p in _parts(shapely.make_valid(g, method="structure")) if not _slivers_only(p)]
    # what the repair drops (a collapsed spike, a loop) holds no more than a tolerance-wide strip
    if len(fixed) != 1 or abs(fixed[0].area - g.area) > SNAP_TOLERANCE_DEG * g.length:
        return g
    return fixed[0]


def snap_plan(geoms: list, replaced) -> list:
    """The plan's polygons (storage CRS) snapped onto ``replaced`` and each other, slivers resolved."""
    tol = SNAP_TOLERANCE_DEG
    if replaced is None or replaced.is_empty or not geoms:
        return list(geoms)
    geoms = [g if g.is_valid else _repaired(g) for g in geoms]
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
            if _sound(trimmed) and _count(trimmed) <= _count(out[i]):
                out[i] = trimmed
    # stray sliver parts (an overlay can leave a hair of a grid beside it) go back to the gaps
    for i, g in enumerate(out):
        parts = sorted(_parts(g), key=lambda p: -p.area)
        if len(parts) > 1 and all(_slivers_only(p) for p in parts[1:]):
            out[i] = parts[0]
    # gap slivers: to the grid with the longest shared edge that stays one sound piece with it
    gaps = shapely.difference(replaced, shapely.union_all(out))
    for gap in _parts(gaps):
        if not _slivers_only(gap) or _below_precision(gap):
            continue
        near = shapely.buffer(gap, tol)
        shared = [shapely.intersection(near, g.boundary).length for g in out]
        for k in sorted(range(len(out)), key=lambda k: -shared[k]):
            if shared[k] <= 0:
                break
            grown = _polygonal(shapely.union(out[k], gap))
            if _sound(grown) and _count(grown) <= _count(out[k]):
                out[k] = grown
                break
    return out


def _below_precision(g) -> bool:
    """Narrower on average than the stored coordinates' precision (9 decimals): the float residue
    of an overlay at a T-junction, no land. Handing such a wedge to a grid along one of its sides
    would only give that grid a zero-width spike."""
    return 2 * g.area < _STORED_PRECISION_DEG * g.length


def _parts(g) -> list:
    return [p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon) and not p.is_empty]


def _count(g) -> int:
    return len(_parts(g))
