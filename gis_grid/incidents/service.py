"""Create, advance and read cases in a store: the library side of ``/incidents``.

Every write validates completely first, then lands in one store transaction,
so a refused request leaves nothing half-written.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .. import crs as crs_mod
from ..atlas import Atlas
from ..errors import InvalidCoordinatesError, NotFoundError
from ..store import Store
from . import model
from .model import Event, Incident


def _row(case: Incident) -> dict:
    d = case.to_dict()
    return d


def _case(row: dict) -> Incident:
    fields = {k: row.get(k) for k in Incident.__dataclass_fields__ if k != "events"}
    for k in ("satisfaction", "building_id"):
        v = fields.get(k)
        fields[k] = None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
    fields["rework_count"] = int(fields.get("rework_count") or 0)
    fields["version"] = int(fields.get("version") or 1)
    for k, v in list(fields.items()):
        if isinstance(v, float) and np.isnan(v) and k not in ("lon", "lat"):
            fields[k] = None
    events = tuple(Event(**{k: e.get(k) for k in ("action", "at", "actor", "role", "note")})
                   for e in (row.get("events") or []))
    return Incident(**fields, events=events)


def new_id() -> str:
    return "E" + secrets.token_hex(6)


def create(store: Store, atlas: Atlas, *, lon: float, lat: float, crs=None, now: datetime | None = None,
           **fields) -> Incident:
    """The collect step: locate the point (outside the district -> InvalidCoordinatesError), validate, store."""
    x, y = crs_mod.validate_coordinates(lon, lat, crs)
    slon, slat = crs_mod.to_storage(x, y, crs)
    slon, slat = float(np.atleast_1d(slon)[0]), float(np.atleast_1d(slat)[0])
    where = atlas.locate_one(slon, slat)
    if where.outside:
        raise InvalidCoordinatesError(f"the point ({lon}, {lat}) is outside the district; cases are located "
                                      "automatically and must fall inside a base grid",
                                      detail=[{"row": 0, "reason": "outside the district"}])
    case = model.new_incident(id=new_id(), lon=slon, lat=slat, grid_code=where.grid[0],
                              building_id=(where.building or {}).get("id"), now=now, **fields)
    store.insert_incident(_row(case))
    return case


def get(store: Store, incident_id: str) -> Incident:
    df = store.incidents(ids=[str(incident_id)])
    if df.empty:
        raise NotFoundError(f"no incident with id {incident_id!r}")
    return _case(df.iloc[0].to_dict())


def transition(store: Store, incident_id: str, action, *, now: datetime | None = None, **kw) -> Incident:
    """Apply one action (see :func:`model.apply`) and store the result atomically (optimistic lock)."""
    case = get(store, incident_id)
    new = model.apply(case, action, now=now or datetime.now(timezone.utc), **kw)
    store.update_incident(_row(new), expected_version=case.version)
    return new


def view(case: Incident, at: datetime | None = None, ladder: model.SupervisionLadder = model.DEFAULT_LADDER,
         atlas: Atlas | None = None) -> dict:
    """The public JSON form of a case, with its supervision colour at ``at``."""
    d = case.to_dict()
    d["colour"] = case.colour(at, ladder)
    d["category_name"] = model.CATEGORIES[case.category].name_zh
    d["department_name"] = model.DEPARTMENTS[case.department].name_zh
    if atlas is not None:
        g = case.grid_code
        d["community_code"], d["street_code"] = g[:12], g[:9]
    return d


def frame_colours(df: pd.DataFrame, at: datetime | None = None,
                  ladder: model.SupervisionLadder = model.DEFAULT_LADDER) -> np.ndarray:
    """Vectorised supervision colour of a frame of cases (object array; None for cancelled)."""
    at = pd.Timestamp(at or datetime.now(timezone.utc))
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    t0 = pd.to_datetime(df["dispatched"], utc=True, format="ISO8601")
    t1 = pd.to_datetime(df["deadline"], utc=True, format="ISO8601")
    tc = pd.to_datetime(df["closed"], utc=True, format="ISO8601")
    done = df["status"].isin([model.Status.CLOSED.value, model.Status.ASSESSED.value]).to_numpy()
    t = np.where(done & tc.notna().to_numpy(), tc.to_numpy(), np.datetime64(at.tz_localize(None), "ns"))
    t = pd.to_datetime(t, utc=True)
    span = (t1 - t0).dt.total_seconds().to_numpy()
    used = (t - t0).total_seconds().to_numpy() if hasattr(t - t0, "total_seconds") else \
        (t - t0).dt.total_seconds().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(span > 0, used / span, np.inf)
    out = np.full(len(df), model.Colour.GREEN.value, dtype=object)
    out[u >= ladder.blue_from] = model.Colour.BLUE.value
    out[u >= ladder.yellow_from] = model.Colour.YELLOW.value
    out[u >= ladder.red_from] = model.Colour.RED.value
    out[t0.isna().to_numpy() | t1.isna().to_numpy()] = model.Colour.GREEN.value
    out[(df["status"] == model.Status.CANCELLED.value).to_numpy()] = None
    return out
