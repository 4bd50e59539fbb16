"""bench/faults.py (the fault drill) is not part of the suite, which must not stop databases;
this only checks that it loads and describes itself."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.store_free

ROOT = Path(__file__).resolve().parent.parent


def test_the_fault_drill_loads_and_prints_its_help():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "faults.py"), "--help"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for fault in ("--outage-s", "outage", "blackhole", "kill", "notify", "its OWN loopback PostgreSQL"):
        assert fault in r.stdout
