"""`gis-grid province`: a synthetic province of ~10,000 base grids, to measure how costs grow.

It tiles copies of one district's four division levels side by side (22 copies
of the Shizhong demo give 9,790 base grids), each copy with its own district
code, so every street, community and grid code is unique and nests by prefix
as usual. The copies keep the source's geometry exactly:

- shifts are whole multiples of 2**-12 degrees, and every shifted coordinate
  stays in the same power-of-two range as the source (lon in [64, 128), lat in
  [32, 64)), so ``x + dx`` is computed without rounding. Shared vertices stay
  shared, valid polygons stay valid, and each copy is still an exact partition;
- copies sit on a grid of the source's bounding box plus a gap, so districts
  never touch: no tie between districts, and the coverage check of each copy
  is the source's.

Buildings, households and residents are *not* copied: 22 x 60k buildings would
make a building cell table of ~800 MB, and the province exists to measure point
location against the grids. The store holds the divisions only.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import shapely

from ..errors import InvalidInputError
from ..hierarchy import Level
from ..store import Store

PROVINCE = "370000"  # Shandong; not a stored level: districts name their (synthetic) city as parent
SHIFT_UNIT = 2.0 ** -12
MAX_DISTRICTS = 8 * 99


def district_codes(n: int) -> list[str]:
    """``n`` synthetic district codes 37CCDD: 8 districts per city, county numbers 02..09."""
    if not 1 <= n <= MAX_DISTRICTS:
        raise InvalidInputError(f"a province here has 1..{MAX_DISTRICTS} districts, not {n}")
    return [f"37{1 + k // 8:02d}{2 + k % 8:02d}" for k in range(n)]


def tile_districts(divisions: pd.DataFrame, n: int, columns: int | None = None, gap_cells: int = 8) -> pd.DataFrame:
    """``n`` shifted, recoded copies of the single district in ``divisions`` (all four levels)."""
    districts = divisions[divisions["level"] == Level.DISTRICT.value]
    if len(districts) != 1:
        raise InvalidInputError(f"the source must hold exactly one district to tile, it holds {len(districts)}")
    src_code = districts["code"].iloc[0]
    geoms = divisions["geometry"].to_numpy()
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    columns = columns or math.ceil(math.sqrt(n))
    # whole cells: the copies' cell tables align with the source's, and the sums are exact
    step_x = (math.ceil((maxx - minx) / SHIFT_UNIT) + gap_cells) * SHIFT_UNIT
    step_y = (math.ceil((maxy - miny) / SHIFT_UNIT) + gap_cells) * SHIFT_UNIT
    copies = []
    for k, code in enumerate(district_codes(n)):
        dx, dy = (k % columns) * step_x, (k // columns) * step_y
        moved = shapely.transform(geoms, lambda xy, d=np.array([dx, dy]): xy + d)
        _check_exact(geoms, moved, dx, dy)
        c = divisions.copy()
        c["code"] = code + c["code"].str[len(src_code):]
        parent = c["parent_code"].astype(object)
        c["parent_code"] = np.where(c["level"] == Level.DISTRICT.value, f"{code[:4]}00",
                                    code + parent.str[len(src_code):].fillna(""))
        c.loc[c["level"] == Level.DISTRICT.value, "name"] = f"合成{k + 1:02d}区"
        c["geometry"] = moved
        copies.append(c)
    return pd.concat(copies, ignore_index=True)


def _check_exact(before, after, dx, dy) -> None:
    a, b = shapely.get_coordinates(before), shapely.get_coordinates(after)
    # exact means the shift can be undone bit for bit; otherwise shared vertices could split
    if not (np.array_equal(b - [dx, dy], a) and np.array_equal(np.frexp(a)[1], np.frexp(b)[1])):
        raise InvalidInputError("a shifted copy left the source's power-of-two coordinate range, where the "
                                "shift is no longer exact; use fewer districts or fewer columns")


def build_province(source: Store, n: int = 22, columns: int | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """The tables of a synthetic province from the district in ``source`` (divisions only)."""
    divisions = tile_districts(source.divisions(), n, columns)
    empty = {name: getattr(source, name)().iloc[:0] for name in ("buildings", "households", "workers")}
    empty["residents"] = source.residents().iloc[:0]
    meta = {"province": PROVINCE, "synthetic": "1", "districts": str(n),
            "source_district": source.meta().get("district", "")}
    return {"divisions": divisions, **empty}, meta


def write_province(source: Store, target: Store, n: int = 22, columns: int | None = None) -> dict[str, int]:
    tables, meta = build_province(source, n, columns)
    target.replace_all(tables, meta)
    d = tables["divisions"]
    return {level.value: int((d["level"] == level.value).sum()) for level in Level}
