"""A plan: new polygons for a set of current base grids, drawn on one atlas version."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import shapely

from .. import crs as crs_mod
from ..atlas import Atlas
from ..errors import InvalidCoordinatesError, InvalidGeometryError, InvalidInputError, NotFoundError
from ..hierarchy import Level, level_of

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


def _as_polygonal(geom, i):
    if geom is None or geom.is_empty:
        raise InvalidGeometryError(f"feature {i}: empty geometry", detail=[{"feature": i, "rule": "empty"}])
    if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
        raise InvalidGeometryError(f"feature {i}: a new grid must be a Polygon or MultiPolygon, "
                                   f"not {geom.geom_type}", detail=[{"feature": i, "rule": "type"}])
    if shapely.has_z(geom):  # like every drawn area: heights are refused, not silently dropped
        raise InvalidGeometryError(f"feature {i}: 3D coordinates are not accepted: send 2D lon/lat polygons",
                                   detail=[{"feature": i, "rule": "3D"}])
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise InvalidGeometryError(f"feature {i}: NaN or infinite coordinates",
                                   detail=[{"feature": i, "rule": "coordinates"}])
    return geom


def plan_from_geojson(atlas: Atlas, scope_code: str, collection: dict, *, crs=None, replaces=None,
                      note: str = "", source: str = "geojson") -> Plan:
    """Parse a FeatureCollection of new grids (lon/lat, or ``crs``) into a draft plan on ``atlas``."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise InvalidInputError('"grids" must be a GeoJSON FeatureCollection of Polygon features')
    feats = collection.get("features")
    if not isinstance(feats, list) or not feats:
        raise InvalidInputError("the FeatureCollection has no features: a plan needs at least one new grid")
    if len(feats) > MAX_PLAN_FEATURES:
        raise InvalidInputError(f"a plan may hold at most {MAX_PLAN_FEATURES} grids, got {len(feats)}")
    scope = resolve_scope(atlas, scope_code, replaces)
    geoms, props = [], []
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            raise InvalidInputError(f"feature {i}: not a GeoJSON Feature with a geometry")
        try:
            text = json.dumps(f["geometry"], allow_nan=False)
        except ValueError:  # NaN/Infinity: accepted by Python's JSON reader, not by GeoJSON
            raise InvalidGeometryError(f"feature {i}: NaN or infinite coordinates",
                                       detail=[{"feature": i, "rule": "coordinates"}]) from None
        try:
            g = shapely.from_geojson(text)
        except Exception as exc:  # shapely raises GEOSException for malformed input
            raise InvalidGeometryError(f"feature {i}: unreadable geometry: {exc}",
                                       detail=[{"feature": i, "rule": "parse"}]) from None
        g = _as_polygonal(g, i)
        # out of range and (lat, lon) order are named here, not left to fail as a gap or overlap later
        xy = shapely.get_coordinates(g)
        reasons = crs_mod.check_coordinates(xy[:, 0], xy[:, 1], crs)
        bad = np.flatnonzero(reasons != "")
        if bad.size:
            raise InvalidCoordinatesError(f"feature {i}: vertex {int(bad[0])}: {reasons[bad[0]]}",
                                          detail=[{"feature": i, "vertex": int(v), "reason": str(reasons[v])}
                                                  for v in bad[:100]])
        if crs is not None:
            g = shapely.transform(g, lambda xy: np.column_stack(crs_mod.to_storage(xy[:, 0], xy[:, 1], crs)))
        geoms.append(g)
        p = f.get("properties") or {}
        props.append({k: p[k] for k in ("name", "community") if k in p and p[k] is not None})
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
