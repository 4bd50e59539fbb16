"""Benchmark of point location and "who lives here" on the demo district, and how it scales.

    .venv/bin/python bench/locate.py [STORE] [--repeats 5] [--seed 1] [--province PATH] [--no-postgis]

STORE defaults to data/shizhong.gpkg and is generated (seed 370402) when
missing. Everything runs in one process: atlas load (cold, then warm), then
batch locate of 1 and 1,000,000 points against geopandas.sjoin and a bare
shapely STRtree query over the same grids, single-point locate, and the
who-lives-here queries. Agreement with the exact shapely answer (tie rule:
the lowest grid index among the grids a point intersects) is checked on every
batch; mismatches must be 0. Prints a table, then one JSON line of all figures.

Scaling section: at 1k, 100k and 1M points uniform in the grids' bounding box,
at district scale (445 grids) and province scale (the 22-district synthetic
province of `gis-grid province`, 9,790 grids; generated next to STORE when
missing), the project's batch locate (``locate_many``, no building) against
geopandas ``sjoin`` and PostGIS bulk ``ST_Covers`` with a GiST index (see
bench/postgis_anchor.py: points by binary COPY, answers read back, the whole
round trip timed; tie rule in SQL). All three must give exactly the shapely
reference's answers. Ratios are medians over repeats (fewer for PostGIS, whose
1M-point runs take tens of seconds). PostGIS is skipped, with the reason
printed, when no server answers (GIS_GRID_BENCH_DATABASE_URL, default the
loopback cluster of scripts/postgres.sh).

This is a script, not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

import geopandas as gpd  # noqa: E402
import shapely  # noqa: E402

from gis_grid import crs  # noqa: E402
from gis_grid.atlas import Atlas  # noqa: E402
from gis_grid.store import open_store  # noqa: E402

TARGETS = {  # figure: (comparison, target) as published in the README
    "sjoin_over_gis_grid_1M": (">=", 20.0),
    "single_point_us": ("<=", 5.0),
    "households_of_grid_us": ("<=", 50.0),
    "polygon_ms": ("<=", 1.0),
    "atlas_load_warm_s": ("<", 3.0),
    "rss_after_load_mb": ("<", 500.0),
    "mismatches": ("==", 0),
    "postgis_over_gis_grid_1M": (">=", 50.0),
    "postgis_over_gis_grid_1M_province": (">=", 50.0),
}


def rss_mb() -> float:
    """Current resident set size (VmRSS), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def per_call_us(fn, args) -> float:
    """Median per-call time in microseconds (each call timed on its own)."""
    times = np.empty(len(args))
    pc = time.perf_counter
    for i, a in enumerate(args):
        t = pc()
        fn(*a)
        times[i] = pc() - t
    return float(np.median(times) * 1e6)


def ensure_store(path: Path) -> None:
    if path.exists():
        return
    from gis_grid.demo.generate import write_demo
    print(f"generating the demo district into {path} (seed 370402) ...", flush=True)
    t = time.perf_counter()
    with open_store(path, create=True) as store:
        write_demo(store, seed=370402, progress=False)
    print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)


def make_points(grids: np.ndarray, n: int, rng: np.random.Generator, boundary_share: float):
    """``n`` points: uniform in the district bbox plus a share exactly on grid vertices and on edges."""
    minx, miny, maxx, maxy = shapely.total_bounds(grids)
    n_b = int(round(n * boundary_share))
    n_u = n - n_b
    x = rng.uniform(minx, maxx, n_u)
    y = rng.uniform(miny, maxy, n_u)
    if n_b:
        rings = shapely.get_rings(shapely.get_parts(grids))
        coords, ring = shapely.get_coordinates(rings, return_index=True)
        same = np.flatnonzero(ring[1:] == ring[:-1])
        n_v = n_b // 2
        v = coords[rng.integers(0, len(coords), n_v)]                    # exact shared vertices
        e = same[rng.integers(0, len(same), n_b - n_v)]
        t = rng.uniform(0, 1, (len(e), 1))
        on = coords[e] + t * (coords[e + 1] - coords[e])                   # on (or an ulp off) edges
        x = np.concatenate([x, v[:, 0], on[:, 0]])
        y = np.concatenate([y, v[:, 1], on[:, 1]])
        perm = rng.permutation(n)
        x, y = x[perm], y[perm]
    return x, y


