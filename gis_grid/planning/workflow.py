"""The planner's workflow on a store and an atlas: draft -> validate -> impact -> apply.

Framework-free: the API (``api/routers/planning.py``), the notebook and the
benchmark call these functions.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import shapely

from ..atlas import Atlas
from ..budget import Budget, unlimited
from ..errors import ConflictError, InvalidGeometryError, InvalidInputError, PreconditionError, PreconditionRequiredError
from .changeset import build_changeset, now_stamp
from .impact import DEFAULT_BAND, DEFAULT_TARGET_HOUSEHOLDS, balance, plan_impact
from .staffing import named_workers
from .plan import Plan, plan_from_geojson, plan_to_geojson, resolve_scope
from .validate import ValidationReport, validate_plan


class PlanInvalidError(InvalidGeometryError):
    """The plan's grids fail validation; ``detail`` lists each failure with its location."""


def check_plan(atlas: Atlas, plan: Plan) -> ValidationReport:
    """Validate, raising :class:`PlanInvalidError` with every failure when the plan is not acceptable."""
    report = validate_plan(atlas, plan)
    if not report.ok:
        rules = sorted({f["rule"] for f in report.failures})
        raise PlanInvalidError(f"the plan fails validation ({len(report.failures)} failure(s): {', '.join(rules)}); "
                               "each failure carries its location as GeoJSON", detail=report.failures)
    return report


def create_plan(store, atlas: Atlas, scope: str, grids: dict, *, crs=None, replaces=None, note: str = "",
                source: str = "geojson") -> tuple[Plan, ValidationReport]:
    """Parse, validate and store a draft; nothing is stored when validation fails."""
    plan = plan_from_geojson(atlas, scope, grids, crs=crs, replaces=replaces, note=note, source=source)
    report = check_plan(atlas, plan)
    named_workers(plan.properties, list(range(len(plan.geometries))))  # a malformed 'workers' is refused now
    plan = plan.with_(properties=tuple({**p, "community": report.parents[i]} for i, p in enumerate(plan.properties)),
                      created_at=now_stamp())
    record = {"scope": plan.scope.code, "base_version": plan.base_version, "created_at": plan.created_at,
              "source": source, "note": note, "replaces": list(plan.scope.replaces),
              "grids": plan_to_geojson(plan)}
    plan_id = store.save_plan(record)
    return plan.with_(id=plan_id), report


def plan_from_record(atlas: Atlas, record: dict) -> Plan:
    """A stored plan back as a :class:`Plan` (its scope as stored, not re-derived from today's atlas)."""
    from .plan import PlanScope
    geoms, props = [], []
    for f in record["grids"]["features"]:
        geoms.append(shapely.from_geojson(__import__("json").dumps(f["geometry"])))
        props.append(dict(f.get("properties") or {}))
    replaces = tuple(record["replaces"])
    scope = PlanScope(record["scope"], replaces, tuple(sorted({c[:12] for c in replaces})))
    return Plan(scope=scope, base_version=int(record["base_version"]), geometries=tuple(geoms),
                properties=tuple(props), id=int(record["id"]), created_at=record["created_at"],
                source=record.get("source") or "geojson", note=record.get("note") or "",
                status=record.get("status") or "draft")


def _require_base(atlas: Atlas, plan: Plan) -> None:
    if atlas.version != plan.base_version:
        raise ConflictError(f"plan {plan.id} was drawn on atlas version {plan.base_version}; the atlas is now at "
                            f"version {atlas.version}: draw a new plan on the current grids",
                            detail={"current_version": atlas.version, "base_version": plan.base_version})


def impact_of(store, atlas: Atlas, plan: Plan, *, target_households: float = DEFAULT_TARGET_HOUSEHOLDS,
              band: float = DEFAULT_BAND, budget: Budget | None = None) -> dict:
    """The impact report of a draft; ``budget`` bounds the validation and the report together."""
    _require_base(atlas, plan)
    budget = unlimited(budget, "the impact report")
    budget.step("validating the plan")
    report = check_plan(atlas, plan)
    return plan_impact(atlas, store, plan, report.parents, target_households=target_households, band=band,
                       budget=budget)


