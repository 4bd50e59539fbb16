"""SIGTERM while a proposal runs: the request answers 503 (not 500) and the server exits on time.

uvicorn cancels requests still running when its graceful-shutdown timeout ends, and a
cancelled request answers 500. The server stops long work a second before that (api/shutdown.py),
so the proposal ends with BudgetExceededError. The solve is stood in for by one that never
answers (spopt 0.7 can loop for ever), in a real solver process that the shutdown kills.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import bearer
from gis_grid.testing import free_port
from planning_common import make_crowded_store
from stores import location

ROOT = Path(__file__).resolve().parents[2]
WEST = "370402001001"
GRACE_S = 3
LAUNCH = """
import sys
from gis_grid.planning import solver

def never_ends(self, deadline, *args):  # starts the real worker, sends it nothing, waits for its answer
    if self._proc is None:
        self._start(deadline)
    return self._receive(deadline)

solver.MaxPWorker.solve = never_ends
from api.server import serve
sys.exit(serve(db=sys.argv[1], port=int(sys.argv[2])))
"""


def _request(base, path, token, body=None, timeout=60):
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_sigterm_during_a_proposal_answers_503_and_exits_within_the_grace(tmp_path):
    db = location(tmp_path / "crowded.gpkg")
    make_crowded_store(db).close()
    token = bearer(db, "planner", "370402")["Authorization"].split()[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")
    env = dict(os.environ, GIS_GRID_LOG_LEVEL="warning", GIS_GRID_SHUTDOWN_GRACE_S=str(GRACE_S),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, db, str(port)], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if _request(base, "/capabilities", token, timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        answer = {}
        call = threading.Thread(target=lambda: answer.update(r=_request(
            base, "/plans/propose", token, {"community": WEST, "min_households": 30, "max_households": 60})))
        call.start()
        time.sleep(2)  # the proposal is waiting on its solver
        assert call.is_alive() and "r" not in answer
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        call.join(30)
        status, body = answer["r"]
        assert status == 503, body
        assert body["title"] == "BudgetExceededError" and "shutting down" in body["detail"]
        assert proc.wait(30) is not None
        assert time.monotonic() - stopped < GRACE_S + 10  # within seconds, not at the solver's leisure
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
