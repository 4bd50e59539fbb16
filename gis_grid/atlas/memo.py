"""The one home of state derived from an atlas snapshot.

A :class:`Memo` belongs to one :class:`~gis_grid.atlas.Atlas`: statistics, case tables,
contiguity weights, feature collections and tile indexes are built once per snapshot and
die with it, so no cache needs a version in its key or an ``id()`` that can be reused.
"""
from __future__ import annotations

import threading
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