def tie_min(pairs_point: np.ndarray, pairs_grid: np.ndarray, n: int) -> np.ndarray:
    """From (point, grid) intersect pairs: the lowest grid index per point, -1 for none."""
    big = np.iinfo(np.int64).max
    out = np.full(n, big, dtype=np.int64)
    np.minimum.at(out, pairs_point, pairs_grid)
    return np.where(out == big, -1, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", nargs="?", default=str(ROOT / "data" / "shizhong.gpkg"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--tie-points", type=int, default=50_000,
                    help="size of a separate set of points placed exactly on grid vertices / edges")
    ap.add_argument("--province", default=None,
                    help="the synthetic province store (default: province.gpkg next to STORE, generated if missing)")
    ap.add_argument("--no-postgis", action="store_true", help="leave the PostGIS anchor out")
    ap.add_argument("--pg-repeats", type=int, default=3, help="repeats of the PostGIS round trip (median)")
    ap.add_argument("--scaling-sizes", default="1000,100000,1000000", help="point counts of the scaling section")
    args = ap.parse_args(argv)
    repeats = max(args.repeats, 5)
    path = Path(args.store)
    ensure_store(path)
    fig: dict[str, object] = {"store": str(path), "n_points": args.n, "n_ties": args.tie_points, "repeats": repeats,
                              "python": platform.python_version(), "cpus": os.cpu_count()}

    # -- atlas load ---------------------------------------------------------------
    rss0 = rss_mb()
    t = time.perf_counter()
    store = open_store(path)
    atlas = Atlas.from_store(store)
    fig["atlas_load_cold_s"] = time.perf_counter() - t
    fig["rss_after_load_mb"] = rss_mb()
    fig["rss_before_load_mb"] = rss0
    t = time.perf_counter()
    atlas2 = Atlas.from_store(store)
    fig["atlas_load_warm_s"] = time.perf_counter() - t
    del atlas2
    fig["grids"] = len(atlas.grid_codes)
    fig["buildings"] = len(atlas.buildings)
    fig["households"] = len(atlas.households)
    fig["cell_table_mb"] = (atlas.grid_index.nbytes + (atlas.building_index.nbytes if atlas.building_index else 0)) / 2**20

    grids = atlas.grid_geometries
    grids_gdf = gpd.GeoDataFrame({"code": atlas.grid_codes}, geometry=list(grids), crs=4490)
    tree = shapely.STRtree(grids)
    rng = np.random.default_rng(args.seed)
    mismatches = 0

    # "1M" is the workload (uniform in the district bbox) and gives the ratios;
    # "ties" sits exactly on vertices and edges to prove the tie rule, timed separately
    for label, n in (("1", 1), ("1M", args.n), ("ties", args.tie_points)):
        if n == 1:  # one point inside a random grid, so every method does real work
            p = shapely.point_on_surface(grids[rng.integers(len(grids))])
            x, y = np.array([p.x]), np.array([p.y])
        else:
            x, y = make_points(grids, n, rng, 1.0 if label == "ties" else 0.0)
        pts = shapely.points(x, y)
        # the exact reference: every grid a point intersects, lowest index wins
        pi, gi = tree.query(pts, predicate="intersects")
        ref = tie_min(pi, gi, n)
        reps = repeats if n > 1 else 1000

        fig[f"gis_grid_lookup_{label}_s"], g = median_time(lambda: atlas.grid_index.lookup(x, y), reps)
        fig[f"gis_grid_locate_many_{label}_s"], df = median_time(
            lambda: atlas.locate_many(x, y, with_building=False), reps)
        fig[f"gis_grid_buildings_at_{label}_s"], _ = median_time(lambda: atlas.buildings_at(x, y), reps)
        stats: dict = {}
        atlas.grid_index.lookup(x, y, stats=stats)
        fig[f"exact_path_points_{label}"] = stats.get("exact_points", 0)

        points_gdf = gpd.GeoDataFrame(geometry=pts, crs=4490)
        fig[f"sjoin_{label}_s"], sj = median_time(
            lambda: gpd.sjoin(points_gdf, grids_gdf, predicate="intersects"), reps)
        fig[f"strtree_{label}_s"], (qp, qg) = median_time(lambda: tree.query(pts, predicate="intersects"), reps)

        bad_lookup = int((g != ref).sum())
        codes_ref = np.append(atlas.grid_codes, "")[ref]
        bad_locate = int((df["grid"].to_numpy() != codes_ref).sum())
        bad_sjoin = int((tie_min(sj.index.to_numpy(), sj["index_right"].to_numpy(), n) != ref).sum())
        bad_tree = int((tie_min(qp, qg, n) != ref).sum())
        fig[f"mismatches_{label}"] = {"lookup": bad_lookup, "locate_many": bad_locate,
                                      "sjoin": bad_sjoin, "strtree": bad_tree}
        mismatches += bad_lookup + bad_locate
        fig[f"points_inside_{label}"] = int((ref >= 0).sum())
        fig[f"points_on_shared_boundary_{label}"] = int((np.bincount(pi, minlength=n) > 1).sum())
        # the building lookup against the exact building answer (point in any footprint)
        if label == "1M":
            b_ref = tie_min(*shapely.STRtree(atlas.buildings["geometry"].to_numpy()).query(pts, predicate="intersects"), n)
            b_ids = np.append(atlas.building_ids.astype(str), "").astype(object)[b_ref]
            bad_b = int((atlas.buildings_at(x, y) != b_ids).sum())
            fig["mismatches_1M"]["buildings_at"] = bad_b
            mismatches += bad_b
            x1m, y1m, ref1m = x, y, ref

    fig["mismatches"] = mismatches
    fig["sjoin_over_gis_grid_1M"] = fig["sjoin_1M_s"] / fig["gis_grid_locate_many_1M_s"]
    fig["strtree_over_gis_grid_1M"] = fig["strtree_1M_s"] / fig["gis_grid_locate_many_1M_s"]
    fig["sjoin_over_lookup_1M"] = fig["sjoin_1M_s"] / fig["gis_grid_lookup_1M_s"]
    fig["points_per_s_1M"] = args.n / fig["gis_grid_locate_many_1M_s"]

    x, y = x1m, y1m

    # -- single point ---------------------------------------------------------------
    inside = np.flatnonzero(atlas.grid_index.lookup(x, y) >= 0)
    pick = rng.choice(inside, 10_000, replace=False)
    one = [(float(x[i]), float(y[i])) for i in pick]
    for a in one[:200]:  # warm up
        atlas.locate_one(*a, with_building=False)
    fig["single_point_us"] = per_call_us(lambda lon, lat: atlas.locate_one(lon, lat, with_building=False), one)
    fig["single_point_with_building_us"] = per_call_us(lambda lon, lat: atlas.locate_one(lon, lat), one)
    fig["single_lookup_one_us"] = per_call_us(atlas.grid_index.lookup_one, one)
    ok = sum(atlas.locate_one(lon, lat, with_building=False).grid[0] == atlas.grid_codes[r]
             for (lon, lat), r in zip(one, ref1m[pick]))
    fig["single_point_mismatches"] = len(one) - int(ok)
    fig["mismatches"] += fig["single_point_mismatches"]

    # -- who lives here -----------------------------------------------------------------
    codes = [(c,) for c in atlas.grid_codes]
    for c in codes[:50]:
        atlas.household_ids_in(*c)
    fig["households_of_grid_us"] = per_call_us(atlas.household_ids_in, codes * 10)
    fig["households_of_grid_mean"] = float(np.mean([len(atlas.household_ids_in(c)) for (c,) in codes]))
    b_rep = shapely.point_on_surface(atlas.buildings["geometry"].to_numpy())
    centres = b_rep[rng.choice(len(b_rep), 300, replace=False)]
    cx, cy = crs.to_metric(shapely.get_x(centres), shapely.get_y(centres))
    polys = []
    for px, py in zip(cx, cy):
        sq = np.array([(px - 150, py - 150), (px + 150, py - 150), (px + 150, py + 150), (px - 150, py + 150)])
        lon, lat = crs.from_metric(sq[:, 0], sq[:, 1])
        polys.append((shapely.Polygon(np.column_stack([lon, lat])),))
    for p in polys[:20]:
        atlas.household_rows_in_polygon(*p)
    fig["polygon_ms"] = per_call_us(atlas.household_rows_in_polygon, polys) / 1000
    fig["polygon_households_mean"] = float(np.mean([len(atlas.household_rows_in_polygon(*p)) for p in polys]))
    fig["rss_end_mb"] = rss_mb()

    # -- scaling: district and province, against sjoin and PostGIS ---------------------
    province = Path(args.province) if args.province else path.with_name("province.gpkg")
    scaling(fig, {"district": atlas, "province": load_province(province, store)}, args, rng)
    store.close()

    print_table(fig)
    print_scaling(fig)
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in fig.items()},
                     ensure_ascii=False))
    return 0 if fig["mismatches"] == 0 else 1


