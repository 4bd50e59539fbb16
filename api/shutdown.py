"""Stopping long work when the server is told to stop, so that its requests still get an answer.

On SIGTERM uvicorn waits ``timeout_graceful_shutdown`` for requests in flight, then cancels
them, and a cancelled request answers 500. A second before that, long computations are told
to stop: solver processes are killed and budgeted work ends at its next step, so those
requests answer 503 (BudgetExceededError) and the server exits on time.
"""
from __future__ import annotations

import signal
import threading

#: stop long work this many seconds before uvicorn's grace period ends
MARGIN_S = 1.0


def stop_long_work() -> None:
    from gis_grid.budget import stop_all_work
    from gis_grid.planning.solver import stop_all
    stop_all_work()
    stop_all()


def install(grace_s: float) -> None:
    """Chain onto the server's SIGTERM/SIGINT handlers (signals are only handled in the main
    thread; elsewhere, as under a test client, there is nothing to do)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):  # no server handler to chain onto: the default ends the process anyway
            continue

        def handler(signum, frame, previous=previous):
            previous(signum, frame)
            timer = threading.Timer(max(0.0, grace_s - MARGIN_S), stop_long_work)
            timer.daemon = True
            timer.start()

        signal.signal(sig, handler)
