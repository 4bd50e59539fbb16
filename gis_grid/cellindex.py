"""Exact point-in-polygon lookup through a precomputed cell table.

The polygons' bounding box is cut into square cells of ``2**-k`` degrees.
A cell whose closed box touches no polygon boundary lies wholly inside one
polygon (or outside all), so a point there is answered by one array lookup.
Only points in cells that a boundary crosses go to an exact shapely test
against that cell's few candidate polygons.

Exactness: the cell size is a power of two and the origin a multiple of it,
so ``floor((x - x0) * 2**k)`` is computed without rounding (Sterbenz) and a
point is always tested in the cell that really holds it.

Tie rule: a point on a boundary shared by several polygons (edge or vertex)
belongs to the one with the lowest index; callers sort polygons by code, so
the lowest code wins. Points on the outer boundary count as inside.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import shapely

try:  # built by `pip install` from _cellkernel.c; the numpy path below is the fallback
    from . import _cellkernel as _kernel
except ImportError:  # pragma: no cover - depends on the build
    _kernel = None

OUTSIDE = -1
BOUNDARY = -2


class CellIndex:
    def __init__(self, geoms, cell_exp: int = 14, cache_dir=None):
        self.geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(self.geoms)
        path = None
        if cache_dir is not None:
            path = Path(cache_dir) / f"cells-{content_key(self.geoms, cell_exp)}.npz"
            if self._load(path, cell_exp):
                return
        self._build(cell_exp)
        if path is not None:
            self._save(path)

    def _build(self, cell_exp: int):
        self.cell_exp = cell_exp
        self.inv = float(2 ** cell_exp)
        d = 1.0 / self.inv
        minx, miny, maxx, maxy = shapely.total_bounds(self.geoms)
        # two empty cells of margin on the low sides: a point just below the origin
        # truncates into cell 0, which then is certainly OUTSIDE (see _classify)
        self.x0 = (math.floor(minx * self.inv) - _MARGIN) * d
        self.y0 = (math.floor(miny * self.inv) - _MARGIN) * d
        self.nx = int(math.floor((maxx - self.x0) * self.inv)) + 1
        self.ny = int(math.floor((maxy - self.y0) * self.inv)) + 1
        dtype = np.int16 if len(self.geoms) < 32000 else np.int32
        # one extra OUTSIDE entry at the end: off-table points are sent there
        label = np.full(self.nx * self.ny + 1, OUTSIDE, dtype=dtype)
        self._fill_centres(label)
        self._mark_boundaries(label)
        self.label = label

    # -- build ---------------------------------------------------------------
    def _edges(self):
        """All ring edges as (start xy, end xy, polygon index), vectorised over rings."""
        polys, poly_owner = shapely.get_parts(self.geoms, return_index=True)
        # exteriors counter-clockwise, holes clockwise: the polygon is left of every edge
        polys = shapely.orient_polygons(polys, exterior_cw=False)
        rings, ring_poly = shapely.get_rings(polys, return_index=True)
        coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
        same = ring_idx[1:] == ring_idx[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        owner = poly_owner[ring_poly[ring_idx[:-1][same]]]
        return a, b, owner

    def _fill_centres(self, label):
        """Even-odd scanline fill: label every cell by the polygon holding its centre."""
        a, b, owner = self._edges()
        d = 1.0 / self.inv
        ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
        # rows whose centre y satisfies ylo <= yc < yhi (half-open: vertices counted once)
        r0 = np.ceil((ylo - self.y0) * self.inv - 0.5).astype(np.int64)
        r1 = np.ceil((yhi - self.y0) * self.inv - 0.5).astype(np.int64)
        n = np.maximum(r1 - r0, 0)
        e = _ranges_owner(n)
        rows = np.repeat(r0, n) + _ranges_offset(n)
        yc = self.y0 + (rows + 0.5) * d
        t = (yc - a[e, 1]) / (b[e, 1] - a[e, 1])
        xc = a[e, 0] + t * (b[e, 0] - a[e, 0])
        poly = owner[e]
        order = np.lexsort((xc, rows, poly))
        poly, rows, xc = poly[order], rows[order], xc[order]
        # crossings come in pairs per (polygon, row): fill between each pair
        start, stop = xc[0::2], xc[1::2]
        prow, ppoly = rows[0::2], poly[0::2]
        c0 = np.clip(np.ceil((start - self.x0) * self.inv - 0.5), 0, self.nx).astype(np.int64)
        c1 = np.clip(np.ceil((stop - self.x0) * self.inv - 0.5), 0, self.nx).astype(np.int64)
        m = np.maximum(c1 - c0, 0)
        first = prow * self.nx + c0
        # in chunks of ~4M cells: a province's ~100M filled cells as int64 temporaries would take gigabytes
        for i, j in _chunk_bounds(m, 1 << 22):
            flat = np.repeat(first[i:j], m[i:j]) + _ranges_offset(m[i:j])
            label[flat] = np.repeat(ppoly[i:j], m[i:j])

    def _mark_boundaries(self, label):
        """Find cells whose closed box meets an edge; keep their candidates in CSR form."""
        a, b, owner = self._edges()
        # chunks of edges bound the memory of the 3x3 candidate pairs
        chunks = _chunk_bounds(np.hypot(*(b - a).T) * self.inv + 2, 400_000)
        # chunks on both cores: numpy's sorts and ufunc loops release the GIL
        with ThreadPoolExecutor(min(os.cpu_count() or 1, 4)) as pool:
            hits = list(pool.map(lambda ij: self._edge_cells(a[ij[0]:ij[1]], b[ij[0]:ij[1]]), chunks))
        # one sort of (cell, edge) keys groups the pairs by cell for everything below
        # (a province has tens of millions of pairs: every copy of them is hundreds of MB)
        key = np.concatenate([h[1] * len(a) + (h[0] + i) for h, (i, _) in zip(hits, chunks)])
        del hits
        key.sort()
        cell, e = np.divmod(key, len(a))
        del key
        starts = np.flatnonzero(np.diff(cell, prepend=-1))  # cells are >= 0
        bcells = cell[starts]
        # candidates: owners of the edges in the cell plus the polygon holding its
        # centre (which would contain the whole cell if no edge of its own passed)
        centre = label[bcells].astype(np.int64)
        pairs = np.concatenate([cell * len(self.geoms) + owner[e],
                                (bcells * len(self.geoms) + centre)[centre >= 0]])
        del cell
        cell_of, poly = np.divmod(_unique(pairs), len(self.geoms))
        del pairs
        self.bcells = bcells
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(np.searchsorted(bcells, cell_of),
                                                                 minlength=len(bcells)))])
        del cell_of
        self.indices = poly.astype(np.int32)
        del poly
        self._single_segments(a, b, owner, e, starts, centre)
        label[bcells] = BOUNDARY

    def _single_segments(self, a, b, owner, e, starts, centre):
        """For boundary cells that one segment crosses, keep it and the polygons on each side.

        Most boundary cells are crossed by a single shared edge: a point there is
        answered by the sign of one cross product, and only points within rounding
        distance of the segment still need the exact test.
        """
        # e: the edges meeting boundary cells, grouped by cell; starts: where each cell's group begins.
        # Everything per edge is decided once per edge, then gathered: a province has tens of
        # millions of (edge, cell) pairs, and each temporary over them is hundreds of MB
        fwd_edge = (a[:, 0] < b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] < b[:, 1]))
        ordered = np.where(fwd_edge[:, None], np.hstack([a, b]), np.hstack([b, a]))
        same = np.ones(len(starts), dtype=bool)
        first = np.empty((len(starts), 4))
        for k in range(4):  # one coordinate column at a time
            col = ordered[:, k][e]
            same &= np.minimum.reduceat(col, starts) == np.maximum.reduceat(col, starts)
            first[:, k] = col[starts]
        del col
        fwd = fwd_edge[e]
        left = np.maximum.reduceat(np.where(fwd_edge, owner, -1)[e], starts)
        right = np.maximum.reduceat(np.where(fwd_edge, -1, owner)[e], starts)
        n_left = np.add.reduceat(fwd.astype(np.int32), starts)
        n_right = np.add.reduceat((~fwd).astype(np.int32), starts)
        ok = same & (n_left <= 1) & (n_right <= 1)
        # the polygon holding the centre must be one of the two sides (else overlap: no shortcut)
        ok &= (centre < 0) | (centre == left) | (centre == right)
        self.seg = np.where(ok[:, None], first, np.nan)
        self.side = np.column_stack([left, right]).astype(np.int32)

    def _edge_cells(self, a, b):
        """(edge, cell) pairs where the closed cell box meets the edge."""
        # sample every edge at <= d/2 so consecutive samples fall in adjacent cells;
        # their 3x3 neighbourhoods are a superset of the cells the edge crosses
        steps = np.maximum(np.ceil(np.hypot(*(b - a).T) * self.inv * 2).astype(np.int64), 1)
        e = _ranges_owner(steps + 1)
        t = _ranges_offset(steps + 1) / np.repeat(steps, steps + 1)
        px = a[e, 0] + t * (b[e, 0] - a[e, 0])
        py = a[e, 1] + t * (b[e, 1] - a[e, 1])
        ix = np.floor((px - self.x0) * self.inv).astype(np.int64)
        iy = np.floor((py - self.y0) * self.inv).astype(np.int64)
        ncell = self.nx * self.ny
        key = _unique(e * ncell + iy * self.nx + ix)
        e, cell = np.divmod(key, ncell)
        iy, ix = np.divmod(cell, self.nx)
        keys = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cy, cx = iy + dy, ix + dx
                ok = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
                keys.append(e[ok] * ncell + cy[ok] * self.nx + cx[ok])
        e, cell = np.divmod(_unique(np.concatenate(keys)), ncell)
        hit = self._segment_meets_cell(a[e], b[e], cell)
        return e[hit], cell[hit]

    def _segment_meets_cell(self, a, b, cell):
        """Conservative segment / closed cell box intersection (true if in doubt)."""
        d = 1.0 / self.inv
        cy, cx = np.divmod(cell, self.nx)
        bx0, by0 = self.x0 + cx * d, self.y0 + cy * d
        bx1, by1 = bx0 + d, by0 + d
        overlap = ((np.minimum(a[:, 0], b[:, 0]) <= bx1) & (np.maximum(a[:, 0], b[:, 0]) >= bx0)
                   & (np.minimum(a[:, 1], b[:, 1]) <= by1) & (np.maximum(a[:, 1], b[:, 1]) >= by0))
        # the segment's line separates the box only if all four corners are strictly on one side
        ux, uy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        tol = 1e-9 * (np.abs(ux) + np.abs(uy)) * d
        sides = np.stack([ux * (py - a[:, 1]) - uy * (px - a[:, 0])
                          for px, py in ((bx0, by0), (bx1, by0), (bx0, by1), (bx1, by1))])
        separated = (sides > tol).all(0) | (sides < -tol).all(0)
        return overlap & ~separated

    # -- cache ---------------------------------------------------------------
    _ARRAYS = ("label", "bcells", "indptr", "indices", "seg", "side")

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, origin=np.array([self.x0, self.y0, self.nx, self.ny, self.cell_exp]),
                     **{k: getattr(self, k) for k in self._ARRAYS})
        os.replace(tmp, path)  # atomic: concurrent readers see the old file or the new one

    def _load(self, path: Path, cell_exp: int) -> bool:
        try:
            with np.load(path) as z:
                x0, y0, nx, ny, exp = z["origin"]
                arrays = {k: z[k] for k in self._ARRAYS}
        except (OSError, KeyError, ValueError):
            return False
        self.cell_exp, self.inv = int(exp), float(2 ** int(exp))
        self.x0, self.y0, self.nx, self.ny = float(x0), float(y0), int(nx), int(ny)
        for k, v in arrays.items():
            setattr(self, k, v)
        return True

    def tables(self) -> dict:
        """The lookup tables as plain arrays (what :meth:`from_tables` takes back)."""
        return {"origin": np.array([self.x0, self.y0, self.nx, self.ny, self.cell_exp]),
                **{k: getattr(self, k) for k in self._ARRAYS}}

    @classmethod
    def from_tables(cls, tables: dict, geoms) -> "CellIndex":
        """An index from :meth:`tables` (memory-mapped arrays will do) and its polygons.

        ``geoms`` needs only ``[index]`` and ``[int array]``: it is read for the exact test alone.
        """
        self = cls.__new__(cls)
        self.geoms = geoms
        x0, y0, nx, ny, exp = np.asarray(tables["origin"]).tolist()
        self.cell_exp, self.inv = int(exp), float(2 ** int(exp))
        self.x0, self.y0, self.nx, self.ny = float(x0), float(y0), int(nx), int(ny)
        for k in cls._ARRAYS:
            setattr(self, k, tables[k])
        return self

    # -- query ---------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in self._ARRAYS)

    def boundary_fraction(self) -> float:
        inside = np.count_nonzero(self.label != OUTSIDE)
        return len(self.bcells) / max(inside, 1)

    def lookup_one(self, x: float, y: float) -> int:
        """Index of the polygon covering (x, y), or -1."""
        ix = math.floor((x - self.x0) * self.inv)
        iy = math.floor((y - self.y0) * self.inv)
        if not (0 <= ix < self.nx and 0 <= iy < self.ny):
            return OUTSIDE
        flat = iy * self.nx + ix
        v = self.label.item(flat)
        if v != BOUNDARY:
            return v
        pos = int(np.searchsorted(self.bcells, flat))
        ax, ay, bx, by = self.seg[pos].tolist()
        p, q = (bx - ax) * (y - ay), (by - ay) * (x - ax)
        if abs(p - q) > _SURE * (abs(p) + abs(q)) + 1e-300:  # False for NaN (no segment)
            return int(self.side[pos, 0] if p - q > 0 else self.side[pos, 1])
        for p in self.indices[self.indptr[pos]:self.indptr[pos + 1]].tolist():
            if shapely.intersects_xy(self.geoms[p], x, y):
                return p
        return OUTSIDE

    def lookup(self, x, y, stats: dict | None = None) -> np.ndarray:
        """Vectorised :meth:`lookup_one`: int array of polygon indices (-1 outside).

        NaN coordinates answer -1; validate input before if that matters.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        out = _classify(x, y, self.x0, self.y0, self.inv, self.nx, self.ny, self.label,
                        self.bcells, self.seg, self.side, stats)
        rest = np.flatnonzero(out == _NEEDS_EXACT)
        if stats is not None:
            stats["exact_points"] = len(rest)
        if len(rest):
            xr, yr = x[rest], y[rest]
            flat = _cell(yr, self.y0, self.inv) * self.nx + _cell(xr, self.x0, self.inv)
            out[rest] = self._exact(xr, yr, np.searchsorted(self.bcells, flat))
        return out

    def _exact(self, x, y, pos):
        start, stop = self.indptr[pos], self.indptr[pos + 1]
        n = stop - start
        pt = _ranges_owner(n)
        cand = self.indices[np.repeat(start, n) + _ranges_offset(n)]
        # one vectorised call over every (point, candidate) pair, each against its
        # own prepared polygon
        hit = shapely.intersects_xy(self.geoms[cand], x[pt], y[pt])
        res = np.full(len(x), np.iinfo(np.int32).max, dtype=np.int64)
        np.minimum.at(res, pt[hit], cand[hit])
        return np.where(res == np.iinfo(np.int32).max, OUTSIDE, res)