def load_province(path: Path, district_store) -> Atlas:
    if not path.exists():
        from gis_grid.demo.province import write_province
        print(f"generating the synthetic province into {path} ...", flush=True)
        with open_store(path, create=True) as target:
            write_province(district_store, target)
    with open_store(path) as s:
        return Atlas.from_store(s)


def scaling(fig: dict, atlases: dict, args, rng) -> None:
    """Batch locate vs sjoin vs PostGIS at 1k/100k/1M points, district and province scale."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from postgis_anchor import PostGISAnchor
    pg = None if args.no_postgis else PostGISAnchor()
    skip = "--no-postgis" if pg is None else pg.unavailable
    if skip:
        print(f"PostGIS anchor skipped: {skip}", flush=True)
    else:
        fig["postgis_version"] = pg.version
    repeats, pg_repeats = max(args.repeats, 5), max(args.pg_repeats, 1)
    sizes = {_label(int(v)): int(v) for v in args.scaling_sizes.split(",")}
    out = fig["scaling"] = {}
    for scale, atlas in atlases.items():
        grids = atlas.grid_geometries
        tree = shapely.STRtree(grids)
        grids_gdf = gpd.GeoDataFrame({"code": atlas.grid_codes}, geometry=list(grids), crs=4490)
        table = None if skip else pg.load_grids(scale, atlas.grid_codes, grids)
        codes = np.append(atlas.grid_codes, "").astype(object)
        for label, n in [*sizes.items(), ("ties", args.tie_points)]:
            x, y = make_points(grids, n, rng, 1.0 if label == "ties" else 0.0)
            pts = shapely.points(x, y)
            ref = tie_min(*tree.query(pts, predicate="intersects"), n)
            reps = 1 if label == "ties" else repeats  # ties prove agreement; they are not timed
            r = {"n": n, "grids": len(grids), "inside": int((ref >= 0).sum())}
            r["gis_grid_s"], df = median_time(lambda: atlas.locate_many(x, y, with_building=False), reps)
            points_gdf = gpd.GeoDataFrame(geometry=pts, crs=4490)
            r["sjoin_s"], sj = median_time(lambda: gpd.sjoin(points_gdf, grids_gdf, predicate="intersects"), reps)
            mism = {"gis_grid": int((df["grid"].to_numpy() != codes[ref]).sum()),
                    "sjoin": int((tie_min(sj.index.to_numpy(), sj["index_right"].to_numpy(), n) != ref).sum())}
            r["sjoin_over_gis_grid"] = r["sjoin_s"] / r["gis_grid_s"]
            if not skip:
                plan = [] if label == "1k" else None
                pg.locate(table, x, y, explain=plan)  # warm: the grids' pages in the buffer cache
                r["postgis_s"], pg_grid = median_time(lambda: pg.locate(table, x, y), 1 if label == "ties" else pg_repeats)
                mism["postgis"] = int((pg_grid != ref).sum())
                if mism["postgis"]:
                    bad = np.flatnonzero(pg_grid != ref)[:5]
                    r["postgis_disagreements"] = [{"lon": repr(float(x[i])), "lat": repr(float(y[i])),
                                                   "postgis": codes[pg_grid[i]], "shapely": codes[ref[i]]} for i in bad]
                r["postgis_over_gis_grid"] = r["postgis_s"] / r["gis_grid_s"]
                r["postgis_points_per_s"] = n / r["postgis_s"]
                if plan:
                    fig[f"postgis_plan_{scale}"] = plan[0]
            r["mismatches"] = mism
            fig["mismatches"] += sum(mism.values())
            out[f"{scale}_{label}"] = r
            print(f"  {scale:>8} {label:>5}: gis_grid {r['gis_grid_s'] * 1e3:9.2f} ms  sjoin x{r['sjoin_over_gis_grid']:7.1f}"
                  + (f"  PostGIS x{r['postgis_over_gis_grid']:8.1f}" if not skip else "") + f"  mismatches {mism}",
                  flush=True)
        if f"{scale}_1M" not in out:
            continue
        fig[f"sjoin_over_gis_grid_1M_{scale}"] = out[f"{scale}_1M"]["sjoin_over_gis_grid"]
        if not skip:
            key = "postgis_over_gis_grid_1M" + ("" if scale == "district" else f"_{scale}")
            fig[key] = out[f"{scale}_1M"]["postgis_over_gis_grid"]
    if pg is not None:
        pg.close()


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def print_scaling(f: dict) -> None:
    s = f["scaling"]
    pg = "postgis_s" in next(iter(s.values()))
    print("scaling: medians (s) and ratios; tie sets (points on edges/vertices) checked, not timed")
    head = f"{'scale':>9} {'points':>9} {'grids':>6} {'gis_grid':>10} {'sjoin':>9} {'sjoin/gg':>9}"
    print(head + (f" {'PostGIS':>9} {'PostGIS/gg':>10} {'PostGIS pt/s':>12}" if pg else "") + "  mismatches")
    for key, r in s.items():
        scale, label = key.split("_")
        line = (f"{scale:>9} {label:>9} {r['grids']:>6} {r['gis_grid_s']:>10.4f} {r['sjoin_s']:>9.3f} "
                f"{r['sjoin_over_gis_grid']:>9.1f}")
        if pg:
            line += f" {r['postgis_s']:>9.3f} {r['postgis_over_gis_grid']:>10.1f} {r['postgis_points_per_s']:>12,.0f}"
        print(line + f"  {r['mismatches']}")
    for key in ("postgis_over_gis_grid_1M", "postgis_over_gis_grid_1M_province"):
        if key in f:
            print(f"{key}: {f[key]:.1f}  {_verdict(key, f[key])}")
    print()


def _verdict(key, value) -> str:
    if key not in TARGETS:
        return ""
    op, target = TARGETS[key]
    ok = {">=": value >= target, "<=": value <= target, "<": value < target, "==": value == target}[op]
    return f"target {op} {target:g}: {'PASS' if ok else 'MISS'}"


def print_table(f: dict) -> None:
    rows = [
        ("atlas load, cold (s)", f["atlas_load_cold_s"], "atlas_load_cold_s"),
        ("atlas load, warm (s)", f["atlas_load_warm_s"], "atlas_load_warm_s"),
        ("RSS after load (MB)", f["rss_after_load_mb"], "rss_after_load_mb"),
        ("cell tables (MB)", f["cell_table_mb"], ""),
        ("1 point: grid lookup (us)", f["gis_grid_lookup_1_s"] * 1e6, ""),
        ("1 point: locate_many (us)", f["gis_grid_locate_many_1_s"] * 1e6, ""),
        ("1 point: sjoin (us)", f["sjoin_1_s"] * 1e6, ""),
        ("1 point: STRtree query (us)", f["strtree_1_s"] * 1e6, ""),
        ("1M: grid lookup (s)", f["gis_grid_lookup_1M_s"], ""),
        ("1M: locate_many, no building (s)", f["gis_grid_locate_many_1M_s"], ""),
        ("1M: buildings_at (s)", f["gis_grid_buildings_at_1M_s"], ""),
        ("1M: geopandas.sjoin (s)", f["sjoin_1M_s"], ""),
        ("1M: shapely STRtree.query (s)", f["strtree_1M_s"], ""),
        ("1M: sjoin / gis_grid", f["sjoin_over_gis_grid_1M"], "sjoin_over_gis_grid_1M"),
        ("1M: STRtree / gis_grid", f["strtree_over_gis_grid_1M"], ""),
        ("1M: points via exact shapely test", f["exact_path_points_1M"], ""),
        (f"ties ({f['n_ties']:,} on edges/vertices): lookup (s)", f["gis_grid_lookup_ties_s"], ""),
        ("ties: sjoin (s)", f["sjoin_ties_s"], ""),
        ("ties: points on shared boundaries", f["points_on_shared_boundary_ties"], ""),
        ("ties: points via exact shapely test", f["exact_path_points_ties"], ""),
        ("single point locate_one (us, median)", f["single_point_us"], "single_point_us"),
        ("single point + building (us, median)", f["single_point_with_building_us"], ""),
        ("households of a grid (us, median)", f["households_of_grid_us"], "households_of_grid_us"),
        ("households in 300 m square (ms, median)", f["polygon_ms"], "polygon_ms"),
        ("mismatches vs exact shapely + tie rule", f["mismatches"], "mismatches"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\ngis_grid locate benchmark  ({f['grids']} grids, {f['buildings']:,} buildings, "
          f"{f['households']:,} households; {f['cpus']} cpus; median of {f['repeats']})")
    print("-" * (width + 40))
    for name, value, key in rows:
        v = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{name:<{width}}  {v:>12}  {_verdict(key, value)}")
    print("per-method mismatches 1M:", f["mismatches_1M"], " ties:", f["mismatches_ties"])
    print()


if __name__ == "__main__":
    sys.exit(main())
