"""Cutting a polygon into contiguous pieces that tile it exactly.

Used by the demo generator (and later by rebalancing). Works in a metric CRS.
"""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Polygon

from .errors import InvalidInputError

SNAP_M = 0.001  # 1 mm: shared vertices are rounded identically on both sides


def sample_points(region, n: int, rng: np.random.Generator, density=None) -> np.ndarray:
    """``n`` random points inside ``region``; ``density(x, y)`` in [0, 1] thins them."""
    minx, miny, maxx, maxy = region.bounds
    shapely.prepare(region)
    prepared = region
    out = np.empty((0, 2))
    while len(out) < n:
        m = max(4 * (n - len(out)), 256)
        xy = np.column_stack([rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)])
        keep = shapely.contains_xy(prepared, xy[:, 0], xy[:, 1])
        if density is not None:
            keep &= rng.uniform(size=m) < density(xy[:, 0], xy[:, 1])
        out = np.vstack([out, xy[keep]])
    return out[:n]


def spread_seeds(region, k: int, rng: np.random.Generator, density=None, iterations: int = 12) -> np.ndarray:
    """``k`` well-spread seeds: k-means (Lloyd) over points sampled in ``region``."""
    pts = sample_points(region, max(200 * k, 2000), rng, density)
    seeds = pts[rng.choice(len(pts), k, replace=False)]
    for _ in range(iterations):
        d2 = ((pts[:, None, :] - seeds[None, :, :]) ** 2).sum(-1)
        lab = d2.argmin(1)
        for j in range(k):
            members = pts[lab == j]
            if len(members):
                seeds[j] = members.mean(0)
    return seeds


def voronoi_partition(region, seeds: np.ndarray) -> list:
    """Voronoi cells of ``seeds`` clipped to ``region``, in seed order, each contiguous."""
    if len(seeds) == 1:
        return [_snap(region)]
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=region)
    cells = list(shapely.get_parts(cells))
    pts = shapely.points(seeds)
    order = [next(i for i, c in enumerate(cells) if c.covers(p)) for p in pts]
    pieces = [shapely.intersection(cells[i], region) for i in order]
    pieces = [_snap(p) for p in pieces]
    return make_contiguous(pieces, seeds)


def make_contiguous(pieces: list, seeds: np.ndarray | None = None) -> list:
    """Give every stray fragment of a multi-part piece to its longest-bordering neighbour."""
    pieces = list(pieces)
    for _ in range(50):
        changed = False
        for i, geom in enumerate(pieces):
            parts = [p for p in shapely.get_parts(geom) if p.area > 0]
            if len(parts) <= 1:
                continue
            keep = _main_part(parts, None if seeds is None else seeds[i])
            pieces[i] = keep
            for frag in parts:
                if frag is keep:
                    continue
                j = _best_neighbour(frag, pieces, exclude=i)
                if j is None:  # isolated: nothing to merge with, keep it on this piece
                    pieces[i] = _snap(shapely.union(pieces[i], frag))
                else:
                    pieces[j] = _snap(shapely.union(pieces[j], frag))
            changed = True
        if not changed:
            break
    return [_single(p) for p in pieces]


def _main_part(parts, seed):
    if seed is not None:
        p = shapely.Point(seed)
        for part in parts:
            if part.covers(p):
                return part
    return max(parts, key=lambda g: g.area)


def _best_neighbour(frag, pieces, exclude):
    best, best_len = None, 0.0
    boundary = frag.boundary
    for j, other in enumerate(pieces):
        if j == exclude or not other.intersects(frag.buffer(SNAP_M * 10)):
            continue
        shared = shapely.intersection(boundary, other.boundary.buffer(SNAP_M * 10)).length
        if shared > best_len:
            best, best_len = j, shared
    return best


def _snap(geom):
    out = shapely.set_precision(geom, SNAP_M)
    return shapely.make_valid(out) if not out.is_valid else out


def _single(geom):
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area > 0]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def allocate(total: int, weights, minimum: int = 1) -> np.ndarray:
    """Split ``total`` into integer shares ~ ``weights`` (largest remainder), each >= minimum."""
    w = np.asarray(weights, dtype=float)
    base = np.full(len(w), minimum)
    rest = total - base.sum()
    if rest < 0:
        raise InvalidInputError(f"cannot give {len(w)} parts at least {minimum} each out of {total}")
    share = w / w.sum() * rest
    out = base + np.floor(share).astype(int)
    short = total - out.sum()
    out[np.argsort(-(share - np.floor(share)), kind="stable")[:short]] += 1
    return out


def node_coverage(pieces: list, grid_size: float = SNAP_M) -> list:
    """Rebuild pieces so that neighbours share their edges exactly.

    Pieces cut by separate overlays meet with T-junctions and sub-millimetre
    slivers. We snap-round all their boundaries together, polygonize the
    noded linework into faces, and give each face to the piece that holds
    it (slivers to the piece overlapping them most), so the result is a
    valid coverage by construction.
    """
    geoms = np.asarray(pieces, dtype=object)
    # close gaps far under the grid first: two nearly collinear edges a fraction of a
    # millimetre apart survive snap-rounding as one long sliver face along several
    # pieces, and whichever piece got it grew a zero-width spike
    geoms = shapely.coverage_clean(geoms, snapping_distance=grid_size * 5, gap_width=grid_size * 50)
    noded = shapely.union_all(shapely.boundary(geoms), grid_size=grid_size)
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    tree = shapely.STRtree(geoms)
    owner = np.full(len(faces), -1)
    fi, gi = tree.query(shapely.point_on_surface(faces), predicate="within")
    order = np.lexsort((gi, fi))
    first = np.concatenate([[True], fi[order][1:] != fi[order][:-1]]) if len(fi) else []
    owner[fi[order][first]] = gi[order][first]
    for f in np.flatnonzero(owner < 0):
        # a sliver face (two nearly collinear edges, far under a millimetre apart) overlaps
        # no piece by area; ranking by area alone took the first piece whose bounding box
        # it met, and that piece grew a zero-width spike hundreds of metres long
        cand = tree.query(faces[f])
        if len(cand):
            near = faces[f].boundary
            owner[f] = max(cand, key=lambda j: (shapely.intersection(faces[f], geoms[j]).area,
                                                shapely.intersection(near, geoms[j].buffer(grid_size * 10)).length))
    # a face cut off from the rest of its piece (a sliver) goes to the
    # neighbour it shares most edge with, so every piece stays in one part
    face_tree = shapely.STRtree(faces)
    for i in range(len(geoms)):
        merged = shapely.coverage_union_all(faces[owner == i])
        parts = list(shapely.get_parts(merged))
        if len(parts) <= 1:
            continue
        main = max(parts, key=lambda g: g.area)
        for f in np.flatnonzero(owner == i):
            if shapely.intersection(faces[f], main).area > 0:
                continue
            touching = [j for j in face_tree.query(faces[f], predicate="touches") if owner[j] != i]
            if touching:
                best = max(touching, key=lambda j: shapely.intersection(faces[f].boundary, faces[j].boundary).length)
                owner[f] = owner[best]
    return [_single(shapely.coverage_union_all(faces[owner == i])) if (owner == i).any() else geoms[i]
            for i in range(len(geoms))]
