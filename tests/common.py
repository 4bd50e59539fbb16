"""Small hand-made geometries and a tiny store for logic tests (in the spirit of shapely's tests/common.py).

The toy district 370402 is the square lon 117.50..117.52, lat 34.80..34.82, cut into
two streets (west/east halves), one community each, and two base grids per community
(north/south halves). Shared edges are exact, so ties are well defined.
"""
from __future__ import annotations

import pandas as pd
import shapely

from gis_grid.store import open_store
from stores import location

X0, X1, XM = 117.50, 117.52, 117.51
Y0, Y1, YM = 34.80, 34.82, 34.81


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


def make_toy_store(path, divisions=None, buildings=None, households=None, residents=None):
    """Write the toy district (or the given tables) into a new store for ``path`` (see stores.location)."""
    hh, res = toy_people()
    tables = {"divisions": toy_divisions() if divisions is None else divisions,
              "buildings": toy_buildings() if buildings is None else buildings,
              "households": hh if households is None else households,
              "residents": res if residents is None else residents,
              "workers": pd.DataFrame({"id": ["W1"], "grid_code": ["370402001001001"], "name": ["周八"],
                                       "role": ["网格长"], "phone": ["13900001111"]})}
    store = open_store(location(path), create=True)
    store.replace_all(tables, {"district": "370402"})
    return store


def bearer(store_or_path, role: str = "command_center", scope: str = "370402") -> dict:
    """Authorization header of a fresh key with ``role`` and ``scope`` in that store."""
    from gis_grid.security.keys import create_key
    from gis_grid.store import open_store

    store = open_store(location(store_or_path)) if isinstance(store_or_path, (str, bytes)) or hasattr(store_or_path, "__fspath__") \
        else store_or_path
    _, token = create_key(store, role, scope, days=1, note="test")
    return {"Authorization": f"Bearer {token}"}
