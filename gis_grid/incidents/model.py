"""The case (社情民意事件) model: categories, departments, deadlines, the 7-step workflow.

A case moves through the seven steps of the national standard for digital
urban management (GB/T 30428): collect, register, dispatch, handle, feedback,
verify-and-close, assess. Creating a case *is* the collect step; every later
step is one :func:`apply` of an action. The rules, enforced here and nowhere
else (the API and the store only call :func:`apply`):

- steps run in order; none can be skipped (``register`` before ``dispatch`` ...);
- only the roles in :data:`ROLES` may perform a step (a
  :class:`~gis_grid.errors.PermissionDeniedError`: over HTTP the role is the
  API key's, see ``Permission.case_role`` in :mod:`gis_grid.security.roles`);
- a case can be **cancelled** by the command centre before it is closed;
- **rework** (返工) sends a case back to ``dispatched`` (the department
  handles it again under a new deadline counted from the rework; the
  handling-time clock keeps running from the first dispatch) from ``fed_back`` (verification
  failed) or from ``closed`` (a closed case reopened). It is the only way
  back: nothing else leaves ``closed``, and ``assessed`` and ``cancelled``
  are final;
- the close step carries the resident's satisfaction rating on the
  :data:`SATISFACTION_SCALE` (1-5; 3 and above count as satisfied);
- every timestamp is timezone-aware (naive input means China Standard Time,
  UTC+8), not in the future, and not before the previous step.

The deadline clock starts at dispatch: ``deadline = dispatched_at +
deadline_hours(category, priority)``. The supervision colour (四色单) is
computed from the deadline by a :class:`SupervisionLadder`.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .. import timebounds
from ..errors import ConflictError, InvalidInputError, PermissionDeniedError


def event_log(raw) -> list:
    """A case's event log from its stored form: JSON text (GeoPackage), a list (PostGIS json), or
    null, which a frame of cases holds as None or NaN (the demo stores cases without a log)."""
    if isinstance(raw, (str, bytes)):
        return list(json.loads(raw)) if raw else []
    return list(raw) if isinstance(raw, (list, tuple)) else []

CST = timezone(timedelta(hours=8), "CST")
#: tolerated clock skew of a client's "now" (seconds) before a timestamp counts as future
FUTURE_TOLERANCE_S = 5.0


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    department: str      #: default responsible department code
    deadline_h: float    #: handling time allowed at routine priority, from dispatch


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str


DEPARTMENTS: dict[str, Department] = {d.code: d for d in [
    Department("letters_visits", "区信访局"),
    Department("urban_management", "区城市管理局"),
    Department("sanitation", "区环境卫生管理处"),
    Department("environment", "区环境保护局"),
    Department("work_safety", "区安全生产监督管理局"),
    Department("food_drug", "区食品药品监督管理局"),
    Department("organization", "区委组织部"),
    Department("police", "市中公安分局"),
    Department("fire", "区消防大队"),
    Department("traffic", "区交警大队"),
    Department("civil_affairs", "区民政局"),
    Department("human_resources", "区人力资源和社会保障局"),
    Department("health_family", "区卫生和计划生育局"),
    Department("housing", "区住房和城乡建设局"),
    Department("utilities", "区公用事业管理局"),
    Department("education", "区教育局"),
    Department("justice", "区司法局"),
    Department("streets", "街道办事处（镇政府）"),
]}

#: The 17 content areas of the seed platform, plus disputes (矛盾纠纷).
CATEGORIES: dict[str, Category] = {c.code: c for c in [
    Category("petition_stability", "信访稳定", "petitions and stability", "letters_visits", 120),
    Category("city_management", "城市管理", "city management", "urban_management", 48),
    Category("sanitation", "环境卫生", "sanitation", "sanitation", 24),
    Category("environmental_protection", "环境保护", "environmental protection", "environment", 72),
    Category("work_safety", "安全生产", "work safety", "work_safety", 48),
    Category("food_drugs", "食品药品", "food and drugs", "food_drug", 72),
    Category("party_building", "社区党建", "community Party building", "organization", 168),
    Category("public_security", "社会治安", "public security", "police", 24),
    Category("fire_safety", "消防安全", "fire safety", "fire", 24),
    Category("traffic_safety", "交通安全", "traffic safety", "traffic", 48),
    Category("social_assistance", "民政救助", "social assistance", "civil_affairs", 120),
    Category("labour_security", "劳动保障", "labour and social security", "human_resources", 120),
    Category("health_family_planning", "卫生计生", "health and family planning", "health_family", 96),
    Category("housing_construction", "房屋建设", "housing and illegal construction", "housing", 96),
    Category("public_utilities", "水电气暖", "water, power, gas and heating", "utilities", 48),
    Category("education", "教育服务", "education", "education", 120),
    Category("other", "其他事项", "other matters", "streets", 96),
    Category("dispute", "矛盾纠纷", "disputes", "justice", 72),
]}
CONTENT_AREAS = tuple(c for c in CATEGORIES if c != "dispute")
assert len(CONTENT_AREAS) == 17


class Priority(str, enum.Enum):
    ROUTINE = "routine"      # 一般
    URGENT = "urgent"        # 紧急
    CRITICAL = "critical"    # 特急


#: deadline factor per priority, applied to the category's routine deadline
PRIORITY_FACTOR = {Priority.ROUTINE: 1.0, Priority.URGENT: 0.5, Priority.CRITICAL: 0.25}


class Status(str, enum.Enum):
    COLLECTED = "collected"      # 1 信息采集
    REGISTERED = "registered"    # 2 案卷建立
    DISPATCHED = "dispatched"    # 3 任务派遣 (clock starts)
    HANDLED = "handled"          # 4 任务处理
    FED_BACK = "fed_back"        # 5 处理反馈
    CLOSED = "closed"            # 6 核查结案
    ASSESSED = "assessed"        # 7 综合评价
    CANCELLED = "cancelled"


class Action(str, enum.Enum):
    REGISTER = "register"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    FEEDBACK = "feedback"
    CLOSE = "close"
    ASSESS = "assess"
    CANCEL = "cancel"
    REWORK = "rework"


class Role(str, enum.Enum):
    GRID_WORKER = "grid_worker"          # 网格员: collects, verifies on site
    HOTLINE = "hotline"                  # 12345 hotline / other systems: collects
    COMMAND_CENTRE = "command_centre"    # 指挥中心 受理员/派遣员
    DEPARTMENT = "department"            # 专业部门 / 承办单位
    SUPERVISOR = "supervisor"            # 监督考核


#: the 7 steps, in order, with the status each leaves the case in
STEPS = ("collect", "register", "dispatch", "handle", "feedback", "close", "assess")
#: action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[Action, tuple[frozenset, Status]] = {
    Action.REGISTER: (frozenset({Status.COLLECTED}), Status.REGISTERED),
    Action.DISPATCH: (frozenset({Status.REGISTERED}), Status.DISPATCHED),
    Action.HANDLE: (frozenset({Status.DISPATCHED}), Status.HANDLED),
    Action.FEEDBACK: (frozenset({Status.HANDLED}), Status.FED_BACK),
    Action.CLOSE: (frozenset({Status.FED_BACK}), Status.CLOSED),
    Action.ASSESS: (frozenset({Status.CLOSED}), Status.ASSESSED),
    Action.CANCEL: (frozenset({Status.COLLECTED, Status.REGISTERED, Status.DISPATCHED, Status.HANDLED,
                               Status.FED_BACK}), Status.CANCELLED),
    Action.REWORK: (frozenset({Status.FED_BACK, Status.CLOSED}), Status.DISPATCHED),
}
#: who may create a case (the collect step), and who may perform each action
COLLECT_ROLES = frozenset({Role.GRID_WORKER, Role.HOTLINE, Role.COMMAND_CENTRE})
ROLES: dict[Action, frozenset] = {
    Action.REGISTER: frozenset({Role.COMMAND_CENTRE}),
    Action.DISPATCH: frozenset({Role.COMMAND_CENTRE}),
    Action.HANDLE: frozenset({Role.DEPARTMENT}),
    Action.FEEDBACK: frozenset({Role.DEPARTMENT}),
    Action.CLOSE: frozenset({Role.GRID_WORKER, Role.COMMAND_CENTRE}),
    Action.ASSESS: frozenset({Role.SUPERVISOR}),
    Action.CANCEL: frozenset({Role.COMMAND_CENTRE}),
    Action.REWORK: frozenset({Role.COMMAND_CENTRE, Role.GRID_WORKER}),
}
#: the timestamp/actor column each action fills
STEP_COLUMN = {Action.REGISTER: "registered", Action.DISPATCH: "dispatched", Action.HANDLE: "handled",
               Action.FEEDBACK: "fed_back", Action.CLOSE: "closed", Action.ASSESS: "assessed",
               Action.CANCEL: "cancelled"}
OPEN_STATUSES = frozenset({Status.COLLECTED, Status.REGISTERED, Status.DISPATCHED, Status.HANDLED,
                           Status.FED_BACK})
DONE_STATUSES = frozenset({Status.CLOSED, Status.ASSESSED})

#: satisfaction ratings: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意
SATISFACTION_SCALE = (1, 2, 3, 4, 5)
#: ratings at or above this count as satisfied in satisfaction rates
SATISFIED_FROM = 3


# -- validation ------------------------------------------------------------------
def parse_enum(cls, value, what: str):
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).strip().lower())
    except ValueError:
        raise InvalidInputError(f"unknown {what} {value!r}; use one of {', '.join(m.value for m in cls)}") from None


def check_category(code) -> Category:
    c = CATEGORIES.get(str(code).strip().lower() if code is not None else "")
    if c is None:
        raise InvalidInputError(f"unknown category {code!r}; use one of {', '.join(CATEGORIES)}")
    return c


def check_department(code) -> Department:
    d = DEPARTMENTS.get(str(code).strip().lower() if code is not None else "")
    if d is None:
        raise InvalidInputError(f"unknown department {code!r}; use one of {', '.join(DEPARTMENTS)}")
    return d


def check_satisfaction(value) -> int:
    if isinstance(value, bool) or value is None:
        raise InvalidInputError(f"satisfaction must be an integer on the scale {SATISFACTION_SCALE}, got {value!r}")
    try:
        v = int(value)
        ok = float(value) == v
    except (TypeError, ValueError):
        ok = False
    if not ok or v not in SATISFACTION_SCALE:
        raise InvalidInputError(f"satisfaction {value!r} is outside the scale "
                                f"{SATISFACTION_SCALE[0]}..{SATISFACTION_SCALE[-1]} "
                                "(5 very satisfied ... 1 very dissatisfied)")
    return v


def to_aware(value, what: str = "timestamp") -> datetime:
    """A datetime or ISO-8601 string -> aware datetime (naive means China Standard Time)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"{what} {value!r} is not an ISO-8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be an ISO-8601 date-time, got {value!r}")
    timebounds.check(value, what)
    return value if value.tzinfo else value.replace(tzinfo=CST)


