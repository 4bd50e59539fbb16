"""Province scale (issue #14, point 6): the locate atlas of ~100k grids, its load, and 1M points in process.

    .venv/bin/python bench/province.py [PROVINCE] [--source STORE] [--districts 220] [--n 1000000] [--reps 3]

PROVINCE (default data/province220.gpkg) is made with ``gis-grid province --districts N``
from the demo district STORE (default data/shizhong.gpkg) when missing; its grid count is
printed. Then, each in a child process timed from start to exit with its own peak RSS
(VmHWM) printed by the child:

* cold load: the locate cache of the province is deleted, ``locate_cache.locator`` reads the
  store, builds the cell tables and writes the cache (what the first ``gis-grid locate`` pays);
* warm start: the same call on the cache just written (every later ``gis-grid locate``).

In this process: 1M points uniform in the grids' bounding box located on the warm cache
(``grid_index.lookup``: the base grid; ``locate_arrow``: the four levels' code columns, as the
batch job writes them) against ``geopandas.sjoin(predicate="intersects")`` with the same grids,
medians of --reps and the ratio. Every answer is checked against the exact shapely answer with
the tie rule (lowest grid code among the grids a point touches), also on 50,000 points placed
exactly on grid vertices and edges. Targets: load <= 5 s and <= 2 GB; >= 5M points/s; 0 mismatches
(the exit code is 1 otherwise).

This is a script, not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from locate import ensure_store, make_points, tie_min  # noqa: E402
from timing import median_time  # noqa: E402

# a child: load the locator, then report its own wall time and peak RSS
CHILD = """
import json, sys, time
t = time.perf_counter()
from gis_grid import locate_cache
loc = locate_cache.locator(sys.argv[1])
assert loc is not None, "no locator"
wall = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"load_s": wall, "peak_rss_mb": hwm / 1024, "grids": len(loc._codes),
                  "table_mb": loc.grid_index.nbytes / 1e6}))
"""


def child_load(store: Path) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(store)], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "process_s": time.perf_counter() - t}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("province", nargs="?", default=str(ROOT / "data" / "province220.gpkg"))
    ap.add_argument("--source", default=str(ROOT / "data" / "shizhong.gpkg"))
    ap.add_argument("--districts", type=int, default=220)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--ties", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    prov = Path(args.province)
    fig: dict = {"store": str(prov), "load_avg": os.getloadavg()[0]}

    if not prov.exists():
        ensure_store(Path(args.source))
        t = time.perf_counter()
        made = subprocess.run([sys.executable, "-m", "gis_grid.cli", "province", "--db", args.source,
                               "--out", str(prov), "--districts", str(args.districts)],
                              check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(made.stdout.strip(), f"({time.perf_counter() - t:.1f} s)")

    from gis_grid import locate_cache
    cache = locate_cache.cache_path(prov)
    shutil.rmtree(cache.parent, ignore_errors=True)  # also the cell-table cache beside it
    fig["cold"] = child_load(prov)
    warm = [child_load(prov) for _ in range(args.reps)]
    fig["warm"] = {k: float(np.median([w[k] for w in warm])) for k in ("load_s", "process_s", "peak_rss_mb")}
    c = fig["cold"]
    print(f"grids {c['grids']:,}  cell tables {c['table_mb']:.0f} MB  load avg {fig['load_avg']:.1f}")
    print(f"cold load  {c['load_s']:6.2f} s  (process {c['process_s']:.2f} s)  peak RSS {c['peak_rss_mb']:6.0f} MB")
    w = fig["warm"]
    print(f"warm start {w['load_s']:6.2f} s  (process {w['process_s']:.2f} s)  peak RSS {w['peak_rss_mb']:6.0f} MB"
          f"  (median of {args.reps})")

    import geopandas as gpd
    import shapely

    from gis_grid.store import open_store
    loc = locate_cache.locator(prov)
    with open_store(prov) as s:
        d = s.divisions()
    grids = d[d["level"] == "grid"].sort_values("code").reset_index(drop=True)
    codes = grids["code"].to_numpy(dtype=str)
    assert (codes == np.asarray(loc._codes[:, 3])).all(), "the locator's grid order is not by code"
    geoms = grids["geometry"].to_numpy()
    tree = shapely.STRtree(geoms)
    grids_gdf = gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs="EPSG:4490")
    rng = np.random.default_rng(args.seed)

    mismatches = {}
    for label, n, share in (("1M", args.n, 0.0), ("ties", args.ties, 1.0)):
        x, y = make_points(geoms, n, rng, share)
        pts = shapely.points(x, y)
        ref = tie_min(*tree.query(pts, predicate="intersects"), n)
        loc.grid_index.lookup(x, y)  # fault the pages this batch touches in once, as a long job has
        t_lookup, g = median_time(lambda: loc.grid_index.lookup(x, y), args.reps)
        t_arrow, cols = median_time(lambda: loc.locate_arrow(x, y), args.reps)
        idx, cats = cols["grid"]
        got = np.where(idx >= 0, np.asarray(cats.to_pylist() + [None], dtype=object)[np.where(idx >= 0, idx, -1)], None)
        want = np.where(ref >= 0, codes[np.clip(ref, 0, None)], None)
        mismatches[label] = {"lookup": int((g != ref).sum()), "locate_arrow": int((got != want).sum())}
        pdf = gpd.GeoDataFrame({"i": np.arange(n)}, geometry=pts, crs="EPSG:4490")
        t_sjoin, _ = median_time(lambda: gpd.sjoin(pdf, grids_gdf, predicate="intersects"), args.reps)
        fig[label] = {"n": n, "lookup_s": t_lookup, "locate_arrow_s": t_arrow, "sjoin_s": t_sjoin,
                      "lookup_points_per_s": n / t_lookup, "locate_arrow_points_per_s": n / t_arrow,
                      "sjoin_over_lookup": t_sjoin / t_lookup, "sjoin_over_locate_arrow": t_sjoin / t_arrow,
                      "inside": float((ref >= 0).mean()), "mismatches": mismatches[label]}
        r = fig[label]
        print(f"{label:>4} points {n:>9,}: lookup {t_lookup * 1e3:7.1f} ms ({r['lookup_points_per_s'] / 1e6:5.1f}M/s)"
              f"  levels {t_arrow * 1e3:7.1f} ms ({r['locate_arrow_points_per_s'] / 1e6:5.1f}M/s)"
              f"  sjoin {t_sjoin * 1e3:8.1f} ms  sjoin/lookup {r['sjoin_over_lookup']:5.1f}x"
              f"  sjoin/levels {r['sjoin_over_locate_arrow']:5.1f}x  mismatches {mismatches[label]}")
    fig["load_avg_end"] = os.getloadavg()[0]
    targets = {"cold load <= 5 s": c["load_s"] <= 5, "cold RSS <= 2 GB": c["peak_rss_mb"] <= 2048,
               "warm start <= 5 s": w["load_s"] <= 5, "warm RSS <= 2 GB": w["peak_rss_mb"] <= 2048,
               ">= 5M points/s (levels, 1M)": fig["1M"]["locate_arrow_points_per_s"] >= 5e6,
               "0 mismatches": all(v == 0 for m in mismatches.values() for v in m.values())}
    for k, ok in targets.items():
        print(f"  {'met ' if ok else 'MISS'}  {k}")
    print(json.dumps(fig))
    return 0 if targets["0 mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
