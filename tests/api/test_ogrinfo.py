"""GDAL's OAPIF driver against the real app served by uvicorn: `ogrinfo` must count every collection right."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from api.app import create_app
from api.settings import Settings
from gis_grid.atlas.holder import AtlasHolder
from gis_grid.testing import free_port, skip_or_fail_on_ci


def _ogrinfo() -> str:
    exe = shutil.which("ogrinfo")
    if exe is None:
        skip_or_fail_on_ci("GDAL's ogrinfo is not installed (run `bash scripts/system-deps.sh`)")
    return exe


@pytest.fixture(scope="module")
def server(demo_store_path, demo_store, demo_atlas):
    import uvicorn

    # the real app from its settings; the session's atlas is reused (building one costs seconds)
    holder = AtlasHolder(demo_store, demo_atlas, follow=False)
    port = free_port()
    # links are built from the public URL setting (never from Host): this server's own address
    app = create_app(Settings(db=str(demo_store_path), public_url=f"http://127.0.0.1:{port}"), holder=holder)
    app.router.lifespan_context = _no_close  # the session owns the store
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not th.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)


from contextlib import asynccontextmanager  # noqa: E402


@asynccontextmanager
async def _no_close(app):
    yield


@pytest.mark.parametrize("layer", ["streets", "communities", "grids", "buildings", "incidents"])
def test_ogrinfo_feature_count(server, demo_store, demo_headers, layer):
    exe = _ogrinfo()
    if layer == "buildings":
        expected = len(demo_store.buildings())
    elif layer == "incidents":  # every case of the demo history (a command-centre key sees them all)
        expected = len(demo_store.incidents(columns=["id"]))
    else:
        d = demo_store.divisions()
        level = {"streets": "street", "communities": "community", "grids": "grid"}[layer]
        expected = int((d["level"] == level).sum())
        assert expected == {"streets": 11, "communities": 170, "grids": 445}[layer]
    t0 = time.monotonic()
    res = subprocess.run([exe, "-ro", "-so", f"OAPIF:{server}/ogc", layer], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "GDAL_HTTP_TIMEOUT": "60",
                                                  # a GIS client signs in with its key like any caller
                                                  "GDAL_HTTP_HEADERS": f"Authorization: {demo_headers['Authorization']}"})
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr + res.stdout
    m = re.search(r"Feature Count:\s*(\d+)", res.stdout)
    assert m, res.stdout + res.stderr
    assert int(m.group(1)) == expected
    assert took < 60, f"ogrinfo took {took:.1f} s"


def test_ogrinfo_reads_incident_features_in_a_box(server, demo_store, demo_headers):
    """GDAL pages through the incidents of a bbox (sent to the server) and reads their attributes."""
    exe = _ogrinfo()
    df = demo_store.incidents(columns=["id", "lon", "lat", "category"])
    box = (117.55, 34.85, 117.56, 34.86)
    inside = df[(df["lon"] >= box[0]) & (df["lon"] <= box[2]) & (df["lat"] >= box[1]) & (df["lat"] <= box[3])]
    res = subprocess.run([exe, "-ro", "-al", "-spat", *map(str, box), "-oo", "PAGE_SIZE=500",
                          f"OAPIF:{server}/ogc", "incidents"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GDAL_HTTP_TIMEOUT": "60",
                              "GDAL_HTTP_HEADERS": f"Authorization: {demo_headers['Authorization']}"})
    assert res.returncode == 0, res.stderr + res.stdout
    ids = re.findall(r"^\s*id \(String\) = (E\w+)$", res.stdout, flags=re.M)
    assert sorted(ids) == sorted(inside["id"])
    assert "reporter" not in res.stdout and "description" not in res.stdout
    if len(df):  # the demo history: a central box holds cases on several pages
        assert len(inside) > 500 and re.search(r"category \(String\) = \w+", res.stdout)
