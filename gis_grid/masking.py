"""Server-side masking (脱敏) of personal data before it leaves the service.

Rules (the scalar and the vectorised functions give identical results):

* ID numbers: an 18-character number keeps its 6-digit area prefix and its
  last 4 characters (``370402********1234``); a legacy 15-digit number keeps
  the area prefix and its 3-digit order code. The birth-date digits are never
  shown. Anything else keeps at most its first 2 characters (none when it is
  shorter than 6) and every other character becomes ``*``.
* Phones: an 11-digit mainland mobile (optionally written with spaces,
  hyphens or a ``+86``/``0086``/``86`` prefix) becomes ``138****5678``; any
  other value of 8 or more characters keeps its first 2 and last 2 characters,
  shorter ones are starred out entirely.
* Names: the surname stays, every other character becomes ``*``
  (``张*``, ``欧阳**`` for the compound surnames in
  :data:`COMPOUND_SURNAMES`); a one-character name becomes ``*``.
* ``None``, NaN and empty strings become ``''``. Surrounding whitespace is
  dropped first.

Masking is length-preserving apart from the phone normalisation.
"""
from __future__ import annotations

import math
import re

import numpy as np

__all__ = [
    "PERSONAL_FIELDS",
    "VULNERABILITY_FIELDS",
    "COMPOUND_SURNAMES",
    "mask_id",
    "mask_phone",
    "mask_name",
    "mask_ids",
    "mask_phones",
    "mask_names",
]

#: Columns holding directly identifying personal data.
PERSONAL_FIELDS = frozenset({"name", "id_number", "phone", "birth_date", "head_name"})
#: Columns revealing membership of a vulnerable or special group.
VULNERABILITY_FIELDS = frozenset({
    "disabled", "low_income", "elderly_alone", "extreme_poverty",
    "left_behind_child", "veteran", "community_correction", "flags",
})
#: Two-character surnames kept whole by :func:`mask_name`.
COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙",
    "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕", "令狐", "钟离",
})

