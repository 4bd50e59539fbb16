"""Building footprints and the households living in them, per base grid.

Urban grids get rows of south-facing multi-storey blocks (居民楼) with
floors and units, plus shops, schools and offices; rural grids get a
hamlet of courtyard houses (农家院) around a centre plus farm sheds and
workshops. Footprints sit on a jittered lattice inside the grid shrunk by
a few metres, so no two overlap and each lies in exactly one base grid.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

URBAN_HOUSEHOLDS = 158_000
RURAL_HOUSES = 40_000
URBAN_NONRES = 5_200
RURAL_NONRES = 10_400
INSET_M = 6.0
_FLOORS = np.array([5, 6, 6, 6, 7, 7, 6, 11, 18, 5])
_URBAN_NONRES_KINDS = np.array(["commercial", "commercial", "commercial", "office", "school", "clinic", "market"])
_RURAL_NONRES_KINDS = np.array(["agricultural", "agricultural", "agricultural", "workshop", "shop"])


def _lattice(geom, dx, dy, angle, rng):
    """Lattice points (metres) covering ``geom``'s bbox, rotated by ``angle`` around its centroid."""
    c = geom.centroid
    minx, miny, maxx, maxy = geom.bounds
    r = np.hypot(maxx - minx, maxy - miny) / 2 + max(dx, dy)
    off = rng.uniform(0, 1, 2) * (dx, dy)
    gx, gy = np.meshgrid(np.arange(-r, r, dx) + off[0], np.arange(-r, r, dy) + off[1])
    ca, sa = np.cos(angle), np.sin(angle)
    return c.x + gx.ravel() * ca - gy.ravel() * sa, c.y + gx.ravel() * sa + gy.ravel() * ca


def _rects(x, y, w, h, angle):
    """Rectangles centred at (x, y) of size w x h rotated by angle (vectorised)."""
    ca, sa = np.cos(angle), np.sin(angle)
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)], dtype=float)
    px = x[:, None] + (corners[:, 0] * w[:, None] / 2) * ca - (corners[:, 1] * h[:, None] / 2) * sa
    py = y[:, None] + (corners[:, 0] * w[:, None] / 2) * sa + (corners[:, 1] * h[:, None] / 2) * ca
    coords = np.stack([px, py], axis=-1).reshape(-1, 2)
    return shapely.polygons(shapely.linearrings(coords, indices=np.repeat(np.arange(len(x)), 5)))


def _slots_in(geom, dx, dy, w, h, angle, rng):
    """Candidate footprints on a jittered lattice that fit inside ``geom`` minus the inset."""
    inner = geom.buffer(-INSET_M)
    if inner.is_empty:
        return np.empty(0, dtype=object), np.empty(0), np.empty(0)
    x, y = _lattice(geom, dx, dy, angle, rng)
    x = x + rng.uniform(-1.5, 1.5, len(x))
    y = y + rng.uniform(-1.5, 1.5, len(y))
    ww = w * rng.uniform(0.85, 1.0, len(x))
    hh = h * rng.uniform(0.85, 1.0, len(x))
    rects = _rects(x, y, ww, hh, angle)
    shapely.prepare(inner)
    ok = shapely.contains(inner, rects)
    return rects[ok], x[ok], y[ok]


