"""Who lives here: households with their residents, in a division, a building or a drawn polygon.

Personal fields are always masked here, whatever the role: names ``张*``, ID
numbers ``370402********1234``, phones ``138****5678``; the birth date becomes a
10-year ``age_band``. Unmasked values come only from the purpose-bound
``/residents/{id}/unmasked``. Roles that may see counts only (planners) get the
counts without the records; every read is audited. Special-group flags are not
published per person (only as counts on the division card).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import shapely
from fastapi import APIRouter, Body, Depends, Path, Query, Request

from gis_grid import crs as crs_mod
from gis_grid.atlas import Atlas, check_polygon
from gis_grid.errors import (ConflictError, InvalidCoordinatesError, InvalidGeometryError, InvalidInputError,
                             LimitExceededError, PermissionDeniedError)
from gis_grid.hierarchy import level_of
from gis_grid.masking import mask_ids, mask_names, mask_phones
from gis_grid.security import audit
from gis_grid.security.roles import PersonalData, Principal
from gis_grid.store import SYSTEM_SCOPE
from gis_grid.atlas.holder import AtlasHolder

from ..asof import atlas_at_dep
from ..deps import crs_query, holder, settings_dep
from ..security import check_scope, principal_dep, request_id
from ..settings import Settings

router = APIRouter(tags=["residents"])


async def _people(request: Request) -> Principal:
    who = await principal_dep(request)
    if who.permission.personal is PersonalData.NONE:
        raise PermissionDeniedError(f"the {who.role} role may not read who lives where")
    return who

RESIDENT_COLUMNS = ["id", "household_id", "name", "gender", "birth_date", "id_number", "phone", "relation"]


# ---------------------------------------------------------------- paging
class Page:
    def __init__(self, offset: int, limit: int, key: str, version: int):
        self.offset, self.limit, self.key, self.version = offset, limit, key, version

    def token(self, offset: int) -> str:
        raw = json.dumps({"o": offset, "l": self.limit, "k": self.key, "v": self.version}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _page(limit: int | None, offset: int | None, next_token: str | None, key: str,
          settings: Settings, atlas: Atlas) -> Page:
    if limit is not None and limit <= 0:
        raise InvalidInputError(f"limit must be a positive integer (got {limit}); "
                                f"the default is {settings.default_page_size}, the maximum {settings.max_page_size}")
    if offset is not None and offset < 0:
        raise InvalidInputError(f"offset must be >= 0 (got {offset})")
    tok_limit = None
    if next_token:
        try:
            pad = "=" * (-len(next_token) % 4)
            t = json.loads(base64.urlsafe_b64decode(next_token + pad))
            off, tok_limit, k, v = int(t["o"]), int(t["l"]), str(t["k"]), int(t["v"])
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise InvalidInputError("the next token is malformed: pass back the `next` value of the "
                                    "previous page unchanged") from None
        if k != key:
            raise InvalidInputError("the next token belongs to a different query (other division, "
                                    "building or polygon): start again without `next`")
        if v != atlas.version:
            raise ConflictError(f"the atlas changed (version {v} -> {atlas.version}) since this page "
                                "was issued: start again without `next`")
        if offset is None or offset == 0:
            offset = off
    lim = limit if limit is not None else (tok_limit or settings.default_page_size)
    return Page(offset or 0, min(lim, settings.max_page_size), key, atlas.version)


def _age_bands(birth: pd.Series, today: date | None = None) -> list[str | None]:
    today = today or date.today()
    d = pd.to_datetime(birth, errors="coerce", format="%Y-%m-%d")
    y, m, dd = d.dt.year.to_numpy(), d.dt.month.to_numpy(), d.dt.day.to_numpy()
    age = today.year - y - ((today.month < m) | ((today.month == m) & (today.day < dd)))
    out: list[str | None] = []
    for a in age:
        if not np.isfinite(a) or a < 0:
            out.append(None)
        elif a >= 90:
            out.append("90+")
        else:
            lo = int(a) // 10 * 10
            out.append(f"{lo}-{lo + 9}")
    return out


def _households_page(request: Request, atlas: Atlas, h: AtlasHolder, households: pd.DataFrame,
                     page: Page, who: Principal, resource: str, extra: dict | None = None) -> dict:
    if who.permission.subtree_only:
        households = households[households["grid_code"].str.startswith(who.scope)]
    total = len(households)
    if who.permission.personal is PersonalData.COUNTS:
        h.store.append_audit(audit.new_record(
            key_id=who.key_id, role=who.role, scope=who.scope, action="residents.count", resource=resource,
            fields=(), masked=True, request_id=request_id(request)))
        return {"atlas_version": atlas.version, **(extra or {}), "numberMatched": total,
                "residentsMatched": int(households["size"].fillna(0).sum()), "households": None,
                "note": f"the {who.role} role sees counts only"}
    chunk = households.iloc[page.offset:page.offset + page.limit]
    ids = chunk["id"].tolist()
    # row-level scope (PostGIS RLS): a second line behind the filter above, should it ever be missed
    with h.store.scoped(who.scope if who.permission.subtree_only else SYSTEM_SCOPE):
        res = h.store.residents(household_ids=ids, columns=RESIDENT_COLUMNS) if ids else \
            pd.DataFrame(columns=RESIDENT_COLUMNS)
    people: dict[str, list] = {i: [] for i in ids}
    if len(res):
        res = res.assign(name=mask_names(res["name"].to_numpy(dtype=object)),
                         id_number=mask_ids(res["id_number"].to_numpy(dtype=object)),
                         phone=mask_phones(res["phone"].to_numpy(dtype=object)),
                         age_band=_age_bands(res["birth_date"]))
        for r in res.itertuples(index=False):
            people[r.household_id].append({
                "id": r.id, "name": r.name, "gender": r.gender, "age_band": r.age_band,
                "id_number": r.id_number or None, "phone": r.phone or None, "relation": r.relation})
    bnames = atlas.buildings["name"].to_numpy(dtype=object)
    brow = chunk["_b"].to_numpy() if "_b" in chunk else \
        np.array([atlas.building_row(b) for b in chunk["building_id"]], dtype=int)
    heads = mask_names(chunk["head_name"].to_numpy(dtype=object)) if len(chunk) else []
    items = []
    for (hid, bid, gcode, unit, floor, room, size), head, br in zip(
            chunk[["id", "building_id", "grid_code", "unit", "floor", "room", "size"]].itertuples(
                index=False, name=None), heads, brow):
        bname = bnames[br] if br >= 0 and bnames[br] is not None else f"建筑{int(bid)}"
        room = None if room is None or (isinstance(room, float) and np.isnan(room)) else str(room)
        items.append({
            "id": hid, "building_id": int(bid), "building_name": bname, "grid_code": gcode or None,
            "address": f"{bname} {room}" if room else bname,
            "unit": None if pd.isna(unit) else int(unit), "floor": None if pd.isna(floor) else int(floor),
            "room": room, "size": None if pd.isna(size) else int(size), "head_name": str(head),
            "residents": people[hid]})
    h.store.append_audit(audit.new_record(
        key_id=who.key_id, role=who.role, scope=who.scope, action="residents.read", resource=resource,
        fields=("name", "id_number", "phone", "head_name", "age_band", "address"), masked=True,
        request_id=request_id(request)))
    end = page.offset + len(chunk)
    links = [{"rel": "self", "href": str(request.url)}]
    body = {"atlas_version": atlas.version, **(extra or {}), "numberMatched": total,
            "numberReturned": len(items), "offset": page.offset, "limit": page.limit,
            "residentsReturned": sum(len(x["residents"]) for x in items), "households": items,
            "next": None}
    if end < total:
        token = page.token(end)
        url = request.url.remove_query_params(["offset", "next"]).include_query_params(next=token)
        link = {"rel": "next", "href": str(url), "type": "application/json"}
        if request.method == "POST":
            link.update(method="POST", note="send the same body again")
        links.append(link)
        body["next"] = token
    body["links"] = links
    return body


PAGING = dict(
    limit=Query(None, description="page size (default and maximum: see /capabilities); larger values are clamped"),
    offset=Query(None, description="households to skip"),
    next=Query(None, description="opaque token from the previous page's `next`"),
)


@router.get("/grids/{code}/residents", summary="Households and residents in a division of any level")
def grid_residents(request: Request, code: str = Path(...), limit: int | None = PAGING["limit"],
                   offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
                   atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
                   settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    level_of(code)
    check_scope(who, code)
    households = atlas.households.iloc[slice(*_hh_range(atlas, code))]
    page = _page(limit, offset, next, f"grid:{code}", settings, atlas)
    return _households_page(request, atlas, h, households, page, who, f"grid/{code}", {"code": code})


def _hh_range(atlas: Atlas, code: str) -> tuple[int, int]:
    lo, hi = atlas.grid_positions(code)  # 404 for unknown codes
    return int(atlas._hh_by_grid[lo]), int(atlas._hh_by_grid[hi])


@router.get("/buildings/{building_id}/residents", summary="Households and residents of one building")
def building_residents(request: Request, building_id: int = Path(...), limit: int | None = PAGING["limit"],
                       offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
                       atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
                       settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    row = atlas.building_row(building_id)  # 404
    g = int(atlas.building_grid[row])
    check_scope(who, atlas.grid_codes[g] if g >= 0 else "", "building", shown=building_id)
    idx = atlas._hh_by_building_order[atlas._hh_by_building[row]:atlas._hh_by_building[row + 1]]
    households = atlas.households.iloc[np.sort(idx)]
    page = _page(limit, offset, next, f"building:{int(building_id)}", settings, atlas)
    return _households_page(request, atlas, h, households, page, who, f"building/{int(building_id)}",
                            {"building_id": int(building_id)})


# ---------------------------------------------------------------- polygons
def polygon_from_body(body: Any, crs: str | None, max_vertices: int):
    """A GeoJSON Polygon/MultiPolygon (or a Feature with one) in ``crs`` -> valid storage-CRS polygon."""
    geom = body
    if isinstance(geom, dict) and geom.get("type") == "Feature":
        geom = geom.get("geometry")
    if not isinstance(geom, dict) or "type" not in geom:
        raise InvalidInputError("send a GeoJSON Polygon or MultiPolygon geometry, or a Feature with one "
                                "(coordinates [lon, lat] in CRS84 unless ?crs= says otherwise)")
    gtype = geom.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometryError(f"expected a Polygon or MultiPolygon, got {gtype}",
                                   detail={"reason": f"geometry type {gtype} is not accepted"})
    coords = geom.get("coordinates")
    if not isinstance(coords, list):
        raise InvalidGeometryError(f"{gtype}.coordinates must be an array of rings")
    _check_rings(coords, gtype)
    try:
        shape = shapely.geometry.shape(geom)
    except Exception as exc:  # shapely raises a zoo of types for malformed coordinates
        raise InvalidGeometryError(f"malformed {gtype} coordinates: {exc}",
                                   detail={"reason": f"malformed coordinates: {exc}"}) from None
    polygon = check_polygon(shape, max_vertices)  # type, empty, vertex limit, 3D, NaN, validity
    xy = shapely.get_coordinates(polygon)
    reasons = crs_mod.check_coordinates(xy[:, 0], xy[:, 1], crs)
    bad = np.flatnonzero(reasons != "")
    if bad.size:
        raise InvalidCoordinatesError(f"{bad.size} of {len(xy)} vertices have invalid coordinates: "
                                      f"vertex {int(bad[0])}: {reasons[bad[0]]}",
                                      detail=[{"vertex": int(i), "reason": str(reasons[i])} for i in bad[:100]])
    if crs_mod.parse_crs(crs) not in (crs_mod.InputCRS.CRS84, crs_mod.InputCRS.CGCS2000):
        polygon = check_polygon(crs_mod.transform_geoms(polygon, crs, crs_mod.InputCRS.CGCS2000), max_vertices)
    # winding is not an error in GeoJSON input: normalise to RFC 7946 (exterior CCW)
    return shapely.orient_polygons(polygon, exterior_cw=False)


def _check_rings(coords: list, gtype: str) -> None:
    """GeoJSON rings are closed by repeating the first position; shapely would close them silently."""
    polygons = coords if gtype == "MultiPolygon" else [coords]
    for p, rings in enumerate(polygons):
        for r, ring in enumerate(rings if isinstance(rings, list) else []):
            if not isinstance(ring, list):
                continue
            where = f"polygon {p} ring {r}" if gtype == "MultiPolygon" else f"ring {r}"
            if len(ring) < 4:
                raise InvalidGeometryError(
                    f"malformed {where}: {len(ring)} points; a ring needs at least 4 (three corners, then the "
                    "first repeated to close it)", detail={"reason": f"{where}: too few points"})
            if ring[0] != ring[-1]:
                raise InvalidGeometryError(
                    f"malformed {where}: not closed, its last point must repeat the first ({ring[0]})",
                    detail={"reason": f"{where}: the LinearRing is not closed"})


def check_personal_area(polygon, max_km2: float) -> None:
    """Refuse (413, before anything is read or audited) a drawn area larger than the published limit."""
    km2 = crs_mod.area_m2(polygon) / 1e6
    if km2 > max_km2:
        raise LimitExceededError(
            f"the polygon covers {km2:.2f} km2, over the limit of {max_km2:g} km2 for personal-data searches "
            "(max_personal_area_km2 at /capabilities); draw a smaller area, or read a division's residents "
            "with GET /grids/{code}/residents", detail={"area_km2": round(km2, 3), "max_personal_area_km2": max_km2})


def _key(polygon) -> str:
    return "polygon:" + hashlib.sha256(shapely.to_wkb(shapely.normalize(polygon))).hexdigest()[:16]


@router.post("/residents/search", summary="Households and residents whose building lies in a drawn polygon")
def search(request: Request, body: Any = Body(..., examples=[{"type": "Polygon", "coordinates": [
        [[117.55, 34.86], [117.56, 34.86], [117.56, 34.87], [117.55, 34.87], [117.55, 34.86]]]}]),
           crs: str | None = Depends(crs_query), limit: int | None = PAGING["limit"],
           offset: int | None = PAGING["offset"], next: str | None = PAGING["next"],
           atlas: Atlas = Depends(atlas_at_dep), h: AtlasHolder = Depends(holder),
           settings: Settings = Depends(settings_dep), who: Principal = Depends(_people)) -> dict:
    polygon = polygon_from_body(body, crs, settings.max_polygon_vertices)
    check_personal_area(polygon, settings.max_personal_area_km2)
    rows = atlas.household_rows_in_polygon(polygon, settings.max_polygon_vertices)
    page = _page(limit, offset, next, _key(polygon), settings, atlas)
    buildings = len(atlas.buildings_in_polygon(polygon, settings.max_polygon_vertices))
    # only what lies in the caller's scope is returned (filtered in _households_page)
    return _households_page(request, atlas, h, atlas.households.iloc[rows], page, who,
                            f"polygon/{_key(polygon)}", {"buildingsMatched": buildings})