def propose_plan(store, atlas: Atlas, scope: str, min_households: int, max_households: int, *,
                 seed: int = 0, budget_s: float | None = None) -> tuple[Plan, dict, dict]:
    """Propose a balanced redraw (:func:`.rebalance.propose`), store it as a draft; ``(plan, report, impact)``.

    A proposal that would leave a grid holding households without a worker (more such grids than
    the replaced grids have workers) is refused before anything is stored."""
    from .rebalance import propose
    grids, report = propose(atlas, scope, min_households, max_households, seed=seed, budget_s=budget_s)
    target = (min_households + max_households) / 2
    draft = plan_from_geojson(atlas, scope, grids, source="propose")
    impact = plan_impact(atlas, store, draft, check_plan(atlas, draft).parents, target_households=target)
    if impact["unstaffed"]:
        staffed = sum(1 for g in impact["grids"] if g["households"] > 0) - len(impact["unstaffed"])
        raise InvalidInputError(
            f"the proposal draws {staffed + len(impact['unstaffed'])} grids with households but only {staffed} "
            f"can get a worker (the replaced grids have no more); raise min_households",
            detail={"unstaffed": len(impact["unstaffed"])})
    plan, _ = create_plan(store, atlas, scope, grids, source="propose",
                          note=f"rebalance to {min_households}-{max_households} households per grid")
    return plan, report, {**impact, "plan_id": plan.id}


def before_apply(record: dict) -> datetime:
    """The last instant before a plan's apply: the as-of atlas there is the one it was drawn on."""
    t = datetime.fromisoformat(str(record["applied_at"]).replace("Z", "+00:00"))
    return t - timedelta(microseconds=1)


def applied_impact(record: dict, *, target_households: float = DEFAULT_TARGET_HOUSEHOLDS,
                   band: float = DEFAULT_BAND) -> dict:
    """An applied plan's impact as it stood when it was applied (balance against the target asked for)."""
    imp = record.get("impact")
    if record.get("status") != "applied" or imp is None:
        raise ConflictError(f"plan {record['id']} was applied before impacts were kept with the plan; its "
                            "boundaries are in GET /grids/{code}/history", detail={"status": record.get("status")})
    return {**imp, "as_of": record["applied_at"], "applied_version": record.get("applied_version"),
            "balance": {"before": balance([g["households"] for g in imp["old_grids"]], target_households, band),
                        "after": balance([g["households"] for g in imp["grids"]], target_households, band)}}


def parse_if_match(value: str | None) -> int | None:
    """An ETag/If-Match value ``"7"``, ``W/"7"`` or ``7`` -> 7."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    try:
        return int(v)
    except ValueError:
        raise PreconditionError(f"If-Match must be the atlas version the plan was drawn on, e.g. \"3\"; got {value!r}",
                                detail={"if_match": value}) from None


def apply_plan(store, atlas: Atlas, plan: Plan, if_match: int | None, *, audit: dict | None = None) -> dict:
    """Commit a plan atomically. ``if_match`` must be the plan's base version and the store's current one.
    ``audit``: the record of the apply, committed in the same transaction."""
    if if_match is None:
        raise PreconditionRequiredError(
            f"applying a plan requires If-Match with the atlas version it was drawn on ({plan.base_version})",
            detail={"current_version": store.atlas_version(), "base_version": plan.base_version})
    current = store.atlas_version()
    if if_match != plan.base_version or current != plan.base_version or plan.status == "applied":
        raise PreconditionError(
            f"If-Match {if_match} does not hold: plan {plan.id} was drawn on version {plan.base_version} "
            f"({plan.status}) and the atlas is at version {current}",
            detail={"current_version": current, "base_version": plan.base_version, "if_match": if_match})
    if atlas.version != plan.base_version:  # the caller's snapshot is behind the store: same answer
        raise PreconditionError(f"the atlas snapshot is at version {atlas.version}, the plan at {plan.base_version}",
                                detail={"current_version": current, "base_version": plan.base_version})
    report = check_plan(atlas, plan)
    used = store.grid_codes_ever(plan.scope.code)
    cs = build_changeset(atlas, plan, report.parents, used,
                         workers=store.workers(grid_codes=list(plan.scope.replaces)))
    # kept on the plan: afterwards grids, workers and cases have moved and it cannot be recomputed
    cs.impact = plan_impact(atlas, store, plan, report.parents, used_codes=used)
    new_version = store.apply_changeset(cs, expected_version=plan.base_version, audit=audit)
    return {"plan_id": plan.id, "from_version": plan.base_version, "atlas_version": new_version,
            "applied_at": cs.valid_from, **{k: v for k, v in cs.audit.items() if k not in ("plan_id",)}}


__all__ = ["applied_impact", "before_apply", "PlanInvalidError", "check_plan", "create_plan", "propose_plan", "plan_from_record", "impact_of", "apply_plan",
           "parse_if_match", "resolve_scope", "plan_to_geojson"]
