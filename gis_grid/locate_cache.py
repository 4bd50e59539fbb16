"""What `gis-grid locate` needs, cached on disk per atlas version, for a start without the store.

A GeoPackage store keeps, next to itself (``<store>.cache/locate-v1-<version>-<stamp>/``),
the grid and building cell tables, the four levels' codes and names per base grid, and
building ids, names and kinds, as ``.npy`` files opened memory-mapped. The directory name
holds the store's ``atlas_version`` and ``updated_at`` (read with sqlite3 alone), so every
write that moves the atlas, or a regenerated store, is a new directory: stale tables are
never read. A warm single point then imports numpy and shapely but not pandas, touches a
few pages of the tables, and decodes a polygon only for the rare point that needs the
exact test. The tables are the atlas's own (:meth:`CellIndex.tables`), so the answers are
the atlas's answers, tie rule included.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np

from .cellindex import OUTSIDE, CellIndex
from .errors import StoreError

FORMAT = 1
LEVELS = ("district", "street", "community", "grid")


def cache_path(store_path: str | Path) -> Path | None:
    """The cache directory for the GeoPackage at ``store_path`` in its current state (None: no usable store)."""
    path = Path(store_path)
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('atlas_version', 'updated_at')"))
        finally:
            con.close()
    except sqlite3.Error:
        return None  # not a store of ours: the ordinary path says what is wrong
    stamp = hashlib.sha1(meta.get("updated_at", "").encode()).hexdigest()[:12]
    return path.with_name(path.stem + ".cache") / f"locate-v{FORMAT}-{meta.get('atlas_version', '0')}-{stamp}"


def write(directory: Path, atlas) -> None:
    """Write ``atlas``'s location tables into ``directory`` (atomically: readers see all or nothing)."""
    import shapely
    arrays = {f"grid_{k}": v for k, v in atlas.grid_index.tables().items()}
    arrays.update(_wkb("grid", atlas.grid_geometries))
    levels = np.array([[c for c, _ in h] for h in atlas._hierarchy], dtype=str).reshape(-1, 4)
    names = np.array([[n for _, n in h] for h in atlas._hierarchy], dtype=str).reshape(-1, 4)
    arrays.update(level_codes=levels, level_names=names)
    if atlas.building_index is not None:
        arrays.update({f"building_{k}": v for k, v in atlas.building_index.tables().items()})
        arrays.update(_wkb("building", atlas.building_index.geoms))
        arrays.update(building_ids=np.asarray(atlas.building_ids, dtype=np.int64),
                      building_names=np.array(atlas._building_names, dtype=str),
                      building_kinds=np.array(atlas._building_kinds, dtype=str))
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".locate-"))
    try:
        for name, value in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "version": atlas.version,
                                                   "shapely": shapely.__version__}))
        os.rename(tmp, directory)
    except OSError:
        if not directory.is_dir():  # not a lost race with another writer: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wkb(prefix: str, geoms) -> dict:
    import shapely
    wkb = shapely.to_wkb(np.asarray(geoms, dtype=object))
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in wkb])]).astype(np.int64)
    return {f"{prefix}_wkb": np.frombuffer(b"".join(wkb), dtype=np.uint8), f"{prefix}_wkb_offsets": offsets}


