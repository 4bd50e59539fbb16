"""The one range of instants every date parameter may name (``?at=``, ``from``/``to``, ``datetime``,
a case's step times).

Python dates end at year 9999 and pandas timestamps at 2262, so an unbounded date reaches an
overflow somewhere downstream (a day added to 9999-12-31, a time zone shift below year 1).
Refusing early, with the range in the message, turns those into a 400 that says what to send.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from .errors import InvalidInputError

#: dates and naive times are read in China Standard Time throughout the service
CST = timezone(timedelta(hours=8))
EARLIEST = datetime(1900, 1, 1, tzinfo=CST)
LATEST = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=CST)
RANGE_TEXT = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (China Standard Time)"


def check_date(d: date, what: str = "date") -> date:
    if not EARLIEST.date() <= d <= LATEST.date():
        raise InvalidInputError(f"{what} {d.isoformat()} is outside the dates this service reads: {RANGE_TEXT}",
                                detail={"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()})
    return d


def check(t: datetime, what: str = "time") -> datetime:
    """``t`` (aware; naive is read as CST) if it lies in the range, else InvalidInputError naming it."""
    aware = t if t.tzinfo else t.replace(tzinfo=CST)
    # compare calendar dates first: comparing aware datetimes near year 1 or 9999 can itself overflow
    if not EARLIEST.date() - timedelta(days=1) <= aware.date() <= LATEST.date() + timedelta(days=1) \
            or not EARLIEST <= aware <= LATEST:
        raise InvalidInputError(f"{what} {t.isoformat()} is outside the dates this service reads: {RANGE_TEXT}",
                                detail={"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()})
    return t
