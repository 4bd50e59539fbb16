"""Benchmark of incident aggregation and the heatmap page on the demo case history.

    .venv/bin/python bench/incidents.py [STORE] [--repeats 5]

STORE defaults to data/shizhong.gpkg (generated when missing). A store without
the case history gets it written into a temporary copy. In one process:

1. aggregation of all cases per base grid and per department (cases, closed,
   closure rate, median handling time, satisfaction) by
   ``gis_grid.incidents.aggregate.group_stats`` on the loaded case table,
   against the anchor geopandas ``sjoin`` (points within grid polygons) +
   ``groupby`` computing the same figures on the same data. The per-grid
   counts of both must agree (boundary points follow the lowest-code tie rule
   in gis_grid; sjoin may count them twice, which is reported);
2. building the heatmap page for all cases (layer=heatmap) and the full page
   (heatmap + choropleths), with their sizes in bytes.

Prints a table with ratios and targets, then one JSON line of all figures.
This is a script, not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

import geopandas as gpd  # noqa: E402

from gis_grid.atlas import Atlas  # noqa: E402
from gis_grid.incidents import aggregate  # noqa: E402
from gis_grid.store import default_store_path, open_store  # noqa: E402
from web.incident_pages import incident_page  # noqa: E402

TARGETS = {"speedup_vs_sjoin_groupby": (">=", 10.0), "heatmap_page_s": ("<=", 2.0),
           "heatmap_page_bytes": ("<=", 3_000_000), "full_page_bytes": ("<=", 3_000_000)}


def _store(path: Path):
    if not path.exists():
        from gis_grid.demo.generate import write_demo
        with open_store(path, create=True) as s:
            write_demo(s, progress=False)
    with open_store(path) as s:
        has = not s.incidents(columns=["id"]).empty
    if has:
        return path, None
    tmp = Path(tempfile.mkdtemp(prefix="bench_incidents_"))
    copy = tmp / "shizhong.gpkg"
    shutil.copyfile(path, copy)
    from gis_grid.demo.cases import write_incident_history
    with open_store(copy) as s:
        write_incident_history(s)
    return copy, tmp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", nargs="?", default=str(default_store_path()))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    path, tmp = _store(Path(args.store))
    f: dict = {"store": str(args.store), "repeats": args.repeats, "cpus": os.cpu_count(),
               "python": platform.python_version()}
    try:
        store = open_store(path)
        atlas = Atlas.from_store(store)
        t0 = time.perf_counter()
        table = aggregate.case_table(store, atlas)
        f["case_table_load_s"] = time.perf_counter() - t0
        f["cases"] = len(table)

        # -- ours ------------------------------------------------------------------------
        def ours():
            return (aggregate.group_stats(table, atlas, "grid"), aggregate.group_stats(table, atlas, "department"))
        f["gis_grid_aggregate_s"], (g_ours, d_ours) = median_time(ours, args.repeats)

        # -- anchor: geopandas sjoin + groupby on the same cases ------------------------------------
        df = store.incidents(columns=["id", "department", "status", "lon", "lat", "dispatched", "closed",
                                      "satisfaction"])
        done = df["status"].isin(["closed", "assessed"])
        hours = (pd.to_datetime(df["closed"], utc=True, format="ISO8601")
                 - pd.to_datetime(df["dispatched"], utc=True, format="ISO8601")).dt.total_seconds() / 3600
        points = gpd.GeoDataFrame({"done": done, "hours": hours.where(done),
                                   "sat_ok": (pd.to_numeric(df["satisfaction"]) >= 3) & done,
                                   "rated": pd.to_numeric(df["satisfaction"]).notna() & done,
                                   "department": df["department"]},
                                  geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4490)
        grids = gpd.GeoDataFrame({"code": atlas.grid_codes}, geometry=list(atlas.grid_geometries), crs=4490)

        def anchor():
            j = gpd.sjoin(points, grids, predicate="intersects", how="inner")
            by = j.groupby("code")
            per_grid = pd.DataFrame({"cases": by.size(), "closed": by["done"].sum(),
                                     "median_handling_h": by["hours"].median(),
                                     "satisfaction": 100 * by["sat_ok"].sum() / by["rated"].sum()})
            per_grid["closure_rate"] = 100 * per_grid["closed"] / per_grid["cases"]
            bd = points.groupby("department")
            per_dept = pd.DataFrame({"cases": bd.size(), "closed": bd["done"].sum(),
                                     "median_handling_h": bd["hours"].median()})
            return per_grid, per_dept, len(j)
        f["sjoin_groupby_s"], (g_ref, d_ref, joined) = median_time(anchor, args.repeats)
        f["speedup_vs_sjoin_groupby"] = f["sjoin_groupby_s"] / f["gis_grid_aggregate_s"]
        f["sjoin_double_counted_points"] = int(joined - len(points))
        ref = g_ref["cases"].reindex(g_ours.index, fill_value=0)
        f["grid_count_mismatches"] = int((ref.to_numpy() != g_ours["cases"].to_numpy()).sum())
        med = g_ref["median_handling_h"].reindex(g_ours.index)
        f["grid_median_max_abs_diff_h"] = float(np.nanmax(np.abs(med.to_numpy() - g_ours["median_handling_h"]
                                                                 .to_numpy())))
        f["department_count_mismatches"] = int((d_ref["cases"].reindex(d_ours.index, fill_value=0).to_numpy()
                                                != d_ours["cases"].to_numpy()).sum())

        # -- pages --------------------------------------------------------------------------
        f["heatmap_page_s"], page = median_time(lambda: incident_page(atlas, table, layer="heatmap"),
                                                 args.repeats)
        f["heatmap_page_bytes"] = len(page.encode("utf-8"))
        f["full_page_s"], page = median_time(lambda: incident_page(atlas, table, layer="all"),
                                              max(1, args.repeats // 2))
        f["full_page_bytes"] = len(page.encode("utf-8"))
        store.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = [("cases", f["cases"], ""),
            ("case table load from store (s)", f["case_table_load_s"], ""),
            ("gis_grid per grid + per department (s, median)", f["gis_grid_aggregate_s"], ""),
            ("geopandas sjoin + groupby (s, median)", f["sjoin_groupby_s"], ""),
            ("speed-up vs sjoin + groupby (x)", f["speedup_vs_sjoin_groupby"], "speedup_vs_sjoin_groupby"),
            ("per-grid count mismatches", f["grid_count_mismatches"], ""),
            ("points sjoin counted twice (on shared edges)", f["sjoin_double_counted_points"], ""),
            ("max |median handling diff| per grid (h)", f["grid_median_max_abs_diff_h"], ""),
            ("heatmap page build (s, median)", f["heatmap_page_s"], "heatmap_page_s"),
            ("heatmap page size (bytes)", f["heatmap_page_bytes"], "heatmap_page_bytes"),
            ("full page build (s)", f["full_page_s"], ""),
            ("full page size (bytes)", f["full_page_bytes"], "full_page_bytes")]
    width = max(len(r[0]) for r in rows)
    print(f"\ngis_grid incidents benchmark ({f['cases']:,} cases; {f['cpus']} cpus; median of {f['repeats']})")
    print("-" * (width + 36))
    for name, value, key in rows:
        v = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        verdict = ""
        if key in TARGETS:
            op, target = TARGETS[key]
            ok = value >= target if op == ">=" else value <= target
            verdict = f"target {op} {target:g}: {'ok' if ok else 'MISSED'}"
        print(f"{name:<{width}}  {v:>14}  {verdict}")
    print()
    print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
