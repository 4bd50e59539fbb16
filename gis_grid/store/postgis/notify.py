"""LISTEN for atlas-version announcements on a dedicated connection in a daemon thread.

Writers ``pg_notify`` the new version inside the committing transaction, so a
notification means "committed". After every (re)connect the watcher reads the
current version once, because announcements sent while it was not listening are
lost; the callback may therefore see a version more than once and must compare.
"""
from __future__ import annotations

import logging
import threading

from ...errors import StoreError
from .pool import connect_as_app

log = logging.getLogger("gis_grid.store.postgis")
APPLICATION_NAME = "gis_grid_listen"  # how the listening sessions show in pg_stat_activity


def watch(url: str, channel: str, callback, *, poll_s: float = 0.5, max_backoff_s: float = 5.0):
    """Call ``callback(version)`` on every announced atlas version; returns ``stop()``."""
    stopping = threading.Event()

    def deliver(version) -> None:
        try:
            callback(int(version))
        except Exception:  # a failing callback must not end the watch
            log.exception("atlas version callback failed")

    def run() -> None:
        backoff = 0.2
        while not stopping.is_set():
            try:
                with connect_as_app(url, application_name=APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {channel}")
                    row = conn.execute("SELECT value FROM meta WHERE key = 'atlas_version'").fetchone()
                    deliver(row[0])
                    backoff = 0.2
                    while not stopping.is_set():
                        for note in conn.notifies(timeout=poll_s):
                            deliver(note.payload)
            except StoreError as exc:
                if "does not exist" in exc.message:  # the database was dropped: nothing left to follow
                    log.warning("atlas version watch on %s ends: %s", channel, exc.message)
                    return
                log.warning("atlas version watch on %s cannot connect (%s); retrying", channel, exc.message)
                stopping.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)
            except Exception as exc:  # server restart, network: listen again shortly
                log.warning("atlas version watch on %s lost its connection (%s); reconnecting", channel, exc)
                stopping.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)

    thread = threading.Thread(target=run, daemon=True, name=f"gis-grid-listen-{channel}")
    thread.start()

    def stop() -> None:
        stopping.set()

    stop.thread = thread
    return stop
