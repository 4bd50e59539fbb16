"""The current atlas, swapped in one reference assignment so readers never see half an edit."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable

from ..budget import Budget
from ..store import Store
from .asof import atlas_at
from .asof_cache import AsOfCache, nbytes
from .snapshot import Atlas

#: as-of atlases (?at=): at most this many bytes kept and being built, this many kept, this many
#: built at once (each costs about as much memory as the current atlas: ~200 MB on the demo)
ASOF_MAX_BYTES = 1024 * 2**20
ASOF_MAX_ENTRIES = 4
ASOF_MAX_BUILDS = 1


class AtlasHolder:
    """Holds the current :class:`Atlas` of a store and replaces it whole on every change.

    ``atlas``: a snapshot already built (tests and benchmarks reuse one; default: read the store).
    ``follow``: swap in versions other processes commit (replicas). ``warmers``: functions of
    ``(atlas, store)`` run on a background thread for each new snapshot, so the first request
    does not pay for derived state (the API passes its statistics).
    """

    def __init__(self, store: Store, atlas: Atlas | None = None, *, follow: bool = True,
                 warmers: Iterable[Callable[[Atlas, Store], object]] = (), asof_max_bytes: int = ASOF_MAX_BYTES,
                 asof_max_entries: int = ASOF_MAX_ENTRIES, asof_max_builds: int = ASOF_MAX_BUILDS):
        self.store = store
        self._atlas = atlas if atlas is not None else Atlas.from_store(store)
        self._lock = threading.Lock()
        self._warmers = tuple(warmers)
        self._warm_lock = threading.Lock()
        self._warm_next: Atlas | None = None
        self._warm_running = False
        # a build is counted at the current atlas's size until one has been measured
        self.asof = AsOfCache(lambda key: atlas_at(self.store, key[1]), max_bytes=asof_max_bytes,
                              max_entries=asof_max_entries, max_builds=asof_max_builds,
                              estimate=lambda: nbytes(self._atlas))
        self._warm(self._atlas)
        if follow:
            self._follow_other_writers()

    def _follow_other_writers(self) -> None:
        """Replicas: when another process commits a new atlas version, swap it in here too
        (PostGIS: LISTEN/NOTIFY, within about a second; GeoPackage: a 0.5 s poll).

        The watch holds the holder weakly, so a dropped holder (and its atlas) is freed and
        its watch stopped.
        """
        ref = weakref.ref(self)

        def on_version(version: int) -> None:
            holder = ref()
            if holder is not None and version > holder.version:
                # a notification is only a hint (anyone who may connect can NOTIFY): reload
                # only to a version the store really holds
                stored = holder.store.atlas_version()
                if stored > holder.version:
                    holder.reload_to(stored)

        weakref.finalize(self, self.store.watch_atlas_version(on_version))

    def reload_to(self, version: int) -> Atlas:
        """Catch up with versions written elsewhere: boundaries only if every step was an
        applied plan (those move no building), else everything (a replace or an import)."""
        applied = {int(c["to_version"]) for c in self.store.grid_changes()}
        if all(v in applied for v in range(self.version + 1, version + 1)):
            return self.reload_boundaries()
        return self.reload()

    def _warm(self, atlas: Atlas) -> None:
        """Compute grid statistics off the request path (about 2 s for the demo).

        One warm-up thread at a time, always for the newest snapshot: when boundary
        commits come faster than warm-ups, superseded snapshots are skipped instead of
        each keeping a thread (and a whole atlas in memory) alive.
        """
        if not self._warmers:
            return
        with self._warm_lock:
            self._warm_next = atlas
            if self._warm_running:
                return
            self._warm_running = True
        threading.Thread(target=self._warm_loop, daemon=True, name=f"warm-atlas-{atlas.version}").start()

    def _warm_loop(self) -> None:
        while True:
            with self._warm_lock:
                atlas, self._warm_next = self._warm_next, None
                if atlas is None:
                    self._warm_running = False
                    return
            if atlas is self._atlas:  # superseded snapshots are not worth warming
                for warm in self._warmers:
                    _quietly(warm, atlas, self.store)
            del atlas

    @property
    def atlas(self) -> Atlas:
        return self._atlas  # one attribute read: atomic under the GIL

    @property
    def version(self) -> int:
        return self._atlas.version

    def at(self, when, budget: Budget | None = None) -> Atlas:
        """The atlas as it stood at ``when`` (an aware datetime), from the store's history.

        Cached per (current version, instant) within a memory budget (:mod:`.asof_cache`; past
        it a BusyError): an apply bumps the version, so entries drawn before it are never served
        after it. Its ``version`` is the atlas version in force at ``when`` (from the audit log of
        applied plans). ``budget`` bounds a build (a cached atlas costs nothing).
        """
        return self.asof.get((self.version, when),
                             build=lambda key: atlas_at(self.store, key[1], budget))

    def reload(self) -> Atlas:
        """Build a new snapshot from the store and swap it in."""
        with self._lock:
            new = Atlas.from_store(self.store)
            self._atlas = new
            self._warm(new)
            return new


    def reload_boundaries(self) -> Atlas:
        """After a boundary commit: re-read the divisions only and swap in one step.

        A plan moves no building and no household (the atlas assigns them to grids
        from their representative points), so the new snapshot reuses the current
        one's building and household frames instead of re-reading ~1.3 s of rows.
        """
        with self._lock:
            old = self._atlas
            version, divisions = self.store.current_boundaries()
            if version == old.version:
                return old
            new = Atlas(version=version, at=None, divisions=divisions, buildings=old.buildings,
                        households=old._public(old.households), cache_dir=self.store.cache_dir(), reuse=old)
            self._atlas = new
            self._warm(new)
            return new


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # a failed warm-up only means the first request computes it
        pass
