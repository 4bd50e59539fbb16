"""Proposing balanced grids: a contiguous partition of whole buildings with PySAL spopt.

Units are the buildings of each community in scope. Each building gets the
Voronoi cell of its representative point inside the community, so the cells
tile the community exactly; two buildings are neighbours when their cells
share an edge. spopt's max-p regionalisation (``MaxPHeuristic``) then groups
the units into as many contiguous regions as possible with at least a floor of
households each (:data:`FLOOR_SHARE` of the range's midpoint, at least
``min_households``), using the cell centroids as the dissimilarity (compact
regions). Communities with more than :data:`MAX_UNITS` buildings are first
grouped into connected blocks of neighbouring buildings. Regions above ``max_households`` are split again with
max-p on their own units (and reported if they still exceed it).

A region's grid is the union of its cells plus its buildings' footprints,
minus the footprints of other regions' buildings: no building is cut, so the
proposal passes ``gis-grid check`` once applied. Regions never cross community
boundaries. The result is an ordinary plan (GeoJSON), validated and stored like
any other.

Work is bounded: each max-p solve runs in a worker process (:mod:`.solver`) under the
proposal's time budget. A solve that overruns its share (spopt 0.7 can loop for ever) is
killed and tried again with the next seed; a second split of an oversized region that
overruns is given up (the region stays whole and is reported above the maximum). Past the
whole budget the proposal stops with :class:`~gis_grid.errors.BudgetExceededError`,
naming what was tried.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import shapely

from ..atlas import Atlas
from ..errors import BudgetExceededError, InvalidInputError
from ..partition import make_contiguous
from .impact import balance
from .plan import resolve_scope

#: two cells are neighbours when they share more than this much edge (degrees, ~1 cm)
EDGE_DEG = 1e-7
#: above this many buildings in a community, max-p runs on connected blocks of buildings
MAX_UNITS = 200
#: max-p's floor is this share of the range's midpoint (at least the minimum): max-p makes as
#: many regions as the floor allows, so a floor at the minimum packs grids at the bottom of the
#: range; near the middle they come out closer to the target with fewer grid teams
FLOOR_SHARE = 0.75
#: seconds a proposal may run (``GIS_GRID_PROPOSE_BUDGET_S`` in the service)
DEFAULT_BUDGET_S = 120.0
#: one max-p solve may take at most this share of the budget before it is retried with the
#: next seed (a normal solve on <= MAX_UNITS units takes a few seconds)
ATTEMPT_SHARE = 0.25
#: the optional second split of an oversized region gets one try of this share of the budget
SPLIT_SHARE = 0.1


def _cells(community, points) -> list:
    """Voronoi cells of ``points`` clipped to ``community``, in point order, each one piece."""
    if len(points) == 1:
        return [community]
    vor = list(shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=community)))
    tree = shapely.STRtree(vor)
    pi, ci = tree.query(shapely.points(points), predicate="within")
    owner = dict(zip(pi, ci))
    cells = [shapely.intersection(vor[owner[i]], community) for i in range(len(points))]
    return make_contiguous(cells, np.asarray(points))


def _neighbours(cells) -> dict[int, list[int]]:
    tree = shapely.STRtree(cells)
    a, b = tree.query(cells, predicate="intersects")
    nb: dict[int, list[int]] = {i: [] for i in range(len(cells))}
    for i, j in zip(a, b):
        if i < j and shapely.intersection(cells[i].boundary, cells[j].boundary).length > EDGE_DEG:
            nb[int(i)].append(int(j))
            nb[int(j)].append(int(i))
    return nb


class _Solver:
    """Max-p solves of one proposal in a killable worker, within its deadline."""

    def __init__(self, worker, budget_s: float):
        self.worker = worker
        self.budget_s = budget_s
        self.deadline = time.monotonic() + budget_s
        self.attempts: list[dict] = []
        self.community: str | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            self.stop(f"the proposal ran past its budget of {self.budget_s:g} s and was stopped; "
                      "try a smaller scope (one community), a wider household range, or another seed")

    def stop(self, why: str):
        raise BudgetExceededError(
            why,
            detail={"budget_s": self.budget_s, "community": self.community, "attempts": self.attempts})

    def __call__(self, cells, households, neighbours, min_h: float, seed: int, *,
                 optional: bool = False) -> np.ndarray | None:
        """Labels; ``optional``: one short try, None if it is stopped."""
        from .solver import SolveStopped

        for s in range(seed, seed + 1000):
            self.check()
            if self.worker.stopped:
                self.stop("the service is shutting down; the proposal was stopped")
            started = time.monotonic()
            share = SPLIT_SHARE if optional else ATTEMPT_SHARE
            until = min(self.deadline, started + max(share * self.budget_s, 1.0))
            try:
                labels = self.worker.solve(until, cells, households, neighbours, min_h, s)
            except SolveStopped as exc:
                self.attempts.append({"community": self.community, "units": len(cells), "seed": s,
                                      "seconds": round(time.monotonic() - started, 1),
                                      "result": f"stopped: {exc}" + ("; region kept whole" if optional else "")})
                if optional and not self.worker.stopped:
                    return None
                continue
            self.attempts.append({"community": self.community, "units": len(cells), "seed": s,
                                  "seconds": round(time.monotonic() - started, 1), "result": "ok"})
            return labels
        self.stop(f"no seed from {seed} to {seed + 999} gave a solution; try another household range")


def _blocks(cells, households, nb: dict[int, list[int]], max_units: int, max_block_h: float) -> np.ndarray:
    """Group neighbouring cells into at most ~``max_units`` connected blocks (breadth-first growth
    from seeds in reading order), each under ``max_block_h`` households; block id per cell."""
    n = len(cells)
    size = int(np.ceil(n / max_units))
    c = shapely.centroid(np.asarray(cells, dtype=object))
    order = np.lexsort((shapely.get_x(c), -shapely.get_y(c)))
    block = np.full(n, -1)
    k = 0
    for seed in order:
        if block[seed] >= 0:
            continue
        block[seed] = k
        queue, members, hh = [seed], 1, households[seed]
        while queue and members < size:
            i = queue.pop(0)
            for j in sorted(nb[i], key=lambda j: (c[j].distance(c[seed]))):
                if block[j] < 0 and members < size and hh + households[j] <= max_block_h:
                    block[j] = k
                    members += 1
                    hh += households[j]
                    queue.append(j)
        k += 1
    return block


def _regions(cells, households, min_h: int, max_h: int, seed: int, solve) -> np.ndarray:
    """Labels (0..k-1) of a contiguous partition with each region >= min_h where possible."""
    n = len(cells)
    total = int(households.sum())
    if total < 2 * min_h or n < 2:
        return np.zeros(n, dtype=int)
    nb = _neighbours(cells)
    if n > MAX_UNITS:
        # max-p slows down sharply with the number of units: work on connected blocks of
        # neighbouring buildings instead (each block is one piece, so regions stay contiguous)
        block = _blocks(cells, households, nb, MAX_UNITS, max(min_h / 2, 1))
        nblocks = int(block.max() + 1)
        bcells = [shapely.union_all(np.asarray(cells, dtype=object)[block == b]) for b in range(nblocks)]
        bh = np.bincount(block, weights=households, minlength=nblocks)
        bnb: dict[int, set] = {b: set() for b in range(nblocks)}
        for i, js in nb.items():
            for j in js:
                if block[i] != block[j]:
                    bnb[int(block[i])].add(int(block[j]))
        blabels = _regions_of_units(bcells, bh, {b: sorted(v) for b, v in bnb.items()}, min_h, max_h, seed, solve)
        return blabels[block]
    return _regions_of_units(cells, households, nb, min_h, max_h, seed, solve)


def _regions_of_units(cells, households, nb, min_h: int, max_h: int, seed: int, solve) -> np.ndarray:
    n = len(cells)
    labels = solve(cells, households, nb, min_h, seed)
    # max-p leaves units it could not place as 0 (islands); give them to a neighbouring region
    for _ in range(n):
        loose = np.flatnonzero(labels <= 0)
        if not len(loose):
            break
        for i in loose:
            near = [labels[j] for j in nb[i] if labels[j] > 0]
            if near:
                labels[i] = max(set(near), key=near.count)
        if (labels <= 0).all():
            labels[:] = 1
    labels = pd.factorize(labels)[0]
    # split regions above the maximum once more, on their own units
    out = labels.copy()
    nxt = labels.max() + 1
    for r in range(labels.max() + 1):
        idx = np.flatnonzero(labels == r)
        if households[idx].sum() <= max_h or len(idx) < 2:
            continue
        sub = [cells[i] for i in idx]
        sub_nb = _neighbours(sub)
        if any(not v for v in sub_nb.values()):
            continue
        sl = solve(sub, households[idx], sub_nb, min_h, seed, optional=True)
        if sl is not None and (sl > 0).all() and len(set(sl)) > 1:
            for k, lab in enumerate(pd.factorize(sl)[0]):
                if lab > 0:
                    out[idx[k]] = nxt + lab - 1
            nxt += len(set(sl)) - 1
    return pd.factorize(out)[0]


def _fit(regions: list, community) -> list:
    """Clip regions to the community and give every uncovered sliver (Voronoi edges meet the
    community boundary with extra vertices) to the region sharing most of its boundary."""
    regions = [shapely.intersection(g, community) for g in regions]
    gap = shapely.difference(community, shapely.union_all(regions))
    for part in shapely.get_parts(gap):
        if part.is_empty or part.area == 0:
            continue
        grown = shapely.buffer(part, 1e-9)
        k = max(range(len(regions)), key=lambda i: shapely.intersection(grown, regions[i]).area)
        regions[k] = shapely.union(regions[k], part)
    return regions


def propose(atlas: Atlas, scope_code: str, min_households: int, max_households: int, *, seed: int = 0,
            budget_s: float = DEFAULT_BUDGET_S) -> tuple[dict, dict]:
    """A balanced, contiguous redraw of the base grids of ``scope_code`` (community or street).

    Returns ``(FeatureCollection, report)``; pass the collection to ``create_plan``. Stops with
    :class:`BudgetExceededError` after ``budget_s`` seconds, its worker process killed.
    """
    if not (0 < min_households <= max_households):
        raise InvalidInputError("need 0 < min_households <= max_households")
    if not budget_s > 0:
        raise InvalidInputError("the time budget must be positive")
    from .solver import MaxPWorker

    with MaxPWorker() as worker:
        return _propose(atlas, scope_code, min_households, max_households, seed, _Solver(worker, budget_s))


def _propose(atlas: Atlas, scope_code: str, min_households: int, max_households: int, seed: int,
             solve: _Solver) -> tuple[dict, dict]:
    scope = resolve_scope(atlas, scope_code)
    floor = max(float(min_households), min(float(max_households), FLOOR_SHARE * (min_households + max_households) / 2))
    feats, summary = [], []
    b_geoms = atlas.buildings["geometry"].to_numpy()
    hh_per_b = np.diff(atlas._hh_by_building)
    for comm in scope.communities:
        solve.check()
        solve.community = comm
        community = atlas.division(comm)["geometry"]
        lo, hi = atlas.grid_positions(comm)
        rows = np.flatnonzero((atlas.building_grid >= lo) & (atlas.building_grid < hi))
        if len(rows) < 2:  # nothing to balance: keep the grids as they are
            for c in atlas.grid_codes[lo:hi]:
                feats.append((atlas.division(str(c))["geometry"], comm))
            continue
        pts = shapely.get_coordinates(shapely.point_on_surface(b_geoms[rows]))
        cells = _cells(community, pts)
        households = hh_per_b[rows].astype(float)
        labels = _regions(cells, households, floor, max_households, seed, solve)
        foot = b_geoms[rows]
        regions = []
        for r in range(labels.max() + 1):
            mine = labels == r
            g = shapely.union_all(list(np.asarray(cells, dtype=object)[mine]) + list(foot[mine]))
            others = foot[~mine]
            near = others[shapely.intersects(others, g)] if len(others) else others
            if len(near):
                g = shapely.difference(g, shapely.union_all(near))
            regions.append(g)
        feats.extend((g, comm) for g in _fit(regions, community))
        summary.append({"community": comm, "buildings": int(len(rows)), "households": int(households.sum()),
                        "grids_before": int(hi - lo), "grids_after": int(labels.max() + 1)})
    geoms = make_contiguous([f[0] for f in feats])
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"community": comm},
         "geometry": json.loads(shapely.to_geojson(g))} for g, (_, comm) in zip(geoms, feats)]}
    return collection, {"method": "spopt.region.MaxPHeuristic", "min_households": min_households,
                        "max_households": max_households, "maxp_threshold": floor, "communities": summary,
                        "budget_s": solve.budget_s, "attempts": solve.attempts}


def balance_range(households, min_households: int, max_households: int) -> dict:
    """Balance against a range: how many grids fall inside [min, max], and the spread."""
    h = np.asarray(households, dtype=float)
    target = (min_households + max_households) / 2
    out = balance(h, target, band=(max_households - min_households) / 2 / target)
    out.update({"in_range": int(((h >= min_households) & (h <= max_households)).sum()),
                "below": int((h < min_households).sum()), "above": int((h > max_households).sum())})
    return out
