"""Reproducing a past state: the atlas as it stood at an instant.

Grid boundaries are versioned in the store (``valid_from``/``valid_to``), and
buildings are assigned to grids by the atlas from their representative point,
so an as-of atlas places today's buildings and households in the grids of that
day. (People and buildings themselves are not versioned: the store keeps their
current state only.)
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

from .. import timebounds
from ..budget import Budget, unlimited
from ..errors import InvalidInputError
from .snapshot import Atlas

#: dates and naive times are read in China Standard Time
CST = timezone(timedelta(hours=8))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_at(value: str) -> datetime:
    """``2026-11-27`` -> the end of that day (CST); an ISO datetime (naive = CST) -> that instant."""
    v = str(value).strip()
    try:
        d = date.fromisoformat(v) if _DATE.match(v) else None
        t = None if d else datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"at={value!r} is not a date (2026-11-27) or an ISO 8601 date-time "
                                "(2026-11-27T15:00:00+08:00)") from None
    if d is not None:
        timebounds.check_date(d, "at")
        return datetime.combine(d + timedelta(days=1), time(0), CST) - timedelta(microseconds=1)
    timebounds.check(t, "at")
    return t if t.tzinfo else t.replace(tzinfo=CST)


def version_at(store, when: datetime) -> int:
    """The atlas version in force at ``when``: the last applied change at or before it."""
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    changes = store.grid_changes()
    if not changes:
        return store.atlas_version()
    done = [c for c in changes if c["applied_at"] <= stamp]
    return int(done[-1]["to_version"]) if done else int(changes[0]["from_version"])


def atlas_at(store, when: datetime, budget: Budget | None = None) -> Atlas:
    """The atlas at ``when``; ``budget`` bounds reading the history and building it."""
    budget = unlimited(budget, "the as-of atlas")
    budget.step("reading the change history")
    return Atlas.from_store(store, at=when, version=version_at(store, when), budget=budget)
