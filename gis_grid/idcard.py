"""Chinese resident identity numbers (公民身份号码, GB 11643-1999).

An 18-character number is laid out as::

    AAAAAA YYYYMMDD SSS C
    area   birth    |   check character (ISO 7064 MOD 11-2)
                    order code; its last digit is odd for men, even for women

The scalar helpers (:func:`check_digit`, :func:`is_valid_id`,
:func:`birth_date_of`, :func:`gender_of`) suit single values; the vectorised
ones (:func:`make_ids`, :func:`validate_ids`, :func:`birth_dates_of`) work on
whole numpy arrays through a ``uint8`` digit matrix and handle hundreds of
thousands of numbers in a fraction of a second.

Birth years from 1800 on are accepted (the standard's own examples include a
person born in 1880). A lower-case ``x`` check character is accepted when
validating, as it is common in keyed-in data; :func:`make_ids` always writes
``X``.
"""
from __future__ import annotations

import datetime as _dt
import re

import numpy as np

from .errors import InvalidInputError

__all__ = [
    "WEIGHTS",
    "CHECK_CHARS",
    "MIN_BIRTH_YEAR",
    "check_digit",
    "is_valid_id",
    "birth_date_of",
    "gender_of",
    "make_ids",
    "validate_ids",
    "birth_dates_of",
]

#: Weights of the first 17 digits: 2**(17-i) mod 11 for i = 0..16.
WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: Check character for each value of (weighted sum mod 11).
CHECK_CHARS = "10X98765432"
#: Earliest birth year accepted as a valid date.
MIN_BIRTH_YEAR = 1800

_W = np.array(WEIGHTS, dtype=np.int32)
_CHECK_CODES = np.frombuffer(CHECK_CHARS.encode("ascii"), dtype=np.uint8)
# CHECK_CHARS as numbers, 'X' standing for 10.
_CHECK_VALUES = np.array([10 if c == "X" else int(c) for c in CHECK_CHARS], dtype=np.int64)
_FIRST17 = re.compile(r"[0-9]{17}")
_ID18 = re.compile(r"[0-9]{17}[0-9Xx]")


def check_digit(first17: str) -> str:
    """The check character for the first 17 digits of an ID number.

    >>> check_digit("11010519491231002")
    'X'
    """
    if not isinstance(first17, str) or not _FIRST17.fullmatch(first17):
        raise InvalidInputError(
            f"check_digit needs exactly 17 ASCII digits, got {first17!r}")
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS))
    return CHECK_CHARS[total % 11]


def _birth_date_or_none(s: str) -> _dt.date | None:
    try:
        year, month, day = int(s[6:10]), int(s[10:12]), int(s[12:14])
        if year < MIN_BIRTH_YEAR:
            return None
        return _dt.date(year, month, day)
    except ValueError:
        return None


def is_valid_id(s: object, *, as_of: _dt.date | None = None) -> bool:
    """True for a well-formed 18-character ID number.

    Checks the length, the digits, the check character and that positions
    7-14 form a real calendar date (year >= 1800). With ``as_of`` the birth
    date must also not be later than that day. Never raises.
    """
    if not isinstance(s, str) or not _ID18.fullmatch(s):
        return False
    born = _birth_date_or_none(s)
    if born is None or (as_of is not None and born > _as_date(as_of)):
        return False
    return check_digit(s[:17]) == s[17].upper()


def birth_date_of(s: str) -> _dt.date:
    """Birth date encoded in a valid ID number."""
    if not is_valid_id(s):
        raise InvalidInputError(
            f"{_redact(s)} is not a valid 18-character ID number "
            "(length, digits, birth date or check character is wrong)")
    return _birth_date_or_none(s)  # type: ignore[return-value]


def gender_of(s: str) -> str:
    """'M' or 'F' from the parity of the 17th digit of a valid ID number."""
    if not is_valid_id(s):
        raise InvalidInputError(
            f"{_redact(s)} is not a valid 18-character ID number")
    return "M" if int(s[16]) % 2 else "F"


def _redact(s: object) -> str:
    # Error messages may end up in logs: never echo a whole ID number.
    if isinstance(s, str):
        return repr(s[:2] + "*" * max(len(s) - 2, 0)) if len(s) > 2 else repr("*" * len(s))
    return f"a {type(s).__name__}"


def _as_date(value) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    try:
        return np.datetime64(value, "D").astype(_dt.date)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{value!r} is not a date") from None


# ---------------------------------------------------------------- vectorised


