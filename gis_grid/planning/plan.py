"""A plan: new polygons for a set of current base grids, drawn on one atlas version."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import shapely

from .. import geojson_input
from ..atlas import Atlas
from ..errors import InvalidInputError, LimitExceededError, NotFoundError
from ..hierarchy import Level, level_of
from .snap import snap_plan

MAX_PLAN_FEATURES = 200


@dataclass(frozen=True)
class PlanScope:
    """What a plan replaces: current base grids of one community, or of communities of one street."""

    code: str                          # the community (12 digits) or street (9 digits)
    replaces: tuple[str, ...]          # current base-grid codes, sorted
    communities: tuple[str, ...]       # communities the replaced grids belong to

    def to_dict(self) -> dict:
        return {"code": self.code, "level": level_of(self.code).value, "replaces": list(self.replaces),
                "communities": list(self.communities)}


@dataclass(frozen=True)
class Plan:
    """New base grids (storage CRS, EPSG:4490) replacing ``scope.replaces``."""

    scope: PlanScope
    base_version: int
    geometries: tuple                  # shapely (Multi)Polygons, one per new grid
    properties: tuple[dict, ...] = ()  # per new grid: name, parent community, code once numbered
    id: int | None = None
    created_at: str | None = None
    source: str = "geojson"            # geojson | edit | propose
    note: str = ""
    status: str = "draft"              # draft | applied | superseded
    meta: dict = field(default_factory=dict)

    def with_(self, **kw) -> "Plan":
        return replace(self, **kw)


def resolve_scope(atlas: Atlas, code: str, replaces=None) -> PlanScope:
    """The base grids a plan for ``code`` replaces (all grids under it unless ``replaces`` narrows them)."""
    level = level_of(code)
    if level not in (Level.COMMUNITY, Level.STREET):
        raise InvalidInputError(f"a plan covers one community/village (12 digits) or several within one "
                                f"street/town (9 digits); {code!r} is a {level.value} code")
    atlas.division(code)  # 404 when unknown
    lo, hi = atlas.grid_positions(code)
    under = [str(c) for c in atlas.grid_codes[lo:hi]]
    if replaces:
        replaces = sorted({str(c) for c in replaces})
        foreign = [c for c in replaces if c not in set(under)]
        if foreign:
            raise InvalidInputError(f"grids {foreign} are not current base grids of {code}",
                                    detail={"not_in_scope": foreign})
    else:
        replaces = under
    if not replaces:
        raise NotFoundError(f"{code} has no base grids in atlas version {atlas.version}")
    return PlanScope(code, tuple(replaces), tuple(sorted({c[:12] for c in replaces})))


def check_vertex_limit(limit: int, *values) -> None:
    """The published polygon limit over a plan's grids and edit, checked before any geometry is built."""
    n = sum(geojson_input.count_vertices(v) for v in values)
    if n > limit:
        raise LimitExceededError(f"the plan has {n} vertices; the limit is {limit} (max_polygon_vertices at "
                                 "/capabilities): simplify the grids or plan one community at a time")


def plan_from_geojson(atlas: Atlas, scope_code: str, collection: dict, *, crs=None, replaces=None,
                      note: str = "", source: str = "geojson") -> Plan:
    """Parse a FeatureCollection of new grids (lon/lat, or ``crs``) into a draft plan on ``atlas``."""
    feats = geojson_input.polygon_features(collection, MAX_PLAN_FEATURES)
    scope = resolve_scope(atlas, scope_code, replaces)
    geoms, props = [], []
    for i, f in enumerate(feats):
        geoms.append(geojson_input.feature_polygon(f, i, crs))
        p = f.get("properties") or {}
        # workers: ids this grid's team is named to be (planning/staffing.py); checked at impact and apply
        props.append({k: p[k] for k in ("name", "community", "workers") if k in p and p[k] is not None})
    rows = [atlas.by_code[c] for c in scope.replaces]
    replaced = shapely.union_all(atlas.divisions["geometry"].to_numpy()[rows]) if rows else None
    geoms = snap_plan(geoms, replaced)  # tools' centimetre slivers are not planning errors (snap.py)
    return Plan(scope=scope, base_version=atlas.version, geometries=tuple(geoms), properties=tuple(props),
                note=note, source=source)


def plan_to_geojson(plan: Plan, *, extra: list[dict] | None = None) -> dict:
    """The plan's new grids as a FeatureCollection (lon/lat, EPSG:4490 ~ CRS84)."""
    feats = []
    for i, g in enumerate(plan.geometries):
        props = dict(plan.properties[i]) if i < len(plan.properties) else {}
        if extra:
            props.update(extra[i])
        feats.append({"type": "Feature", "id": i, "properties": props,
                      "geometry": json.loads(shapely.to_geojson(g))})
    return {"type": "FeatureCollection", "features": feats}