class _LazyGeoms:
    """Polygons decoded from memory-mapped WKB on first use: most lookups never need one."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self._blob, self._offsets = blob, offsets
        self._done: dict = {}
        self._batch = None  # polygons decoded for batches (None = not yet), filled as points need them

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _one(self, i: int):
        g = self._done.get(i)
        if g is None:
            import shapely
            g = self._done[i] = shapely.from_wkb(self._blob[self._offsets[i]:self._offsets[i + 1]].tobytes())
        return g

    def __getitem__(self, index):
        if np.ndim(index) == 0:
            return self._one(int(index))
        index = np.asarray(index).ravel()
        if len(index) <= 64:
            return np.array([self._one(int(i)) for i in index], dtype=object)
        # a batch: decode (and prepare) the polygons it needs that are not decoded yet, in one call
        import shapely
        if self._batch is None:
            self._batch = np.full(len(self), None, dtype=object)
        need = np.unique(index)
        need = need[shapely.is_missing(self._batch[need])]
        if len(need):
            off = np.asarray(self._offsets)
            blob = np.asarray(self._blob)  # a plain view: slicing a memmap costs a finalize call per slice
            geoms = shapely.from_wkb([blob[off[i]:off[i + 1]].tobytes() for i in need.tolist()])
            shapely.prepare(geoms)
            self._batch[need] = geoms
        return self._batch[index]


class CachedLocator:
    """:meth:`Atlas.locate_one` answered from a cache directory."""

    def __init__(self, directory: Path):
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise StoreError(f"locate cache {directory} has format {meta.get('format')}, not {FORMAT}")
        self.version = meta["version"]

        def load(name):
            try:
                return np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except ValueError:  # an empty array cannot be mapped
                return np.load(directory / f"{name}.npy", allow_pickle=False)

        def index(prefix):
            tables = {k: load(f"{prefix}_{k}") for k in ("origin", *CellIndex._ARRAYS)}
            return CellIndex.from_tables(tables, _LazyGeoms(load(f"{prefix}_wkb"), load(f"{prefix}_wkb_offsets")))

        self.grid_index = index("grid")
        self._codes, self._names = load("level_codes"), load("level_names")
        self.building_index = None
        if (directory / "building_ids.npy").exists():
            self.building_index = index("building")
            self.building_ids = load("building_ids")
            self.building_names, self.building_kinds = load("building_names"), load("building_kinds")

    def locate_one(self, lon: float, lat: float) -> dict:
        """The same dict as ``Atlas.locate_one(lon, lat).to_dict()``."""
        g = self.grid_index.lookup_one(lon, lat)
        if g == OUTSIDE:
            return {"outside": True, **{level: None for level in LEVELS}, "building": None}
        out: dict = {"outside": False}
        for k, level in enumerate(LEVELS):
            out[level] = {"code": str(self._codes[g, k]), "name": str(self._names[g, k])}
        out["building"] = None
        if self.building_index is not None:
            b = self.building_index.lookup_one(lon, lat)
            if b != OUTSIDE:
                out["building"] = {"id": int(self.building_ids[b]), "name": str(self.building_names[b]),
                                   "kind": str(self.building_kinds[b])}
        return out


    # -- batches: the atlas's own code, run on these tables (imports pandas, as batch jobs do anyway)
    def locate_many(self, lon, lat, *, with_building: bool = True):
        """The same frame as :meth:`Atlas.locate_many`."""
        from .atlas import Atlas
        return Atlas.locate_many(self, lon, lat, with_building=with_building)

    def buildings_at(self, lon, lat):
        from .atlas import Atlas
        return Atlas.buildings_at(self, lon, lat)

    def locate_arrow(self, lon, lat) -> dict:
        """Per output column, (indices with -1 = none, Arrow dictionary): :meth:`locate_many` without pandas."""
        from .batch_arrow import index_dtype
        from .cellindex import take
        g = self.grid_index.lookup(lon, lat)
        out = {level: (take(idx, g), cats) for level, (idx, cats) in self._arrow_levels.items()}
        ids = self._arrow_building_ids
        if self.building_index is None:
            b = np.full(len(g), -1)
        else:
            b = self.building_index.lookup(lon, lat)
        out["building"] = (b.astype(index_dtype(len(ids))), ids)
        return out

    @cached_property
    def _arrow_levels(self) -> dict:
        from .batch_arrow import index_dtype, string_array
        out = {}
        for k, level in enumerate(LEVELS):
            cats, inverse = np.unique(np.asarray(self._codes[:, k]), return_inverse=True)
            out[level] = (np.append(inverse, -1).astype(index_dtype(len(cats))), string_array(cats))
        return out

    @cached_property
    def _arrow_building_ids(self):
        from .batch_arrow import string_array
        ids = self.building_ids if self.building_index is not None else np.array([], dtype=np.int64)
        return string_array(np.asarray(ids).tolist())

    @cached_property
    def level_codes(self) -> dict:
        from .atlas import LEVELS as ATLAS_LEVELS
        return {lvl: np.append(self._codes[:, k].astype(object), "") for k, lvl in enumerate(ATLAS_LEVELS)}

    @cached_property
    def _level_categories(self) -> dict:
        from .atlas import Atlas
        return Atlas._level_categories.func(self)

    @cached_property
    def _building_id_strings(self):
        from .atlas import Atlas
        return Atlas._building_id_strings.func(self)


def locator(store_path: str | Path) -> CachedLocator | None:
    """The cached locator of a GeoPackage store, built on the first call per atlas version.

    None when the store is not a readable GeoPackage: the caller takes the ordinary path,
    which reports the problem in its own words.
    """
    directory = cache_path(store_path)
    if directory is None:
        return None
    if not (directory / "meta.json").is_file():
        from .atlas import Atlas
        from .store import open_store
        with open_store(store_path) as store:
            atlas = Atlas.for_location(store)
        write(directory, atlas)
    try:
        return CachedLocator(directory)
    except (OSError, ValueError, KeyError, StoreError):  # a damaged cache: rebuild it next time, answer the slow way now
        shutil.rmtree(directory, ignore_errors=True)
        return None
