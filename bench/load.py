"""Load test: mixed point location and grid reads, with API keys, for 60 s under wrk.

Copies the demo store (the service writes audit records and keys; the original stays
untouched), makes API keys in the copy (external_system keys for locate, command-centre
keys for grid cards, as those systems would call), starts ``gis-grid serve`` on
127.0.0.1 and drives it with wrk (a separate process, bounded in time) and a Lua script
that rotates through the keys and a shuffled list of requests:

* ``GET /locate?lon=..&lat=..`` at random points of the district's bounding box (some
  fall outside it: a valid "outside" answer), and
* ``GET /grids/{code}?geometry=false`` for random divisions of every level.

Prints one JSON line: rps, p50/p99 latency, error count (non-2xx/3xx and socket errors).
The target is >= 2,000 requests/s for 60 s with 0 errors. Not a test; installs Debian's
``wrk`` with apt-get if it is missing.

    python bench/load.py [--db /tmp/demo1.gpkg] [--seconds 60] [--connections 32] [--locate-share 0.7]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from timing import free_port, parse_wrk, wait_up  # noqa: E402

TARGET_RPS = 2000
KEYS_PER_ROLE = 8

# request i of a thread: path i and key i of the rotation, both shuffled in advance; wrk runs
# one Lua state per thread, so each thread starts at its own offset
LUA = """
local paths = {%(paths)s}
local keys = {%(keys)s}
local counter = 0
local offset = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 997)
  threads = threads + 1
end

function init(args)
  counter = offset
end

function request()
  counter = counter + 1
  local i = (counter %% #paths) + 1
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer " .. keys[i]})
end
"""


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=True)


def copy_store(src: str, dst: Path) -> None:
    """A consistent copy even while another process has the store open in WAL mode."""
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def lua_strings(items) -> str:
    return ", ".join(json.dumps(s) for s in items)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="/tmp/demo1.gpkg", help="the demo store to copy (left untouched)")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="gis-grid serve --workers (replica processes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--locate-share", type=float, default=0.7, help="share of locate requests (rest: grid reads)")
    ap.add_argument("--requests", type=int, default=20_000, help="distinct requests in the rotation")
    args = ap.parse_args()
    ensure_wrk()

    from gis_grid.atlas import Atlas
    from gis_grid.security.keys import create_key
    from gis_grid.store import open_store

    work = Path(tempfile.mkdtemp(prefix="gis_grid_load_"))
    try:
        db = work / "load.gpkg"
        copy_store(args.db, db)
        with open_store(str(db)) as store:
            atlas = Atlas.from_store(store)
            locators = [create_key(store, "external_system", "370402", days=1, note="bench/load.py")[1]
                        for _ in range(KEYS_PER_ROLE)]
            centre = [create_key(store, "command_center", "370402", days=1, note="bench/load.py")[1]
                      for _ in range(KEYS_PER_ROLE)]
        rng = np.random.default_rng(2000)
        minx, miny, maxx, maxy = atlas.divisions[atlas.divisions["level"] == "district"]["geometry"].iloc[0].bounds
        codes = atlas.divisions["code"].to_numpy()
        paths, tokens = [], []
        for i in range(args.requests):
            if rng.random() < args.locate_share:
                lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                paths.append(f"/locate?lon={lon:.6f}&lat={lat:.6f}")
                tokens.append(locators[i % len(locators)])
            else:
                paths.append(f"/grids/{rng.choice(codes)}?geometry=false")
                tokens.append(centre[i % len(centre)])
        script = work / "mixed.lua"
        script.write_text(LUA % {"paths": lua_strings(paths), "keys": lua_strings(tokens)})

        port = free_port()
        gis_grid = shutil.which("gis-grid", path=str(Path(sys.executable).parent)) or "gis-grid"
        server = subprocess.Popen([gis_grid, "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", str(args.workers)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(f"{base}/login")
            import httpx  # warm the statistics every grid card reads, and check each kind of request once
            for p, t in zip(paths[:200], tokens[:200]):
                r = httpx.get(base + p, headers={"Authorization": f"Bearer {t}"}, timeout=60)
                assert r.status_code == 200, (p, r.status_code, r.text[:200])
            # a long-running service has its division cards cached (per atlas version and role):
            # fill that cache once, timed, so the 60 s measure the steady state, not the first fill
            # (each worker process has its own cache: no keep-alive, so the requests spread over them;
            # one client, because building an httpx client per request cost ~40 ms each)
            t0 = time.perf_counter()
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {centre[0]}"}, timeout=60,
                              limits=httpx.Limits(max_keepalive_connections=0)) as c:
                for _ in range(2 * args.workers):
                    for code in codes:
                        assert c.get(f"/grids/{code}", params={"geometry": "false"}).status_code == 200
            warm_s = time.perf_counter() - t0
            out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
                                  "--latency", "--timeout", "5s", "-s", str(script), base],
                                 capture_output=True, text=True, timeout=args.seconds + 60).stdout
        finally:
            server.terminate()
            server.wait(timeout=30)
        r = parse_wrk(out)
        result = {"bench": "load", "seconds": args.seconds, "threads": args.threads,
                  "connections": args.connections, "workers": args.workers, "locate_share": args.locate_share,
                  "keys": 2 * KEYS_PER_ROLE, "distinct_requests": args.requests, **r,
                  "card_cache_fill_s": round(warm_s, 2),
                  "target_rps": TARGET_RPS, "met": r["rps"] >= TARGET_RPS and r["errors"] == 0,
                  "load_avg": os.getloadavg()[0], "cpus": os.cpu_count()}
        print(out, file=sys.stderr)
        print(json.dumps(result))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
