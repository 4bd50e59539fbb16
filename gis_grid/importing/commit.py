"""Build the store's next state from an imported layer, check it, and commit it.

The candidate state (the imported layer plus everything it drags along: buildings'
and households' grid codes) is checked with the same functions as ``gis-grid check``
before anything is written; on a violation nothing is. Grids go through the planning
apply (``Store.apply_changeset``: old versions closed, new ones inserted, buildings,
households and workers moved, audit row, version check), buildings and households
through ``Store.replace_all``; both bump the atlas version a running service watches.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import shapely

from .. import crs as crs_mod
from ..budget import Budget, unlimited
from ..cellindex import OUTSIDE, CellIndex
from ..coverage import AREA_TOLERANCE_M2, Report, check_buildings, check_divisions, check_people
from ..errors import ConflictError, GisGridError, InvalidInputError, NotFoundError
from .layers import GEOMETRY, SCHEMAS, Parsed, map_columns, parse_buildings, parse_grids, parse_households
from .reader import ImportFileError, SourceFrame, describe, read_source

LAYERS = tuple(SCHEMAS)


class ImportRejectedError(InvalidInputError):
    """Features break the layer's rules; ``detail`` lists every one as {row, feature, reason}."""


class CoverageRefusedError(GisGridError):
    """The imported layer would break 区不漏地/地不漏房/房不漏户/户不漏人; ``report`` says where."""

    def __init__(self, message: str, report: Report):
        super().__init__(message, detail=report.violations)
        self.report = report


def import_layer(store, layer: str, path, *, crs=None, src_layer: str | None = None,
                 dry_run: bool = False, audit: dict | None = None, budget: Budget | None = None) -> dict:
    """Replace ``layer`` of ``store`` with the file at ``path``; returns a summary.

    Raises ImportFileError (unreadable file, CRS), MissingColumnsError, ImportRejectedError
    (per-feature problems), CoverageRefusedError (the result would fail the check),
    ConflictError (the store changed meanwhile) or BudgetExceededError (past ``budget``);
    in every case nothing is written. ``audit``: the import's audit record, committed in the
    same transaction as the data (its result gets the summary).
    """
    if layer not in LAYERS:
        raise InvalidInputError(f"unknown layer {layer!r}; import one of {', '.join(LAYERS)}")
    budget = unlimited(budget, "the import")
    budget.step("reading the file")
    base_version = store.atlas_version()
    source = read_source(path, layer, src_layer=src_layer, crs=crs)
    if source.frame.empty:
        raise ImportFileError(f"{source.path.name} has no features")
    df, ignored = map_columns(source.frame, layer, source.path.name)
    if GEOMETRY[layer] and ("geometry" not in df.columns or df["geometry"].isna().all()):
        raise ImportFileError(f"{source.path.name} has no geometries: the {layer} layer needs polygons")
    budget.step("reading the store")
    state = {"divisions": store.divisions(), "buildings": store.buildings(), "households": store.households(),
             "residents": store.residents(columns=["id", "household_id"])}
    summary = {"layer": layer, **describe(source), "features": len(df), "ignored_columns": ignored,
               "dry_run": dry_run, "committed": False, "atlas_version": base_version}
    step = {"grids": _grids, "buildings": _buildings, "households": _households}[layer]
    commit = _Commit(store, base_version, budget, audit, summary)
    budget.step(f"parsing the {layer}")
    summary.update(step(store, source, df, state, base_version, dry_run, commit))
    return summary


class _Commit:
    """The last budget check and the audit record (with the summary), handed to the write."""

    def __init__(self, store, base_version: int, budget: Budget, audit: dict | None, summary: dict):
        self.store, self.base_version, self.budget, self.audit, self.summary = store, base_version, budget, audit, summary

    def record(self, out: dict) -> dict | None:
        self.budget.step("writing")  # past this point the write is one transaction: all or nothing
        if self.audit is None:
            return None
        said = {k: v for k, v in {**self.summary, **out}.items() if k not in ("dry_run", "committed", "atlas_version")}
        return {**self.audit, "result": json.dumps(said, ensure_ascii=False, sort_keys=True, default=str)[:500]}

    def unchanged(self, out: dict) -> None:
        """An import that changes nothing still leaves its record (there is no change to join)."""
        record = self.record(out)
        if record is not None:
            self.store.append_audit({**record, "result": f"ok: nothing changed; {record['result']}"[:500]})


