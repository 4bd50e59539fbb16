"""Workers follow a redraw: which grid each worker of the replaced grids serves afterwards.

The rule (documented in ``planning/README.md``):

1. A worker the plan names (a new grid's ``workers`` property: a list of worker ids)
   serves that grid. Only workers of the replaced grids can be named, each once.
2. Every other worker of a grid that keeps its code (redrawn or unchanged) stays.
3. A worker of a retired grid follows its households: to the new grid that received
   most of that grid's households (most of its land when it had none).
4. Then, balanced by count: while a new grid holding households has no worker, it takes
   one from the grid with the most workers (at least two; ties: more households per worker
   given up last, then the lower code) - the worker, not named by the plan, whose old grid
   sent most households to it (then the lowest id).

A grid is left without a worker only when the replaced grids had fewer (movable)
workers than new grids with households; :func:`assign_workers` lists those, the
impact reports them, and ``propose`` never draws more such grids than there are workers.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import shapely

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Staffing:
    grid_of: dict             # worker id -> new grid code (every worker of the replaced grids)
    moves: dict               # worker id -> new code, only those whose grid changes
    unstaffed: list           # new grids holding households and left without a worker
    workers_per_grid: dict    # new code -> number of workers


def named_workers(properties, codes) -> dict:
    """``{worker id: code}`` from the plan's ``workers`` feature properties (InvalidInputError if malformed)."""
    out: dict = {}
    for i, props in enumerate(properties):
        ids = (props or {}).get("workers")
        if ids is None:
            continue
        if isinstance(ids, str) or not isinstance(ids, (list, tuple)):
            raise InvalidInputError(f"grid {i}: 'workers' must be a list of worker ids, got {ids!r}")
        for w in ids:
            w = str(w)
            if w in out:
                raise InvalidInputError(f"worker {w!r} is named for two grids of the plan")
            out[w] = codes[i]
    return out


def assign_workers(workers: pd.DataFrame, flows: pd.DataFrame, codes: list, households: dict,
                   kept: set, land_home: dict, named: dict | None = None) -> Staffing:
    """Apply the rule above.

    ``workers``: ``id, grid_code`` of the replaced grids' workers; ``flows``: ``old, new, households``
    per pair of grids (staying households included); ``households``: new code -> households;
    ``kept``: old codes that continue; ``land_home``: retired code -> new code with most of its land.
    """
    named = dict(named or {})
    ids = [str(w) for w in workers["id"]]
    unknown = sorted(set(named) - set(ids))
    if unknown:
        raise InvalidInputError(f"the plan names workers who do not serve the replaced grids: {', '.join(unknown)}",
                                detail={"workers": unknown})
    old_of = dict(zip(ids, workers["grid_code"].astype(str)))
    sent = {(str(o), str(n)): int(h) for o, n, h in zip(flows["old"], flows["new"], flows["households"])}
    grid_of: dict = {}
    for w in sorted(ids):
        o = old_of[w]
        if w in named:
            grid_of[w] = named[w]
        elif o in kept:
            grid_of[w] = o
        else:
            out = {n: h for (oo, n), h in sent.items() if oo == o and h > 0}
            grid_of[w] = min(out, key=lambda n: (-out[n], n)) if out else land_home[o]
    count = {c: 0 for c in codes}
    for g in grid_of.values():
        count[g] = count.get(g, 0) + 1
    needy = sorted((c for c in codes if households.get(c, 0) > 0 and count[c] == 0),
                   key=lambda c: (-households.get(c, 0), c))
    unstaffed = []
    for g in needy:
        donors = [d for d in codes if count[d] >= 2 and any(grid_of[w] == d and w not in named for w in ids)]
        if not donors:
            unstaffed.append(g)
            continue
        d = min(donors, key=lambda d: (-count[d], households.get(d, 0) / count[d], d))
        w = min((w for w in ids if grid_of[w] == d and w not in named),
                key=lambda w: (-sent.get((old_of[w], g), 0), w))
        grid_of[w] = g
        count[d] -= 1
        count[g] += 1
    moves = {w: g for w, g in grid_of.items() if g != old_of[w]}
    return Staffing(grid_of, moves, unstaffed, {c: count[c] for c in codes})


def land_homes(old: dict, new_geoms, new_codes) -> dict:
    """``{old code: the new code holding most of its land}`` for ``old`` (code -> geometry): where the
    workers of a retired grid without households go (rule 3)."""
    geoms = list(new_geoms)
    tree = shapely.STRtree(geoms)
    out = {}
    for code, g in old.items():
        hits = tree.query(g, predicate="intersects")
        if len(hits):
            areas = shapely.area(shapely.intersection(g, [geoms[k] for k in hits]))
            out[code] = str(new_codes[hits[int(areas.argmax())]])
    return out


def follow(workers: pd.DataFrame, replaced, flows: pd.DataFrame, codes: list, kept: set, land_home: dict,
           named: dict | None = None) -> Staffing:
    """The rule for the workers of the ``replaced`` grids (a plan's, or those an import redraws or
    retires); ``workers`` may hold others, they are left alone. ``flows``: ``old, new, households``."""
    mine = workers[workers["grid_code"].isin(set(replaced))] if len(workers) else \
        pd.DataFrame({"id": [], "grid_code": []})
    households = flows.groupby("new")["households"].sum().to_dict()
    return assign_workers(mine, flows, codes, households, kept, land_home, named)
