"""Two `gis-grid serve` processes on one store: a plan applied through one reaches the other.

Each replica is a real process with its own atlas. Replica B learns of A's apply only through
the store (PostGIS: LISTEN/NOTIFY on the atlas version; GeoPackage: its poll of the file), so
this test fails if that path is missing, slow (over 1 s) or swaps in the wrong boundaries.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import shapely

from common import X0, XM, Y0, Y1, bearer, make_toy_store
from gis_grid.testing import free_port
from stores import location

WEST = "370402001001"
G1, G2 = WEST + "001", WEST + "002"
MOVED = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}
    for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
PROBE = {"lon": 117.505, "lat": 34.805}  # in G2 before the apply, in G1 after


def _call(base, path, token, method="GET", body=None, headers=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _serve(db, log):
    port = free_port()
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gis_grid.cli", "serve", "--db", db, "--port", str(port)],
                            env=dict(os.environ, GIS_GRID_LOG_LEVEL="warning"), stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait_up(proc, base, token, log):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"replica exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if _call(base, "/capabilities", token)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"replica did not start:\n{log.read_text()[-3000:]}")


def test_apply_on_one_replica_reaches_the_other_within_a_second(tmp_path):
    db = location(tmp_path / "toy.gpkg")
    make_toy_store(db).close()
    planner = bearer(db, "planner", "370402")["Authorization"].split()[1]
    reader = bearer(db, "external_system", "370402")["Authorization"].split()[1]
    (a, base_a), (b, base_b) = _serve(db, tmp_path / "a.log"), _serve(db, tmp_path / "b.log")
    try:
        _wait_up(a, base_a, reader, tmp_path / "a.log")
        _wait_up(b, base_b, reader, tmp_path / "b.log")
        q = f"/locate?lon={PROBE['lon']}&lat={PROBE['lat']}"
        for base in (base_a, base_b):
            status, body = _call(base, q, reader)
            assert status == 200 and body["grid"]["code"] == G2 and body["atlas_version"] == 1

        status, plan = _call(base_a, "/plans", planner, "POST", {"community": WEST, "grids": MOVED})
        assert status == 201, plan
        status, applied = _call(base_a, f"/plans/{plan['id']}/apply", planner, "POST", headers={"If-Match": '"1"'})
        assert status == 200 and applied["atlas_version"] == 2, applied
        done = time.monotonic()

        seen = None
        while time.monotonic() - done < 5:  # poll well past the target so a slow swap is measured, not cut
            status, body = _call(base_b, q, reader)
            if status == 200 and body["atlas_version"] == 2:
                seen = time.monotonic() - done
                break
            time.sleep(0.02)
        assert seen is not None, "replica B never picked up the applied plan"
        assert seen <= 1.0, f"replica B took {seen:.2f} s to follow the apply"
        answers = [_call(base, q, reader)[1] for base in (base_a, base_b)]
        assert [(x["grid"]["code"], x["atlas_version"]) for x in answers] == [(G1, 2), (G1, 2)]
        # a later write through B is refused against the old version on both sides: one history
        status, body = _call(base_b, f"/plans/{plan['id']}/apply", planner, "POST", headers={"If-Match": '"1"'})
        assert status == 412 and body["errors"]["current_version"] == 2
    finally:
        for proc in (a, b):
            proc.terminate()
        for proc in (a, b):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