def _refuse_problems(parsed: Parsed, source: SourceFrame, layer: str) -> None:
    if parsed.problems:
        parsed.problems.sort(key=lambda p: p["row"])  # stable: a feature's problems stay in rule order
        first = "; ".join(f"{p['feature']}: {p['reason']}" for p in parsed.problems[:3])
        raise ImportRejectedError(f"{len(parsed.problems)} problem(s) in {source.path.name} ({layer}); nothing was "
                                  f"written. First: {first}", detail=list(parsed.problems))


def _check(source: SourceFrame, layer: str, divisions, buildings, households, residents) -> None:
    report = Report()
    check_divisions(divisions, report)
    check_buildings(divisions, buildings, report)
    check_people(buildings, households, residents, report)
    if not report.ok:
        raise CoverageRefusedError(
            f"importing {source.path.name} as {layer} would leave {len(report.violations)} coverage violation(s); "
            "nothing was written", report)


def _grid_of(grids: pd.DataFrame, geoms) -> np.ndarray:
    """Base-grid code holding each footprint's representative point (lowest code on shared edges); None outside."""
    grids = grids.sort_values("code")
    if not len(geoms):
        return np.array([], dtype=object)
    index = CellIndex(grids["geometry"].to_numpy())
    rep = shapely.point_on_surface(np.asarray(geoms, dtype=object))
    gi = index.lookup(shapely.get_x(rep), shapely.get_y(rep))
    codes = grids["code"].to_numpy(dtype=object)
    return np.where(gi == OUTSIDE, None, codes[np.maximum(gi, 0)])


def _disagreements(file_codes, computed, ids) -> dict:
    if file_codes is None or all(c is None for c in file_codes):
        return {}
    diff = [(i, f, c) for i, f, c in zip(ids, file_codes, computed) if f is not None and c is not None and f != c]
    # the file's grid_code is informational: the store derives it from the geometry (the atlas's rule)
    return {"grid_code_replaced": len(diff),
            "grid_code_replaced_examples": [{"id": i, "file": f, "stored": c} for i, f, c in diff[:10]]}


def _meta(layer: str, source: SourceFrame) -> dict[str, str]:
    from ..planning.changeset import now_stamp
    return {f"imported_{layer}": json.dumps({**describe(source), "at": now_stamp()}, ensure_ascii=False)}


def _commit_replace(commit: _Commit, tables: dict, meta: dict, out: dict) -> int:
    store, base_version = commit.store, commit.base_version
    audit = commit.record(out)
    # replace_all has no version precondition: re-check just before the write so a plan
    # applied while the file was being checked is not silently overwritten
    if store.atlas_version() != base_version:
        raise ConflictError(f"the store moved from atlas version {base_version} to {store.atlas_version()} during "
                            "the import; nothing was written: run the import again")
    store.replace_all(tables, meta, audit=audit)
    return store.atlas_version()


