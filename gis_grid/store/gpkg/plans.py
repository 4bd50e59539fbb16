"""Plan storage and the atomic apply for the GeoPackage store (plain SQL on its connection).

Tables, created on the first planning write (older stores lack them):

* ``plans``: drafts with their scope, the atlas version they were drawn on and the
  new grids as a GeoJSON FeatureCollection; once applied, the impact as it stood then;
* ``grid_code_registry``: every retired base-grid code, so it is never issued again;
* ``grid_changes``: the audit log, one row per applied plan (who moved, versions).
"""
from __future__ import annotations

import json

from ...crs import STORAGE_EPSG
from ...errors import ConflictError, NotFoundError, PreconditionError
from ..base import plan_key
from . import format as gpkg

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
  id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, base_version INTEGER NOT NULL,
  created_at TEXT NOT NULL, source TEXT NOT NULL, note TEXT, status TEXT NOT NULL DEFAULT 'draft',
  replaces TEXT NOT NULL, grids TEXT NOT NULL, applied_at TEXT, applied_version INTEGER, impact TEXT);
CREATE TABLE IF NOT EXISTS grid_code_registry (
  code TEXT PRIMARY KEY, status TEXT NOT NULL, changed_at TEXT NOT NULL, plan_id INTEGER);
CREATE TABLE IF NOT EXISTS grid_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, plan_id INTEGER, applied_at TEXT NOT NULL,
  from_version INTEGER NOT NULL, to_version INTEGER NOT NULL, scope TEXT, summary TEXT NOT NULL)