def generate_buildings(grids: pd.DataFrame, rng: np.random.Generator, progress=None) -> pd.DataFrame:
    """Footprints (EPSG:4548) for base grids with columns code, name, kind, geometry (metric).

    Returns buildings with grid_code, kind, floors, units, name, geometry (metric)
    and households_hint (number of households to place, before occupancy).
    """
    urban = grids[grids["kind"] == "urban"]
    rural = grids[grids["kind"] == "rural"]
    mean_hh = float(np.mean(_FLOORS)) * 3 * 2 * 0.85
    n_blocks = int(URBAN_HOUSEHOLDS / mean_hh)
    out = []
    # urban: lattice of block slots; choose residential and other slots by global rates
    slot_sets = []
    for code, geom in zip(urban["code"], urban["geometry"]):
        angle = np.deg2rad(rng.uniform(-15, 15))
        rects, _, _ = _slots_in(geom, 72.0, 42.0, np.array(58.0), np.array(14.0), angle, rng)
        slot_sets.append((code, rects))
        if progress:
            progress.update(1)
    total_slots = sum(len(r) for _, r in slot_sets)
    p_res, p_non = n_blocks / total_slots, URBAN_NONRES / total_slots
    for code, rects in slot_sets:
        u = rng.uniform(size=len(rects))
        res, non = u < p_res, (u >= p_res) & (u < p_res + p_non)
        n_res = int(res.sum())
        out.append(pd.DataFrame({
            "grid_code": code, "kind": "residential_block", "geometry": rects[res],
            "floors": rng.choice(_FLOORS, n_res), "units": rng.integers(2, 5, n_res)}))
        out.append(pd.DataFrame({
            "grid_code": code, "kind": rng.choice(_URBAN_NONRES_KINDS, int(non.sum())), "geometry": rects[non],
            "floors": rng.integers(1, 5, int(non.sum())), "units": 0}))
    # rural: a hamlet of courtyards around a centre, sheds and workshops on its fringe
    areas = rural["geometry"].map(lambda g: g.area).to_numpy()
    houses = np.maximum((areas / areas.sum() * RURAL_HOUSES).round().astype(int), 20)
    sheds = np.maximum((areas / areas.sum() * RURAL_NONRES).round().astype(int), 5)
    for code, geom, n_house, n_shed in zip(rural["code"], rural["geometry"], houses, sheds):
        angle = np.deg2rad(rng.uniform(-25, 25))
        rects, x, y = _slots_in(geom, 24.0, 24.0, np.array(18.0), np.array(17.0), angle, rng)
        if progress:
            progress.update(1)
        if len(rects) == 0:
            continue
        centre = shapely.get_coordinates(shapely.point_on_surface(geom.buffer(-150) if geom.buffer(-150).area > 0 else geom))[0]
        order = np.argsort(np.hypot(x - centre[0], y - centre[1]) * rng.uniform(1.0, 1.25, len(x)))
        take_h = order[:n_house]
        take_s = order[n_house:n_house + n_shed]
        out.append(pd.DataFrame({"grid_code": code, "kind": "courtyard_house", "geometry": rects[take_h],
                                 "floors": rng.choice([1, 1, 1, 2], len(take_h)), "units": 1}))
        out.append(pd.DataFrame({"grid_code": code, "kind": rng.choice(_RURAL_NONRES_KINDS, len(take_s)),
                                 "geometry": rects[take_s], "floors": 1, "units": 0}))
    b = pd.concat(out, ignore_index=True)
    b["floors"] = b["floors"].astype(int)
    b["units"] = b["units"].astype(int)
    return b


def place_households(buildings: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Flats of residential blocks (85 % occupied) and courtyard households.

    Returns one row per household: building (row index), unit, floor, room, rural.
    """
    res = buildings.index[buildings["kind"] == "residential_block"].to_numpy()
    floors = buildings.loc[res, "floors"].to_numpy()
    units = buildings.loc[res, "units"].to_numpy()
    flats = floors * units * 2
    b = np.repeat(res, flats)
    k = np.arange(flats.sum()) - np.repeat(np.cumsum(flats) - flats, flats)
    unit = k // (np.repeat(floors, flats) * 2) + 1
    within = k % (np.repeat(floors, flats) * 2)
    floor = within // 2 + 1
    door = within % 2 + 1
    keep = rng.uniform(size=len(b)) < 0.85
    urban = pd.DataFrame({"building": b[keep], "unit": unit[keep], "floor": floor[keep],
                          "room": [f"{u}单元{f}0{d}" for u, f, d in zip(unit[keep], floor[keep], door[keep])],
                          "rural": False})
    courts = buildings.index[buildings["kind"] == "courtyard_house"].to_numpy()
    second = courts[rng.uniform(size=len(courts)) < 0.05]  # a few courtyards hold two households
    cb = np.sort(np.concatenate([courts, second]))
    rural = pd.DataFrame({"building": cb, "unit": 0, "floor": 1,
                          "room": np.where(np.r_[False, cb[1:] == cb[:-1]], "东屋", "正房"), "rural": True})
    return pd.concat([urban, rural], ignore_index=True)
