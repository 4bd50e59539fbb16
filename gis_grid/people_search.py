"""Who lives here: households with their residents in a division, a building or a drawn area.

The library side of ``/grids/{code}/residents``, ``/buildings/{id}/residents`` and
``POST /residents/search``. Personal fields always leave masked, whatever the role: names
``张*``, ID numbers ``370402********1234``, phones ``138****5678``; the birth date becomes a
10-year ``age_band``. Roles that may see counts only get the counts without the records;
every read is audited. A drawn area is capped (:func:`check_personal_area`) so that a search
cannot sweep up a whole district's residents.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date

import numpy as np
import pandas as pd
import shapely

from . import crs as crs_mod
from . import geojson_input
from .atlas import Atlas
from .errors import ConflictError, InvalidInputError, LimitExceededError, PermissionDeniedError
from .hierarchy import level_of
from .masking import mask_ids, mask_names, mask_phones
from .security import audit
from .security.roles import PersonalData, Principal, check_visible
from .store import SYSTEM_SCOPE, Store

RESIDENT_COLUMNS = ["id", "household_id", "name", "gender", "birth_date", "id_number", "phone", "relation"]


def check_may_read(who: Principal) -> None:
    if who.permission.personal is PersonalData.NONE:
        raise PermissionDeniedError(f"the {who.role} role may not read who lives where")


# ---------------------------------------------------------------- paging
class Page:
    """One page of a query; its tokens are bound to the query and the atlas version."""

    def __init__(self, offset: int, limit: int, key: str, version: int):
        self.offset, self.limit, self.key, self.version = offset, limit, key, version

    def token(self, offset: int) -> str:
        raw = json.dumps({"o": offset, "l": self.limit, "k": self.key, "v": self.version}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def page(limit: int | None, offset: int | None, next_token: str | None, key: str, atlas: Atlas, *,
         default_size: int, max_size: int) -> Page:
    """The page asked for by ``limit``/``offset`` or a ``next`` token of query ``key``."""
    if limit is not None and limit <= 0:
        raise InvalidInputError(f"limit must be a positive integer (got {limit}); "
                                f"the default is {default_size}, the maximum {max_size}")
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
            # the rows behind the offsets may have moved: a page from the new atlas would skip or repeat some
            raise ConflictError(f"the atlas changed (version {v} -> {atlas.version}) since this page "
                                "was issued: start again without `next`")
        if offset is None or offset == 0:
            offset = off
    lim = limit if limit is not None else (tok_limit or default_size)
    return Page(offset or 0, min(lim, max_size), key, atlas.version)


# ---------------------------------------------------------------- what to search
def grid_households(atlas: Atlas, who: Principal, code: str) -> pd.DataFrame:
    """Households of a division of any level (NotFoundError when unknown or outside the key's scope)."""
    level_of(code)
    check_visible(who, code)
    lo, hi = atlas.grid_positions(code)
    return atlas.households.iloc[int(atlas._hh_by_grid[lo]):int(atlas._hh_by_grid[hi])]


def building_households(atlas: Atlas, who: Principal, building_id: int) -> pd.DataFrame:
    """Households of one building; one outside the key's scope answers like a missing building."""
    row = atlas.building_row(building_id)
    g = int(atlas.building_grid[row])
    check_visible(who, atlas.grid_codes[g] if g >= 0 else "", "building", shown=building_id)
    idx = atlas._hh_by_building_order[atlas._hh_by_building[row]:atlas._hh_by_building[row + 1]]
    return atlas.households.iloc[np.sort(idx)]


def buildings_matched(atlas: Atlas, who: Principal, area, max_vertices: int) -> int:
    """Buildings of a drawn polygon the key sees: a count outside its scope would say how many
    buildings stand where it may not look."""
    rows = atlas.buildings_in_polygon(area, max_vertices)
    scope = who.confined_to
    if scope is None or not len(rows):
        return int(len(rows))
    g = np.asarray(atlas.building_grid)[rows]
    codes = np.asarray(atlas.grid_codes, dtype=object)
    return sum(1 for i in g if i >= 0 and str(codes[i]).startswith(scope))


def search_area(body, crs: str | None, *, max_vertices: int, max_km2: float):
    """The drawn area of a search, in the storage CRS, refused when over the personal-data area limit."""
    area = geojson_input.polygon(body, crs, max_vertices)
    check_personal_area(area, max_km2)
    return area


def check_personal_area(polygon, max_km2: float) -> None:
    """Refuse (before anything is read or audited) a drawn area larger than the published limit."""
    km2 = crs_mod.area_m2(polygon) / 1e6
    if km2 > max_km2:
        raise LimitExceededError(
            f"the polygon covers {km2:.2f} km2, over the limit of {max_km2:g} km2 for personal-data searches "
            "(max_personal_area_km2 at /capabilities); draw a smaller area, or read a division's residents "
            "with GET /grids/{code}/residents", detail={"area_km2": round(km2, 3), "max_personal_area_km2": max_km2})


def polygon_key(polygon) -> str:
    """The query key of a drawn area: the same area drawn from another vertex pages on."""
    return "polygon:" + hashlib.sha256(shapely.to_wkb(shapely.normalize(polygon))).hexdigest()[:16]


# ---------------------------------------------------------------- the answer
def age_bands(birth: pd.Series, today: date | None = None) -> list[str | None]:
    """Birth dates -> 10-year bands (``30-39``, ``90+``); None when unknown or in the future."""
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


def households_page(store: Store, atlas: Atlas, households: pd.DataFrame, page: Page, who: Principal, *,
                    resource: str, request_id: str | None = None, extra: dict | None = None) -> dict:
    """One page of ``households`` with their masked residents, audited as a read of ``resource``.

    Only what lies in the caller's scope is counted and returned. ``next`` is the token of the
    following page (None on the last); counts-only roles get ``households: None``.
    """
    if who.permission.subtree_only:
        households = households[households["grid_code"].str.startswith(who.scope)]
    total = len(households)
    if who.permission.personal is PersonalData.COUNTS:
        store.append_audit(audit.new_record(
            key_id=who.key_id, role=who.role, scope=who.scope, action="residents.count", resource=resource,
            fields=(), masked=True, request_id=request_id))
        return {"atlas_version": atlas.version, **(extra or {}), "numberMatched": total,
                "residentsMatched": int(households["size"].fillna(0).sum()), "households": None,
                "note": f"the {who.role} role sees counts only"}
    chunk = households.iloc[page.offset:page.offset + page.limit]
    ids = chunk["id"].tolist()
    # row-level scope (PostGIS RLS): a second line behind the filter above, should it ever be missed
    with store.scoped(who.scope if who.permission.subtree_only else SYSTEM_SCOPE):
        res = store.residents(household_ids=ids, columns=RESIDENT_COLUMNS) if ids else \
            pd.DataFrame(columns=RESIDENT_COLUMNS)
    people: dict[str, list] = {i: [] for i in ids}
    if len(res):
        res = res.assign(name=mask_names(res["name"].to_numpy(dtype=object)),
                         id_number=mask_ids(res["id_number"].to_numpy(dtype=object)),
                         phone=mask_phones(res["phone"].to_numpy(dtype=object)),
                         age_band=age_bands(res["birth_date"]))
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
    store.append_audit(audit.new_record(
        key_id=who.key_id, role=who.role, scope=who.scope, action="residents.read", resource=resource,
        fields=("name", "id_number", "phone", "head_name", "age_band", "address"), masked=True,
        request_id=request_id))
    end = page.offset + len(chunk)
    return {"atlas_version": atlas.version, **(extra or {}), "numberMatched": total,
            "numberReturned": len(items), "offset": page.offset, "limit": page.limit,
            "residentsReturned": sum(len(x["residents"]) for x in items), "households": items,
            "next": page.token(end) if end < total else None}
