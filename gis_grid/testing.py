"""Helpers for testing gis_grid and code built on it.

* a toy district (:func:`make_toy_store` and its tables), small enough to reason about by hand;
* :func:`free_port`, for tests that start a server;
* :data:`ID18`, :data:`MOBILE` and :func:`find_pii`, to look for unmasked personal data in text;
* :func:`skip_or_fail_on_ci`, for tests whose prerequisite may be missing on a developer machine.

Importing this module loads the library and its data stack only: no web framework, no server and
no pytest (the one pytest use is imported inside the function that needs it), so non-test code
and other tools can use it too.
"""
from __future__ import annotations

import os
import re
import socket

import pandas as pd
import shapely

from gis_grid.errors import InvalidInputError

from gis_grid.store import open_store

# -- the toy district ------------------------------------------------------------------------------
# District 370402 is the square lon 117.50..117.52, lat 34.80..34.82, cut into two streets (west/east
# halves), one community each, and two base grids per community (north/south halves). Shared edges
# are exact, so ties are well defined.
X0, X1, XM = 117.50, 117.52, 117.51
Y0, Y1, YM = 34.80, 34.82, 34.81
DISTRICT = "370402"


def box(a, b, c, d):
    return shapely.MultiPolygon([shapely.box(a, b, c, d)])


def toy_divisions() -> pd.DataFrame:
    rows = [
        ("370402", "市中区", "district", "370400", None, box(X0, Y0, X1, Y1)),
        ("370402001", "西街道", "street", "370402", None, box(X0, Y0, XM, Y1)),
        ("370402002", "东街道", "street", "370402", None, box(XM, Y0, X1, Y1)),
        ("370402001001", "西社区居委会", "community", "370402001", "urban", box(X0, Y0, XM, Y1)),
        ("370402002001", "东村委会", "community", "370402002", "rural", box(XM, Y0, X1, Y1)),
        ("370402001001001", "西第1网格", "grid", "370402001001", "urban", box(X0, YM, XM, Y1)),
        ("370402001001002", "西第2网格", "grid", "370402001001", "urban", box(X0, Y0, XM, YM)),
        ("370402002001001", "东第1网格", "grid", "370402002001", "rural", box(XM, YM, X1, Y1)),
        ("370402002001002", "东第2网格", "grid", "370402002001", "rural", box(XM, Y0, X1, YM)),
    ]
    df = pd.DataFrame(rows, columns=["code", "name", "level", "parent_code", "kind", "geometry"])
    df["version"] = 1
    df["valid_from"] = "2014-01-01T00:00:00.000000Z"
    df["valid_to"] = None
    df["area_m2"] = 0.0
    return df


def toy_buildings() -> pd.DataFrame:
    # one building inside each base grid, away from the edges
    centres = [(117.505, 34.815, "370402001001001"), (117.505, 34.805, "370402001001002"),
               (117.515, 34.815, "370402002001001"), (117.515, 34.805, "370402002001002")]
    return pd.DataFrame({
        "id": [1, 2, 3, 4], "kind": "residential_block", "name": [f"{i}号楼" for i in range(1, 5)],
        "floors": 6, "units": 2, "grid_code": [c[2] for c in centres],
        "geometry": [shapely.box(x - 0.0002, y - 0.0001, x + 0.0002, y + 0.0001) for x, y, _ in centres]})


