"""The access roles (API keys) and the case workflow's roles fit together, as data."""
from __future__ import annotations

import pytest

from gis_grid.incidents import model
from gis_grid.security.roles import ROLES, SCOPE_LEVEL, check_scope

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend


def test_every_case_writer_acts_in_a_known_workflow_role():
    for name, p in ROLES.items():
        if p.cases_write:
            assert p.case_role is not None, f"{name} writes cases but has no workflow role"
        if p.case_role is not None:
            assert model.Role(p.case_role) and p.cases_write and p.cases_read, name


def test_every_workflow_role_is_held_by_some_key_role():
    held = {p.case_role for p in ROLES.values()}
    assert {r.value for r in model.Role} <= held
    # and every step, collect included, can be taken by some key
    for action, roles in model.ROLES.items():
        assert {r.value for r in roles} & held, action


@pytest.mark.parametrize("role", ["hotline", "department", "supervisor"])
def test_district_offices_are_scoped_to_a_district(role):
    assert SCOPE_LEVEL[role] == 6 and ROLES[role].subtree_only
    if role == "department":   # a department key is also tied to its department (issue 13)
        assert check_scope(role, "370402:justice") == "370402:justice"
        with pytest.raises(Exception, match="tied to its department"):
            check_scope(role, "370402")
        return
    assert check_scope(role, "370402") == "370402"
    with pytest.raises(Exception, match="6 digits"):
        check_scope(role, "370402001")


def test_new_workflow_roles_see_no_people():
    for role in ("hotline", "department", "supervisor"):
        p = ROLES[role]
        assert p.personal.value == "none" and p.vulnerability.value == "none" and not p.plans and not p.keys