def check_time(at, *, now: datetime, not_before: datetime | None, what: str, before_what: str) -> datetime:
    at = to_aware(at, what)
    if (at - now).total_seconds() > FUTURE_TOLERANCE_S:
        raise InvalidInputError(f"{what} {iso(at)} is in the future (now is {iso(now)})")
    if not_before is not None and at < not_before:
        raise InvalidInputError(f"{what} {iso(at)} is before {before_what} {iso(not_before)}")
    return at


def iso(t: datetime | None) -> str | None:
    """UTC ISO-8601 with 'Z', second precision (the storage form)."""
    if t is None:
        return None
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def deadline_hours(category: str, priority: Priority | str) -> float:
    p = priority if isinstance(priority, Priority) else parse_enum(Priority, priority, "priority")
    return check_category(category).deadline_h * PRIORITY_FACTOR[p]


# -- supervision colours (四色单) -----------------------------------------------
class Colour(str, enum.Enum):
    GREEN = "green"
    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class SupervisionLadder:
    """Colour by the share of the allowed handling time used (``u``).

    ``u = (t - dispatched_at) / (deadline - dispatched_at)`` where ``t`` is the
    close time of a closed case, else the time of evaluation:

    - green: ``u < blue_from`` (on time, default < 80 % of the time used);
    - blue: ``blue_from <= u < yellow_from`` (near the deadline, 80-100 %);
    - yellow: ``yellow_from <= u < red_from`` (late, up to twice the allowed time);
    - red: ``u >= red_from`` (seriously late: escalated to the district leadership).

    A case not yet dispatched is green (the clock has not started); a cancelled
    case has no colour. Override by passing another ladder, e.g.
    ``SupervisionLadder(blue_from=0.5)``.
    """

    blue_from: float = 0.8
    yellow_from: float = 1.0
    red_from: float = 2.0

    def __post_init__(self):
        if not (0 < self.blue_from <= self.yellow_from <= self.red_from):
            raise InvalidInputError("a supervision ladder needs 0 < blue_from <= yellow_from <= red_from, got "
                                    f"{self.blue_from}, {self.yellow_from}, {self.red_from}")

    def colour_of_fraction(self, u: float) -> Colour:
        if u >= self.red_from:
            return Colour.RED
        if u >= self.yellow_from:
            return Colour.YELLOW
        if u >= self.blue_from:
            return Colour.BLUE
        return Colour.GREEN