_NEEDS_EXACT = -3
_MARGIN = 2
_CHUNK = 1 << 16
_SURE = 1e-12  # relative margin above the rounding error of the cross product's two products


_POOL: ThreadPoolExecutor | None = None
_PARALLEL_MIN = 1 << 18  # below this, handing work to a thread costs more than it saves


def parallel_ranges(n: int, fn) -> list:
    """``fn(start, stop)`` over contiguous slices of ``range(n)``, one per core.

    Only for work that releases the GIL (the compiled kernel does); small batches
    run inline so single points and API-sized requests pay nothing.
    """
    global _POOL
    workers = min(os.cpu_count() or 1, 4)
    if n < _PARALLEL_MIN or workers < 2:
        return [fn(0, n)]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(workers, thread_name_prefix="cellindex")
    bounds = np.linspace(0, n, workers + 1).astype(int)
    return list(_POOL.map(fn, bounds[:-1], bounds[1:]))


def take(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``table[idx]`` where idx comes from :meth:`CellIndex.lookup` (-1 = the last entry).

    The compiled path avoids numpy widening a small index array to intp first.
    """
    if _kernel is None or idx.dtype.itemsize not in (2, 4) or table.dtype.itemsize not in (1, 2, 4):
        return table[idx]
    table, idx = np.ascontiguousarray(table), np.ascontiguousarray(idx)
    out = np.empty(len(idx), dtype=table.dtype)
    parallel_ranges(len(idx), lambda a, b: _kernel.take(table, idx[a:b], out[a:b]))
    return out


def _classify(x, y, x0, y0, inv, nx, ny, label, bcells, seg, side, stats=None):
    """Polygon index per point, -1 outside, _NEEDS_EXACT where only shapely can tell.

    Interior cells answer from the table; single-segment boundary cells from the
    sign of one cross product unless the point lies within rounding distance of
    the segment. The compiled kernel does the same in one pass.
    """
    out = np.empty(len(x), dtype=label.dtype)
    if _kernel is not None:
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        n_boundary = sum(parallel_ranges(len(x), lambda a, b: _kernel.classify(
            x[a:b], y[a:b], x0, y0, inv, nx, ny, label, bcells, seg, side, out[a:b])))
    else:
        n_boundary = _classify_numpy(x, y, x0, y0, inv, nx, ny, label, bcells, seg, side, out)
    if stats is not None:
        stats["boundary_points"] = n_boundary
    return out


def _classify_numpy(x, y, x0, y0, inv, nx, ny, label, bcells, seg, side, out) -> int:
    """The compiled kernel's pass in numpy (fallback and reference); returns boundary points."""
    _interior_numpy(x, y, x0, y0, inv, nx, ny, label, out)
    b = np.flatnonzero(out == BOUNDARY)
    if len(b):
        xb, yb = x[b], y[b]
        pos = np.searchsorted(bcells, _cell(yb, y0, inv) * nx + _cell(xb, x0, inv))
        s = seg[pos]
        with np.errstate(invalid="ignore"):
            p = (s[:, 2] - s[:, 0]) * (yb - s[:, 1])
            q = (s[:, 3] - s[:, 1]) * (xb - s[:, 0])
            cross = p - q
            sure = np.abs(cross) > _SURE * (np.abs(p) + np.abs(q)) + 1e-300  # False for NaN
        out[b] = np.where(sure, np.where(cross > 0, side[pos, 0], side[pos, 1]), _NEEDS_EXACT)
    return len(b)


def _interior_numpy(x, y, x0, y0, inv, nx, ny, label, out) -> None:
    """Interior pass of :func:`_classify_numpy`: the table's label per point.

    Cache-sized chunks: a dozen numpy passes over 64k points stay in L2 instead
    of streaming 1M-point temporaries through memory.
    """
    off_table = nx * ny  # the trailing OUTSIDE entry
    with np.errstate(invalid="ignore"):
        for s in range(0, len(x), _CHUNK):
            fx = x[s:s + _CHUNK] - x0  # exact: see the module docstring
            fx *= inv
            fy = y[s:s + _CHUNK] - y0
            fy *= inv
            # truncation is floor for f >= 0; f in (-1, 0) lands in the empty margin
            # cell 0; below that, and NaN's INT_MIN, wrap to huge unsigned values
            ix, iy = fx.astype(np.intp), fy.astype(np.intp)
            ok = (ix.view(np.uintp) < nx) & (iy.view(np.uintp) < ny)
            iy *= nx
            iy += ix
            out[s:s + _CHUNK] = label[np.where(ok, iy, off_table)]


def _cell(v: np.ndarray, origin: float, inv: float) -> np.ndarray:
    """floor((v - origin) * inv) as intp, computed exactly (see the module docstring)."""
    f = v - origin
    f *= inv
    np.floor(f, out=f)
    return f.astype(np.intp)


def _ranges_owner(n: np.ndarray) -> np.ndarray:
    """For runs of lengths ``n``: the run index of every element."""
    return np.repeat(np.arange(len(n)), n)


def _ranges_offset(n: np.ndarray) -> np.ndarray:
    """For runs of lengths ``n``: each element's position within its run."""
    return np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)


def _chunk_bounds(weights: np.ndarray, size: float) -> list[tuple[int, int]]:
    """(start, stop) slices of ``weights`` in order, each of total weight about ``size`` (at least one item)."""
    cum = np.cumsum(weights)
    cuts = np.searchsorted(cum, np.arange(size, cum[-1] if len(cum) else 0, size))
    bounds = np.unique(np.concatenate([[0], cuts, [len(weights)]])).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values; numpy's hash-based unique is several times slower here."""
    a = np.sort(a, kind="stable" if a.dtype.kind == "O" else None)
    if len(a) == 0:
        return a
    return a[np.concatenate([[True], a[1:] != a[:-1]])]


def content_key(geoms, cell_exp: int) -> str:
    """A digest of the geometries and cell size: equal content, equal table."""
    h = hashlib.sha1(f"v3:{cell_exp}:{len(geoms)}".encode())
    # one update: hashlib drops the GIL per call, and under a busy reader thread
    # every re-acquisition can wait a whole switch interval (5 ms)
    wkbs = shapely.to_wkb(geoms)
    h.update(b"".join(len(w).to_bytes(4, "little") + w for w in wkbs))
    return h.hexdigest()[:20]
