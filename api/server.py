"""`gis-grid serve`: generate the demo store on first run, then serve it with uvicorn."""
from __future__ import annotations

import os
from pathlib import Path

from gis_grid.store import DATABASE_URL_ENV, default_store_path, is_database_url, open_store

from .settings import Settings


def serve(db: str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> int:
    import uvicorn

    overrides = {k: v for k, v in {"db": db, "host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    target = settings.db or os.environ.get(DATABASE_URL_ENV) or str(default_store_path())
    if not is_database_url(target) and not Path(target).exists():
        if settings.db and Path(settings.db) != default_store_path():
            print(f"no store at {target}; generate one with `gis-grid demo --out {target}`")
            return 2
        print(f"first run: generating the demo district into {target} (about a minute)")
        from gis_grid.demo.generate import write_demo
        with open_store(target, create=True) as store:
            write_demo(store)
    _demo_basemap(settings, target)
    settings.db = target
    base = f"http://{settings.host}:{settings.port}"
    log_level = os.environ.get("GIS_GRID_LOG_LEVEL", "info")
    # SIGTERM: requests in flight get this long, then they are cancelled and the app shuts down
    grace = settings.graceful_shutdown_s()
    if workers > 1:
        # Worker processes are replicas: each loads its own atlas and follows the others' writes
        # through the store's atlas-version watch. A one-time sign-in nonce lives in one
        # process's memory, so there is no demo link here: sign in at /login with a key.
        os.environ["GIS_GRID_DB"] = target
        print(f"gis_grid serving {target} with {workers} worker processes on {base}/map")
        uvicorn.run("api.app:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=workers, log_level=log_level, timeout_graceful_shutdown=grace)
        return 0
    from .app import create_app
    app = create_app(settings)
    print(f"gis_grid serving {target} (atlas v{app.state.holder.version}) on {base}/map")
    announce_sign_in(app, base)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=grace)
    return 0


def _demo_basemap(settings: Settings, target: str) -> None:
    """A demo GeoPackage without its offline basemap (older demos, or a deleted file) gets one (~20 s)."""
    from gis_grid import basemap
    if settings.basemap != "mbtiles" or settings.basemap_mbtiles or is_database_url(target):
        return
    out = basemap.default_path(target)
    with open_store(target) as store:
        if out.exists() or store.meta().get("demo") != "1":
            return
        print(f"rendering the demo's offline basemap into {out}")
        from gis_grid.atlas import Atlas
        basemap.render_basemap(Atlas.from_store(store), out)


def _terminal():
    """The controlling terminal, for writing; None when there is none (a service, a container)."""
    try:
        return open("/dev/tty", "w", encoding="utf-8")
    except OSError:
        return None


def announce_sign_in(app, base: str, terminal=_terminal) -> bool:
    """Write the demo sign-in link to the operator's terminal, never to stdout/stderr.

    Stdout is the server log wherever a service manager runs the server, and whoever reads
    that log could sign in first. With no terminal no key is made and no link exists.
    """
    if app.state.holder.store.meta().get("demo") != "1":
        return False
    tty = terminal()
    if tty is None:
        print("demo store: no terminal to show a sign-in link on; create a key with gis-grid keys create")
        return False
    with tty:
        tty.write(f"demo store: sign in as the command centre (one use, 24 h): {base}{demo_sign_in_link(app)}\n")
    return True


def demo_sign_in_link(app) -> str | None:
    """On the demo store only: a one-time sign-in path for a fresh command-centre key.

    The key itself never appears in the URL (URLs end up in logs and history);
    the path carries a single-use nonce that sets the session cookie.
    """
    store = app.state.holder.store
    if store.meta().get("demo") != "1":
        return None
    from datetime import datetime, timezone

    from gis_grid.security import audit
    from gis_grid.security.keys import create_key
    # only the secret's digest is stored, so an earlier key cannot be handed out again:
    # revoke it, so that restarts leave one live demo key rather than one per start
    for old in store.keys():
        if old["note"] == DEMO_KEY_NOTE and not old["revoked"]:
            store.revoke_key(old["id"], datetime.now(timezone.utc).isoformat())
            store.append_audit(audit.new_record(key_id=None, role="serve", scope=None, action="key.revoke",
                                                resource=f"key/{old['id']}", result="ok: superseded demo sign-in key"))
    _, token = create_key(store, "command_center", store.meta().get("district", "370402"), days=1,
                          note=DEMO_KEY_NOTE, actor="serve")
    return app.state.one_time_logins.issue(token)


DEMO_KEY_NOTE = "demo sign-in link printed by gis-grid serve"
