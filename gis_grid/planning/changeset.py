"""Codes for the new grids and the rows an apply writes.

Numbering rule (documented in the README):

* A new grid that holds more than half of one old grid's area, and that old grid
  more than half of it, is that grid's *successor*: it keeps the code and gets the
  next version (a moved boundary). If it equals the old grid within the tolerance,
  nothing is written for it.
* Every other new grid gets a fresh code: the community code plus the next
  3-digit sequence after the highest ever used in that community (current,
  historical or retired), assigned in reading order (rows north to south,
  west to east within a row, as the demo numbers grids).
* Old grids without a successor are retired; their codes are never reused.

Buildings go to the new grid holding their representative point
(``shapely.point_on_surface`` of the footprint, the rule the atlas uses); a point
on an edge shared by several grids goes to the lowest code. So a building cut
by a new line belongs to exactly one grid: the one holding that point.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import shapely

from ..atlas import Atlas
from ..demo.grids import reading_order
from ..errors import InvalidInputError
from .plan import Plan
from .rehome import CaseRehoming
from .staffing import Staffing, follow, land_homes, named_workers
from .validate import AREA_TOLERANCE_M2, area_m2, to_metric

SUCCESSOR_SHARE = 0.5
_SUFFIXES = ("居民委员会", "村民委员会", "居委会", "村委会")


@dataclass
class Numbering:
    codes: list[str]                  # code per new grid
    names: list[str]
    versions: list[int]               # version per new grid (1 for fresh codes)
    status: list[str]                 # 'unchanged' | 'successor' | 'new'
    retired: list[str]                # old codes with no successor
    successor_of: list[str | None]    # the old code each new grid continues, or None
    kinds: list[str | None]


def _short(name: str) -> str:
    for s in _SUFFIXES:
        name = name.removesuffix(s)
    return name


_NUMBERED = re.compile(r"第\d+网格$")


def _numbered_name(name: str | None, code: str) -> str | None:
    """A drawn name for a grid given ``code``: one that names a grid number ("...第3网格", as a copied
    or as-of feature would) is renamed for the new number; any other name is kept as drawn."""
    if not name:
        return None
    return _NUMBERED.sub(f"第{int(code[12:])}网格", str(name))


def number_grids(atlas: Atlas, plan: Plan, parents: list[str], used_codes) -> Numbering:
    """Codes for the plan's grids. ``used_codes``: every grid code ever used under the scope."""
    new_m = list(to_metric(np.asarray(plan.geometries, dtype=object)))  # for reading order
    new_s = list(plan.geometries)
    old_codes = list(plan.scope.replaces)
    old_s = [atlas.division(c)["geometry"] for c in old_codes]
    hist = atlas.divisions.set_index("code")
    n = len(new_m)
    codes: list[str | None] = [None] * n
    status = ["new"] * n
    versions = [1] * n
    successor_of: list[str | None] = [None] * n
    # shares are compared on the stored lon/lat vertices (exact overlays; the ratios
    # of such small areas are the same in any CRS to far below the 50 % threshold)
    for i, g in enumerate(new_s):
        best, best_area = None, 0.0
        for j, o in enumerate(old_s):
            if old_codes[j][:12] != parents[i] or not g.intersects(o):
                continue
            a = shapely.intersection(g, o).area
            if a > best_area:
                best, best_area = j, a
        if best is None:
            continue
        o = old_s[best]
        if best_area > SUCCESSOR_SHARE * o.area and best_area > SUCCESSOR_SHARE * g.area:
            code = old_codes[best]
            codes[i], successor_of[i] = code, code
            same = area_m2(shapely.symmetric_difference(g, o)) <= AREA_TOLERANCE_M2
            status[i] = "unchanged" if same else "successor"
            versions[i] = int(hist.loc[code, "version"]) + (0 if same else 1)
    # fresh codes in reading order per community, after the highest sequence ever used
    for comm in sorted(set(parents)):
        fresh = [i for i in range(n) if parents[i] == comm and codes[i] is None]
        if not fresh:
            continue
        seqs = [int(c[12:]) for c in used_codes if str(c).startswith(comm) and len(str(c)) == 15]
        nxt = max(seqs, default=0) + 1
        order = reading_order([new_m[i] for i in fresh])
        ids = {id(new_m[i]): i for i in fresh}
        for k, piece in enumerate(order):
            seq = nxt + k
            if seq > 999:
                raise InvalidInputError(f"community {comm} has used all 999 grid sequence numbers")
            codes[ids[id(piece)]] = f"{comm}{seq:03d}"
    names, kinds = [], []
    for i in range(n):
        if successor_of[i]:
            names.append(str(hist.loc[codes[i], "name"]))
        else:
            props = plan.properties[i] if i < len(plan.properties) else {}
            names.append(_numbered_name(props.get("name"), codes[i])
                         or f"{_short(str(hist.loc[parents[i], 'name']))}第{int(codes[i][12:])}网格")
        k = hist.loc[parents[i], "kind"]
        kinds.append(None if k is None or (isinstance(k, float) and np.isnan(k)) else str(k))
    kept = {s for s in successor_of if s}
    retired = [c for c in old_codes if c not in kept]
    return Numbering(codes, names, versions, status, retired, successor_of, kinds)