def _ascii_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint32 code points of a 1-d string array, zero padded."""
    arr = np.asarray(values)
    if arr.dtype.kind != "U":
        arr = arr.astype(str)
    arr = np.ascontiguousarray(arr.reshape(-1))
    w = arr.dtype.itemsize // 4
    if w == 0:
        return np.zeros((arr.size, width), dtype=np.uint32)
    codes = arr.view(np.uint32).reshape(arr.size, w)
    if w >= width:
        return codes
    out = np.zeros((arr.size, width), dtype=np.uint32)
    out[:, :w] = codes
    return out


def make_ids(area_codes, birth_dates, sequence, female) -> np.ndarray:
    """Build 18-character ID numbers, vectorised.

    ``area_codes``: 6-digit strings; ``birth_dates``: ``datetime64[D]``;
    ``sequence``: the 3-digit order code, 0-999; ``female``: booleans. The
    order code's last digit (the 17th digit of the number) is forced to the
    gender's parity by setting or clearing its lowest bit (odd for men, even
    for women), so pass ``2 * k + (~female)`` with ``k`` in 0..499 to control
    it exactly. Arguments broadcast against each other (a single area code is
    fine). Returns a ``<U18`` array.
    """
    area = np.asarray(area_codes)
    born = np.asarray(birth_dates)
    seq = np.asarray(sequence)
    fem = np.asarray(female)
    try:
        area, born, seq, fem = np.broadcast_arrays(area, born, seq, fem)
    except ValueError:
        raise InvalidInputError(
            "make_ids: area_codes, birth_dates, sequence and female must have "
            "the same length (or be single values)") from None
    shape = area.shape
    n = area.size

    if fem.dtype != bool:
        raise InvalidInputError("make_ids: female must be booleans")
    if n and seq.dtype.kind not in "iu":
        raise InvalidInputError("make_ids: sequence must be integers 0-999")
    seq = seq.reshape(-1).astype(np.int64, copy=False)
    if n and (seq.min() < 0 or seq.max() > 999):
        raise InvalidInputError("make_ids: sequence must lie in 0-999 (3 digits)")

    digits = np.empty((n, 18), dtype=np.uint8)

    a = _ascii_matrix(area.reshape(-1), 6)
    a_digits = a[:, :6].astype(np.int64) - 48
    if n and (a.shape[1] > 6 and a[:, 6:].any() or a_digits.min() < 0 or a_digits.max() > 9):
        raise InvalidInputError("make_ids: every area code must be exactly 6 ASCII digits")
    digits[:, :6] = a_digits

    try:
        d = born.reshape(-1).astype("datetime64[D]")
    except (ValueError, TypeError):
        raise InvalidInputError("make_ids: birth_dates must be datetime64 dates") from None
    if n and np.isnat(d).any():
        raise InvalidInputError("make_ids: birth_dates contain NaT")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    year = y.astype(np.int64) + 1970
    month = (m - y).astype(np.int64) + 1
    day = (d - m).astype(np.int64) + 1
    if n and (year.min() < MIN_BIRTH_YEAR or year.max() > 9999):
        raise InvalidInputError(
            f"make_ids: birth years must lie in {MIN_BIRTH_YEAR}-9999")
    for col, (v, div) in enumerate(
            [(year, 1000), (year, 100), (year, 10), (year, 1),
             (month, 10), (month, 1), (day, 10), (day, 1)], start=6):
        digits[:, col] = (v // div) % 10

    male = ~fem.reshape(-1)
    seq = (seq & ~1) | male.astype(np.int64)
    digits[:, 14] = seq // 100
    digits[:, 15] = (seq // 10) % 10
    digits[:, 16] = seq % 10

    total = digits[:, :17] @ _W
    chars = np.empty((n, 18), dtype=np.uint32)
    chars[:, :17] = digits[:, :17]
    chars[:, :17] += 48
    chars[:, 17] = _CHECK_CODES[total % 11]
    return chars.view("<U18").reshape(shape)


def _id_matrix(ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(digits (n,18) int64 with -1 for non-digits, structurally-ok mask, shape)."""
    arr = np.asarray(ids)
    shape = arr.shape
    if arr.dtype.kind == "O":
        arr = np.array([x if isinstance(x, str) else "" for x in arr.reshape(-1)], dtype=str)
    elif arr.dtype.kind != "U":
        arr = arr.astype(str)
    codes = _ascii_matrix(arr.reshape(-1), 18)
    n = codes.shape[0]
    ok = np.ones(n, dtype=bool)
    if codes.shape[1] > 18:
        ok &= ~codes[:, 18:].any(axis=1)
    c = codes[:, :18].astype(np.int64)
    dig = (c >= 48) & (c <= 57)
    ok &= dig[:, :17].all(axis=1)
    last_x = (c[:, 17] == ord("X")) | (c[:, 17] == ord("x"))
    ok &= dig[:, 17] | last_x
    values = np.where(dig, c - 48, -1)
    values[:, 17] = np.where(last_x, 10, values[:, 17])
    return values, ok, shape


def _dates_from_digits(v: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    year = v[:, 6] * 1000 + v[:, 7] * 100 + v[:, 8] * 10 + v[:, 9]
    month = v[:, 10] * 10 + v[:, 11]
    day = v[:, 12] * 10 + v[:, 13]
    ok = ok & (year >= MIN_BIRTH_YEAR) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    y = np.where(ok, year, 2000) - 1970
    m0 = y.astype("datetime64[Y]").astype("datetime64[M]") + (np.where(ok, month, 1) - 1)
    d = m0.astype("datetime64[D]") + (np.where(ok, day, 1) - 1)
    ok &= d.astype("datetime64[M]") == m0  # rejects 31 April, 29 Feb of non-leap years
    return np.where(ok, d, np.datetime64("NaT", "D")), ok


def _validate(ids, as_of) -> tuple[np.ndarray, np.ndarray, tuple]:
    v, ok, shape = _id_matrix(ids)
    dates, ok = _dates_from_digits(v, ok)
    if as_of is not None:
        ok &= dates <= np.datetime64(_as_date(as_of), "D")
    total = np.where(ok[:, None], v[:, :17], 0) @ _W
    expected = _CHECK_VALUES[total % 11]
    ok &= v[:, 17] == expected
    return ok, np.where(ok, dates, np.datetime64("NaT", "D")), tuple(shape)


def validate_ids(ids, *, as_of: _dt.date | None = None) -> np.ndarray:
    """Vectorised :func:`is_valid_id`: a boolean array of the input's shape."""
    ok, _, shape = _validate(ids, as_of)
    return ok.reshape(shape)


def birth_dates_of(ids) -> np.ndarray:
    """Vectorised birth dates (``datetime64[D]``); NaT where a number is invalid."""
    _, dates, shape = _validate(ids, None)
    return dates.reshape(shape)
