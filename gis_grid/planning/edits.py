"""Edit operations that produce a plan's GeoJSON: split a grid by a line, merge grids,
move a shared boundary. They work in the storage CRS on the current geometries, so
untouched edges keep their exact vertices and the result tiles the community exactly.

Each returns ``(scope_code, FeatureCollection)`` of every base grid of the community,
ready for :func:`gis_grid.planning.workflow.create_plan`.
"""
from __future__ import annotations

import json

import shapely
from shapely.ops import split

from .. import geojson_input
from ..atlas import Atlas
from ..errors import InvalidInputError
from ..hierarchy import Level, level_of


def _grid(atlas: Atlas, code: str):
    if level_of(code) is not Level.GRID:
        raise InvalidInputError(f"{code!r} is not a base-grid code (15 digits)")
    return atlas.division(code)["geometry"]


def _collection(atlas: Atlas, community: str, replace: dict[str, list]) -> tuple[str, dict]:
    """Every grid of ``community``: those in ``replace`` by their new pieces, the rest as they are."""
    lo, hi = atlas.grid_positions(community)
    feats = []
    for code in atlas.grid_codes[lo:hi]:
        pieces = replace.get(str(code))
        if pieces is None:
            pieces = [atlas.division(str(code))["geometry"]]
        for p in pieces:
            feats.append({"type": "Feature", "properties": {},
                          "geometry": json.loads(shapely.to_geojson(p))})
    return community, {"type": "FeatureCollection", "features": feats}


def _polygons(geom) -> list:
    return [p for p in shapely.get_parts(geom) if isinstance(p, shapely.Polygon) and p.area > 0]


def split_grid(atlas: Atlas, code: str, line) -> tuple[str, dict]:
    """Cut one grid in two (or more) along ``line``, which must cross it from edge to edge."""
    poly = _grid(atlas, code)
    line = geojson_input.cut_line(line)
    pieces = []
    for part in _polygons(poly):
        pieces.extend(_polygons(split(part, line)))
    if len(pieces) < 2:
        raise InvalidInputError(f"the line does not cut grid {code} in two: it must cross the grid from one "
                                "edge to another", detail={"grid": code})
    return _collection(atlas, code[:12], {code: pieces})


def merge_grids(atlas: Atlas, codes: list[str]) -> tuple[str, dict]:
    """Merge neighbouring grids of one community into one."""
    codes = sorted(set(codes))
    if len(codes) < 2:
        raise InvalidInputError("merge needs at least two grid codes")
    if len({c[:12] for c in codes}) != 1:
        raise InvalidInputError(f"merge grids of one community only; got {codes}")
    merged = shapely.union_all([_grid(atlas, c) for c in codes])
    if len(_polygons(merged)) != 1:
        raise InvalidInputError(f"grids {codes} do not form one piece: merge only neighbours sharing an edge",
                                detail={"grids": codes})
    return _collection(atlas, codes[0][:12], {codes[0]: [_polygons(merged)[0]], **{c: [] for c in codes[1:]}})


def move_boundary(atlas: Atlas, a: str, b: str, line) -> tuple[str, dict]:
    """Replace the shared edge of neighbours ``a`` and ``b`` by ``line`` (ends on their outer boundary).

    The union of the two is cut by the line; each piece goes to the grid it overlaps most.
    """
    if a[:12] != b[:12]:
        raise InvalidInputError("move a boundary between two grids of one community")
    ga, gb = _grid(atlas, a), _grid(atlas, b)
    union = shapely.union_all([ga, gb])
    if len(_polygons(union)) != 1:
        raise InvalidInputError(f"grids {a} and {b} share no edge")
    pieces = _polygons(split(_polygons(union)[0], geojson_input.cut_line(line)))
    if len(pieces) < 2:
        raise InvalidInputError("the new boundary must cut the two grids' union from edge to edge")
    side = {a: [], b: []}
    for p in pieces:
        side[a if shapely.intersection(p, ga).area >= shapely.intersection(p, gb).area else b].append(p)
    if not side[a] or not side[b]:
        raise InvalidInputError("the new boundary leaves one grid with no land")
    new = {c: [shapely.union_all(v) if len(v) > 1 else v[0]] for c, v in side.items()}
    return _collection(atlas, a[:12], new)
