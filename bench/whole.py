"""The whole batch job, process to process: `gis-grid locate` vs the script a user would write vs the I/O floor.

    .venv/bin/python bench/whole.py [STORE] [--n 1000000] [--reps 3] [--formats parquet,csv]

For each format the same points (uniform in the district's bounding box, an ``id``
column; GeoParquet WKB points, or CSV lon/lat) are handed to three child processes,
each timed from start to exit, alternating so load drifts hit all three alike:

* ``gis-grid locate IN -o OUT``: district, street, community, grid and building columns;
* the plain script: geopandas reads the points, ``sjoin(grids, predicate="intersects")``
  against the base grids (with their district/street/community codes), writes the result;
* the I/O floor: pyarrow reads the file, appends five constant dictionary columns, writes it.

Prints medians and the ratios (script / gis-grid, gis-grid / floor), the grid codes of
gis-grid against the script's (points the script joins twice, on shared edges, are left
out), and one JSON line. Everything is written to a temporary directory and deleted.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stream import write_points  # noqa: E402

from gis_grid.atlas import Atlas  # noqa: E402
from gis_grid.store import open_store  # noqa: E402

PLAIN = r'''
import sys, geopandas as gpd, pandas as pd
src, grids, dst = sys.argv[1:]
if src.endswith(".csv"):
    df = pd.read_csv(src)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4490)
else:
    pts = gpd.read_parquet(src)
out = gpd.sjoin(pts, gpd.read_parquet(grids), how="left", predicate="intersects").drop(columns="index_right")
if dst.endswith(".csv"):
    out.drop(columns="geometry").to_csv(dst, index=False)
else:
    out.to_parquet(dst)
'''

FLOOR = r'''
import sys, pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq
src, dst = sys.argv[1:]
t = pacsv.read_csv(src) if src.endswith(".csv") else pq.read_table(src)
for name in ("district", "street", "community", "grid", "building"):
    t = t.append_column(name, pa.DictionaryArray.from_arrays(pa.array([0] * len(t), pa.int8()), pa.array(["x"])))
(pacsv.write_csv if dst.endswith(".csv") else pq.write_table)(t, dst)
'''


def timed(cmd) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def grids_file(atlas: Atlas, path: Path) -> None:
    import geopandas as gpd
    codes = atlas.grid_codes.astype(str)
    gpd.GeoDataFrame({"district": [c[:6] for c in codes], "street": [c[:9] for c in codes],
                      "community": [c[:12] for c in codes], "grid": codes},
                     geometry=list(atlas.grid_geometries), crs=4490).to_parquet(path)


def mismatches(ours: Path, theirs: Path) -> tuple[int, int]:
    """(differing grid codes, rows compared) between gis-grid's output and the script's."""
    read = (lambda p: pd.read_csv(p, usecols=["id", "grid"], dtype={"grid": str})) if ours.suffix == ".csv" \
        else (lambda p: pd.read_parquet(p, columns=["id", "grid"]))
    a, b = read(ours), read(theirs)
    b = b[~b["id"].duplicated(keep=False)]  # joined to two grids: an edge point, left to the tie rule
    m = a.merge(b, on="id", suffixes=("", "_sjoin"))
    x, y = m["grid"].astype(object).fillna(""), m["grid_sjoin"].astype(object).fillna("")
    return int((x != y).sum()), len(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", nargs="?", default=str(ROOT / "data" / "shizhong.gpkg"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--formats", default="parquet,csv")
    args = ap.parse_args()
    with open_store(args.store) as store:
        atlas = Atlas.for_location(store)
    py = sys.executable
    report = {"n": args.n, "reps": args.reps, "store": args.store}
    with tempfile.TemporaryDirectory(prefix="gisgrid-whole-") as tmp:
        tmp = Path(tmp)
        grids = tmp / "grids.parquet"
        grids_file(atlas, grids)
        subprocess.run([py, "-m", "gis_grid.cli", "locate", "--db", args.store, "--lon", "117.5", "--lat", "34.8"],
                       cwd=ROOT, capture_output=True, check=True)  # warm the locate cache
        for fmt in args.formats.split(","):
            ext = {"parquet": "parquet", "csv": "csv"}[fmt]
            src = tmp / f"points.{ext}"
            write_points(src, args.n, tuple(_bounds(atlas)), seed=1)
            cmds = {
                "gis_grid": [py, "-m", "gis_grid.cli", "locate", "--db", args.store, str(src),
                             "-o", str(tmp / f"ours.{ext}"), "--quiet"],
                "script": [py, "-c", PLAIN, str(src), str(grids), str(tmp / f"sjoin.{ext}")],
                "floor": [py, "-c", FLOOR, str(src), str(tmp / f"floor.{ext}")],
            }
            times = {k: [] for k in cmds}
            for _ in range(args.reps):
                for k, cmd in cmds.items():
                    times[k].append(timed(cmd))
            med = {k: statistics.median(v) for k, v in times.items()}
            bad, compared = mismatches(tmp / f"ours.{ext}", tmp / f"sjoin.{ext}")
            row = {f"{k}_s": round(v, 2) for k, v in med.items()}
            row.update(script_over_gis_grid=round(med["script"] / med["gis_grid"], 2),
                       gis_grid_over_floor=round(med["gis_grid"] / med["floor"], 2),
                       mismatches=bad, compared=compared, all_s={k: [round(t, 2) for t in v] for k, v in times.items()})
            report[fmt] = row
            print(f"{fmt:8s} gis-grid {med['gis_grid']:.2f} s | script {med['script']:.2f} s | floor "
                  f"{med['floor']:.2f} s | script/gis-grid {row['script_over_gis_grid']}x | gis-grid/floor "
                  f"{row['gis_grid_over_floor']}x | {bad} mismatches in {compared}", flush=True)
            src.unlink()
    print(json.dumps(report))


def _bounds(atlas: Atlas):
    import shapely
    return shapely.total_bounds(atlas.grid_geometries)


if __name__ == "__main__":
    main()
