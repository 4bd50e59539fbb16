"""As-of atlases (``?at=``) within a memory budget: an LRU by bytes and entries, and a cap on builds.

Every distinct instant builds a whole atlas (about 200 MB on the demo), so unbounded, eight
concurrent requests for eight dates took a server from 1.9 to 3.6 GB. Here the atlases kept
plus the ones being built (each counted at the size of the largest seen so far) stay within
``max_bytes``: least recently used atlases are dropped to make room, and a request that would
still not fit, or that would start more than ``max_builds`` builds at once, is refused at once
with :class:`~gis_grid.errors.BusyError` (the API answers 503 with ``Retry-After``) instead of
growing the process. Requests for an instant already being built wait for that build.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd
import shapely

from ..errors import BusyError

#: what a geometry costs besides its coordinates (GEOS object, Python wrapper), roughly
_GEOMETRY_OVERHEAD = 200


def nbytes(obj, _seen: set | None = None, _depth: int = 0) -> int:
    """An estimate of the memory an atlas (or any object) holds: arrays and frames in full,
    geometries by their coordinates, containers and plain objects walked a few levels deep."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype == object and obj.size and isinstance(obj.flat[0], shapely.Geometry):
            return obj.nbytes + _geometry_bytes(obj)
        return obj.nbytes + (sum(sys.getsizeof(x) for x in obj.flat[:1000]) * obj.size // min(obj.size, 1000)
                             if obj.dtype == object and obj.size else 0)
    if isinstance(obj, pd.DataFrame):
        total = 0
        for name in obj.columns:
            col = obj[name]
            values = col.to_numpy() if col.dtype == object or str(col.dtype) == "geometry" else None
            total += nbytes(values, seen, _depth + 1) if values is not None else int(col.memory_usage(index=False))
        return total + int(obj.index.memory_usage())
    # memos fill from other threads while this walks: copy a container in one C call first
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(nbytes(k, seen, _depth + 1) + nbytes(v, seen, _depth + 1)
                                        for k, v in tuple(obj.items()))
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sys.getsizeof(obj) + sum(nbytes(x, seen, _depth + 1) for x in tuple(obj))
    if isinstance(obj, shapely.STRtree):
        return len(obj) * 64
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sys.getsizeof(obj) + sum(nbytes(v, seen, _depth + 1) for v in tuple(vars(obj).values()))
    if hasattr(obj, "__slots__"):
        return sys.getsizeof(obj) + sum(nbytes(getattr(obj, s, None), seen, _depth + 1) for s in obj.__slots__)
    return sys.getsizeof(obj)


def _geometry_bytes(geoms: np.ndarray) -> int:
    return int(shapely.get_num_coordinates(geoms).sum()) * 16 + len(geoms) * _GEOMETRY_OVERHEAD


class AsOfCache:
    """``get(key)``: the cached atlas, or ``build()`` it within the budget (see the module)."""

    def __init__(self, build: Callable[[Hashable], object], *, max_bytes: int, max_entries: int = 8,
                 max_builds: int = 1, retry_after_s: int = 10, estimate: Callable[[], int] | None = None,
                 size_of: Callable[[object], int] = nbytes):
        self._build, self._size_of, self._estimate_fn = build, size_of, estimate
        self.max_bytes, self.max_entries, self.max_builds = max_bytes, max_entries, max_builds
        self.retry_after_s = retry_after_s
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._building: dict[Hashable, threading.Event] = {}
        self._estimate = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """Bytes held by the atlases kept now."""
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def _busy(self, why: str) -> str:
        return (f"as-of atlases (?at=) are at their budget: {why}; retry in {self.retry_after_s} s, "
                "or ask for an instant already asked for")

    def get(self, key: Hashable, build: Callable[[Hashable], object] | None = None):
        """The atlas for ``key``; ``build`` (default: the cache's own) makes it on a miss."""
        if not self._estimate and self._estimate_fn is not None:
            self._estimate = int(self._estimate_fn())   # outside the lock: may take a while
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
                pending = self._building.get(key)
                if pending is None:
                    self._admit()
                    pending = self._building[key] = threading.Event()
                    break
            pending.wait()   # the same instant is being built: take its result
        try:
            value = (build or self._build)(key)
            size = int(self._size_of(value))
        finally:
            with self._lock:
                del self._building[key]
            pending.set()
        with self._lock:
            self._estimate = max(self._estimate, size)
            if size <= self.max_bytes:
                self._entries[key] = (value, size)
                self._evict(0)
        return value

    def _admit(self) -> None:
        """Make room for one more build, or refuse it (called under the lock)."""
        if len(self._building) >= self.max_builds:
            raise BusyError(self._busy(f"{len(self._building)} being built already "
                                       f"(at most {self.max_builds} at once)"),
                            detail={"retry_after_s": self.retry_after_s})
        need = (len(self._building) + 1) * self._estimate
        if need > self.max_bytes:
            raise BusyError(self._busy(f"one needs about {self._estimate // 2**20} MB, the budget is "
                                       f"{self.max_bytes // 2**20} MB with {len(self._building)} being built"),
                            detail={"retry_after_s": self.retry_after_s})
        self._evict(need)

    def _evict(self, reserve: int) -> None:
        """Drop the least recently used atlases until the rest plus ``reserve`` fit (under the lock)."""
        held = sum(size for _, size in self._entries.values())
        while self._entries and (held + reserve > self.max_bytes or len(self._entries) > self.max_entries
                                 or (reserve and len(self._entries) >= self.max_entries)):
            _, (_, size) = self._entries.popitem(last=False)
            held -= size