_STAR = "*"
_ID18 = re.compile(r"[0-9]{17}[0-9Xx]")
_ID15 = re.compile(r"[0-9]{15}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_SEPARATORS = re.compile(r"[ \-]")
_PHONE_PREFIXES = (("+86", 14), ("0086", 15), ("86", 13))


# ------------------------------------------------------------------ scalars


def _text(value) -> str:
    """A stripped string for any scalar; '' for None/NaN/NA."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if math.isfinite(value) and float(value).is_integer():
            return str(int(value))  # IDs and phones read from spreadsheets
        return str(value).strip()
    try:  # pandas.NA, NaT and similar missing markers
        import pandas as pd

        if pd.isna(value):
            return ""
    except (ImportError, TypeError, ValueError):
        pass
    return str(value).strip()


def _keep(s: str, head: int, tail: int = 0) -> str:
    n = len(s)
    middle = n - head - tail
    return s[:head] + _STAR * middle + (s[n - tail:] if tail else "")


def mask_id(value) -> str:
    """``370402199001011234`` -> ``370402********1234``."""
    s = _text(value)
    if not s:
        return ""
    if len(s) == 18 and _ID18.fullmatch(s):
        return _keep(s, 6, 4)
    if len(s) == 15 and _ID15.fullmatch(s):
        return _keep(s, 6, 3)
    return _keep(s, 2 if len(s) >= 6 else 0)


def _normalise_phone(s: str) -> str:
    t = _PHONE_SEPARATORS.sub("", s)
    for prefix, length in _PHONE_PREFIXES:
        if len(t) == length and t.startswith(prefix):
            return t[len(prefix):]
    return t


def mask_phone(value) -> str:
    """``13812345678`` -> ``138****5678``."""
    s = _text(value)
    if not s:
        return ""
    t = _normalise_phone(s)
    if len(t) == 11 and _MOBILE.fullmatch(t):
        return _keep(t, 3, 4)
    if len(s) >= 8:
        return _keep(s, 2, 2)
    return _STAR * len(s)


def mask_name(value) -> str:
    """``张三`` -> ``张*``, ``欧阳娜娜`` -> ``欧阳**``, ``李`` -> ``*``."""
    s = _text(value)
    if len(s) >= 3 and s[:2] in COMPOUND_SURNAMES:
        return _keep(s, 2)
    return _keep(s, 1 if len(s) >= 2 else 0)


# --------------------------------------------------------------- vectorised


def _prepare(values):
    """(stripped 1-d <U array, original shape, wrap) for array-likes.

    ``wrap`` turns a result array back into the caller's container: a pandas
    Series keeps its index and name, everything else becomes an ndarray.
    """
    wrap = None
    if hasattr(values, "index") and hasattr(values, "to_numpy") and getattr(values, "ndim", 1) == 1:
        import pandas as pd

        if isinstance(values, pd.Series):
            index, name = values.index, values.name
            values = values.to_numpy(dtype=object)
            wrap = lambda out: pd.Series(out, index=index, name=name)  # noqa: E731
    arr = np.asarray(values)
    shape = arr.shape
    arr = arr.reshape(-1)
    if arr.dtype.kind == "U":
        pass
    elif arr.dtype.kind in "iub":
        arr = np.array([_text(v) for v in arr.tolist()], dtype=str) if arr.dtype.kind == "b" \
            else arr.astype(str)
    else:  # object, float, bytes, datetime...: go element by element
        arr = np.array([_text(v) for v in arr.tolist()], dtype=str)
    if arr.size == 0:
        arr = arr.astype("<U1")
    arr = np.strings.strip(arr)
    if wrap is None:
        wrap = lambda out: out  # noqa: E731
    return np.ascontiguousarray(arr), shape, wrap


def _codes(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, w) uint32 code points (a copy) and the string lengths (int32)."""
    w = max(arr.dtype.itemsize // 4, 1)
    arr = np.ascontiguousarray(arr.astype(f"<U{w}"))
    codes = arr.view(np.uint32).reshape(arr.size, w).copy()
    return codes, np.strings.str_len(arr).astype(np.int32)


def _assemble(codes: np.ndarray, lengths: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Star out the code points up to ``lengths`` that are not in ``keep``.

    ``codes`` is modified in place; positions past a string's end are NUL.
    """
    col = np.arange(codes.shape[1], dtype=np.int32)
    star = col[None, :] < lengths[:, None]
    star &= ~keep
    np.putmask(codes, star, np.uint32(ord(_STAR)))
    return np.ascontiguousarray(codes).view(f"<U{codes.shape[1]}").reshape(-1)


def _head_tail(lengths: np.ndarray, head: np.ndarray, tail: np.ndarray, width: int) -> np.ndarray:
    col = np.arange(width, dtype=np.int32)[None, :]
    keep = col < head.astype(np.int32)[:, None]
    keep |= col >= (lengths - tail).astype(np.int32)[:, None]
    return keep


def _is_digit(c: np.ndarray) -> np.ndarray:
    return (c - np.uint32(48)) <= np.uint32(9)  # wraps around below '0'


def mask_ids(values):
    """Vectorised :func:`mask_id` over a numpy array, list or pandas Series."""
    arr, shape, wrap = _prepare(values)
    codes, n = _codes(arr)
    w = codes.shape[1]
    if w < 18:
        codes = np.pad(codes, ((0, 0), (0, 18 - w)))
    dig = _is_digit(codes)
    last = codes[:, 17]
    is18 = (n == 18) & dig[:, :17].all(axis=1) & (dig[:, 17] | (last == ord("X")) | (last == ord("x")))
    is15 = (n == 15) & dig[:, :15].all(axis=1)
    head = np.where(is18 | is15, 6, np.where(n >= 6, 2, 0))
    tail = np.where(is18, 4, np.where(is15, 3, 0))
    keep = _head_tail(n, head, tail, codes.shape[1])
    out = _assemble(codes, n, keep)
    return wrap(out.reshape(shape))


def mask_phones(values):
    """Vectorised :func:`mask_phone` over a numpy array, list or pandas Series."""
    arr, shape, wrap = _prepare(values)
    norm = np.strings.replace(np.strings.replace(arr, " ", ""), "-", "")
    ncodes, nlen = _codes(norm)
    width = max(ncodes.shape[1], 15)
    if ncodes.shape[1] < width:
        ncodes = np.pad(ncodes, ((0, 0), (0, width - ncodes.shape[1])))
    start = np.zeros(arr.size, dtype=np.int64)
    for prefix, length in _PHONE_PREFIXES:
        p = np.array([ord(c) for c in prefix], dtype=np.uint32)
        hit = (start == 0) & (nlen == length) & (ncodes[:, : len(p)] == p).all(axis=1)
        start[hit] = len(prefix)
    idx = start[:, None] + np.arange(11)[None, :]
    mobile = np.take_along_axis(ncodes, idx, axis=1)
    is_mobile = ((nlen - start) == 11) & _is_digit(mobile).all(axis=1) & (mobile[:, 0] == ord("1")) \
        & (mobile[:, 1] >= ord("3"))
    mobile_out = _assemble(mobile, np.full(arr.size, 11),
                           _head_tail(np.full(arr.size, 11), np.full(arr.size, 3),
                                      np.full(arr.size, 4), 11))

    codes, n = _codes(arr)
    head = np.where(n >= 8, 2, 0)
    tail = np.where(n >= 8, 2, 0)
    other_out = _assemble(codes, n, _head_tail(n, head, tail, codes.shape[1]))
    out = np.where(is_mobile, mobile_out, other_out)
    return wrap(out.reshape(shape))


_COMPOUND_KEYS = np.array(
    sorted((ord(s[0]) << 32) | ord(s[1]) for s in COMPOUND_SURNAMES), dtype=np.uint64)


def mask_names(values):
    """Vectorised :func:`mask_name` over a numpy array, list or pandas Series."""
    arr, shape, wrap = _prepare(values)
    codes, n = _codes(arr)
    if codes.shape[1] >= 2:
        key = (codes[:, 0].astype(np.uint64) << np.uint64(32)) | codes[:, 1].astype(np.uint64)
        compound = (n >= 3) & np.isin(key, _COMPOUND_KEYS)
    else:
        compound = np.zeros(arr.size, dtype=bool)
    head = np.where(compound, 2, np.where(n >= 2, 1, 0))
    keep = _head_tail(n, head, np.zeros_like(head), codes.shape[1])
    keep &= np.arange(codes.shape[1])[None, :] < head[:, None]
    out = _assemble(codes, n, keep)
    return wrap(out.reshape(shape))
