"""The demo district's four levels of polygons, built from the real outline.

Streets and towns, communities and villages come from the official list; the
geometry inside the real outline is synthetic. Six urban streets share a dense
core around the old city centre; towns and villages spread over the rest.
Upper levels are rebuilt as the union of their children, so every level
partitions its parent exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.ops

from .. import crs
from ..hierarchy import Division, Level
from ..partition import allocate, make_contiguous, node_coverage, spread_seeds, voronoi_partition, _snap
from ..reference import divisions, outline_gcj02

URBAN_GRIDS = 228
RURAL_GRIDS = 217
CORE_CENTRE_LONLAT = (117.558, 34.862)  # Zaozhuang old city centre, approx.
CORE_AREA_M2 = 62e6


@dataclass
class Unit:
    division: Division
    geom_m: object  # shapely geometry in EPSG:4548


def district_outline_m():
    """The outline converted GCJ-02 -> WGS84 (= CGCS2000 to cm) -> EPSG:4548."""
    out = outline_gcj02()
    poly = max(shapely.get_parts(out), key=lambda g: g.area)
    xy = shapely.get_coordinates(poly)
    lon, lat = crs.gcj02_to_wgs84(xy[:, 0], xy[:, 1])
    x, y = crs.to_metric(lon, lat)
    ring = shapely.Polygon(np.column_stack([x, y]))
    return _snap(shapely.make_valid(ring) if not ring.is_valid else ring)


def _core_polygon(district, rng):
    cx, cy = crs.to_metric(*CORE_CENTRE_LONLAT)
    angles = np.linspace(0, 2 * np.pi, 73)[:-1]
    # a lumpy disc: a few low-frequency harmonics make the core look organic
    radius = np.sqrt(CORE_AREA_M2 / np.pi) * (1 + sum(
        rng.uniform(-0.08, 0.08) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)))
    core = shapely.Polygon(np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)]))
    return _snap(shapely.intersection(core, district))


def build_units(rng: np.random.Generator):
    """Return (streets, communities, grids) as lists of Unit, grids coded in reading order."""
    divs = divisions()
    district_div = next(d for d in divs if d.level is Level.DISTRICT)
    streets = [d for d in divs if d.level is Level.STREET]
    comms = [d for d in divs if d.level is Level.COMMUNITY]
    district = district_outline_m()
    core = _core_polygon(district, rng)
    outer = _snap(shapely.difference(district, core))

    urban_streets = [s for s in streets if s.code[6] == "0"]   # 街道: 001-099
    towns = [s for s in streets if s.code[6] != "0"]            # 镇: 100-199
    # the outer ring gets one piece per town plus one rural hinterland for each
    # urban street that has villages (光明路街道 in the reference list)
    with_villages = [s for s in urban_streets
                     if any(c.parent_code == s.code and c.kind == "rural" for c in comms)]
    core_pieces = voronoi_partition(core, spread_seeds(core, len(urban_streets), rng))
    outer_pieces = voronoi_partition(outer, spread_seeds(outer, len(towns) + len(with_villages), rng))
    street_geom: dict[str, object] = {}
    # the hinterland pieces are those touching the core most; pair each with the
    # core piece it borders longest so the street stays contiguous
    free_core = list(range(len(core_pieces)))
    border = lambda a, b: shapely.intersection(a.boundary, b.buffer(1.0)).length
    hinter = sorted(range(len(outer_pieces)), key=lambda j: -border(outer_pieces[j], core))[: len(with_villages)]
    for s, j in zip(with_villages, hinter):
        i = max(free_core, key=lambda i: border(core_pieces[i], outer_pieces[j]))
        free_core.remove(i)
        street_geom[s.code] = _snap(shapely.union(core_pieces[i], outer_pieces[j]))
    for s in urban_streets:
        if s.code not in street_geom:
            street_geom[s.code] = core_pieces[free_core.pop(0)]
    rest = [j for j in range(len(outer_pieces)) if j not in hinter]
    for s, j in zip(towns, rest):
        street_geom[s.code] = outer_pieces[j]

    community_units: list[Unit] = []
    for s in streets:
        members = [c for c in comms if c.parent_code == s.code]
        community_units += _split_street(street_geom[s.code], members, core, rng)

    urban = [u for u in community_units if u.division.kind == "urban"]
    rural = [u for u in community_units if u.division.kind == "rural"]
    n_urban = allocate(URBAN_GRIDS, [u.geom_m.area for u in urban], minimum=2)
    n_rural = allocate(RURAL_GRIDS, [u.geom_m.area for u in rural], minimum=1)
    grid_units: list[Unit] = []
    for u, n in [*zip(urban, n_urban), *zip(rural, n_rural)]:
        pieces = voronoi_partition(u.geom_m, spread_seeds(u.geom_m, int(n), rng)) if n > 1 else [u.geom_m]
        for seq, g in enumerate(reading_order(pieces), start=1):
            code = f"{u.division.code}{seq:03d}"
            name = f"{u.division.name.removesuffix('居民委员会').removesuffix('村民委员会').removesuffix('居委会').removesuffix('村委会')}第{seq}网格"
            grid_units.append(Unit(Division(code, name, Level.GRID, u.division.code, u.division.kind), g))
    grid_units.sort(key=lambda u: u.division.code)
    noded = node_coverage([u.geom_m for u in grid_units])
    grid_units = [Unit(u.division, g) for u, g in zip(grid_units, noded)]

    # rebuild parents as exact unions of their children
    def union_of(children):
        return shapely.coverage_union_all([c.geom_m for c in children])
    community_units = [Unit(u.division, union_of([g for g in grid_units if g.division.parent_code == u.division.code]))
                       for u in community_units]
    street_units = [Unit(s, union_of([c for c in community_units if c.division.parent_code == s.code])) for s in streets]
    district_unit = Unit(district_div, union_of(street_units))
    return district_unit, street_units, community_units, grid_units


def _split_street(region, members, core, rng):
    urban = [c for c in members if c.kind == "urban"]
    rural = [c for c in members if c.kind == "rural"]
    if urban and rural:
        inside = _snap(shapely.intersection(region, core))
        if inside.area < 0.05 * region.area:
            # a town: its urban communities sit around the town seat, the part nearest the core
            seat = shapely.ops.nearest_points(region, core.centroid)[0]
            disc = seat.buffer(np.sqrt(len(urban) * 1.5e6 / np.pi) * 1.3)
            inside = _snap(shapely.intersection(region, disc))
        outside = _snap(shapely.difference(region, inside))
        pieces = (voronoi_partition(inside, spread_seeds(inside, len(urban), rng))
                  + voronoi_partition(outside, spread_seeds(outside, len(rural), rng)))
        pieces = make_contiguous(pieces)
    else:
        pieces = voronoi_partition(region, spread_seeds(region, len(members), rng))
    return [Unit(d, g) for d, g in zip(urban + rural, pieces)]


def reading_order(pieces):
    """Sort pieces west to east within rows, rows north to south (GB/T 30428.1 style).

    Rows are bands of the mean piece height, counted from the northern edge,
    by each piece's representative point.
    """
    if len(pieces) <= 1:
        return list(pieces)
    pts = shapely.get_coordinates(shapely.point_on_surface(pieces))
    top = max(p.bounds[3] for p in pieces)
    band = np.sqrt(sum(p.area for p in pieces) / len(pieces))
    row = np.floor((top - pts[:, 1]) / band)
    order = np.lexsort((pts[:, 0], row))
    return [pieces[i] for i in order]