DEFAULT_LADDER = SupervisionLadder()


# -- the case ----------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    action: str
    at: str
    actor: str
    role: str
    note: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Incident:
    """One case; immutable: :func:`apply` returns a new one."""

    id: str
    category: str
    department: str
    priority: str
    lon: float
    lat: float
    grid_code: str
    reporter: str
    reporter_role: str
    created: str                  # collect step (UTC ISO)
    status: str = Status.COLLECTED.value
    description: str = ""
    building_id: int | None = None
    registered: str | None = None
    dispatched: str | None = None
    handled: str | None = None
    fed_back: str | None = None
    closed: str | None = None
    assessed: str | None = None
    cancelled: str | None = None
    deadline: str | None = None
    satisfaction: int | None = None
    assessment: str | None = None
    rework_count: int = 0
    version: int = 1
    events: tuple = field(default_factory=tuple)
    reported_grid_code: str | None = None   # the grid it was logged in (grid_code follows redraws)

    @property
    def last_time(self) -> datetime:
        """Time of the latest step (from the event log, or the step columns when it has none)."""
        stamps = [self.created, self.registered, self.dispatched, self.handled, self.fed_back, self.closed,
                  self.assessed, self.cancelled] + [e.at for e in self.events if e.action != "rehome"]
        return to_aware(max(s for s in stamps if s))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["events"] = [e.to_dict() for e in self.events]
        return d

    def colour(self, at: datetime | None = None, ladder: SupervisionLadder = DEFAULT_LADDER) -> str | None:
        return colour_of(self.status, self.dispatched, self.deadline, self.closed, at, ladder)


