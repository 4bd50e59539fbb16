"""CSV cells that a spreadsheet would run as a formula are written as text.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, WPS and LibreOffice (``=HYPERLINK(...)`` in a case's text exfiltrates on a click). Such
text cells get a leading apostrophe, the spreadsheet convention for "this is text" (OWASP's
advice for CSV injection). Numbers are left as numbers: a negative value stays negative.
"""
from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """``value`` with a leading ``'`` if it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and text index) are neutralised with :func:`cell`."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(cell)
    if out.index.dtype == object:
        out.index = out.index.map(cell)
    return out