def assign_buildings(atlas: Atlas, plan: Plan, codes: list[str]) -> pd.DataFrame:
    """Buildings whose grid changes: ``id, old, new`` (the representative-point rule, lowest code on ties)."""
    if atlas._building_points is None:
        return pd.DataFrame({"id": [], "old": [], "new": []})
    placer = PointPlacer.of(atlas, plan, codes)
    # buildings whose point lies in (or on the edge of) the replaced area
    cand = np.sort(atlas._building_points.query(placer.replaced, predicate="intersects"))
    pts = shapely.point_on_surface(atlas.buildings["geometry"].to_numpy()[cand])
    best = placer.place(pts)
    old = np.where(atlas.building_grid[cand] >= 0, atlas.grid_codes[np.maximum(atlas.building_grid[cand], 0)], None)
    df = pd.DataFrame({"row": cand, "id": atlas.building_ids[cand], "old": old, "new": best})
    return df[df["old"] != df["new"]].reset_index(drop=True)


@dataclass(frozen=True)
class PointPlacer:
    """The grid of a point once a plan is applied: the new grids plus the untouched neighbours
    along the replaced area's edge (which win ties with lower codes); lowest code on shared edges,
    the tie rule of :meth:`Atlas.locate_one`. ``None`` for points outside all of them."""

    replaced: object          # the union of the replaced grids
    geoms: tuple
    codes: tuple

    @classmethod
    def of(cls, atlas: Atlas, plan: Plan, codes: list[str]) -> "PointPlacer":
        rows = [atlas.by_code[c] for c in plan.scope.replaces]
        replaced = shapely.union_all(atlas.divisions["geometry"].to_numpy()[rows])
        neighbours = _touching(atlas, replaced, set(plan.scope.replaces))
        return cls(replaced, tuple(plan.geometries) + tuple(atlas.grid_geometries[k] for k in neighbours),
                   tuple(codes) + tuple(str(atlas.grid_codes[k]) for k in neighbours))

    def place(self, pts) -> np.ndarray:
        pts = np.asarray(pts, dtype=object)
        best = np.full(len(pts), None, dtype=object)
        if not len(pts):
            return best
        pi, gi = shapely.STRtree(list(self.geoms)).query(pts, predicate="covered_by")
        for p, g in zip(pi, gi):
            c = self.codes[g]
            if best[p] is None or c < best[p]:
                best[p] = c
        return best


def _touching(atlas: Atlas, area, replaced_codes: set) -> list[int]:
    tree = shapely.STRtree(atlas.grid_geometries)
    return [int(k) for k in tree.query(area, predicate="intersects") if atlas.grid_codes[k] not in replaced_codes]


