"""As-of atlases within a memory budget (issue 13, finding 5): an LRU by bytes and entries, at most
``max_builds`` builds at once, BusyError (503 + Retry-After in the API) past the budget, and one
build for many requests of the same instant."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from gis_grid.atlas.asof_cache import AsOfCache, nbytes
from gis_grid.errors import BusyError

MB = 2**20


class Blob:
    def __init__(self, key, size):
        self.key, self.size = key, size


def cache(max_mb=10, **kw):
    """A cache of 3 MB blobs, and the keys it built in order."""
    built = []

    def build(key):
        built.append(key)
        return Blob(key, 3 * MB)
    return AsOfCache(build, max_bytes=max_mb * MB, size_of=lambda b: b.size, **kw), built


@pytest.mark.store_free
def test_least_recently_used_atlases_go_first_and_the_bytes_stay_within_budget():
    c, built = cache(max_mb=10, max_entries=8)
    for k in ("a", "b", "c"):
        c.get(k)
    assert c.bytes == 9 * MB and len(c) == 3
    c.get("a")                        # a is used again: b is now the oldest
    c.get("d")                        # 4 x 3 MB > 10 MB: room for d is made before it is built
    assert c.bytes <= 10 * MB and len(c) == 3
    c.get("a"), c.get("c"), c.get("d")
    assert built == ["a", "b", "c", "d"]   # all hits
    c.get("b")
    assert built[-1] == "b" and c.bytes <= 10 * MB


@pytest.mark.store_free
def test_entry_cap():
    c, _ = cache(max_mb=100, max_entries=2)
    for k in "abcde":
        c.get(k)
    assert len(c) == 2


@pytest.mark.store_free
def test_an_atlas_larger_than_the_budget_is_refused_before_it_is_built():
    c, built = cache(max_mb=10, estimate=lambda: 50 * MB)
    with pytest.raises(BusyError) as exc:
        c.get("x")
    assert built == [] and exc.value.detail["retry_after_s"] == 10 and "50 MB" in str(exc.value)


@pytest.mark.store_free
def test_builds_are_capped_and_the_same_instant_is_built_once():
    gate, started = threading.Event(), threading.Event()
    built = []

    def build(key):
        built.append(key)
        started.set()
        gate.wait(10)
        return Blob(key, MB)
    c = AsOfCache(build, max_bytes=100 * MB, max_builds=1, size_of=lambda b: b.size)
    got = {}
    t1 = threading.Thread(target=lambda: got.setdefault("first", c.get("a")))
    t1.start()
    assert started.wait(10)
    with pytest.raises(BusyError, match="at most 1 at once"):
        c.get("b")                                    # a second date while one builds: 503, nothing started
    t2 = threading.Thread(target=lambda: got.setdefault("second", c.get("a")))
    t2.start()                                        # the same date waits for the build under way
    gate.set()
    t1.join(10), t2.join(10)
    assert built == ["a"] and got["first"] is got["second"]
    c.get("b")                                        # once it is done, the next build may start
    assert built == ["a", "b"]


@pytest.mark.store_free
def test_a_failed_build_frees_its_slot():
    def build(key):
        raise RuntimeError("store gone")
    c = AsOfCache(build, max_bytes=100 * MB, size_of=lambda b: 1)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            c.get("a")


@pytest.mark.store_free
def test_nbytes_counts_arrays_frames_and_geometries():
    import pandas as pd
    import shapely
    a = np.zeros(1000, dtype=np.int64)
    assert nbytes(a) == 8000
    polys = np.array([shapely.box(0, 0, 1, 1)] * 100, dtype=object)
    assert nbytes(polys) >= 100 * 5 * 16
    frame = pd.DataFrame({"x": np.zeros(1000), "g": polys.repeat(10)})
    assert nbytes(frame) >= 8000 + 1000 * 5 * 16


def test_the_demo_atlas_is_sized_like_its_memory(demo_atlas):
    # the issue measured about 200 MB per as-of atlas of the demo district
    assert 100 * MB < nbytes(demo_atlas) < 600 * MB