def toy_people() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(households, residents); the ID numbers and mobiles are well-formed but unmasked."""
    hh = pd.DataFrame({"id": ["Ha1", "Hb2", "Hc3", "Hd4", "He5"], "building_id": [1, 1, 2, 3, 4],
                       "grid_code": ["370402001001001", "370402001001001", "370402001001002",
                                     "370402002001001", "370402002001002"],
                       "unit": 1, "floor": [1, 2, 1, 1, 1], "room": ["1单元101", "1单元201", "1单元101", "正房", "正房"],
                       "size": [2, 1, 1, 1, 1], "head_name": ["张三", "李四", "王五", "赵六", "孙七"], "flags": ""})
    res = pd.DataFrame({
        "id": ["Rq1", "Rq2", "Rq3", "Rq4", "Rq5", "Rq6"],
        "household_id": ["Ha1", "Ha1", "Hb2", "Hc3", "Hd4", "He5"],
        "name": ["张三", "刘梅", "李四", "王五", "赵六", "孙七"], "gender": ["M", "F", "M", "M", "M", "F"],
        "birth_date": ["1970-01-01"] * 6,
        "id_number": ["370402197001010011", "370402197001010028", "370402197001010036",
                      "370402197001010044", "370402197001010052", "370402197001010060"],
        "phone": ["13812345678"] * 6, "relation": ["户主", "配偶", "户主", "户主", "户主", "户主"],
        "disabled": 0, "low_income": 0, "elderly_alone": 0, "extreme_poverty": 0,
        "left_behind_child": 0, "veteran": 0, "community_correction": 0})
    return hh, res


def toy_workers() -> pd.DataFrame:
    return pd.DataFrame({"id": ["W1"], "grid_code": ["370402001001001"], "name": ["周八"],
                         "role": ["网格长"], "phone": ["13900001111"]})


def toy_tables(**replace: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The toy district's tables for ``Store.replace_all``; a keyword (``buildings=...``) replaces one."""
    unknown = set(replace) - {"divisions", "buildings", "households", "residents", "workers"}
    if unknown:
        raise InvalidInputError(f"toy_tables: unknown table(s) {sorted(unknown)}")
    hh, res = toy_people()
    tables = {"divisions": toy_divisions(), "buildings": toy_buildings(), "households": hh,
              "residents": res, "workers": toy_workers()}
    tables.update({name: df for name, df in replace.items() if df is not None})
    return tables


def make_toy_store(url, **replace: pd.DataFrame | None):
    """A new store at ``url`` (a GeoPackage path or a ``postgresql://`` URL) holding the toy district.

    Keywords replace single tables, as in :func:`toy_tables`. The caller closes the store.
    """
    store = open_store(url, create=True)
    store.replace_all(toy_tables(**replace), {"district": DISTRICT})
    return store


# -- servers ---------------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; another process may still take it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# -- personal data ---------------------------------------------------------------------------------
# A resident ID: area code, birth date (18xx-20xx, month 01-12, day 01-31), sequence, check digit
# (0-9 or X). A mainland mobile: 1[3-9] + 9 digits. Neither may be part of a longer run of ASCII
# letters and digits (hex key ids, hashes, tokens) nor of a decimal fraction (coordinates have long
# fractions); Chinese text right next to a number still counts, so no \b (CJK letters are \w).
_START, _END = r"(?<![0-9A-Za-z.])", r"(?![0-9A-Za-z])"
ID18 = re.compile(_START + r"\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _END)
MOBILE = re.compile(_START + r"1[3-9]\d{9}" + _END)


def stop_process(proc, timeout: float = 10) -> None:
    """Terminate a server started for a test or a benchmark; kill it if it does not stop in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except Exception:  # subprocess.TimeoutExpired: it ignored SIGTERM
        proc.kill()
        proc.wait()


def find_pii(text: str) -> list[str]:
    """The unmasked ID numbers and mobiles in ``text`` (first few of each)."""
    return ID18.findall(text)[:3] + MOBILE.findall(text)[:3]


# -- prerequisites ---------------------------------------------------------------------------------
def skip_or_fail_on_ci(reason: str) -> None:
    """Skip the current test for a missing prerequisite, but fail it under CI (``CI`` set).

    A developer machine may lack GDAL, Chromium or a PostgreSQL server; CI must have them, so
    there a skip would hide that the test never ran.
    """
    import pytest  # here, not at the top: importing gis_grid.testing must not need pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this may not be skipped)", pytrace=False)
    pytest.skip(reason)