def household_flows(atlas: Atlas, plan: Plan, moves: pd.DataFrame) -> pd.DataFrame:
    """``old, new, households``: households per pair of (replaced grid, grid after the plan),
    staying households included (old == new)."""
    pos = [atlas.grid_positions(c)[0] for c in plan.scope.replaces]
    rows = np.flatnonzero(np.isin(atlas.building_grid, pos))
    rows = np.union1d(rows, moves["row"].to_numpy(dtype=np.int64)) if "row" in moves else rows
    g = atlas.building_grid[rows]
    old = np.where(g >= 0, atlas.grid_codes[np.maximum(g, 0)], None)
    new = pd.Series(old, index=atlas.building_ids[rows], dtype=object)
    if len(moves):
        new.loc[moves["id"].to_numpy()] = moves["new"].to_numpy()
    hh = np.diff(atlas._hh_by_building)[rows]
    df = pd.DataFrame({"old": old, "new": new.to_numpy(), "households": hh})
    df = df[df["old"].isin(plan.scope.replaces)]
    return df.groupby(["old", "new"], as_index=False)["households"].sum()


def staff(atlas: Atlas, plan: Plan, num: Numbering, moves: pd.DataFrame, workers: pd.DataFrame) -> Staffing:
    """Where the replaced grids' workers serve after the plan (see :mod:`.staffing`)."""
    flows = household_flows(atlas, plan, moves)
    land_home = land_homes({c: atlas.division(c)["geometry"] for c in num.retired}, plan.geometries, num.codes)
    return follow(workers, plan.scope.replaces, flows, num.codes, {s for s in num.successor_of if s}, land_home,
                  named_workers(plan.properties, num.codes))


@dataclass
class ChangeSet:
    """Everything one apply writes, computed before the write transaction opens."""

    plan_id: int | None
    base_version: int
    valid_from: str
    close_codes: list[str]                       # current versions to close (valid_to = valid_from)
    insert: pd.DataFrame                         # new division rows (storage CRS geometry)
    building_moves: pd.DataFrame                 # id, old, new
    retired: list[str]
    audit: dict = field(default_factory=dict)
    worker_assignment: dict = field(default_factory=dict)  # worker id -> the grid code it now serves
    cases: CaseRehoming | None = None            # re-homes cases inside the apply transaction
    impact: dict | None = None                   # kept on the plan: its impact as of the apply


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_changeset(atlas: Atlas, plan: Plan, parents: list[str], used_codes, workers=None) -> ChangeSet:
    """``workers``: the store's workers (``id, grid_code``) of the replaced grids."""
    num = number_grids(atlas, plan, parents, used_codes)
    moves = assign_buildings(atlas, plan, num.codes)
    stamp = now_stamp()
    write = [i for i in range(len(num.codes)) if num.status[i] != "unchanged"]
    from .. import crs as crs_mod
    insert = pd.DataFrame({
        "code": [num.codes[i] for i in write], "name": [num.names[i] for i in write], "level": "grid",
        "parent_code": [parents[i] for i in write], "kind": [num.kinds[i] for i in write],
        "version": [num.versions[i] for i in write], "valid_from": stamp, "valid_to": None,
        "area_m2": [round(crs_mod.area_m2(plan.geometries[i]), 1) for i in write],
        "geometry": [shapely.MultiPolygon(list(shapely.get_parts(plan.geometries[i]))) for i in write]})
    staffing = staff(atlas, plan, num, moves, workers if workers is not None else pd.DataFrame({"id": [], "grid_code": []}))
    close = sorted({num.successor_of[i] for i in write if num.successor_of[i]} | set(num.retired))
    audit = {"plan_id": plan.id, "scope": plan.scope.code, "base_version": plan.base_version,
             "retired": num.retired, "created": [num.codes[i] for i in write if num.status[i] == "new"],
             "redrawn": [num.codes[i] for i in write if num.status[i] == "successor"],
             "unchanged": [num.codes[i] for i in range(len(num.codes)) if num.status[i] == "unchanged"],
             "buildings_moved": int(len(moves)), "workers_moved": staffing.moves,
             "unstaffed": staffing.unstaffed}
    return ChangeSet(plan.id, plan.base_version, stamp, close, insert, moves[["id", "old", "new"]],
                     num.retired, audit, staffing.moves,
                     CaseRehoming(PointPlacer.of(atlas, plan, num.codes), stamp, plan.id))