"""
_TABLES = ("plans", "grid_code_registry", "grid_changes")


def _has(c, table: str) -> bool:
    return c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None


def ensure(c) -> None:
    """Create the planning tables (call inside a write transaction)."""
    if all(_has(c, t) for t in _TABLES):
        if not any(r[1] == "impact" for r in c.execute("PRAGMA table_info(plans)")):
            c.execute("ALTER TABLE plans ADD COLUMN impact TEXT")  # a plans table from before impacts were kept
        return
    for stmt in filter(str.strip, _SCHEMA.split(";")):
        c.execute(stmt)
    for t in _TABLES:
        gpkg.register(c, t, geometry_column=None)


def _write(store, fn):
    c = store.conn
    c.execute("BEGIN IMMEDIATE")
    try:
        ensure(c)
        out = fn(c)
        c.execute("COMMIT")
        return out
    except BaseException:
        c.execute("ROLLBACK")
        raise


def _plan_row(row) -> dict:
    keys = ("id", "scope", "base_version", "created_at", "source", "note", "status", "replaces", "grids",
            "applied_at", "applied_version", "impact")
    d = dict(zip(keys, row))
    d["replaces"] = json.loads(d["replaces"])
    d["grids"] = json.loads(d["grids"])
    d["impact"] = json.loads(d["impact"]) if d.get("impact") else None
    return d


def save_plan(store, record: dict) -> int:
    def go(c):
        cur = c.execute("INSERT INTO plans (scope, base_version, created_at, source, note, status, replaces, grids)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (record["scope"], int(record["base_version"]), record["created_at"], record.get("source", "geojson"),
                         record.get("note", ""), record.get("status", "draft"),
                         json.dumps(list(record["replaces"])), json.dumps(record["grids"], ensure_ascii=False)))
        return int(cur.lastrowid)
    return _write(store, go)


def list_plans(store, scope: str | None = None) -> list[dict]:
    c = store.conn
    if not _has(c, "plans"):
        return []
    sql = "SELECT * FROM plans"
    params: tuple = ()
    if scope:
        sql += " WHERE scope LIKE ?"
        params = (scope + "%",)
    return [_plan_row(r) for r in c.execute(sql + " ORDER BY id", params).fetchall()]


def get_plan(store, plan_id: int) -> dict:
    c = store.conn
    row = c.execute("SELECT * FROM plans WHERE id = ?", (plan_key(plan_id),)).fetchone() if _has(c, "plans") else None
    if row is None:
        raise NotFoundError(f"no plan with id {plan_id}")
    return _plan_row(row)


def delete_plan(store, plan_id: int) -> None:
    def go(c):
        row = c.execute("SELECT status FROM plans WHERE id = ?", (plan_key(plan_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no plan with id {plan_id}")
        if row[0] != "draft":
            raise ConflictError(f"plan {plan_id} is {row[0]}: only a draft can be deleted (an applied plan is "
                                "part of the grids' history)", detail={"status": row[0]})
        c.execute("DELETE FROM plans WHERE id = ? AND status = 'draft'", (plan_key(plan_id),))
    _write(store, go)


def grid_codes_ever(store, prefix: str) -> list[str]:
    """Every base-grid code ever issued under ``prefix``: current, historical and retired."""
    c = store.conn
    codes = {r[0] for r in c.execute("SELECT DISTINCT code FROM divisions WHERE level='grid' AND code LIKE ?",
                                     (prefix + "%",))}
    if _has(c, "grid_code_registry"):
        codes |= {r[0] for r in c.execute("SELECT code FROM grid_code_registry WHERE code LIKE ?", (prefix + "%",))}
    return sorted(codes)


def grid_changes(store, code: str | None = None) -> list[dict]:
    c = store.conn
    if not _has(c, "grid_changes"):
        return []
    rows = c.execute("SELECT id, plan_id, applied_at, from_version, to_version, scope, summary FROM grid_changes"
                     " ORDER BY id").fetchall()
    out = []
    for r in rows:
        d = dict(zip(("id", "plan_id", "applied_at", "from_version", "to_version", "scope"), r[:6]))
        d["summary"] = json.loads(r[6])
        if code is None or code in json.dumps(d["summary"]):
            out.append(d)
    return out


def _rehome_cases(store, c, rehoming) -> int:
    """Move the cases whose point the redraw puts in another grid (see gis_grid.planning.rehome)."""
    import pandas as pd
    store._ensure_incidents(c)  # older tables get reported_grid_code first
    x0, y0, x1, y1 = rehoming.bbox
    cols = ("id", "lon", "lat", "grid_code", "version", "events")
    rows = c.execute(f"SELECT {', '.join(cols)} FROM incidents WHERE lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?",
                     (x0, x1, y0, y1)).fetchall()
    cases = pd.DataFrame(rows, columns=list(cols))
    moves = rehoming.moves(cases)
    c.executemany("UPDATE incidents SET reported_grid_code = COALESCE(reported_grid_code, grid_code), "
                  "grid_code = ?, version = ?, events = ? WHERE id = ?",
                  [(n, int(v), json.dumps(e, ensure_ascii=False), i)
                   for i, n, v, e in zip(moves["id"], moves["new"], moves["version"], moves["events"])])
    if len(moves):  # the case tables cached per incidents version must reload
        store._bump_incidents(c)
    return int(len(moves))


def apply_changeset(store, cs, expected_version: int, audit: dict | None = None) -> int:
    """Write a :class:`~gis_grid.planning.changeset.ChangeSet` in one transaction; returns the new version.

    Raises :class:`PreconditionError` (nothing written) when the store's atlas version is
    not ``expected_version``: of two applies drawn on the same version exactly one wins,
    because ``BEGIN IMMEDIATE`` serialises them and the loser sees the bumped version.
    """
    c = store.conn
    c.execute("BEGIN IMMEDIATE")
    try:
        ensure(c)
        current = int(c.execute("SELECT value FROM meta WHERE key='atlas_version'").fetchone()[0])
        if current != int(expected_version):
            raise PreconditionError(
                f"the atlas is at version {current}, not {expected_version}: the plan was drawn on an older "
                "state; re-read it (GET /plans/{id}), re-validate and retry with If-Match: the current version",
                detail={"current_version": current, "expected_version": int(expected_version)})
        stamp = cs.valid_from
        c.executemany("UPDATE divisions SET valid_to = ? WHERE level='grid' AND code = ? AND valid_to IS NULL",
                      [(stamp, code) for code in cs.close_codes])
        ins = cs.insert.copy()
        if len(ins):
            ins["geom"] = gpkg.encode(ins.pop("geometry").to_numpy(), STORAGE_EPSG)
            cols = list(ins.columns)
            rows = ins.astype(object).where(ins.notna(), None).itertuples(index=False, name=None)
            c.executemany(f"INSERT INTO divisions ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        store._mid_apply()
        moves = [(str(n), int(b)) for b, n in zip(cs.building_moves["id"], cs.building_moves["new"])]
        c.executemany("UPDATE buildings SET grid_code = ? WHERE id = ?", moves)
        c.executemany("UPDATE households SET grid_code = ? WHERE building_id = ?", moves)
        c.executemany("UPDATE workers SET grid_code = ? WHERE id = ?",
                      [(new, w) for w, new in cs.worker_assignment.items()])
        if cs.cases is not None and store._has_incidents():
            cs.audit["cases_rehomed"] = _rehome_cases(store, c, cs.cases)
        c.executemany("INSERT OR REPLACE INTO grid_code_registry VALUES (?, 'retired', ?, ?)",
                      [(code, stamp, cs.plan_id) for code in cs.retired])
        new_version = current + 1
        c.execute("INSERT INTO grid_changes (plan_id, applied_at, from_version, to_version, scope, summary)"
                  " VALUES (?,?,?,?,?,?)", (cs.plan_id, stamp, current, new_version, cs.audit.get("scope"),
                                            json.dumps(cs.audit, ensure_ascii=False)))
        if cs.plan_id is not None:
            c.execute("UPDATE plans SET status='applied', applied_at=?, applied_version=?, impact=? WHERE id=?",
                      (stamp, new_version, None if cs.impact is None else json.dumps(cs.impact, ensure_ascii=False),
                       cs.plan_id))
        gpkg.update_extent(c, "divisions")
        c.execute("INSERT OR REPLACE INTO meta VALUES ('atlas_version', ?)", (str(new_version),))
        c.execute("INSERT OR REPLACE INTO meta VALUES ('updated_at', ?)", (stamp,))
        if audit is not None:  # committed with the change, or not at all
            from ...security.audit import committed
            from .security import append_audit_in
            append_audit_in(c, committed(audit, current, new_version))
        c.execute("COMMIT")
        return new_version
    except BaseException:
        c.execute("ROLLBACK")
        raise
