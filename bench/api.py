"""HTTP benchmark of the service: GET /locate under wrk, POST /locate batches, building tiles.

Starts `uvicorn api.app:create_app --factory` on 127.0.0.1 in a subprocess, drives
it with wrk (a separate process, bounded in time) and compares with the in-process
cost measured in this same run. Prints a table and one JSON line. Not a test.

    python bench/api.py [--db data/shizhong.gpkg] [--seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from timing import free_port, parse_wrk, wait_up  # noqa: E402


def run_wrk(url: str, connections: int, seconds: int, header: str) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", header, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    r = parse_wrk(out)
    return {k: r[k] for k in ("p50_ms", "p99_ms", "rps", "errors")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(ROOT / "data" / "shizhong.gpkg"))
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    from gis_grid.atlas import Atlas
    from gis_grid.store import open_store
    if not Path(args.db).exists():
        from gis_grid.demo.generate import write_demo
        with open_store(args.db, create=True) as s:
            write_demo(s)
    store = open_store(args.db)
    atlas = Atlas.from_store(store)
    # other systems call with an external_system key, as in production
    from gis_grid.security.keys import create_key
    token = create_key(store, "external_system", "370402", days=1, note="bench/api.py")[1]
    auth = {"Authorization": f"Bearer {token}"}
    viewer = {"Authorization": "Bearer " + create_key(store, "command_center", "370402", days=1,
                                                      note="bench/api.py tiles")[1]}
    rng = np.random.default_rng(1)
    pt = (117.558, 34.862)

    # in-process cost of what the GET handler does (validate, convert, locate)
    from gis_grid import crs as crs_mod
    def handler_core():
        x, y = crs_mod.validate_coordinates(pt[0], pt[1], None)
        lon, lat = crs_mod.to_storage(x, y, None)
        return atlas.locate_one(float(lon), float(lat)).to_dict()
    samples = []
    for _ in range(2000):
        t = time.perf_counter(); handler_core(); samples.append(time.perf_counter() - t)
    inproc_ms = statistics.median(samples) * 1e3

    minx, miny, maxx, maxy = atlas.grid_index.geoms[0].bounds
    d = atlas.divisions[atlas.divisions["level"] == "district"]["geometry"].iloc[0]
    minx, miny, maxx, maxy = d.bounds
    batch = np.column_stack([rng.uniform(minx, maxx, 10_000), rng.uniform(miny, maxy, 10_000)])
    inproc_batch = []
    for _ in range(5):
        t = time.perf_counter(); atlas.locate_points(batch[:, 0], batch[:, 1]); inproc_batch.append(time.perf_counter() - t)

    port = free_port()
    env = {**os.environ, "GIS_GRID_DB": args.db, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{base}/login")
        url = f"{base}/locate?lon={pt[0]}&lat={pt[1]}"
        header = f"Authorization: {auth['Authorization']}"
        run_wrk(url, 1, 2, header)  # warm-up
        c1 = run_wrk(url, 1, args.seconds, header)
        c8 = run_wrk(url, 8, args.seconds, header)
        import httpx
        with httpx.Client(timeout=60, headers=auth) as client:
            http_batch = []
            body = batch.tolist()
            for _ in range(5):
                t = time.perf_counter()
                r = client.post(f"{base}/locate", json=body)
                http_batch.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["count"] == len(body), r.text[:200]
            # uncached z16 building tiles around the centre (distinct tiles: each a miss)
            import morecantile
            tms = morecantile.tms.get("WebMercatorQuad")
            centre = tms.tile(pt[0], pt[1], 16)
            tile_times, tile_status = [], []
            for dx in range(-3, 4):
                for dy in range(-3, 4):
                    t = time.perf_counter()
                    r = client.get(f"{base}/ogc/collections/buildings/tiles/WebMercatorQuad/16/"
                                   f"{centre.x + dx}/{centre.y + dy}", headers=viewer)
                    tile_times.append(time.perf_counter() - t)
                    tile_status.append(r.status_code)
    finally:
        server.terminate()
        server.wait(10)

    fig = {
        "get_locate_c1_p50_ms": c1["p50_ms"], "get_locate_c1_p99_ms": c1["p99_ms"], "get_locate_c1_rps": c1["rps"],
        "get_locate_c8_p50_ms": c8["p50_ms"], "get_locate_c8_p99_ms": c8["p99_ms"], "get_locate_c8_rps": c8["rps"],
        "errors": c1["errors"] + c8["errors"],
        "inprocess_locate_ms": round(inproc_ms, 4),
        "http_overhead_p50_ms": round(c1["p50_ms"] - inproc_ms, 3) if c1["p50_ms"] else None,
        "post_10k_http_ms": round(statistics.median(http_batch) * 1e3, 1),
        "post_10k_inprocess_ms": round(statistics.median(inproc_batch) * 1e3, 1),
        "post_10k_over_inprocess": round(statistics.median(http_batch) / statistics.median(inproc_batch), 2),
        "tile_z16_uncached_median_ms": round(statistics.median(tile_times) * 1e3, 1),
        "tile_status_ok": all(s == 200 for s in tile_status),
    }
    rows = [("GET /locate p50, 1 conn (ms)", fig["get_locate_c1_p50_ms"], "HTTP overhead <= 0.5 ms"),
            ("  HTTP overhead p50 (ms)", fig["http_overhead_p50_ms"], "<= 0.5"),
            ("GET /locate req/s, 8 conn", fig["get_locate_c8_rps"], ">= 4000"),
            ("GET /locate p99, 8 conn (ms)", fig["get_locate_c8_p99_ms"], "<= 5"),
            ("POST /locate 10k / in-process", fig["post_10k_over_inprocess"], "<= 10x"),
            ("z16 building tile uncached (ms)", fig["tile_z16_uncached_median_ms"], "< 50")]
    for name, value, target in rows:
        print(f"{name:<36} {value!s:>10}   target {target}")
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
