"""A crowded toy community for planning tests (in addition to tests/common.py's toy district)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from common import X0, XM, Y0, Y1, make_toy_store, toy_divisions

WEST = "370402001001"


def make_crowded_store(path):
    """4 x 6 buildings in the west community (10 households each, 1 resident each), two grids of
    120 households; the east community as in the toy district."""
    rows = []
    xs = np.linspace(X0 + 0.001, XM - 0.001, 4)
    ys = np.linspace(Y0 + 0.001, Y1 - 0.001, 6)
    bid = 0
    for y in ys:
        for x in xs:
            bid += 1
            code = WEST + ("001" if y > 34.81 else "002")
            rows.append((bid, code, shapely.box(x - 0.0002, y - 0.0001, x + 0.0002, y + 0.0001)))
    rows += [(100, "370402002001001", shapely.box(117.5148, 34.8149, 117.5152, 34.8151)),
             (101, "370402002001002", shapely.box(117.5148, 34.8049, 117.5152, 34.8051))]
    b = pd.DataFrame({"id": [r[0] for r in rows], "kind": "residential_block", "name": None, "floors": 6,
                      "units": 2, "grid_code": [r[1] for r in rows], "geometry": [r[2] for r in rows]})
    hh_b = np.repeat(b["id"].to_numpy(), 10)
    hh_g = np.repeat(b["grid_code"].to_numpy(), 10)
    hh = pd.DataFrame({"id": [f"H{i}" for i in range(len(hh_b))], "building_id": hh_b, "grid_code": hh_g,
                       "unit": 1, "floor": 1, "room": "101", "size": 1, "head_name": "张三", "flags": ""})
    res = pd.DataFrame({"id": [f"R{i}" for i in range(len(hh))], "household_id": hh["id"], "name": "张三",
                        "gender": "M", "birth_date": "1970-01-01", "id_number": None, "phone": None,
                        "relation": "户主", "disabled": 0, "low_income": 0, "elderly_alone": 0,
                        "extreme_poverty": 0, "left_behind_child": 0, "veteran": 0, "community_correction": 0})
    return make_toy_store(path, divisions=toy_divisions(), buildings=b, households=hh, residents=res)
