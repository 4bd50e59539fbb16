"""Bounded ``?at=`` load: concurrent requests for distinct past dates, and the server's memory.

Finding 5 of issue 13: every distinct ``?at=`` built a whole atlas (~200 MB on the demo) with no
bound, and eight concurrent requests from the lowest role took a server from 1.9 to 3.6 GB. This
copies the demo store (left untouched), makes a grid worker's key, starts ``gis-grid serve`` with
an as-of budget (``GIS_GRID_ASOF_BUDGET_MB``) and fires ``--concurrency`` requests at once, each
for another date, for ``--rounds`` rounds, sampling the server's RSS every 50 ms. It prints the
RSS before, the peak and the rise, the rise against the budget, and how many answers were 200 /
503 (with Retry-After). Not a test: a bounded run (a few rounds) on the demo district.

    python bench/asof_memory.py [--db data/shizhong.gpkg] [--budget-mb 512] [--concurrency 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from load import copy_store  # noqa: E402
from timing import free_port, wait_up  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=str(ROOT / "data" / "shizhong.gpkg"), help="the demo store to copy")
    ap.add_argument("--budget-mb", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import httpx

    from gis_grid.security.keys import create_key
    from gis_grid.store import open_store

    work = Path(tempfile.mkdtemp(prefix="gis_grid_asof_"))
    db = work / "asof.gpkg"
    copy_store(args.db, db)
    with open_store(str(db)) as store:
        grid = str(store.divisions().query("level == 'grid'")["code"].iloc[0])
        token = create_key(store, "grid_worker", grid, days=1, note="bench/asof_memory.py")[1]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIS_GRID_ASOF_BUDGET_MB": str(args.budget_mb),
           "GIS_GRID_BASEMAP": "none"}   # no offline basemap to render for the copy
    server = subprocess.Popen([sys.executable, "-m", "gis_grid.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
                               "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, head = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    peak, stop = [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(server.pid))
            time.sleep(0.05)

    try:
        wait_up(f"{base}/login")
        httpx.get(f"{base}/grids/{grid}?geometry=false", headers=head, timeout=120)   # warm, current atlas
        time.sleep(3)   # the statistics warm-up thread
        before = rss_mb(server.pid)
        threading.Thread(target=sample, daemon=True).start()
        codes, waits, retry = {}, [], set()

        def one(i: int):
            t = time.perf_counter()
            day = f"2016-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"   # another date for every request
            r = httpx.get(f"{base}/grids/{grid}", params={"geometry": "false", "at": day}, headers=head, timeout=300)
            return r.status_code, time.perf_counter() - t, r.headers.get("retry-after")

        with ThreadPoolExecutor(args.concurrency) as pool:
            for rnd in range(args.rounds):
                for code, dt, ra in pool.map(one, range(rnd * args.concurrency, (rnd + 1) * args.concurrency)):
                    codes[code] = codes.get(code, 0) + 1
                    if code == 200:
                        waits.append(dt)
                    if ra:
                        retry.add(ra)
        stop.set()
        time.sleep(0.1)
        rise = peak[0] - before
        out = {"budget_mb": args.budget_mb, "concurrency": args.concurrency, "rounds": args.rounds,
               "rss_before_mb": round(before), "rss_peak_mb": round(peak[0]), "rise_mb": round(rise),
               "rise_vs_budget": round(rise / args.budget_mb, 2), "answers": codes,
               "retry_after_s": sorted(retry), "median_200_s": round(statistics.median(waits), 2) if waits else None}
        print(json.dumps(out))
        return 0 if set(codes) <= {200, 503} else 1
    finally:
        stop.set()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
