"""The case workflow, transition by transition."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gis_grid.errors import ConflictError, InvalidInputError, PermissionDeniedError
from gis_grid.incidents import model
from gis_grid.incidents.model import Action, Status

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend

NOW = datetime(2016, 6, 1, 12, 0, tzinfo=timezone.utc)
ROLE_FOR = {Action.REGISTER: "command_centre", Action.DISPATCH: "command_centre", Action.HANDLE: "department",
            Action.FEEDBACK: "department", Action.CLOSE: "grid_worker", Action.ASSESS: "supervisor",
            Action.CANCEL: "command_centre", Action.REWORK: "command_centre"}
PATH = [Action.REGISTER, Action.DISPATCH, Action.HANDLE, Action.FEEDBACK, Action.CLOSE, Action.ASSESS]


def fresh(at=NOW - timedelta(days=3), category="sanitation", priority="routine"):
    return model.new_incident(id="E1", category=category, lon=117.55, lat=34.86, grid_code="370402001001001",
                              reporter="张三", role="grid_worker", at=at, priority=priority, now=NOW)


def step(case, action, minutes=10, **kw):
    at = model.to_aware(case.events[-1].at) + timedelta(minutes=minutes)
    if action is Action.CLOSE and "satisfaction" not in kw:
        kw["satisfaction"] = 5
    return model.apply(case, action, actor="someone", role=kw.pop("role", ROLE_FOR[action]), at=at, now=NOW, **kw)


def advance(case, n):
    for a in PATH[:n]:
        case = step(case, a)
    return case


def test_categories_are_17_content_areas_plus_disputes():
    assert len(model.CONTENT_AREAS) == 17 and "dispute" in model.CATEGORIES
    assert {"petition_stability", "city_management", "sanitation", "environmental_protection", "work_safety",
            "food_drugs", "party_building"} <= set(model.CONTENT_AREAS)
    for c in model.CATEGORIES.values():
        assert c.department in model.DEPARTMENTS and c.deadline_h > 0


def test_deadline_depends_on_category_and_priority():
    assert model.deadline_hours("sanitation", "routine") == 24
    assert model.deadline_hours("sanitation", "urgent") == 12
    assert model.deadline_hours("sanitation", "critical") == 6
    assert model.deadline_hours("petition_stability", "routine") == 120
    with pytest.raises(InvalidInputError, match="priority"):
        model.deadline_hours("sanitation", "whenever")


def test_new_case_is_collected_with_default_department():
    c = fresh()
    assert c.status == "collected" and c.department == "sanitation" and c.rework_count == 0
    assert [e.action for e in c.events] == ["collect"]
    assert c.colour(NOW) == "green"  # clock not started


@pytest.mark.parametrize("bad, match", [
    (dict(category="ufo"), "unknown category"),
    (dict(priority="asap"), "unknown priority"),
    (dict(role="mayor"), "unknown role"),
    (dict(reporter=" "), "reporter"),
    (dict(at=NOW + timedelta(hours=1)), "future"),
    (dict(at="yesterday"), "ISO-8601"),
    (dict(department="nasa"), "unknown department"),
])
def test_new_case_rejects(bad, match):
    kw = dict(id="E1", category="sanitation", lon=117.55, lat=34.86, grid_code="370402001001001",
              reporter="张三", role="grid_worker", at=NOW - timedelta(days=1), now=NOW)
    kw.update(bad)
    with pytest.raises(InvalidInputError, match=match):
        model.new_incident(**kw)


def test_a_role_that_may_not_collect_is_refused_as_a_permission():
    with pytest.raises(PermissionDeniedError, match="may not collect"):
        model.new_incident(id="E1", category="sanitation", lon=117.55, lat=34.86, grid_code="370402001001001",
                           reporter="张三", role="department", at=NOW - timedelta(days=1), now=NOW)


def test_full_path_sets_each_step_once_in_order():
    c = fresh()
    seen = []
    for a in PATH:
        c = step(c, a)
        seen.append(c.status)
        assert getattr(c, model.STEP_COLUMN[a]) == c.events[-1].at
    assert seen == ["registered", "dispatched", "handled", "fed_back", "closed", "assessed"]
    assert c.version == 7 and len(c.events) == 7 and c.satisfaction == 5
    assert c.assessment == "excellent"


@pytest.mark.parametrize("done", range(0, 7))
@pytest.mark.parametrize("action", list(Action))
def test_every_action_from_every_step(done, action):
    """From each point of the path, exactly the listed transitions are allowed."""
    c = advance(fresh(), done)
    allowed = Status(c.status) in model.TRANSITIONS[action][0]
    if allowed:
        new = step(c, action)
        assert new.status == model.TRANSITIONS[action][1].value
        assert new.version == c.version + 1
    else:
        with pytest.raises(InvalidInputError, match=f"cannot {action.value}"):
            step(c, action)


def test_expected_allowed_sets():
    ok = {s: sorted(a.value for a, (frm, _) in model.TRANSITIONS.items() if s in frm) for s in Status}
    assert ok[Status.COLLECTED] == ["cancel", "register"]
    assert ok[Status.REGISTERED] == ["cancel", "dispatch"]
    assert ok[Status.FED_BACK] == ["cancel", "close", "rework"]
    assert ok[Status.CLOSED] == ["assess", "rework"]
    assert ok[Status.ASSESSED] == [] and ok[Status.CANCELLED] == []


@pytest.mark.parametrize("action", [a for a in Action])
def test_only_the_right_role(action):
    start = {Action.REGISTER: 0, Action.DISPATCH: 1, Action.HANDLE: 2, Action.FEEDBACK: 3, Action.CLOSE: 4,
             Action.ASSESS: 5, Action.CANCEL: 2, Action.REWORK: 4}[action]
    c = advance(fresh(), start)
    for role in model.Role:
        if role in model.ROLES[action]:
            assert step(c, action, role=role.value).status == model.TRANSITIONS[action][1].value
        else:
            with pytest.raises(PermissionDeniedError, match="may not"):
                step(c, action, role=role.value)


def test_skip_is_refused_with_the_allowed_steps_named():
    c = fresh()
    with pytest.raises(InvalidInputError, match="Allowed now: register, cancel|Allowed now: cancel, register"):
        step(c, Action.HANDLE)


def test_rework_from_feedback_and_from_closed():
    c = advance(fresh(), 4)  # fed back
    r = step(c, Action.REWORK)
    assert r.status == "dispatched" and r.rework_count == 1 and r.handled is None and r.fed_back is None
    assert r.deadline > c.deadline  # a new deadline from the re-dispatch
    closed = advance(fresh(), 5)
    r2 = step(closed, Action.REWORK)
    assert r2.status == "dispatched" and r2.closed is None and r2.satisfaction is None
    again = step(step(step(r2, Action.HANDLE), Action.FEEDBACK), Action.CLOSE, satisfaction=3)
    assert again.status == "closed" and again.rework_count == 1 and again.satisfaction == 3


def test_closed_case_reopens_only_by_rework():
    closed = advance(fresh(), 5)
    for a in (Action.REGISTER, Action.DISPATCH, Action.HANDLE, Action.FEEDBACK, Action.CLOSE, Action.CANCEL):
        with pytest.raises(InvalidInputError):
            step(closed, a)
    assessed = step(closed, Action.ASSESS)
    with pytest.raises(InvalidInputError, match="final"):
        step(assessed, Action.REWORK)


def test_cancelled_is_final_and_has_no_colour():
    c = step(advance(fresh(), 2), Action.CANCEL)
    assert c.status == "cancelled" and c.colour(NOW) is None
    for a in Action:
        with pytest.raises(InvalidInputError, match="final"):
            step(c, a)


@pytest.mark.parametrize("rating", [0, 6, -1, 3.5, "five", None, True])
def test_satisfaction_outside_scale(rating):
    c = advance(fresh(), 4)
    with pytest.raises(InvalidInputError, match="satisfaction"):
        step(c, Action.CLOSE, satisfaction=rating)


@pytest.mark.parametrize("rating", model.SATISFACTION_SCALE)
def test_satisfaction_on_scale(rating):
    assert step(advance(fresh(), 4), Action.CLOSE, satisfaction=rating).satisfaction == rating


def test_satisfaction_only_at_close():
    with pytest.raises(InvalidInputError, match="close step"):
        step(fresh(), Action.REGISTER, satisfaction=5)


def test_timestamps_not_future_nor_before_previous_step():
    c = fresh()
    with pytest.raises(InvalidInputError, match="future"):
        model.apply(c, "register", actor="a", role="command_centre", at=NOW + timedelta(minutes=1), now=NOW)
    with pytest.raises(InvalidInputError, match="before"):
        model.apply(c, "register", actor="a", role="command_centre", at=NOW - timedelta(days=4), now=NOW)
    # naive means China Standard Time: 19:00 CST == 11:00 UTC, before NOW
    ok = model.apply(c, "register", actor="a", role="command_centre", at="2016-06-01T19:00:00", now=NOW)
    assert ok.registered == "2016-06-01T11:00:00Z"
    with pytest.raises(InvalidInputError, match="future"):
        model.apply(c, "register", actor="a", role="command_centre", at="2016-06-01T20:30:00", now=NOW)


def test_optimistic_version():
    c = fresh()
    with pytest.raises(ConflictError):
        model.apply(c, "register", actor="a", role="command_centre", expected_version=3, now=NOW,
                    at=NOW - timedelta(hours=1))


def test_department_only_at_dispatch():
    c = step(fresh(), Action.REGISTER)
    d = step(c, Action.DISPATCH, department="urban_management")
    assert d.department == "urban_management"
    with pytest.raises(InvalidInputError, match="unknown department"):
        step(c, Action.DISPATCH, department="nowhere")
    with pytest.raises(InvalidInputError, match="at dispatch"):
        step(d, Action.HANDLE, department="police")


def _dispatched(hours_ago, category="sanitation"):
    c = fresh(at=NOW - timedelta(hours=hours_ago + 1), category=category)
    c = model.apply(c, "register", actor="a", role="command_centre", at=NOW - timedelta(hours=hours_ago + 0.5), now=NOW)
    return model.apply(c, "dispatch", actor="a", role="command_centre", at=NOW - timedelta(hours=hours_ago), now=NOW)


@pytest.mark.parametrize("hours, colour", [(1, "green"), (19, "green"), (19.5, "blue"), (23.9, "blue"),
                                           (24, "yellow"), (47, "yellow"), (48, "red"), (100, "red")])
def test_default_ladder_on_a_24h_case(hours, colour):
    assert _dispatched(hours).colour(NOW) == colour


def test_ladder_is_configurable_and_validated():
    lad = model.SupervisionLadder(blue_from=0.5, yellow_from=1.0, red_from=1.5)
    assert _dispatched(13).colour(NOW, lad) == "blue"
    assert _dispatched(37).colour(NOW, lad) == "red"
    with pytest.raises(InvalidInputError):
        model.SupervisionLadder(blue_from=1.2, yellow_from=1.0)
    with pytest.raises(InvalidInputError):
        model.SupervisionLadder(blue_from=0)


def test_closed_case_colour_frozen_at_close():
    c = _dispatched(30)  # 24 h deadline, dispatched 30 h ago
    c = model.apply(c, "handle", actor="d", role="department", at=NOW - timedelta(hours=29), now=NOW)
    c = model.apply(c, "feedback", actor="d", role="department", at=NOW - timedelta(hours=28), now=NOW)
    c = model.apply(c, "close", actor="w", role="grid_worker", at=NOW - timedelta(hours=27), satisfaction=4,
                    now=NOW)
    assert c.colour(NOW) == "green" and c.colour(NOW + timedelta(days=30)) == "green"
