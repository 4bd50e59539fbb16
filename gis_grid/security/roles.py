"""What each role may read and write: one table, as data.

The API asks :func:`permission` and never hard-codes a role name.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import InvalidInputError, NotFoundError
from ..hierarchy import is_within, level_of


class PersonalData(str, enum.Enum):
    NONE = "none"          # no personal fields at all
    COUNTS = "counts"      # aggregates only
    MASKED = "masked"      # fields present, masked on the server
    FULL = "full"          # unmasked, and every read audited


@dataclass(frozen=True)
class Permission:
    maps: bool = False               # grid geometry, maps, tiles, statistics
    locate: bool = False
    personal: PersonalData = PersonalData.NONE
    vulnerability: PersonalData = PersonalData.NONE   # special-group flags
    min_cell: int = 0                # counts below this are suppressed
    #: grid workers' work phones in full: they are posted on every grid's public board, and the
    #: command centre has to call them. Residents' phones stay masked whatever this says.
    work_phones: bool = False
    cases_read: bool = False
    cases_write: bool = False
    plans: bool = False
    audit: bool = False
    keys: bool = False
    subtree_only: bool = True        # confined to the key's scope code
    #: the case-workflow role (gis_grid.incidents.model.Role value) a key of this role acts in;
    #: the API takes it from the key, never from a request body. None: takes no workflow step.
    case_role: str | None = None


ROLES: dict[str, Permission] = {
    # 指挥中心: registers, dispatches, cancels, closes and reworks cases anywhere in the district
    "command_center": Permission(maps=True, locate=True, personal=PersonalData.MASKED,
                                 vulnerability=PersonalData.COUNTS, min_cell=5, cases_read=True,
                                 cases_write=True, subtree_only=False, case_role="command_centre",
                                 work_phones=True),
    # 街道分中心: the command centre's steps, for the cases of its own street only
    "street_admin": Permission(maps=True, locate=True, personal=PersonalData.MASKED,
                               vulnerability=PersonalData.COUNTS, cases_read=True, cases_write=True,
                               case_role="command_centre"),
    # 社区 (网格长): logs, verifies on site and closes or reworks cases of its community, like a grid worker
    "community_admin": Permission(maps=True, locate=True, personal=PersonalData.MASKED,
                                  vulnerability=PersonalData.COUNTS, cases_read=True, cases_write=True,
                                  case_role="grid_worker"),
    # 网格员: logs cases, verifies and closes or reworks them, in its own grid
    "grid_worker": Permission(maps=True, locate=True, personal=PersonalData.FULL,
                              vulnerability=PersonalData.FULL, cases_read=True, cases_write=True,
                              case_role="grid_worker"),
    # 12345 hotline: logs the cases residents phone in, anywhere in its district; sees cases, not people
    "hotline": Permission(locate=True, cases_read=True, cases_write=True, case_role="hotline"),
    # 专业部门 / 承办单位: handles dispatched cases and reports back; district-wide, no personal data
    "department": Permission(maps=True, locate=True, cases_read=True, cases_write=True, case_role="department"),
    # 监督考核: assesses closed cases; reads statistics and maps, no personal data
    "supervisor": Permission(maps=True, cases_read=True, cases_write=True, case_role="supervisor"),
    # 规划: district-wide counts, under the same small-count rule as the command centre
    "planner": Permission(maps=True, locate=True, personal=PersonalData.COUNTS,
                          vulnerability=PersonalData.COUNTS, min_cell=5, plans=True, subtree_only=False),
    "external_system": Permission(locate=True, subtree_only=False),
    "auditor": Permission(audit=True, subtree_only=False),
    "admin": Permission(keys=True, subtree_only=False),
}

# the level a scope must have for roles tied to one part of the hierarchy
SCOPE_LEVEL = {"street_admin": 9, "community_admin": 12, "grid_worker": 15,
               # district-level offices: their scope is the district they serve
               "hotline": 6, "department": 6, "supervisor": 6}


def permission(role: str) -> Permission:
    try:
        return ROLES[role]
    except KeyError:
        raise InvalidInputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}") from None


#: roles whose key is tied to one department as well: it reaches only the cases dispatched to it.
#: Its scope reads ``<district code>:<department code>`` (the department from gis_grid.incidents.model).
DEPARTMENT_ROLES = frozenset({"department"})
_SEP = ":"


def split_scope(scope: str) -> tuple[str, str | None]:
    """(division code, department or None) of a key's stored scope."""
    code, _, department = str(scope).partition(_SEP)
    return code, (department or None)


def join_scope(code: str, department: str | None) -> str:
    return f"{code}{_SEP}{department}" if department else code


def check_scope(role: str, scope: str) -> str:
    """A key's scope: a division code whose level fits the role, and a department role's department."""
    permission(role)
    code, department = split_scope(scope)
    level_of(code)  # raises for malformed codes
    need = SCOPE_LEVEL.get(role)
    if need is not None and len(code) != need:
        raise InvalidInputError(f"a {role} key needs a scope code of {need} digits, got {scope!r}")
    if role in DEPARTMENT_ROLES:
        from ..incidents.model import DEPARTMENTS
        if department not in DEPARTMENTS:
            raise InvalidInputError(f"a {role} key is tied to its department: use a scope such as "
                                    f"{code}{_SEP}justice, with one of {', '.join(DEPARTMENTS)} (got {scope!r})")
    elif department is not None:
        raise InvalidInputError(f"only {', '.join(sorted(DEPARTMENT_ROLES))} keys name a department in their "
                                f"scope, not {role} keys (got {scope!r})")
    return scope


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, role and scope."""

    key_id: str
    role: str
    scope: str
    #: a department key's department: it reaches only cases whose responsible department this is
    department: str | None = None

    @property
    def permission(self) -> Permission:
        return permission(self.role)

    @property
    def confined_to(self) -> str | None:
        """The scope code every read is confined to, or None for a district-wide role."""
        return self.scope if self.permission.subtree_only else None

    def sees(self, code: str) -> bool:
        """True if the division ``code`` lies in (or contains nothing beyond) the caller's scope."""
        if not self.permission.subtree_only:
            return True
        return is_within(code, self.scope)


def check_visible(who: Principal, code: str, what: str = "division", *, shown=None) -> None:
    """Out of the caller's scope answers exactly like a missing object (NotFoundError), so nothing leaks.

    ``shown``: the id the caller asked for, when ``code`` is the grid the object lies in; the
    answer then names only that id (naming the grid would tell where the object is) in the
    same words as the atlas uses for a missing one.
    """
    if not who.sees(code):
        raise NotFoundError(f"no {what} {code!r}" if shown is None else f"no {what} with id {shown!r}")