# ------------------------------------------------------------------ grids
def _grids(store, source, df, state, base_version, dry_run, commit: _Commit) -> dict:
    from ..planning.changeset import ChangeSet, now_stamp
    divisions = state["divisions"]
    comms = divisions[divisions["level"] == "community"]
    communities = {c: (None if pd.isna(k) else str(k)) for c, k in zip(comms["code"], comms["kind"])}
    parsed = parse_grids(df, source.coordinate_problems, communities)
    _refuse_problems(parsed, source, "grids")
    new = parsed.table.sort_values("code").reset_index(drop=True)
    current = divisions[divisions["level"] == "grid"].set_index("code")
    stamp = now_stamp()

    status, rows = [], []
    for r in new.itertuples(index=False):
        if r.code in current.index:
            old = current.loc[r.code]
            same_shape = crs_mod.overlay_area_m2(shapely.symmetric_difference(r.geometry, old["geometry"])) <= AREA_TOLERANCE_M2
            same_attrs = r.name == old["name"] and r.kind == (None if pd.isna(old["kind"]) else old["kind"])
            if same_shape and same_attrs:  # sub-tolerance noise (reprojection, rounding) is not a new version
                status.append("unchanged")
                rows.append({**old.to_dict(), "code": r.code})
                continue
            status.append("redrawn")
            version = int(old["version"]) + 1
        else:
            status.append("created")
            version = _next_version(store, r.code)
        rows.append({"code": r.code, "name": r.name, "level": "grid", "parent_code": r.parent_code, "kind": r.kind,
                     "version": version, "valid_from": stamp, "valid_to": None,
                     "area_m2": round(crs_mod.area_m2(r.geometry), 1), "geometry": r.geometry})
    cand_grids = pd.DataFrame(rows)
    cand_div = pd.concat([divisions[divisions["level"] != "grid"], cand_grids[divisions.columns]], ignore_index=True)

    buildings = state["buildings"]
    located = _grid_of(cand_grids, buildings["geometry"].to_numpy())
    new_codes = np.where(pd.isna(located), buildings["grid_code"].to_numpy(dtype=object), located)
    cand_b = buildings.assign(grid_code=new_codes)
    commit.budget.step("checking coverage")
    _check(source, "grids", cand_div, cand_b, state["households"], state["residents"])

    imported = set(new["code"])
    retired = sorted(set(current.index) - imported)
    written = [i for i, s in enumerate(status) if s != "unchanged"]
    insert = cand_grids.iloc[written].reset_index(drop=True)
    moved = buildings["grid_code"].to_numpy(dtype=object) != new_codes
    moves = pd.DataFrame({"id": buildings["id"][moved].to_numpy(), "old": buildings["grid_code"][moved].to_numpy(),
                          "new": new_codes[moved]})
    counts = {s: [c for c, t in zip(new["code"], status) if t == s] for s in ("created", "redrawn", "unchanged")}
    # cases and workers follow as after a plan's apply, with the same rules (gis_grid/planning)
    changed = sorted(set(counts["redrawn"]) | set(retired))
    staffing = _staffing(store, state, current, cand_grids, changed, counts, new_codes)
    out = {"created": counts["created"], "redrawn": counts["redrawn"], "unchanged": len(counts["unchanged"]),
           "retired": retired, "buildings_moved": int(moved.sum()), "workers_moved": staffing.moves,
           "unstaffed": staffing.unstaffed}
    if dry_run:
        return out
    if not written and not retired:
        commit.unchanged(out)
        return out
    audit = {"source": "import", **describe(source), "scope": store.meta().get("district"),
             "base_version": base_version, **out}
    cs = ChangeSet(plan_id=None, base_version=base_version, valid_from=stamp, close_codes=changed, insert=insert,
                   building_moves=moves, retired=retired, audit=audit, worker_assignment=staffing.moves,
                   cases=_case_rehoming(current, cand_grids, changed, insert, stamp))
    version = store.apply_changeset(cs, expected_version=base_version, audit=commit.record(out))
    return {**out, "committed": True, "atlas_version": version}


def _staffing(store, state, current, cand_grids, changed, counts, new_codes):
    """The workers of the redrawn and retired grids, by the planning rule (gis_grid/planning/staffing.py):
    households per (old grid, new grid) say where a retired grid's team goes, and every created or
    redrawn grid holding households is staffed while a grid can spare a worker."""
    from ..planning.staffing import follow, land_homes
    b = state["buildings"]
    hh = state["households"]["building_id"].value_counts()
    flows = pd.DataFrame({"old": b["grid_code"].to_numpy(dtype=object), "new": new_codes,
                          "households": hh.reindex(b["id"].to_numpy(), fill_value=0).to_numpy()})
    flows = flows[flows["old"].isin(changed)].groupby(["old", "new"], as_index=False)["households"].sum()
    retired = [c for c in changed if c not in set(counts["redrawn"])]
    homes = land_homes({c: current.loc[c, "geometry"] for c in retired}, cand_grids["geometry"], cand_grids["code"])
    workers = store.workers(grid_codes=changed) if changed else pd.DataFrame({"id": [], "grid_code": []})
    return follow(workers, changed, flows, counts["created"] + counts["redrawn"], set(counts["redrawn"]), homes)


