"""Streaming batch locate at scale: `gis-grid locate IN -o OUT` on 2M and 20M points.

    .venv/bin/python bench/stream.py [STORE] [--sizes 2000000,20000000] [--formats csv,parquet]

For every size and format it writes the points (uniform in the district's
bounding box, CGCS2000 lon/lat, an ``id`` column) into a temporary directory,
runs the CLI as a child process, and takes the child's wall time and peak RSS
(VmHWM of that one process, polled every 50 ms; monotonic). It then reads
the output back in batches and checks the row count, that ids come back in
input order, and a random sample of answers against ``Atlas.locate_many``.
Everything is deleted afterwards. Prints one line per run and one JSON line.

Bounded memory means the peak RSS of the 20M run is about that of the 2M run;
the ``rss_growth_*`` figures are their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis_grid.atlas import Atlas  # noqa: E402
from gis_grid.batchio import _geo_metadata  # noqa: E402
from gis_grid.store import open_store  # noqa: E402

GEN_CHUNK = 1_000_000
SAMPLE = 200_000


def write_points(path: Path, n: int, bounds, seed: int) -> None:
    """``n`` points in chunks, so generating 20M needs no more memory than 1M."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    writer = None
    try:
        for start in range(0, n, GEN_CHUNK):
            m = min(GEN_CHUNK, n - start)
            ids = np.arange(start, start + m, dtype=np.int64)
            x, y = rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)
            if path.suffix == ".csv":
                table = pa.table({"id": ids, "lon": x, "lat": y})
                if writer is None:
                    writer = pacsv.CSVWriter(path, table.schema)
            else:
                table = pa.table({"id": ids, "geometry": shapely.to_wkb(shapely.points(x, y))})
                if writer is None:
                    meta = {b"geo": json.dumps(_geo_metadata()).encode()}
                    writer = pq.ParquetWriter(path, table.schema.with_metadata(meta))
            writer.write_table(table.replace_schema_metadata(writer.schema.metadata)
                               if path.suffix != ".csv" else table)
    finally:
        if writer is not None:
            writer.close()


