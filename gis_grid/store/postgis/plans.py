"""Plan storage and the atomic, version-checked apply for the PostGIS store.

History is written through ``gis_grid_record_apply`` (migration 0004), which the app
role may call but whose tables it may not update or delete. The apply locks the ``atlas_version`` row first (``SELECT ... FOR UPDATE``): of two
applies drawn on the same version the second waits, then reads the bumped
version and fails with PreconditionError, having written nothing. The new
version is announced with NOTIFY in the same transaction, so replicas hear of
it exactly when it is committed.
"""
from __future__ import annotations

import json

from psycopg.types.json import Json as _Json

from ...errors import ConflictError, NotFoundError, PreconditionError
from ..base import plan_key

def Json(obj) -> _Json:
    return _Json(obj, dumps=lambda o: json.dumps(o, ensure_ascii=False))


_PLAN_COLS = ("id", "scope", "base_version", "created_at", "source", "note", "status", "replaces", "grids",
              "applied_at", "applied_version", "impact")


def save_plan(store, record: dict) -> int:
    with store.transaction() as cur:
        cur.execute("INSERT INTO plans (scope, base_version, created_at, source, note, status, replaces, grids) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (record["scope"], int(record["base_version"]), record["created_at"],
                     record.get("source", "geojson"), record.get("note", ""), record.get("status", "draft"),
                     Json(list(record["replaces"])), Json(record["grids"])))
        return int(cur.fetchone()[0])


def list_plans(store, scope: str | None = None) -> list[dict]:
    query, params = f"SELECT {', '.join(_PLAN_COLS)} FROM plans", ()
    if scope:
        query, params = query + " WHERE starts_with(scope, %s)", (str(scope),)
    with store.transaction() as cur:
        return [dict(zip(_PLAN_COLS, r)) for r in cur.execute(query + " ORDER BY id", params).fetchall()]


def get_plan(store, plan_id: int) -> dict:
    with store.transaction() as cur:
        row = cur.execute(f"SELECT {', '.join(_PLAN_COLS)} FROM plans WHERE id = %s", (plan_key(plan_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"no plan with id {plan_id}")
    return dict(zip(_PLAN_COLS, row))


def delete_plan(store, plan_id: int) -> None:
    with store.transaction() as cur:
        row = cur.execute("SELECT status FROM plans WHERE id = %s FOR UPDATE", (plan_key(plan_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no plan with id {plan_id}")
        if row[0] != "draft":
            raise ConflictError(f"plan {plan_id} is {row[0]}: only a draft can be deleted (an applied plan is "
                                "part of the grids' history)", detail={"status": row[0]})
        cur.execute("DELETE FROM plans WHERE id = %s", (plan_key(plan_id),))


def grid_codes_ever(store, prefix: str) -> list[str]:
    with store.transaction() as cur:
        rows = cur.execute("SELECT code FROM divisions WHERE level = 'grid' AND starts_with(code, %(p)s) "
                           "UNION SELECT code FROM grid_code_registry WHERE starts_with(code, %(p)s)",
                           {"p": str(prefix)}).fetchall()
    return sorted(r[0] for r in rows)


def grid_changes(store, code: str | None = None) -> list[dict]:
    keys = ("id", "plan_id", "applied_at", "from_version", "to_version", "scope", "summary")
    with store.transaction() as cur:
        rows = cur.execute(f"SELECT {', '.join(keys)} FROM grid_changes ORDER BY id").fetchall()
    out = [dict(zip(keys, r)) for r in rows]
    return [d for d in out if code is None or code in json.dumps(d["summary"])]


def _rehome_cases(cur, rehoming) -> int:
    """Move the cases whose point the redraw puts in another grid (see gis_grid.planning.rehome);
    the candidates are locked, so a concurrent transition waits and then sees the new version."""
    import pandas as pd
    from .incidents import _BUMP
    cols = ("id", "lon", "lat", "grid_code", "version", "events")
    rows = cur.execute(f"SELECT {', '.join(cols)} FROM incidents WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4490) "
                       "FOR UPDATE", rehoming.bbox).fetchall()
    cases = pd.DataFrame(rows, columns=list(cols))
    moves = rehoming.moves(cases)
    if not len(moves):
        return 0
    cur.execute("UPDATE incidents i SET reported_grid_code = COALESCE(i.reported_grid_code, i.grid_code), "
                "grid_code = m.new, version = m.version, events = m.events::json "
                "FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[]) AS m(id, new, version, events) "
                "WHERE i.id = m.id",
                ([str(i) for i in moves["id"]], [str(n) for n in moves["new"]], [int(v) for v in moves["version"]],
                 [json.dumps(e, ensure_ascii=False) for e in moves["events"]]))
    cur.execute(_BUMP)  # the case tables cached per incidents version must reload
    return int(len(moves))


def apply_changeset(store, cs, expected_version: int, audit: dict | None = None) -> int:
    stamp = cs.valid_from
    plan_id = None if cs.plan_id is None else int(cs.plan_id)
    moves = cs.building_moves
    ids = [int(b) for b in moves["id"]]
    new = [str(n) for n in moves["new"]]
    with store.system_transaction("apply_changeset") as cur:
        current = store.locked_atlas_version(cur)
        if current != int(expected_version):
            raise PreconditionError(
                f"the atlas is at version {current}, not {expected_version}: the plan was drawn on an older "
                "state; re-read it (GET /plans/{id}), re-validate and retry with If-Match: the current version",
                detail={"current_version": current, "expected_version": int(expected_version)})
        cur.execute("SELECT gis_grid_close_grids(%s, %s)", ([str(c) for c in cs.close_codes], stamp))
        store.copy(cur, "divisions", cs.insert)
        store._mid_apply()
        if ids:
            moved = "unnest(%s::bigint[], %s::text[]) AS m(id, new)"
            cur.execute(f"UPDATE buildings b SET grid_code = m.new FROM {moved} WHERE b.id = m.id", (ids, new))
            cur.execute(f"UPDATE households h SET grid_code = m.new FROM {moved} WHERE h.building_id = m.id",
                        (ids, new))
            cur.execute("UPDATE residents r SET grid_code = h.grid_code FROM households h "
                        "WHERE h.id = r.household_id AND h.building_id = ANY(%s) "
                        "AND r.grid_code IS DISTINCT FROM h.grid_code", (ids,))
        if cs.worker_assignment:
            cur.execute("UPDATE workers w SET grid_code = m.new FROM unnest(%s::text[], %s::text[]) AS m(id, new) "
                        "WHERE w.id = m.id", (list(cs.worker_assignment), list(cs.worker_assignment.values())))
        if cs.cases is not None:
            cs.audit["cases_rehomed"] = _rehome_cases(cur, cs.cases)
        # history (retired codes, the change log) is written by the owner's function:
        # the app role may not write it itself (migration 0004)
        new_version = cur.execute("SELECT gis_grid_record_apply(%s, %s, %s, %s, %s, %s)",
                                  (stamp, plan_id, current, cs.audit.get("scope"),
                                   Json(cs.audit), [str(c) for c in cs.retired])).fetchone()[0]
        if plan_id is not None and cs.impact is not None:  # the applied plan's impact, read back as of its apply
            cur.execute("UPDATE plans SET impact = %s WHERE id = %s", (Json(cs.impact), plan_id))
        store.set_meta(cur, {"updated_at": stamp})
        store.publish_atlas_version(cur, new_version)
        if audit is not None:  # committed with the change, or not at all
            from ...security.audit import committed
            from .security import append_audit_in
            append_audit_in(store, cur, committed(audit, current, new_version))
    return new_version

