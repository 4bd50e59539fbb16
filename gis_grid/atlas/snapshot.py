"""An immutable, versioned in-memory snapshot of the grids, buildings and households.

It answers "which grid is this point in?" and "who lives here?" without
touching the store. A boundary commit builds a new Atlas and swaps the
reference in one assignment, so readers never see half an edit. The snapshot is
frozen; what is derived from it later lives in its :attr:`Atlas.memo`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd
import shapely

from .. import crs as crs_mod
from ..budget import Budget, unlimited
from ..cellindex import OUTSIDE, CellIndex, take
from ..errors import InvalidGeometryError, LimitExceededError, NotFoundError
from ..hierarchy import Level, level_of
from ..store import Store
from ..store.base import EmptyStoreError
from .memo import Memo

LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID)


@dataclass(frozen=True)
class LocateResult:
    """The full hierarchy at a point; all None when ``outside``."""

    outside: bool
    district: tuple[str, str] | None = None
    street: tuple[str, str] | None = None
    community: tuple[str, str] | None = None
    grid: tuple[str, str] | None = None
    building: dict | None = None

    def to_dict(self) -> dict:
        out: dict = {"outside": self.outside}
        for level in ("district", "street", "community", "grid"):
            v = getattr(self, level)
            out[level] = None if v is None else {"code": v[0], "name": v[1]}
        out["building"] = self.building
        return out


@dataclass(frozen=True, eq=False)  # eq=False: identity hashing, frames are not comparable
class Atlas:
    version: int
    at: datetime | None
    divisions: pd.DataFrame          # every level, sorted by (level depth, code)
    buildings: pd.DataFrame          # sorted by id
    households: pd.DataFrame         # sorted by (grid, building)
    grid_cell_exp: int = 12  # ~25 m cells: a 2 MB table stays in cache; boundary cells are cheap
    cache_dir: str | None = None
    # a snapshot with the same buildings frame: its building indexes are reused,
    # since a boundary edit moves no building (only which grid holds it)
    reuse: "Atlas | None" = field(default=None, repr=False)
    # not an init field: dataclasses.replace() makes a new snapshot, which must not share derived state
    memo: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)
    # state derived from buildings and people only (never from boundaries): shared with the
    # snapshot it reuses buildings from, so a boundary apply does not re-read ~300k residents
    people_memo: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)

    @classmethod
    def from_store(cls, store: Store, at: datetime | None = None, *, version: int | None = None,
                   budget: Budget | None = None) -> "Atlas":
        """Read a snapshot; ``version`` overrides the store's (an as-of atlas names the version then in force).
        ``budget`` is checked between the reads and before the build."""
        budget = unlimited(budget, "the atlas")
        budget.step("reading the grids")
        divisions = store.divisions(at=at)
        if divisions.empty:
            if at is not None:  # an answer to a caller: say what to fix, not where the store lives
                raise NotFoundError(f"no grids were in force at {at.isoformat()}: that is before the "
                                    "store's history starts; ask for a later date")
            raise EmptyStoreError(store)  # names the store (no password) and how to pick another
        budget.step("reading the buildings")
        buildings = store.buildings()
        budget.step("reading the households")
        households = store.households()
        budget.step("building the indexes")
        return cls(version=store.atlas_version() if version is None else version, at=at, divisions=divisions,
                   buildings=buildings, households=households, cache_dir=store.cache_dir())

    @classmethod
    def for_location(cls, store: Store) -> "Atlas":
        """A snapshot that only locates: grids and buildings, no households (a third of the load)."""
        divisions = store.divisions()
        if divisions.empty:
            raise EmptyStoreError(store)
        return cls(version=store.atlas_version(), at=None, divisions=divisions, buildings=store.buildings(),
                   households=pd.DataFrame({"id": pd.Series(dtype=object), "building_id": pd.Series(dtype="int64")}),
                   cache_dir=store.cache_dir())

    def __post_init__(self):
        # frozen: derived attributes are written once, here, straight into the instance dict
        own = self.__dict__
        d = self.divisions.copy()
        d["depth"] = d["level"].map({l.value: l.depth for l in LEVELS})
        own["divisions"] = d.sort_values(["depth", "code"]).reset_index(drop=True)
        own["by_code"] = {c: i for i, c in enumerate(self.divisions["code"])}
        grids = self.divisions[self.divisions["level"] == Level.GRID.value]
        own["grid_rows"] = grids.index.to_numpy()
        own["grid_codes"] = grids["code"].to_numpy(dtype=object)
        own["grid_index"] = CellIndex(grids["geometry"].to_numpy(), cell_exp=self.grid_cell_exp,
                                      cache_dir=self.cache_dir)
        own["_hierarchy"] = self._build_hierarchy(grids)

        old = self.reuse if self.reuse is not None and self.reuse.buildings is self.buildings else None
        own["reuse"] = None  # keep no chain of old snapshots alive
        if old is not None:
            b = self.buildings
            own["building_ids"], own["_building_rep"] = old.building_ids, old._building_rep
            own["building_index"], own["_building_points"] = old.building_index, old._building_points
            own["_building_rows"] = old._building_rows
            own["people_memo"] = old.people_memo
        else:
            b = self.buildings.sort_values("id").reset_index(drop=True)
            own["buildings"] = b
            own["building_ids"] = b["id"].to_numpy()
            own["_building_rep"] = shapely.point_on_surface(b["geometry"].to_numpy())
            own["building_index"] = (CellIndex(b["geometry"].to_numpy(), cell_exp=14, cache_dir=self.cache_dir)
                                     if len(b) else None)
            own["_building_points"] = shapely.STRtree(self._building_rep) if len(b) else None
            own["_building_rows"] = {int(v): i for i, v in enumerate(self.building_ids)}
        # where a building stands is decided by the atlas itself, so as-of atlases
        # and boundary edits reassign buildings without rewriting them
        rep = self._building_rep
        own["building_grid"] = self.grid_index.lookup(shapely.get_x(rep), shapely.get_y(rep))

        h = self.households
        hb = b.index.to_numpy()[np.searchsorted(self.building_ids, h["building_id"].to_numpy())] if len(h) else []
        h = h.assign(_b=hb, _g=self.building_grid[hb] if len(h) else [])
        h = h.sort_values(["_g", "_b"], kind="stable").reset_index(drop=True)
        h["grid_code"] = np.where(h["_g"].to_numpy() >= 0, self.grid_codes[h["_g"].clip(lower=0)], "")
        own["households"] = h
        own["household_ids"] = h["id"].to_numpy(dtype=object)
        own["_hh_by_grid"] = np.searchsorted(h["_g"].to_numpy(), np.arange(len(self.grid_codes) + 1))
        order = np.argsort(h["_b"].to_numpy(), kind="stable")
        own["_hh_by_building_order"] = order
        own["_hh_by_building"] = np.searchsorted(h["_b"].to_numpy()[order], np.arange(len(b) + 1))

    def _build_hierarchy(self, grids):
        own = self.__dict__
        names = dict(zip(self.divisions["code"], self.divisions["name"]))
        levels = {}
        for level in LEVELS:
            codes = np.array([c[: level.code_length] for c in grids["code"]], dtype=object)
            levels[level] = (codes, np.array([names.get(c, "") for c in codes], dtype=object))
        own["level_codes"] = {lvl: np.append(v[0], "") for lvl, v in levels.items()}  # [-1] -> ''
        return [tuple((levels[l][0][i], levels[l][1][i]) for l in LEVELS) for i in range(len(grids))]

    # -- locate ----------------------------------------------------------------
    def locate_one(self, lon: float, lat: float, *, with_building: bool = True) -> LocateResult:
        """Hierarchy at one storage-CRS point (EPSG:4490 lon/lat)."""
        g = self.grid_index.lookup_one(lon, lat)
        if g == OUTSIDE:
            return LocateResult(outside=True)
        district, street, community, grid = self._hierarchy[g]
        building = self.building_at(lon, lat) if with_building else None
        return LocateResult(False, district, street, community, grid, building)

    def building_at(self, lon: float, lat: float) -> dict | None:
        if self.building_index is None:
            return None
        i = self.building_index.lookup_one(lon, lat)
        return None if i == OUTSIDE else self.building_summary(i)

    def building_summary(self, row: int) -> dict:
        return {"id": int(self.building_ids[row]), "name": self._building_names[row],
                "kind": self._building_kinds[row]}

    @cached_property
    def _building_names(self) -> list:
        return self.buildings["name"].tolist()

    @cached_property
    def _building_kinds(self) -> list:
        return self.buildings["kind"].tolist()

    def locate_many(self, lon, lat, *, with_building: bool = True) -> pd.DataFrame:
        """Vectorised locate of storage-CRS points: code columns, '' outside."""
        g = self.grid_index.lookup(lon, lat)
        # categoricals: building 1M Python strings per column costs 10x the lookup itself
        out = {lvl.value: pd.Categorical.from_codes(take(codes, g), categories=cats, validate=False)
               for lvl, (cats, codes) in self._level_categories.items()}
        if with_building:
            out["building"] = self.buildings_at(lon, lat)
        return pd.DataFrame(out)

    @cached_property
    def _level_categories(self) -> dict:
        """Per level: unique codes plus '' and, per grid index (last = outside), its category."""
        out = {}
        for lvl, codes in self.level_codes.items():
            cats, inverse = np.unique(codes.astype(str), return_inverse=True)
            # the smallest code dtype pandas would pick anyway, so from_codes does not convert
            dtype = np.int8 if len(cats) < 127 else np.int16 if len(cats) < 32767 else np.int32
            out[lvl] = (pd.Index(cats, dtype=object), inverse.astype(dtype))
        return out

    def buildings_at(self, lon, lat) -> pd.Categorical:
        """Building id at each point as strings ('' where none)."""
        if self.building_index is None:
            return pd.Categorical(np.full(len(np.atleast_1d(lon)), "", dtype=object))
        b = self.building_index.lookup(lon, lat)
        return pd.Categorical.from_codes(np.where(b < 0, len(self.building_ids), b),
                                         categories=self._building_id_strings, validate=False)

    @cached_property
    def _building_id_strings(self) -> np.ndarray:
        return pd.Index(np.append(self.building_ids.astype(str), ""), dtype=object)  # last = none

    def locate_points(self, x, y, crs=None, *, with_building: bool = True) -> pd.DataFrame:
        """Validate and convert input-CRS points, then :meth:`locate_many`."""
        x, y = crs_mod.validate_coordinates(x, y, crs)
        lon, lat = crs_mod.to_storage(x, y, crs)
        return self.locate_many(np.atleast_1d(lon), np.atleast_1d(lat), with_building=with_building)

    # -- divisions ---------------------------------------------------------------
    def division(self, code: str) -> pd.Series:
        level_of(code)  # raises a clear error for malformed codes
        i = self.by_code.get(code)
        if i is None:
            raise NotFoundError(f"no grid or division with code {code!r}")
        return self.divisions.iloc[i]

    def division_name(self, code: str) -> str | None:
        """The name of a division of any level, None for an unknown (or empty) code."""
        return self._names.get(code)

    def division_names(self, codes) -> dict[str, str | None]:
        """Code -> name for each of ``codes`` (null for a well-formed code that names nothing)."""
        out = {}
        for code in codes:
            level_of(code)  # a malformed code is the caller's mistake, not a miss
            out[code] = self._names.get(code)
        return out

    @cached_property
    def _names(self) -> dict[str, str]:
        return dict(zip(self.divisions["code"].tolist(), self.divisions["name"].tolist()))

    def children(self, code: str) -> pd.DataFrame:
        self.division(code)
        rows = self._child_rows.get(code)
        return self.divisions.iloc[rows if rows is not None else []]

    @cached_property
    def _child_rows(self) -> dict[str, list[int]]:
        """Rows of each division's children, in row order: a grid card then costs a dict lookup
        instead of two string scans over every division (~1 ms of each card read)."""
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.divisions["code"].tolist()):
            if len(c) > 6:  # a child code is its parent's plus three digits
                out.setdefault(c[:-3], []).append(i)
        return out

    def grid_positions(self, code: str) -> tuple[int, int]:
        """[start, stop) of base grids under ``code`` in :attr:`grid_codes` (codes nest by prefix)."""
        span = self._grid_spans.get(code)
        if span is None:
            self.division(code)  # raises the right error for malformed or unknown codes
        return span

    @cached_property
    def _grid_spans(self) -> dict[str, tuple[int, int]]:
        codes = self.divisions["code"].tolist()
        lo = np.searchsorted(self.grid_codes, codes, side="left")
        hi = np.searchsorted(self.grid_codes, [c + "\uffff" for c in codes], side="left")
        return {c: (int(a), int(b)) for c, a, b in zip(codes, lo, hi)}

    # -- who lives here ----------------------------------------------------------
    def household_ids_in(self, code: str) -> np.ndarray:
        """Ids of the households in a division of any level (a view, no copy)."""
        lo, hi = self.grid_positions(code)
        return self.household_ids[self._hh_by_grid[lo]:self._hh_by_grid[hi]]

    def households_in(self, code: str) -> pd.DataFrame:
        lo, hi = self.grid_positions(code)
        return self._public(self.households.iloc[self._hh_by_grid[lo]:self._hh_by_grid[hi]])

    def building_row(self, building_id: int) -> int:
        try:
            return self._building_rows[int(building_id)]
        except (KeyError, ValueError, TypeError):
            raise NotFoundError(f"no building with id {building_id!r}") from None

    def households_in_building(self, building_id: int) -> pd.DataFrame:
        row = self.building_row(building_id)
        idx = self._hh_by_building_order[self._hh_by_building[row]:self._hh_by_building[row + 1]]
        return self._public(self.households.iloc[idx])

    def buildings_in_polygon(self, polygon, max_vertices: int = 10_000) -> np.ndarray:
        """Building rows whose representative point the polygon covers (storage CRS)."""
        polygon = check_polygon(polygon, max_vertices)
        if self._building_points is None:
            return np.empty(0, dtype=int)
        return np.sort(self._building_points.query(polygon, predicate="covers"))

    def household_rows_in_polygon(self, polygon, max_vertices: int = 10_000) -> np.ndarray:
        rows = self.buildings_in_polygon(polygon, max_vertices)
        starts, stops = self._hh_by_building[rows], self._hh_by_building[rows + 1]
        n = stops - starts
        flat = np.repeat(starts, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        return np.sort(self._hh_by_building_order[flat])

    def households_in_polygon(self, polygon, max_vertices: int = 10_000) -> pd.DataFrame:
        return self._public(self.households.iloc[self.household_rows_in_polygon(polygon, max_vertices)])

    def _public(self, df: pd.DataFrame) -> pd.DataFrame:
        return df.drop(columns=["_b", "_g"])

    @cached_property
    def grid_geometries(self) -> np.ndarray:
        """Base-grid polygons in :attr:`grid_codes` order."""
        return self.divisions["geometry"].to_numpy()[self.grid_rows]


def check_polygon(polygon, max_vertices: int = 10_000):
    """A drawn area must be a valid, non-empty (Multi)Polygon in 2D."""
    if not isinstance(polygon, (shapely.Polygon, shapely.MultiPolygon)):
        raise InvalidGeometryError(
            f"expected a Polygon or MultiPolygon, got {getattr(polygon, 'geom_type', type(polygon).__name__)}")
    if polygon.is_empty:
        raise InvalidGeometryError("the polygon is empty")
    n = shapely.get_num_coordinates(polygon)
    if n > max_vertices:
        raise LimitExceededError(f"the polygon has {n} vertices; the limit is {max_vertices}")
    if shapely.has_z(polygon):
        raise InvalidGeometryError("3D coordinates are not accepted: send 2D lon/lat polygons")
    coords = shapely.get_coordinates(polygon)
    if not np.isfinite(coords).all():
        raise InvalidGeometryError("the polygon has NaN or infinite coordinates")
    if not polygon.is_valid:
        raise InvalidGeometryError(f"invalid polygon: {shapely.is_valid_reason(polygon)}",
                                   detail={"reason": shapely.is_valid_reason(polygon)})
    return polygon
