"""The one home of state derived from an atlas snapshot.

A :class:`Memo` belongs to one :class:`~gis_grid.atlas.Atlas`: statistics, case tables,
contiguity weights, feature collections and tile indexes are built once per snapshot and
die with it, so no cache needs a version in its key or an ``id()`` that can be reused.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class Memo:
    """Values computed once per key, thread-safe; concurrent misses of one key build it once."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T], *, fresh: Callable[[T], bool] | None = None) -> T:
        """The value of ``key``, built on a miss (or when ``fresh(value)`` says it is stale)."""
        hit = self._values.get(key, _MISSING)
        if hit is not _MISSING and (fresh is None or fresh(hit)):
            return hit
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one build per key even when several requests miss at once
            hit = self._values.get(key, _MISSING)
            if hit is not _MISSING and (fresh is None or fresh(hit)):
                return hit
            value = build()
            self._values[key] = value
            return value

    def peek(self, key: Hashable, default=None):
        return self._values.get(key, default)

    def put(self, key: Hashable, value) -> None:
        """Replace a value in place (a cache patched by a write, see incidents.aggregate.note_write)."""
        self._values[key] = value

    def forget(self, key: Hashable) -> None:
        """Drop a value; the next :meth:`get` builds it again."""
        self._values.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)


class ResponseCache:
    """A bounded LRU of encoded answers (tiles, division cards, map layers) keyed by ``(version, ...)``.

    Unlike a :class:`Memo` it is bounded in items and bytes, for answers too many to keep
    (every tile); entries of an older version are dropped as soon as a newer one is asked for.
    """

    def __init__(self, max_items: int = 4096, max_bytes: int = 64 * 1024 * 1024):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._d: "OrderedDict[tuple, bytes]" = OrderedDict()
        self._bytes = 0
        self._version = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            if key[0] != self._version:  # a new atlas version: everything older is stale
                self._d.clear()
                self._bytes = 0
                self._version = key[0]
            v = self._d.get(key)
            if v is None:
                self.misses += 1
                return None
            self._d.move_to_end(key)
            self.hits += 1
            return v

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key[0] != self._version:
                return  # rendered for an atlas that has since been replaced
            old = self._d.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._d[key] = data
            self._bytes += len(data)
            while self._d and (len(self._d) > self.max_items or self._bytes > self.max_bytes):
                _, v = self._d.popitem(last=False)
                self._bytes -= len(v)

    def get_or_build(self, key: tuple, build) -> bytes:
        """The cached answer, or ``build()`` stored (a miss builds outside the lock: nobody waits)."""
        data = self.get(key)
        if data is None:
            data = build()
            self.put(key, data)
        return data
