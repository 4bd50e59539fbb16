"""Who acts on a case, in which workflow role, and which cases a key reaches.

The acting role and the actor come from the API key, never from the request body: a body may
still name them (older clients did), but only in agreement with the key, otherwise
:class:`~gis_grid.errors.PermissionDeniedError` saying to leave the field out. Rejecting rather
than ignoring is deliberate: a client that believes it acts as another role should find out.
"""
from __future__ import annotations

from .. import crs as crs_mod
from ..atlas import Atlas
from ..errors import NotFoundError, PermissionDeniedError
from ..masking import mask_case
from ..security import audit
from ..security.roles import PersonalData, Principal, check_visible
from ..store import Store
from . import model, service


def acting_role(who: Principal, claimed: str | None) -> str:
    """The workflow role of the caller: the key's; a body ``role`` must agree with it."""
    role = who.permission.case_role
    if role is None:
        raise PermissionDeniedError(f"the {who.role} role takes no step in the case workflow")
    if claimed is not None and str(claimed).strip().lower() != role:
        raise PermissionDeniedError(
            f"this key ({who.role}) acts as {role!r} in the case workflow, but the body says role "
            f"{claimed!r}; leave 'role' out: it comes from the API key")
    return role


def actor_of(key_id: str) -> str:
    """How a key is named as the actor of a step: ``key:`` and its id in groups of four.

    Grouped the way long identifiers are read out; it also keeps a random hex id from holding
    an 11-digit run that reads as a mobile number to PII scanners (tests/pii_guard.py).
    The audit log's key_id is the same id without the dashes.
    """
    k = str(key_id)
    return "key:" + "-".join(k[i:i + 4] for i in range(0, len(k), 4))


def acting_actor(who: Principal, claimed: str | None) -> str:
    """Who acts: the API key; a body ``actor`` must name the same key (its id, or as actor_of writes it)."""
    actor = actor_of(who.key_id)
    if claimed is not None and str(claimed).strip() not in (who.key_id, actor):
        raise PermissionDeniedError(
            f"the actor is the API key ({actor}), but the body says actor {claimed!r}; "
            "leave 'actor' out: it comes from the API key")
    return actor


def scoped_filters(who: Principal, filters: dict) -> dict:
    """A key confined to a subtree lists only its cases; naming a grid outside it is a NotFoundError."""
    if not who.permission.subtree_only:
        return filters
    if filters.get("code"):
        check_visible(who, filters["code"])
        return filters
    return {**filters, "code": who.scope}


def visible_case(store: Store, who: Principal, incident_id: str) -> model.Incident:
    """The case if the key may see it; out of scope (or, for a department key, another
    department's case) answers exactly like a missing case.

    (Same text too: naming the case's grid would tell an outsider where it is.)
    """
    case = service.get(store, incident_id)
    if not who.sees(case.grid_code) or (who.department and case.department != who.department):
        raise NotFoundError(f"no incident with id {str(incident_id)!r}")
    return case


def check_point_in_scope(who: Principal, atlas: Atlas, lon: float, lat: float, crs=None) -> None:
    """A confined key may log a case only inside its scope (outside the district is left to create)."""
    if not who.permission.subtree_only:
        return
    x, y = crs_mod.validate_coordinates(lon, lat, crs)
    slon, slat = crs_mod.to_storage(x, y, crs)
    grid = atlas.locate_one(float(slon), float(slat), with_building=False).grid
    if grid is not None and not who.sees(grid[0]):
        raise PermissionDeniedError(f"the point lies in grid {grid[0]}, outside this key's scope {who.scope}")


def for_new_case(who: Principal, atlas: Atlas, *, lon: float, lat: float, crs=None,
                 role: str | None = None) -> tuple[str, str]:
    """(role, actor) a key collects a case as; the role is judged before the point is looked at."""
    acting = acting_role(who, role)
    model.check_role(acting, "collect")
    check_point_in_scope(who, atlas, lon, lat, crs)
    return acting, actor_of(who.key_id)


def for_transition(store: Store, who: Principal, incident_id: str, *, role: str | None = None,
                   actor: str | None = None) -> tuple[str, str]:
    """(role, actor) a key advances a case as.

    Out of scope answers like a missing case (NotFoundError) before the role is judged.
    """
    visible_case(store, who, incident_id)
    return acting_role(who, role), acting_actor(who, actor)


#: what an unmasked case read shows that every other read masks (named in its audit record)
UNMASKED_CASE_FIELDS = ("reporter", "description", "events.note")


def shown(case_view: dict) -> dict:
    """A case as every route answers it, to every role: reporter and free text masked.

    The original stays in the store; only :func:`unmasked_case` reads it back.
    """
    return mask_case(case_view)


def unmasked_case(store: Store, who: Principal, incident_id: str, *, purpose: str,
                  request_id: str | None = None) -> model.Incident:
    """The case with its original reporter and text, for a role with full personal-data rights in scope.

    Every attempt is audited (refused, not found or read), like an unmasked resident read.
    """
    def log(result: str, fields=()):
        store.append_audit(audit.new_record(
            key_id=who.key_id, role=who.role, scope=who.scope, action="incident.unmask",
            resource=f"incident/{incident_id}", fields=fields, masked=False if fields else None,
            purpose=purpose, request_id=request_id, result=result))

    if who.permission.personal is not PersonalData.FULL:
        log("denied")
        raise PermissionDeniedError(f"the {who.role} role may not read a case's unmasked text")
    try:
        # row-level scope (PostGIS RLS) behind the grid check in visible_case, as for residents
        with store.scoped(who.scope):
            case = visible_case(store, who, incident_id)
    except NotFoundError:
        log("not found")
        raise
    log("ok", UNMASKED_CASE_FIELDS)
    return case
