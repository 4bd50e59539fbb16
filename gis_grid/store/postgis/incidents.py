"""Cases (社情民意事件) in the PostGIS store: one transaction per write, version-checked updates.

Every write bumps ``meta.incidents_version`` in the same transaction, with an
atomic ``value + 1`` so concurrent writers never lose a bump (aggregations use
it as a cache key).
"""
from __future__ import annotations

import json

import pandas as pd

from ...errors import ConflictError, NotFoundError
from ...incidents.model import event_log
from ..base import INCIDENT_COLUMNS, with_reported_grid

_BUMP = ("INSERT INTO meta VALUES ('incidents_version', '1') "
         "ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text")
_POINT = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4490)"


def read(store, ids, cols: list[str], grid_codes=None) -> pd.DataFrame:
    df = store._filtered(f"SELECT {', '.join(cols)} FROM incidents", id=(ids, str), grid_code=(grid_codes, str))
    if "events" in df.columns and len(df):
        df["events"] = [event_log(e) for e in df["events"]]
    return df


def _values(row: dict) -> dict:
    """One case as adaptable Python values (numpy scalars and NaN out, events as JSON text)."""
    df = with_reported_grid(pd.DataFrame([row]))[list(INCIDENT_COLUMNS)]
    values = df.astype(object).where(df.notna(), None).iloc[0].to_dict()
    values = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()}
    e = values["events"]
    values["events"] = e if e is None or isinstance(e, str) else json.dumps(e, ensure_ascii=False)
    return values


def insert(store, row: dict) -> None:
    v = _values(row)
    cols = list(INCIDENT_COLUMNS)
    with store.transaction() as cur:
        cur.execute(f"INSERT INTO incidents (geom, {', '.join(cols)}) VALUES ({_POINT}, "
                    f"{', '.join(f'%({c})s' for c in cols)}) ON CONFLICT (id) DO NOTHING", v)
        if cur.rowcount != 1:
            raise ConflictError(f"an incident with id {row['id']!r} exists")
        cur.execute(_BUMP)


def update(store, row: dict, expected_version: int) -> None:
    v = _values(row)
    sets = ", ".join(f"{c} = %({c})s" for c in INCIDENT_COLUMNS)
    with store.transaction() as cur:
        # under READ COMMITTED a concurrent update of the row makes this one wait and then
        # re-check the version against the committed row: exactly one of two writers wins
        cur.execute(f"UPDATE incidents SET geom = {_POINT}, {sets} WHERE id = %(_id)s AND version = %(_expected)s",
                    {**v, "_id": str(row["id"]), "_expected": int(expected_version)})
        if cur.rowcount != 1:
            if cur.execute("SELECT 1 FROM incidents WHERE id = %s", (str(row["id"]),)).fetchone() is None:
                raise NotFoundError(f"no incident with id {row['id']!r}")
            raise ConflictError(f"incident {row['id']!r} changed since version {expected_version}; "
                                "reload it and retry")
        cur.execute(_BUMP)


def replace(store, df: pd.DataFrame) -> None:
    import shapely
    df = with_reported_grid(df)[list(INCIDENT_COLUMNS)]
    geom = shapely.points(df["lon"].to_numpy(dtype=float), df["lat"].to_numpy(dtype=float))
    with store.system_transaction("replace_incidents") as cur:
        store.begin_replace(cur, "incidents")
        store.copy(cur, "incidents", df.assign(geometry=geom))
        store.end_replace(cur)
        cur.execute(_BUMP)
