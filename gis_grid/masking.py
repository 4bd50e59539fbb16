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

Free text (a case's description, a transition note) goes through :func:`mask_text`:

* every run of 7 or more digits (with the separators a phone number is written with, an
  ``X`` check digit, a ``+86``/``0086`` prefix or a bracketed area code) is personal data:
  an 18- or 15-digit run is masked as an ID number, an 11-digit mobile as a phone, and any
  other run (landlines with or without area code, 16-19 digit card numbers, ...) keeps its
  last 2 digits only, its separators and an area code's leading ``0``;
* a name after a cue word (``来电人``, ``联系人``, ``姓名``, ... :data:`NAME_CUES`) loses all but
  its surname, reading up to 3 Han characters (4 after a compound surname): a longer
  match over-masks the word after a short name, which errs on the safe side;
* names passed in ``names`` (a case's reporter, for one) are masked wherever they appear.

A case's ``reporter`` is personal data too (:func:`mask_reporter`): a phone is masked as a
phone, anything else as a name, except the ``key:`` ids the service writes itself, which
name an API key (the event log shows them as actors) and no person.
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
    "NAME_CUES",
    "mask_text",
    "mask_reporter",
    "mask_case",
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


# --------------------------------------------------------------- free text

#: Words after which free text names a person (the name is masked).
NAME_CUES = ("来电人", "来电者", "来电市民", "反映人", "举报人", "投诉人", "报告人", "报案人", "求助人",
             "联系人", "当事人", "申请人", "户主", "姓名", "居民", "市民", "村民")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
# a digit run of 7+ with phone separators, optional +86/0086 prefix and (0xxx) area code
_DIGITS = re.compile(r"(?<![0-9])(?:(?:\+|00)86[ \-]?)?(?:\(0[0-9]{2,3}\)[ \-]?)?"
                     r"[0-9](?:[ \-]?[0-9]){6,}[Xx]?(?![0-9A-Za-z])")
_NAME_AFTER_CUE = re.compile("(" + "|".join(sorted(NAME_CUES, key=len, reverse=True)) + ")"
                             + r"([\s:：是为叫]{0,2})([" + _HAN + "]{2,4})")
KEY_ACTOR = re.compile(r"key:[0-9a-f]{4}(?:-[0-9a-f]{1,4})*")


def _mask_digits(m: re.Match) -> str:
    s = m.group(0)
    bare = re.sub(r"[^0-9Xx]", "", s)
    if len(bare) in (15, 18) and (_ID18.fullmatch(bare) or _ID15.fullmatch(bare)):
        return mask_id(bare)
    t = _normalise_phone(s.replace("(", "").replace(")", ""))
    if len(t) == 11 and _MOBILE.fullmatch(t):
        return mask_phone(t)
    # anything else: keep separators, an area code's leading 0 and the last 2 digits
    out, seen, total = [], 0, sum(c.isdigit() for c in s)
    for i, c in enumerate(s):
        if c.isdigit() or c in "Xx":
            seen += 1
            keep = seen > total - 2 or (seen == 1 and c == "0")
            out.append(c if keep else _STAR)
        else:
            out.append(c)
    return "".join(out)


def _mask_cued_name(m: re.Match) -> str:
    cue, sep, name = m.groups()
    if not (len(name) == 4 and name[:2] in COMPOUND_SURNAMES):
        name = name[:3]
    rest = m.group(3)[len(name):]
    return cue + sep + mask_name(name) + rest


def mask_text(value, names=()) -> str:
    """Free text with ID numbers, phone and other long numbers, cued names and ``names`` masked."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    s = str(value)
    for n in names:
        n = _text(n)
        if len(n) >= 2 and not KEY_ACTOR.fullmatch(n):
            s = s.replace(n, mask_reporter(n))
    s = _DIGITS.sub(_mask_digits, s)
    return _NAME_AFTER_CUE.sub(_mask_cued_name, s)


def mask_reporter(value) -> str:
    """A case's reporter: a key id stays (it names an API key), a phone is masked as one, else as a name."""
    s = _text(value)
    if not s or KEY_ACTOR.fullmatch(s):
        return s
    if re.fullmatch(r"[0-9+()\- ]{5,}", s):
        return mask_phone(s)
    return mask_name(s)


def mask_case(case: dict) -> dict:
    """A case's public dict with its personal data masked (a new dict; ``case`` is not changed).

    ``reporter`` is masked, and the free text (``description``, every event's ``note``)
    goes through :func:`mask_text`, which also masks the reporter wherever it is quoted.
    """
    out = dict(case)
    reporter = case.get("reporter")
    names = (reporter,) if reporter else ()
    if "reporter" in out:
        out["reporter"] = mask_reporter(reporter)
    if "description" in out:
        out["description"] = mask_text(out["description"], names)
    if "events" in out:
        out["events"] = [{**e, "note": mask_text(e["note"], names)} if e.get("note") else dict(e)
                         for e in out["events"] or []]
    return out