def colour_of(status, dispatched, deadline, closed, at=None, ladder=DEFAULT_LADDER) -> str | None:
    if status == Status.CANCELLED.value:
        return None
    if dispatched is None or deadline is None:
        return Colour.GREEN.value
    t0, t1 = to_aware(dispatched), to_aware(deadline)
    t = to_aware(closed) if closed is not None and status in (Status.CLOSED.value, Status.ASSESSED.value) \
        else (at or datetime.now(timezone.utc))
    span = (t1 - t0).total_seconds()
    return ladder.colour_of_fraction((t - t0).total_seconds() / span if span > 0 else float("inf")).value


ASSESSMENTS = ("excellent", "good", "fair", "poor")


def check_role(role, action: str) -> Role:
    """The workflow role, if it may perform ``action`` ('collect' or an :class:`Action` value).

    A role that may not is refused with :class:`PermissionDeniedError` (403 over HTTP), checked
    before the case's state: whether a role may ever take a step does not depend on the case.
    """
    r = parse_enum(Role, role, "role")
    allowed = COLLECT_ROLES if action == "collect" else ROLES[parse_enum(Action, action, "action")]
    if r not in allowed:
        raise PermissionDeniedError(f"role {r.value!r} may not {action}"
                                    f"{' a case' if action == 'collect' else ''}; allowed: "
                                    f"{', '.join(sorted(x.value for x in allowed))}")
    return r