def _case_rehoming(current, cand_grids, changed, insert, stamp):
    """Cases re-homed in the apply's transaction, placed among all the imported grids (lowest code on
    a shared edge) wherever land changed grid."""
    from ..planning.changeset import PointPlacer
    from ..planning.rehome import CaseRehoming
    area = shapely.union_all([*current.loc[changed, "geometry"], *insert["geometry"]])
    grids = cand_grids.sort_values("code")
    placer = PointPlacer(area, tuple(grids["geometry"]), tuple(str(c) for c in grids["code"]))
    return CaseRehoming(placer, stamp, None, actor="import")


def _next_version(store, code: str) -> int:
    """A code that comes back after retirement continues its history rather than restarting at 1."""
    try:
        return int(store.grid_history(code)["version"].max()) + 1
    except NotFoundError:
        return 1


# ------------------------------------------------------------------ buildings
def _buildings(store, source, df, state, base_version, dry_run, commit: _Commit) -> dict:
    parsed = parse_buildings(df, source.coordinate_problems)
    _refuse_problems(parsed, source, "buildings")
    t = parsed.table.sort_values("id").reset_index(drop=True)
    divisions = state["divisions"]
    located = _grid_of(divisions[divisions["level"] == "grid"], t["geometry"].to_numpy())
    # a building outside every grid keeps whatever the file said, so the check can name it
    fallback = [f or "" for f in t["file_grid_code"]] if t["file_grid_code"].notna().any() else [""] * len(t)
    t["grid_code"] = [c if c is not None else f for c, f in zip(located, fallback)]
    out = _disagreements(list(t["file_grid_code"]), list(located), list(t["id"]))
    cand_b = t[["id", "kind", "name", "floors", "units", "grid_code", "geometry"]]
    hh = state["households"]
    grid_of_building = dict(zip(cand_b["id"], cand_b["grid_code"]))
    cand_hh = hh.assign(grid_code=[grid_of_building.get(b, g) for b, g in zip(hh["building_id"], hh["grid_code"])])
    commit.budget.step("checking coverage")
    _check(source, "buildings", divisions, cand_b, cand_hh, state["residents"])
    out["households_regridded"] = int((cand_hh["grid_code"] != hh["grid_code"]).sum())
    if dry_run:
        return out
    version = _commit_replace(commit, {"buildings": cand_b, "households": cand_hh}, _meta("buildings", source), out)
    return {**out, "committed": True, "atlas_version": version}


# ------------------------------------------------------------------ households
def _households(store, source, df, state, base_version, dry_run, commit: _Commit) -> dict:
    buildings, residents = state["buildings"], state["residents"]
    parsed = parse_households(df, set(int(b) for b in buildings["id"]), residents["household_id"].value_counts())
    _refuse_problems(parsed, source, "households")
    t = parsed.table
    grid_of_building = dict(zip(buildings["id"].astype(int), buildings["grid_code"]))
    t["grid_code"] = [grid_of_building[b] for b in t["building_id"]]
    out = _disagreements(list(t["file_grid_code"]), list(t["grid_code"]), list(t["id"]))
    cand_hh = t[["id", "building_id", "grid_code", "unit", "floor", "room", "size", "head_name", "flags"]]
    commit.budget.step("checking coverage")
    _check(source, "households", state["divisions"], buildings, cand_hh, residents)
    if dry_run:
        return out
    version = _commit_replace(commit, {"households": cand_hh}, _meta("households", source), out)
    return {**out, "committed": True, "atlas_version": version}


__all__ = ["LAYERS", "ImportRejectedError", "CoverageRefusedError", "import_layer"]
