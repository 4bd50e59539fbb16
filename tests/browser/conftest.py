"""Browser fixtures: Debian's Chromium driven by Playwright against the real app under uvicorn."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gis_grid.testing import free_port, skip_or_fail_on_ci, stop_process

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("GIS_GRID_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not os.path.exists(path):
        skip_or_fail_on_ci("Debian chromium is not installed (bash scripts/system-deps.sh)")
    return path


@pytest.fixture(scope="session")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail_on_ci("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_api, chromium_path):
    b = playwright_api.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session")
def basemap_package(demo_atlas, tmp_path_factory) -> Path:
    """The demo's offline basemap, as `gis-grid demo` renders it, up to z14 (enough for what the tests look at)."""
    from gis_grid import basemap
    out = tmp_path_factory.mktemp("basemap") / "shizhong-basemap.mbtiles"
    basemap.render_basemap(demo_atlas, out, zooms=(9, 14))
    return out


@pytest.fixture(scope="session")
def live_server(demo_store_path, basemap_package, tmp_path_factory):
    """The real app (uvicorn, own process) over the demo store on a free localhost port."""
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    env = dict(os.environ, GIS_GRID_DB=str(demo_store_path), GIS_GRID_BASEMAP="mbtiles",
               GIS_GRID_BASEMAP_MBTILES=str(basemap_package))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"uvicorn exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/map/static/viewer/viewer.css", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start within 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        stop_process(proc)


@pytest.fixture
def watched_page(browser):
    """Makes pages (each in a new context, closed after the test) that record console and page errors
    (``pg.errors``) and abort, recording in ``pg.blocked``, every request off this host
    (``network=False``: every network request, for a page that must work from a file)."""
    contexts = []
    yield lambda **kw: _watched(browser, contexts, **kw)
    for ctx in contexts:
        ctx.close()


def _watched(browser, contexts: list, *, network: bool = True, **context_kw):
    from urllib.parse import urlsplit
    ctx = browser.new_context(**context_kw)
    contexts.append(ctx)
    pg = ctx.new_page()
    pg.errors, pg.blocked = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))

    def guard(route):
        parts = urlsplit(route.request.url)
        off = parts.scheme in ("http", "https", "ws", "wss") and (
            not network or parts.hostname not in ("127.0.0.1", "localhost"))
        if off:
            pg.blocked.append(route.request.url)
            return route.abort()
        return route.continue_()

    pg.route("**/*", guard)
    return pg