def new_incident(*, id: str, category, lon: float, lat: float, grid_code: str, reporter: str,
                 role, at=None, priority="routine", department=None, description: str = "",
                 building_id=None, now: datetime | None = None, actor: str | None = None) -> Incident:
    """The collect step: validate and build a new case (the caller has located it).

    ``reporter`` says who collected it (a worker id, '12345'); ``actor`` (default: the
    reporter) is who performed the step in the event log, e.g. the API key that sent it.
    """
    r = check_role(role, "collect")
    cat = check_category(category)
    p = parse_enum(Priority, priority or "routine", "priority")
    dept = check_department(department) if department else DEPARTMENTS[cat.department]
    if not str(reporter or "").strip():
        raise InvalidInputError("a case needs a reporter (who collected it)")
    actor = str(actor).strip() if actor is not None and str(actor).strip() else str(reporter).strip()
    now = now or datetime.now(timezone.utc)
    t = check_time(at if at is not None else now, now=now, not_before=None, what="collect time", before_what="")
    return Incident(id=id, category=cat.code, department=dept.code, priority=p.value, lon=float(lon),
                    lat=float(lat), grid_code=grid_code, reported_grid_code=grid_code, reporter=str(reporter).strip(), reporter_role=r.value,
                    created=iso(t), description=str(description or ""), building_id=building_id,
                    events=(Event("collect", iso(t), actor, r.value),))


def apply(case: Incident, action, *, actor: str, role, at=None, satisfaction=None, note: str | None = None,
          assessment: str | None = None, department=None, expected_version: int | None = None,
          now: datetime | None = None) -> Incident:
    """Perform one workflow action; raise :class:`InvalidInputError` when the rules forbid it
    (:class:`PermissionDeniedError` when ``role`` may not take this step).

    ``expected_version`` (optimistic locking) raises :class:`ConflictError`
    when the case changed since the caller read it.
    """
    a = parse_enum(Action, action, "action")
    r = check_role(role, a.value)
    if expected_version is not None and int(expected_version) != case.version:
        raise ConflictError(f"case {case.id} is at version {case.version}, not {expected_version}; "
                            "reload it and retry")
    status = Status(case.status)
    allowed_from, to = TRANSITIONS[a]
    if status not in allowed_from:
        nxt = [x.value for x, (frm, _) in TRANSITIONS.items() if status in frm]
        raise InvalidInputError(
            f"cannot {a.value} case {case.id}: it is {status.value}; steps run in order and none can be "
            f"skipped. Allowed now: {', '.join(nxt) or 'nothing (final)'}")
    if not str(actor or "").strip():
        raise InvalidInputError("a transition needs an actor (who performed it)")
    now = now or datetime.now(timezone.utc)
    t = check_time(at if at is not None else now, now=now, not_before=case.last_time,
                   what=f"{a.value} time", before_what="the case's previous step at")
    changes: dict = {"status": to.value, "version": case.version + 1}
    if a is Action.CLOSE:
        if satisfaction is None:
            raise InvalidInputError("closing a case needs the resident's satisfaction rating (1-5)")
        changes["satisfaction"] = check_satisfaction(satisfaction)
    elif satisfaction is not None:
        raise InvalidInputError(f"a satisfaction rating belongs to the close step, not to {a.value}")
    if a is Action.ASSESS:
        if assessment is not None and assessment not in ASSESSMENTS:
            raise InvalidInputError(f"unknown assessment {assessment!r}; use one of {', '.join(ASSESSMENTS)}")
        changes["assessment"] = assessment or _auto_assessment(case)
    if department is not None:
        if a is not Action.DISPATCH:
            raise InvalidInputError("the department is chosen at dispatch")
        changes["department"] = check_department(department).code
    if a is Action.DISPATCH:
        changes["deadline"] = iso(t + timedelta(hours=deadline_hours(case.category, case.priority)))
    if a is Action.REWORK:
        # the clock keeps running from the first dispatch (handling time includes rework);
        # the department gets a fresh allowance from the rework
        changes.update(handled=None, fed_back=None, closed=None, satisfaction=None,
                       rework_count=case.rework_count + 1,
                       deadline=iso(t + timedelta(hours=deadline_hours(case.category, case.priority))))
    else:
        changes[STEP_COLUMN[a]] = iso(t)
    ev = Event(a.value, iso(t), str(actor).strip(), r.value, note)
    return dataclasses.replace(case, events=case.events + (ev,), **changes)


def _auto_assessment(case: Incident) -> str:
    late = case.deadline is not None and case.closed is not None and case.closed > case.deadline
    sat = case.satisfaction or 0
    if not late and sat >= 4 and case.rework_count == 0:
        return "excellent"
    if not late and sat >= SATISFIED_FROM:
        return "good"
    if sat >= SATISFIED_FROM:
        return "fair"
    return "poor"
