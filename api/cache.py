"""A small shared cache of built response bodies."""
from __future__ import annotations

import threading


class BuildCache:
    """First-in-first-out cache of bodies built on a miss.

    Keys carry the versions the body depends on (atlas, case table), so a write makes
    new keys and the old entries just age out; no invalidation is needed.
    """

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._d: dict[tuple, bytes] = {}
        self._lock = threading.Lock()

    def get_or_build(self, key: tuple, build) -> bytes:
        with self._lock:
            hit = self._d.get(key)
        if hit is not None:
            return hit
        body = build()  # outside the lock: two racing misses build twice, nobody waits
        with self._lock:
            while len(self._d) >= self.max_items:
                self._d.pop(next(iter(self._d)))
            self._d[key] = body
        return body
