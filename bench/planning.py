"""Benchmark of boundary planning on the demo district.

    .venv/bin/python bench/planning.py [STORE] [--applies 100] [--repeats 5]

STORE defaults to data/shizhong.gpkg (generated, seed 370402, when missing). It is
copied to a temporary directory first: the benchmark writes to the copy only.

1. validate + impact of a plan that redraws one community (the spopt rebalance of
   the most crowded urban community), median of ``--repeats`` runs; anchor: one
   ``shapely.coverage_is_valid`` of the same grids in EPSG:4548 (the cheapest
   whole-coverage check there is). Target: <= 200 ms.
2. apply + atlas swap (``AtlasHolder.reload_boundaries``), medians over
   ``--repeats`` applies with nothing else running; anchor: a full
   ``Atlas.from_store``. Target: <= 1 s. (Step 3 also reports the median under load.)
3. the rebalance of the ``--communities`` most crowded urban communities to 300-600
   households per grid: grids in range and the spread, before and after.
4. ``--applies`` sequential applies (a boundary toggled between two states) while
   another thread locates probe points without pause; every answer is checked
   against the state its snapshot's version says it must show. Target: 0 errors,
   0 mixed answers.

Prints a table, then one JSON line of all figures. Exit 1 when a correctness
figure (errors, mixed answers, the final `gis-grid check`) fails.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import shapely  # noqa: E402

from gis_grid.atlas import Atlas  # noqa: E402
from gis_grid.atlas.holder import AtlasHolder  # noqa: E402
from gis_grid.coverage import check_store  # noqa: E402
from gis_grid.planning.impact import plan_impact  # noqa: E402
from gis_grid.planning.plan import plan_from_geojson  # noqa: E402
from gis_grid.planning.rebalance import propose  # noqa: E402
from gis_grid.planning.validate import to_metric, validate_plan  # noqa: E402
from gis_grid.planning.workflow import apply_plan, create_plan  # noqa: E402
from gis_grid.store import default_store_path, open_store  # noqa: E402


def median_s(fn, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def crowded_communities(atlas: Atlas, n: int = 1) -> list[str]:
    """Urban communities by households per base grid, most crowded first."""
    d = atlas.divisions
    urban = d[(d["level"] == "community") & (d["kind"] == "urban")]["code"]
    per = {c: (atlas._hh_by_grid[hi] - atlas._hh_by_grid[lo]) / (hi - lo)
           for c in urban for lo, hi in [atlas.grid_positions(c)]}
    return sorted(per, key=per.get, reverse=True)[:n]


def crowded_community(atlas: Atlas) -> str:
    return crowded_communities(atlas, 1)[0]


def toggle_pair(atlas: Atlas, community: str):
    """Two neighbouring grids whose shared edge is moved into the second (state A) and back (state B).

    The moved edge runs from the ends of the shared edge through its midpoint shifted ~30-60 m
    into the second grid (``edits.move_boundary``). Returns the codes, both states'
    FeatureCollections and probe points: representative points of buildings that change grid.
    """
    from gis_grid.planning.edits import move_boundary
    lo, hi = atlas.grid_positions(community)
    codes = [str(c) for c in atlas.grid_codes[lo:hi]]
    geoms = {c: atlas.division(c)["geometry"] for c in codes}
    pairs = sorted(((shapely.intersection(geoms[a].boundary, geoms[b].boundary).length, a, b)
                    for i, a in enumerate(codes) for b in codes[i + 1:]), reverse=True)
    reps = shapely.point_on_surface(atlas.buildings["geometry"].to_numpy())
    for length, a, b in pairs:
        edge = shapely.line_merge(shapely.intersection(geoms[a].boundary, geoms[b].boundary))
        if not isinstance(edge, shapely.LineString) or length == 0:
            continue
        e1, e2 = edge.coords[0], edge.coords[-1]
        mid = edge.interpolate(0.5, normalized=True)
        inside = geoms[b].representative_point()
        d = np.array([inside.x - mid.x, inside.y - mid.y])
        d /= np.hypot(*d)
        for shift in (3e-4, 6e-4):
            m2 = (mid.x + shift * d[0], mid.y + shift * d[1])
            line = {"type": "LineString", "coordinates": [list(e1), list(m2), list(e2)]}
            try:
                _, col = move_boundary(atlas, a, b, line)
            except Exception:
                continue
            state_a = {"type": "FeatureCollection", "features": [
                f for f, g in zip(col["features"], atlas.grid_codes[lo:hi]) if g in (a, b)]}
            new_a = shapely.from_geojson(json.dumps(state_a["features"][0]["geometry"]))  # a precedes b
            probes = reps[shapely.contains(shapely.buffer(new_a, -2e-5), reps) & shapely.within(reps, geoms[b])]
            if len(probes) >= 3:
                fc = {"type": "FeatureCollection", "features": [
                    {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(geoms[c]))}
                    for c in (a, b)]}
                return a, b, state_a, fc, np.asarray(probes)
    raise SystemExit(f"no neighbouring grids with buildings near their edge in {community}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", nargs="?", default=str(default_store_path()))
    ap.add_argument("--applies", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--communities", type=int, default=5,
                    help="rebalance this many of the most crowded urban communities (300-600 households)")
    args = ap.parse_args()
    src = Path(args.store)
    if not src.exists():
        from gis_grid.demo.generate import write_demo
        with open_store(src, create=True) as s:
            write_demo(s, seed=370402, progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-planning-"))
    db = tmp / "shizhong.gpkg"
    shutil.copy(src, db)
    cache = src.with_name(src.stem + ".cache")
    if cache.is_dir():
        shutil.copytree(cache, tmp / "shizhong.cache")
    out: dict = {"store": str(src)}
    try:
        store = open_store(db)
        t = time.perf_counter()
        holder = AtlasHolder(store)
        out["atlas_load_s"] = round(time.perf_counter() - t, 3)
        atlas = holder.atlas
        community = crowded_community(atlas)
        out["community"] = community

        # 1. validate + impact of a plan redrawing one community
        t = time.perf_counter()
        grids, _ = propose(atlas, community, 300, 600)
        out["propose_s"] = round(time.perf_counter() - t, 3)
        plan = plan_from_geojson(atlas, community, grids)
        used = store.grid_codes_ever(community)

        def validate_and_impact():
            rep = validate_plan(atlas, plan)
            assert rep.ok, rep.failures
            return plan_impact(atlas, store, plan, rep.parents, used_codes=used, target_households=450)

        imp = validate_and_impact()
        out["plan_grids"] = len(plan.geometries)
        out["households_in_scope"] = sum(g["households"] for g in imp["grids"])
        out["validate_impact_ms"] = round(1e3 * median_s(validate_and_impact, args.repeats), 1)
        new_m = to_metric(np.asarray(plan.geometries, dtype=object))
        out["anchor_coverage_is_valid_ms"] = round(1e3 * median_s(lambda: shapely.coverage_is_valid(new_m), args.repeats), 1)
        out["balance_before_max_abs_dev"] = imp["balance"]["before"]["max_abs_deviation"]
        out["balance_after_max_abs_dev"] = imp["balance"]["after"]["max_abs_deviation"]

        # the rebalance on several crowded communities: households per grid before and after
        from gis_grid.planning.rebalance import balance_range
        before_h, after_h = [], []
        for code in crowded_communities(atlas, args.communities):
            g, _ = propose(atlas, code, 300, 600)
            p = plan_from_geojson(atlas, code, g)
            rep = validate_plan(atlas, p)
            if not rep.ok:
                print(f"proposal for {code} does not validate: {rep.failures[:2]}", file=sys.stderr)
                out["rebalance_invalid"] = out.get("rebalance_invalid", 0) + 1
                continue
            im = plan_impact(atlas, store, p, rep.parents)
            before_h += [x["households"] for x in im["old_grids"]]
            after_h += [x["households"] for x in im["grids"]]
        for name, h in (("before", before_h), ("after", after_h)):
            br = balance_range(h, 300, 600)
            out[f"rebalance_{name}"] = {k: br[k] for k in ("grids", "in_range", "above", "below", "std",
                                                             "max_abs_deviation")}

        # 2 + 3. applies with atlas swap, while a thread locates without pause
        a, b, state_a, state_b, probes = toggle_pair(atlas, community)
        px, py = shapely.get_x(probes), shapely.get_y(probes)
        stop = threading.Event()
        seen = {"answers": 0, "errors": 0, "mixed": 0, "versions": set()}

        def locator():
            while not stop.is_set():
                try:
                    snap = holder.atlas  # one read: the snapshot answers everything below
                    got = snap.locate_many(px, py, with_building=False)["grid"].astype(str).to_numpy()
                    want = a if (snap.version - v0) % 2 == 1 else b  # v0: state B
                    seen["answers"] += len(got)
                    seen["mixed"] += int((got != want).sum())
                    seen["versions"].add(snap.version)
                except Exception:
                    seen["errors"] += 1

        state = {"k": 0}

        def one_apply(apply_s, swap_s):
            col = state_a if state["k"] % 2 == 0 else state_b
            snap = holder.atlas
            p, _ = create_plan(store, snap, community, col, replaces=[a, b])
            t = time.perf_counter()
            apply_plan(store, snap, p, p.base_version)
            t1 = time.perf_counter()
            holder.reload_boundaries()
            t2 = time.perf_counter()
            state["k"] += 1
            apply_s.append(t1 - t)
            swap_s.append(t2 - t1)

        # 2. apply + swap alone (an even number, so the toggle is back in state B)
        apply_s, swap_s = [], []
        for _ in range(2 * ((args.repeats + 1) // 2)):
            one_apply(apply_s, swap_s)
            quiet_until = time.time() + 10  # let the snapshot's background statistics warm-up finish
            for t in threading.enumerate():
                if t.name.startswith("warm-atlas"):
                    t.join(timeout=max(0.0, quiet_until - time.time()))
        v0 = holder.version
        # 3. sequential applies while a thread locates without pause
        th = threading.Thread(target=locator, daemon=True)
        th.start()
        load_apply_s, load_swap_s, errors = [], [], 0
        for _ in range(args.applies):
            try:
                one_apply(load_apply_s, load_swap_s)
            except Exception as exc:  # counted, and the run fails
                errors += 1
                print("apply failed:", exc, file=sys.stderr)
        stop.set()
        th.join()
        t = time.perf_counter()
        Atlas.from_store(store)
        out["anchor_full_atlas_load_s"] = round(time.perf_counter() - t, 3)
        out["applies"] = args.applies
        out["apply_errors"] = errors
        out["apply_ms_median"] = round(1e3 * statistics.median(apply_s), 1) if apply_s else None
        out["swap_ms_median"] = round(1e3 * statistics.median(swap_s), 1) if swap_s else None
        out["apply_plus_swap_ms_median"] = round(1e3 * statistics.median(np.add(apply_s, swap_s)), 1) if apply_s else None
        out["under_load_apply_plus_swap_ms_median"] = round(
            1e3 * statistics.median(np.add(load_apply_s, load_swap_s)), 1) if load_apply_s else None
        out["locate_answers"] = seen["answers"]
        out["locate_errors"] = seen["errors"]
        out["mixed_answers"] = seen["mixed"]
        out["versions_seen_by_locator"] = len(seen["versions"])
        out["final_version"] = holder.version
        report = check_store(store)
        out["check_ok"] = report.ok
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = lambda x, y: round(x / y, 2) if x and y else None  # noqa: E731
    out["validate_impact_over_anchor"] = ratio(out["validate_impact_ms"], out["anchor_coverage_is_valid_ms"])
    out["apply_swap_over_full_load"] = ratio(out["apply_plus_swap_ms_median"], 1e3 * out["anchor_full_atlas_load_s"])
    rows = [("validate + impact (one community)", f"{out['validate_impact_ms']} ms", "<= 200 ms"),
            ("  anchor: coverage_is_valid", f"{out['anchor_coverage_is_valid_ms']} ms", ""),
            ("apply (median)", f"{out['apply_ms_median']} ms", ""),
            ("atlas swap (median)", f"{out['swap_ms_median']} ms", ""),
            ("apply + swap (median)", f"{out['apply_plus_swap_ms_median']} ms", "<= 1000 ms"),
            ("  anchor: full Atlas.from_store", f"{out['anchor_full_atlas_load_s'] * 1e3:.0f} ms", ""),
            (f"{out['applies']} applies while locating: errors", out["apply_errors"], "0"),
            ("  apply + swap under locate load (median)", f"{out['under_load_apply_plus_swap_ms_median']} ms", ""),
            ("locate answers / errors", f"{out['locate_answers']} / {out['locate_errors']}", "errors 0"),
            ("mixed answers", out["mixed_answers"], "0"),
            ("balance max |dev| before -> after",
             f"{out['balance_before_max_abs_dev']} -> {out['balance_after_max_abs_dev']}", "lower"),
            ("gis-grid check after all applies", "OK" if out["check_ok"] else "FAILED", "OK")]
    rb, ra = out["rebalance_before"], out["rebalance_after"]
    rows.append((f"{args.communities} crowded communities: grids in 300-600",
                 f"{rb['in_range']}/{rb['grids']} -> {ra['in_range']}/{ra['grids']}", "more"))
    rows.append(("  std of households per grid", f"{rb['std']} -> {ra['std']}", "lower"))
    for name, val, target in rows:
        print(f"{name:<40} {str(val):>18}   {target}")
    print(json.dumps(out))
    bad = out["apply_errors"] or out["locate_errors"] or out["mixed_answers"] or not out["check_ok"] \
        or out.get("rebalance_invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
