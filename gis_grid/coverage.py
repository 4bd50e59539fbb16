"""`gis-grid check`: the four invariants of grid management.

区不漏地  the divisions of each level partition their parent exactly;
地不漏房  every building lies in exactly one base grid;
房不漏户  every household is in an existing building;
户不漏人  every resident is in an existing household, and no household is empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from . import crs
from .cellindex import CellIndex, OUTSIDE
from .hierarchy import Level

AREA_TOLERANCE_M2 = 1.0  # gaps/overlaps below 1 m2 are rounding, not planning errors
_PLURAL = {Level.DISTRICT: "districts", Level.STREET: "streets", Level.COMMUNITY: "communities", Level.GRID: "grids"}


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, rule: str, feature: str, problem: str, **extra):
        self.violations.append({"rule": rule, "feature": feature, "problem": problem, **extra})

    def to_text(self, max_violations: int = 50) -> str:
        lines = ["gis_grid coverage check", ""]
        width = max(len(k) for k in self.counts) if self.counts else 0
        lines += [f"  {k:<{width}}  {v:>9,}" for k, v in self.counts.items()]
        lines.append("")
        if self.ok:
            lines.append("OK: 区不漏地, 地不漏房, 房不漏户, 户不漏人 all hold")
        else:
            lines.append(f"FAILED: {len(self.violations)} violation(s)")
            for v in self.violations[:max_violations]:
                lines.append(f"  [{v['rule']}] {v['feature']}: {v['problem']}")
            if len(self.violations) > max_violations:
                lines.append(f"  ... and {len(self.violations) - max_violations} more")
        return "\n".join(lines)


def check_divisions(divisions: pd.DataFrame, report: Report) -> None:
    d = divisions.reset_index(drop=True)
    # compare in the storage CRS, where edges are straight; projecting first would
    # bend edges that carry extra vertices and report phantom gaps
    geoms = d["geometry"].to_numpy()
    by_code = {c: i for i, c in enumerate(d["code"])}
    for level in (Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID):
        mask = d["level"] == level.value
        report.counts[_PLURAL[level]] = int(mask.sum())
        if level is Level.COMMUNITY or level is Level.GRID:
            for kind in ("urban", "rural"):
                report.counts[f"{_PLURAL[level]} ({kind})"] = int((mask & (d["kind"] == kind)).sum())
    for i, g in enumerate(geoms):
        if not g.is_valid:
            report.add("区不漏地", d["code"][i], f"invalid geometry: {shapely.is_valid_reason(g)}")
    for level in (Level.STREET, Level.COMMUNITY, Level.GRID):
        rows = np.flatnonzero(d["level"] == level.value)
        parents = d["parent_code"].to_numpy()[rows]
        for parent in sorted(set(parents)):
            if parent not in by_code:
                for r in rows[parents == parent]:
                    report.add("区不漏地", d["code"][r], f"parent {parent} does not exist")
                continue
            kids = rows[parents == parent]
            _check_partition(d["code"][by_code[parent]], geoms[by_code[parent]],
                             d["code"].to_numpy()[kids], geoms[kids], report)
        # a parent with no children leaves land without a lower-level grid
        child_level_parents = set(parents)
        for r in np.flatnonzero(d["level"] == level.parent.value):
            if d["code"][r] not in child_level_parents:
                report.add("区不漏地", d["code"][r], f"has no {level.value} inside it")


SPIKE_ANGLE_DEG = 3.0   # a vertex sharper than this is a spike, not a street corner
SLIVER_WIDTH_M = 2.0    # no part of a grid is narrower than a lane
_SLIVER_LENGTH_M = 20.0  # ...over more than this: a sharp but honest corner loses less


def shape_problems(geom_m) -> list[str]:
    """Spikes and slivers of one polygon in a metric CRS, in words; empty if it is clean.

    Both are digitising or overlay errors that area checks miss: a zero-width spike has
    no area at all. A sliver is a part the opening by SLIVER_WIDTH_M takes away over more
    than 20 m, or a neck that the inward buffer cuts in two.
    """
    problems = []
    polys = [p for p in shapely.get_parts(geom_m) if p.geom_type == "Polygon"]
    for poly in polys:
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)[:-1]
            a, b = np.roll(xy, 1, axis=0) - xy, np.roll(xy, -1, axis=0) - xy
            cos = (a * b).sum(1) / np.maximum(np.hypot(*a.T) * np.hypot(*b.T), 1e-12)
            angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
            for k in np.flatnonzero(angle < SPIKE_ANGLE_DEG):
                problems.append(f"spike: vertex angle {angle[k]:.2f} deg at ({xy[k, 0]:.1f}, {xy[k, 1]:.1f})")
    half = SLIVER_WIDTH_M / 2
    inner = shapely.buffer(geom_m, -half)
    if len([p for p in shapely.get_parts(inner) if not p.is_empty]) > len(polys):
        problems.append(f"sliver: a neck narrower than {SLIVER_WIDTH_M:g} m")
    # buffering leaves hairlines along straight edges: noise, not land; shrinking by 5 cm drops them
    lost = shapely.buffer(shapely.difference(geom_m, shapely.buffer(inner, half)), -0.05)
    for part in shapely.get_parts(lost):
        rect = shapely.minimum_rotated_rectangle(part)
        xy = np.asarray(rect.exterior.coords) if rect.geom_type == "Polygon" else np.zeros((2, 2))
        length = max(np.hypot(*(xy[1] - xy[0])), np.hypot(*(xy[2] - xy[1]))) if len(xy) > 2 else 0.0
        if length > _SLIVER_LENGTH_M:
            c = shapely.get_coordinates(shapely.point_on_surface(part))[0]
            problems.append(f"sliver: {length:.0f} m narrower than {SLIVER_WIDTH_M:g} m at ({c[0]:.1f}, {c[1]:.1f})")
    return problems


def check_shapes(divisions: pd.DataFrame, report: Report) -> None:
    """Add a violation for every spike or sliver of a base grid (see shape_problems)."""
    grids = divisions[divisions["level"] == Level.GRID.value]
    metric = crs.transform_geoms(grids["geometry"].to_numpy(), crs.InputCRS.CGCS2000, crs.InputCRS.GK117)
    for code, geom in zip(grids["code"], metric):
        for problem in shape_problems(geom):
            report.add("区不漏地", code, problem)


def _check_partition(parent_code, parent, codes, geoms, report):
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    pairs = a < b
    for i, j in zip(a[pairs], b[pairs]):
        area = crs.overlay_area_m2(shapely.intersection(geoms[i], geoms[j]))
        if area > AREA_TOLERANCE_M2:
            report.add("区不漏地", f"{codes[i]} / {codes[j]}", f"overlap of {area:,.1f} m2")
    union = shapely.union_all(geoms)
    gap = crs.overlay_area_m2(shapely.difference(parent, union))
    spill = crs.overlay_area_m2(shapely.difference(union, parent))
    if gap > AREA_TOLERANCE_M2:
        report.add("区不漏地", parent_code, f"{gap:,.1f} m2 not covered by any child")
    if spill > AREA_TOLERANCE_M2:
        report.add("区不漏地", parent_code, f"children extend {spill:,.1f} m2 beyond it")


def check_buildings(divisions, buildings, report):
    grids = divisions[divisions["level"] == Level.GRID.value].sort_values("code")
    report.counts["buildings"] = len(buildings)
    if buildings.empty:
        return
    index = CellIndex(grids["geometry"].to_numpy())
    geoms = buildings["geometry"].to_numpy()
    rep = shapely.point_on_surface(geoms)
    gi = index.lookup(shapely.get_x(rep), shapely.get_y(rep))
    codes = grids["code"].to_numpy()
    for r in np.flatnonzero(gi == OUTSIDE):
        report.add("地不漏房", f"building {buildings['id'].iloc[r]}", "lies outside every base grid")
    inside = gi != OUTSIDE
    grid_geoms = grids["geometry"].to_numpy()
    covered = np.zeros(len(geoms), dtype=bool)
    covered[inside] = shapely.covers(grid_geoms[gi[inside]], geoms[inside])
    for r in np.flatnonzero(inside & ~covered):
        report.add("地不漏房", f"building {buildings['id'].iloc[r]}",
                   f"crosses the boundary of base grid {codes[gi[r]]}")
    stale = inside & (buildings["grid_code"].to_numpy() != codes[np.maximum(gi, 0)])
    for r in np.flatnonzero(stale):
        report.add("地不漏房", f"building {buildings['id'].iloc[r]}",
                   f"recorded in grid {buildings['grid_code'].iloc[r]} but stands in {codes[gi[r]]}")


def _isin(values: pd.Series, candidates) -> np.ndarray:
    """``values.isin(candidates)`` as a bool array, through Arrow's hash kernel.

    pandas 3's isin on Arrow-backed strings loops in Python per value: 4 s for the demo's
    600k residents against 0.1 s here.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    try:
        hit = pc.is_in(pa.array(values), value_set=pa.array(pd.Series(candidates)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):  # mixed types: pandas decides
        return values.isin(candidates).to_numpy(dtype=bool)
    return hit.to_numpy(zero_copy_only=False).astype(bool)


def check_people(buildings, households, residents, report):
    report.counts["households"] = len(households)
    report.counts["residents"] = len(residents)
    orphan = ~_isin(households["building_id"], buildings["id"])
    for hid, bid in zip(households["id"][orphan], households["building_id"][orphan]):
        report.add("房不漏户", f"household {hid}", f"its building {bid} does not exist")
    known = _isin(residents["household_id"], households["id"])
    for rid, hid in zip(residents["id"][~known], residents["household_id"][~known]):
        report.add("户不漏人", f"resident {rid}", f"its household {hid} does not exist")
    empty = ~_isin(households["id"], residents["household_id"].unique())
    for hid in households["id"][empty]:
        report.add("户不漏人", f"household {hid}", "has no registered residents")


def check_store(store) -> Report:
    report = Report()
    divisions = store.divisions()
    buildings = store.buildings()
    check_divisions(divisions, report)
    check_buildings(divisions, buildings, report)
    households = store.households()
    residents = store.residents(columns=["id", "household_id"])
    check_people(buildings, households, residents, report)
    report.counts["workers"] = len(store.workers())
    return report
