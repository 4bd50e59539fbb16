"""spopt's max-p in a worker process that can be stopped.

spopt 0.7's simulated annealing can loop for ever on some inputs (its move search never
runs out of candidates; fixed upstream in pysal/spopt#506, after 0.7.0). A thread running
it cannot be stopped, a process can: each solve gets a deadline, and past it the worker is
killed, so the work really ends and its core is freed.

The worker is a child interpreter (``python -m gis_grid.planning.solver``), not a fork (the
server's threads may hold locks) nor a multiprocessing spawn (which re-imports the caller's
``__main__``). It exits by itself if the process that started it goes away.
"""
from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import threading
import time
import weakref

from ..errors import SolveStopped

#: live workers, so a server shutting down can stop them all (see :func:`stop_all`)
_live: "weakref.WeakSet[MaxPWorker]" = weakref.WeakSet()


def stop_all() -> None:
    """Kill every running solve for good: a server is shutting down, and a proposal in flight
    must not keep it alive (its caller gets :class:`SolveStopped`, then ``stopped`` is true)."""
    for worker in list(_live):
        worker.stopped = True
        worker.close()


def _maxp(cells, households, neighbours, min_households: float, seed: int):
    """Region labels of spopt's ``MaxPHeuristic`` on the cells (runs in the worker)."""
    import warnings

    import geopandas as gpd
    import numpy as np
    import shapely
    from libpysal.weights import W
    from spopt.region import MaxPHeuristic

    c = shapely.centroid(np.asarray(cells, dtype=object))
    gdf = gpd.GeoDataFrame({"x": shapely.get_x(c), "y": shapely.get_y(c), "households": households},
                           geometry=list(cells))
    # scale the coordinates so the dissimilarity is isotropic-ish and well conditioned
    gdf["x"] = (gdf["x"] - gdf["x"].mean()) * 1e3
    gdf["y"] = (gdf["y"] - gdf["y"].mean()) * 1e3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = W(neighbours, silence_warnings=True)
        np.random.seed(seed)
        model = MaxPHeuristic(gdf, w, ["x", "y"], "households", float(min_households), top_n=2,
                              max_iterations_construction=3, max_iterations_sa=1)
        model.solve()
    return np.asarray(model.labels_)


def _serve() -> None:
    parent = os.getppid()

    def orphaned() -> None:  # the parent was killed: do not loop on without it
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    _send(out, ("ready", None))
    while True:
        try:
            args = pickle.load(inp)
        except EOFError:
            return
        try:
            reply = ("ok", _maxp(*args))
        except Exception as exc:  # returned to the caller, who raises it
            reply = ("error", exc)
        _send(out, reply)


def _send(stream, obj) -> None:
    pickle.dump(obj, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


class MaxPWorker:
    """One worker process for the max-p solves of one proposal; use as a context manager."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self.stopped = False  # by stop_all(): do not start again

    def _start(self, deadline: float) -> None:
        if self.stopped:
            raise SolveStopped("the server is shutting down")
        _live.add(self)
        self._proc = subprocess.Popen([sys.executable, "-m", "gis_grid.planning.solver"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      start_new_session=True)  # a terminal's Ctrl-C goes to the parent only
        self._receive(deadline)  # "ready": the imports count against the budget too

    def _receive(self, deadline: float):
        proc = self._proc
        if proc is None:  # closed by stop_all()
            raise SolveStopped("the server is shutting down")
        out = proc.stdout
        try:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise SolveStopped("past its deadline")
            status, value = pickle.load(out)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.close()
            raise SolveStopped("the worker process ended") from exc
        except SolveStopped:
            self.close()
            raise
        if status == "error":
            raise value
        return value

    def solve(self, deadline: float, cells, households, neighbours, min_households: float, seed: int):
        """Labels from :func:`_maxp`, or :class:`SolveStopped` at ``deadline``
        (a ``time.monotonic()`` value)."""
        if self._proc is None:
            self._start(deadline)
        try:
            _send(self._proc.stdin, (list(cells), households, neighbours, min_households, seed))
        except OSError as exc:
            self.close()
            raise SolveStopped("the worker process ended") from exc
        return self._receive(deadline)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self) -> "MaxPWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
