"""`gis-grid demo`: build the realistic Shizhong demo district into a store."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import shapely
from tqdm import tqdm

from .. import crs
from ..errors import GisGridError
from ..coverage import Report, check_shapes
from ..store import Store
from .buildings import generate_buildings, place_households
from ..partition import node_coverage
from .cases import write_incident_history
from .grids import build_units
from .ids import unique_ids
from .people import generate_people

STORAGE_SNAP_DEG = 1e-9  # ~0.1 mm
AS_OF = dt.date(2016, 12, 31)  # the seed report's snapshot; incidents run 2014-2016
GRIDS_VALID_FROM = "2014-01-01T00:00:00.000000Z"
_URBAN_SIZES = ([1, 2, 3, 4, 5, 6], [0.12, 0.28, 0.30, 0.17, 0.09, 0.04])
_RURAL_SIZES = ([1, 2, 3, 4, 5, 6], [0.12, 0.22, 0.22, 0.22, 0.14, 0.08])
_WORKER_ROLES = ["网格长", "专职网格员", "兼职网格员", "网格警员", "网格指导员", "专职网格员"]


def to_storage_geoms(geoms_m) -> np.ndarray:
    """EPSG:4548 geometries -> EPSG:4490; shared vertices map identically, so coverages stay exact."""
    return crs.transform_geoms(np.asarray(geoms_m, dtype=object), crs.InputCRS.GK117, crs.InputCRS.CGCS2000)


def build_demo(seed: int = 370402, progress: bool = True) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Generate every table of the demo district; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    bar = tqdm(total=5 + 445, desc="demo district", unit="step", disable=not progress)
    bar.set_postfix_str("grids")
    district, streets, communities, grids = build_units(rng)
    bar.update(5)

    units = [district, *streets, *communities, *grids]
    # re-node the base grids in the storage CRS (projection can fold a near-collinear
    # vertex into a self-intersection), then rebuild every parent as their exact union
    grid_4490 = node_coverage(list(to_storage_geoms([u.geom_m for u in grids])), grid_size=STORAGE_SNAP_DEG)
    by_code = {u.division.code: g for u, g in zip(grids, grid_4490)}
    for level_units in (communities, streets, [district]):
        for u in level_units:
            by_code[u.division.code] = shapely.coverage_union_all(
                [g for c, g in by_code.items() if len(c) == len(u.division.code) + 3 and c.startswith(u.division.code)])
    geoms_4490 = [by_code[u.division.code] for u in units]
    divisions = pd.DataFrame({
        "code": [u.division.code for u in units],
        "name": [u.division.name for u in units],
        "level": [u.division.level.value for u in units],
        "parent_code": [u.division.parent_code for u in units],
        "kind": [u.division.kind for u in units],
        "version": 1, "valid_from": GRIDS_VALID_FROM, "valid_to": None,
        "area_m2": [round(u.geom_m.area, 1) for u in units],
        "geometry": [shapely.MultiPolygon(list(shapely.get_parts(g))) for g in geoms_4490],
    })

    refuse_bad_shapes(divisions)

    bar.set_postfix_str("buildings")
    grid_frame = pd.DataFrame({"code": [u.division.code for u in grids], "kind": [u.division.kind for u in grids],
                               "geometry": [u.geom_m for u in grids]})
    b = generate_buildings(grid_frame, rng, progress=bar)
    names = dict(zip(divisions["code"], divisions["name"]))
    b["id"] = np.arange(1, len(b) + 1)
    seq = b.groupby("grid_code").cumcount() + 1
    # the grid's name already starts with its community's ("中兴社区第1网格"); gluing the
    # community name to the grid name's tail doubled a character (中兴社区区…, 辛庄庄…)
    b["name"] = [f"{names[g]}{n}号{'楼' if k == 'residential_block' else '院' if k == 'courtyard_house' else ''}"
                 for g, n, k in zip(b["grid_code"], seq, b["kind"])]
    b["geometry"] = to_storage_geoms(b["geometry"].to_numpy())

    bar.set_postfix_str("households")
    flats = place_households(b, rng)
    rural = flats["rural"].to_numpy()
    sizes = np.where(rural, rng.choice(_RURAL_SIZES[0], len(flats), p=_RURAL_SIZES[1]),
                     rng.choice(_URBAN_SIZES[0], len(flats), p=_URBAN_SIZES[1]))
    hh_people, residents = generate_people(rng, sizes, rural, AS_OF)
    household_ids = unique_ids(rng, len(flats), "H")
    households = pd.DataFrame({
        "id": household_ids,
        "building_id": b["id"].to_numpy()[flats["building"].to_numpy()],
        "grid_code": b["grid_code"].to_numpy()[flats["building"].to_numpy()],
        "unit": flats["unit"].to_numpy(), "floor": flats["floor"].to_numpy(), "room": flats["room"].to_numpy(),
        "size": sizes, "head_name": hh_people["head_name"].to_numpy(), "flags": hh_people["flags"].to_numpy()})
    residents = residents.copy()
    residents.insert(0, "id", unique_ids(rng, len(residents), "R"))
    residents["household_id"] = household_ids[residents.pop("household").to_numpy()]
    residents["birth_date"] = pd.to_datetime(residents["birth_date"]).dt.strftime("%Y-%m-%d")
    for col in ("disabled", "low_income", "elderly_alone", "extreme_poverty", "left_behind_child",
                "veteran", "community_correction"):
        residents[col] = residents[col].astype(int)

    bar.set_postfix_str("workers")
    workers = _workers(rng, [u.division.code for u in grids])
    bar.close()
    tables = {"divisions": divisions,
              "buildings": b[["id", "kind", "name", "floors", "units", "grid_code", "geometry"]],
              "households": households, "residents": residents, "workers": workers}
    meta = {"seed": str(seed), "district": district.division.code, "demo": "1", "as_of": AS_OF.isoformat()}
    return tables, meta


def refuse_bad_shapes(divisions: pd.DataFrame) -> None:
    """Stop the build if a base grid has a spike or a sliver: a demo should look surveyed."""
    report = Report()
    check_shapes(divisions, report)
    if not report.ok:
        raise GisGridError("demo grids have spikes or slivers:\n" + "\n".join(
            f"  {v['feature']}: {v['problem']}" for v in report.violations[:20]))


def _workers(rng, grid_codes):
    n = rng.integers(5, 7, len(grid_codes))
    people, people_res = generate_people(rng, np.ones(n.sum(), dtype=int), np.zeros(n.sum(), dtype=bool), AS_OF)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return pd.DataFrame({
        "id": unique_ids(rng, int(n.sum()), "W"),
        "grid_code": np.repeat(grid_codes, n),
        "name": people_res["name"].to_numpy(),
        "role": np.array(_WORKER_ROLES)[k],
        "phone": people_res["phone"].to_numpy()})


def write_demo(store: Store, seed: int = 370402, progress: bool = True) -> dict[str, int]:
    tables, meta = build_demo(seed, progress)
    store.replace_all(tables, meta)  # then the 2014-2016 case history (~15 s)
    return {**{name: len(df) for name, df in tables.items()}, "incidents": write_incident_history(store, seed)}