def run_cli(store: Path, src: Path, dst: Path, extra=()) -> dict:
    """Run `gis-grid locate` as a child; its wall time and its own peak RSS."""
    cmd = [sys.executable, "-m", "gis_grid.cli", "locate", "--db", str(store), str(src), "-o", str(dst),
           "--crs", "EPSG:4490", "--quiet", *extra]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _hwm_kib(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"the CLI failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        summary = json.loads(out.read().decode().splitlines()[-1])
    return {"wall_s": wall, "peak_rss_mb": peak / 1024, "cli": summary}


def _hwm_kib(pid: int) -> int:
    """VmHWM, the peak RSS of the process's current image, in KiB (0 once it is gone).

    Not ru_maxrss from wait4: the kernel folds the pre-exec image into it, and
    subprocess forks with vfork, so it reports this (large) benchmark process's
    peak instead of the CLI's.
    """
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def verify(dst: Path, n: int, atlas: Atlas, seed: int) -> dict:
    """Row count, input order, and a random sample of answers against Atlas.locate_many."""
    rng = np.random.default_rng(seed + 1)
    sample = np.zeros(n, dtype=bool)
    sample[rng.choice(n, min(SAMPLE, n), replace=False)] = True
    rows, out_of_order, lon, lat, grid, building = 0, 0, [], [], [], []
    cols = ["id", "grid", "building"]
    if dst.suffix == ".csv":
        opts = pacsv.ConvertOptions(column_types={"grid": pa.string(), "building": pa.string(),
                                                  "lon": pa.float64(), "lat": pa.float64()},
                                    strings_can_be_null=False)
        batches = pacsv.open_csv(dst, convert_options=opts, read_options=pacsv.ReadOptions(block_size=64 << 20))
    else:
        batches = pq.ParquetFile(dst).iter_batches(batch_size=1 << 20, columns=cols + ["geometry"])
    for batch in batches:
        b = batch.to_pandas()
        m = len(b)
        out_of_order += int((b["id"].to_numpy() != np.arange(rows, rows + m)).sum())
        pick = sample[rows:rows + m] if rows + m <= n else np.zeros(m, dtype=bool)
        if "lon" in b:
            lon.append(b["lon"].to_numpy()[pick])
            lat.append(b["lat"].to_numpy()[pick])
        else:
            g = shapely.from_wkb(b["geometry"].to_numpy()[pick])
            lon.append(shapely.get_x(g))
            lat.append(shapely.get_y(g))
        grid.append(b["grid"].astype(object).fillna("").astype(str).to_numpy()[pick])
        building.append(b["building"].astype(object).fillna("").astype(str).to_numpy()[pick])
        rows += m
    lon, lat = np.concatenate(lon), np.concatenate(lat)
    ref = atlas.locate_many(lon, lat)
    bad = int((ref["grid"].astype(str).to_numpy() != np.concatenate(grid)).sum()
              + (ref["building"].astype(str).to_numpy() != np.concatenate(building)).sum())
    return {"rows_out": rows, "rows_ok": rows == n, "out_of_order": out_of_order,
            "sampled": len(lon), "sample_mismatches": bad}


def _print(key, n, run, check) -> None:
    print(f"{key:>17}: {run['wall_s']:7.1f} s  {n / run['wall_s'] / 1e6:5.2f} M pt/s  "
          f"peak RSS {run['peak_rss_mb']:7.0f} MB  rows {check['rows_out']:,}  "
          f"sample mismatches {check['sample_mismatches']}", flush=True)


def _same_rows(a: Path, b: Path) -> bool:
    """The two outputs hold the same table (CSV: byte for byte; Parquet: row groups may differ)."""
    if a.suffix == ".csv":
        return _sha256(a) == _sha256(b)
    return pq.read_table(a).equals(pq.read_table(b))


def _sha256(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", nargs="?", default=str(ROOT / "data" / "shizhong.gpkg"))
    ap.add_argument("--sizes", default="2000000,20000000")
    ap.add_argument("--formats", default="csv,parquet")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="directory for the temporary files (default: system temp)")
    ap.add_argument("--dask", default=None, metavar="ADDRESS|local",
                    help="also run the smallest size of each format with --dask and compare it to the plain run")
    args = ap.parse_args(argv)
    store = Path(args.store)
    if not store.exists():
        raise SystemExit(f"{store} does not exist: run `gis-grid demo --out {store}` first")
    with open_store(store) as s:
        atlas = Atlas.from_store(s)
    bounds = shapely.total_bounds(atlas.grid_geometries)
    sizes = [int(v) for v in args.sizes.split(",")]
    fig: dict[str, object] = {"store": str(store), "grids": len(atlas.grid_codes), "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="gis_grid_stream_", dir=args.tmp))
    ok = True
    try:
        for fmt in args.formats.split(","):
            for n in sizes:
                src, dst = work / f"in_{n}.{fmt}", work / f"out_{n}.{fmt}"
                t = time.perf_counter()
                write_points(src, n, bounds, args.seed + n)
                gen = time.perf_counter() - t
                run = run_cli(store, src, dst)
                check = verify(dst, n, atlas, args.seed + n)
                key = f"{fmt}_{n // 1_000_000}M"
                fig[key] = {"n": n, "input_mb": src.stat().st_size / 2**20, "output_mb": dst.stat().st_size / 2**20,
                            "generate_s": gen, "wall_s": run["wall_s"], "points_per_s": n / run["wall_s"],
                            "peak_rss_mb": run["peak_rss_mb"], **check}
                ok &= check["rows_ok"] and check["out_of_order"] == 0 and check["sample_mismatches"] == 0
                _print(key, n, run, check)
                if args.dask and n == min(sizes):
                    alt = work / f"dask_{n}.{fmt}"
                    drun = run_cli(store, src, alt, ["--dask", args.dask])
                    dcheck = verify(alt, n, atlas, args.seed + n)
                    same = _same_rows(dst, alt)
                    fig[f"{key}_dask"] = {"n": n, "wall_s": drun["wall_s"], "client_peak_rss_mb": drun["peak_rss_mb"],
                                          "identical_to_plain_run": same, **dcheck}
                    ok &= same and dcheck["rows_ok"] and dcheck["sample_mismatches"] == 0
                    _print(f"{key}_dask", n, drun, dcheck)
                    alt.unlink()
                src.unlink()
                dst.unlink()
            lo, hi = f"{fmt}_{min(sizes) // 1_000_000}M", f"{fmt}_{max(sizes) // 1_000_000}M"
            if lo != hi:
                fig[f"rss_growth_{fmt}"] = fig[hi]["peak_rss_mb"] / fig[lo]["peak_rss_mb"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fig["ok"] = bool(ok)
    print(json.dumps(fig, default=lambda v: round(v, 3) if isinstance(v, float) else str(v)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
