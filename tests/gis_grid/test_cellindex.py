"""CellIndex: exact point lookup with the lowest-index tie rule, checked against shapely."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from gis_grid.cellindex import OUTSIDE, CellIndex
from common import X0, X1, XM, Y0, Y1, YM, toy_divisions

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend


@pytest.fixture(scope="module")
def toy_index():
    d = toy_divisions()
    grids = d[d["level"] == "grid"].sort_values("code")
    return CellIndex(grids["geometry"].to_numpy()), list(grids["code"])


def test_shared_edges_and_vertex_go_to_lowest_code(toy_index):
    index, codes = toy_index
    # codes sorted: 0 = west-north, 1 = west-south, 2 = east-north, 3 = east-south
    cases = {
        (XM, YM): 0,                       # 4-way vertex: all four touch, lowest wins
        (XM, 34.815): 0,                   # west-north / east-north edge
        (XM, 34.805): 1,                   # west-south / east-south edge
        (117.505, YM): 0,                  # west-north / west-south edge
        (117.515, YM): 2,                  # east-north / east-south edge
        (X1, YM): 2,                       # outer boundary vertex shared by east grids
    }
    for (x, y), want in cases.items():
        assert index.lookup_one(x, y) == want, (x, y, codes)
        assert index.lookup(np.array([x]), np.array([y]))[0] == want


def test_outer_boundary_is_inside_and_outside_is_minus_one(toy_index):
    index, _ = toy_index
    assert index.lookup_one(X0, 34.815) == 0
    assert index.lookup_one(117.515, Y0) == 3
    assert index.lookup_one(X1, Y1) == 2      # outer corner
    assert index.lookup_one(X0, Y0) == 1
    outside = [(X0 - 1e-9, 34.81), (X1 + 1e-6, 34.81), (117.51, Y1 + 1e-9), (117.51, Y0 - 1e-3), (0.0, 0.0),
               (200.0, 95.0)]
    for x, y in outside:
        assert index.lookup_one(x, y) == OUTSIDE
    xs, ys = np.array(outside).T
    assert (index.lookup(xs, ys) == OUTSIDE).all()


def test_nan_and_inf_answer_minus_one(toy_index):
    index, _ = toy_index
    x = np.array([np.nan, 117.505, np.inf, -np.inf, np.nan])
    y = np.array([34.805, np.nan, 34.805, 34.805, np.nan])
    assert (index.lookup(x, y) == OUTSIDE).all()


def _voronoi_coverage(n_seeds: int, seed: int):
    rng = np.random.default_rng(seed)
    bbox = shapely.box(117.4, 34.7, 117.8, 35.0)
    seeds = shapely.MultiPoint(np.column_stack([rng.uniform(117.4, 117.8, n_seeds), rng.uniform(34.7, 35.0, n_seeds)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=bbox))
    cells = shapely.intersection(cells, bbox)
    # snapping to a 1e-5 grid makes neighbours share bit-identical vertices and edges
    cells = shapely.set_precision(cells, 1e-5)
    cells = np.array([c for c in cells if not c.is_empty and c.area > 0], dtype=object)
    assert shapely.coverage_is_valid(cells)
    return cells


def _reference(geoms, x, y):
    """Brute force: min index among intersecting polygons (-1 if none)."""
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(x, y), predicate="intersects")
    out = np.full(len(x), np.iinfo(np.int64).max)
    np.minimum.at(out, pi, gi)
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def test_agrees_with_brute_force_on_random_voronoi_coverage():
    geoms = _voronoi_coverage(60, seed=1)
    rng = np.random.default_rng(2)
    n_random = 150_000
    rx = rng.uniform(117.39, 117.81, n_random)
    ry = rng.uniform(34.69, 35.01, n_random)
    # every vertex of every polygon (shared vertices are ties)
    verts = shapely.get_coordinates(geoms)
    # points exactly on edges: the x of an axis-aligned edge is exact; for other
    # edges take midpoints of snapped vertices on horizontal/vertical runs plus
    # fractions along every edge (on or within an ulp of it, exercises the exact path)
    rings = shapely.get_exterior_ring(geoms)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    same = ring_idx[1:] == ring_idx[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    t = rng.uniform(0, 1, (len(a), 1))
    on_edge = a + t * (b - a)
    mid = (a + b) / 2
    # the bbox sides are exact axis-aligned edges on the outer boundary
    side = np.column_stack([np.full(500, 117.4), rng.uniform(34.7, 35.0, 500)])
    pts = np.vstack([np.column_stack([rx, ry]), verts, on_edge, mid, side])
    assert len(pts) > 150_000 + len(verts)
    x, y = pts[:, 0], pts[:, 1]
    index = CellIndex(geoms, cell_exp=10)
    stats = {}
    got = index.lookup(x, y, stats=stats)
    want = _reference(geoms, x, y)
    assert stats["boundary_points"] > len(verts)   # the exact path was exercised
    mism = np.flatnonzero(got != want)
    assert len(mism) == 0, f"{len(mism)} mismatches, e.g. {pts[mism[:5]]} got {got[mism[:5]]} want {want[mism[:5]]}"
    # a vertex shared by several cells must go to the lowest index
    vx, vy = verts[:, 0], verts[:, 1]
    multi = (_count_intersecting(geoms, vx, vy) > 1)
    assert multi.sum() > 100
    # lookup_one agrees with lookup on a sample including ties and outside points
    sample = np.concatenate([rng.choice(len(x), 3000, replace=False),
                             np.arange(n_random, n_random + len(verts))[:2000]])
    for i in sample:
        assert index.lookup_one(float(x[i]), float(y[i])) == got[i]
    assert len(x) >= 150_000


def _count_intersecting(geoms, x, y):
    pi, _ = shapely.STRtree(geoms).query(shapely.points(x, y), predicate="intersects")
    return np.bincount(pi, minlength=len(x))


@pytest.mark.parametrize("cell_exp", [6, 9, 13])  # 2**16 would be a 1 GB table over this box
def test_cell_size_does_not_change_answers(cell_exp):
    geoms = _voronoi_coverage(20, seed=7)
    rng = np.random.default_rng(8)
    verts = shapely.get_coordinates(geoms)
    x = np.concatenate([rng.uniform(117.39, 117.81, 20_000), verts[:, 0]])
    y = np.concatenate([rng.uniform(34.69, 35.01, 20_000), verts[:, 1]])
    np.testing.assert_array_equal(CellIndex(geoms, cell_exp=cell_exp).lookup(x, y), _reference(geoms, x, y))


def test_polygon_with_hole_and_multipolygon():
    outer = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]])
    hole = shapely.box(1, 1, 3, 3)
    far = shapely.MultiPolygon([shapely.box(10, 10, 11, 11), shapely.box(12, 10, 13, 11)])
    index = CellIndex([outer, hole, far], cell_exp=6)
    assert index.lookup_one(0.5, 0.5) == 0
    assert index.lookup_one(2, 2) == 1
    assert index.lookup_one(1, 2) == 0        # hole edge shared: lowest index
    assert index.lookup_one(12.5, 10.5) == 2
    assert index.lookup_one(11.5, 10.5) == OUTSIDE
    assert index.lookup_one(5, 5) == OUTSIDE


def test_disk_cache_round_trip(tmp_path):
    geoms = _voronoi_coverage(15, seed=3)
    first = CellIndex(geoms, cell_exp=11, cache_dir=tmp_path)
    files = list(tmp_path.glob("cells-*.npz"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = CellIndex(geoms, cell_exp=11, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp   # loaded, not rebuilt and rewritten
    for k in ("label", "bcells", "indptr", "indices"):
        np.testing.assert_array_equal(getattr(first, k), getattr(second, k))
    assert (first.x0, first.y0, first.nx, first.ny, first.cell_exp) == (second.x0, second.y0, second.nx, second.ny,
                                                                        second.cell_exp)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(117.4, 117.8, 5000), rng.uniform(34.7, 35.0, 5000)
    np.testing.assert_array_equal(first.lookup(x, y), second.lookup(x, y))
    # other geometries -> another key, another file
    CellIndex(geoms[:-1], cell_exp=11, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("cells-*.npz"))) == 2


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    geoms = _voronoi_coverage(10, seed=4)
    CellIndex(geoms, cell_exp=10, cache_dir=tmp_path)
    f = next(tmp_path.glob("cells-*.npz"))
    f.write_bytes(b"not a numpy file")
    index = CellIndex(geoms, cell_exp=10, cache_dir=tmp_path)
    x, y = shapely.get_coordinates(shapely.point_on_surface(geoms)).T
    np.testing.assert_array_equal(index.lookup(x, y), np.arange(len(geoms)))


def test_compiled_kernel_and_numpy_path_agree_point_for_point():
    """The C pass and its numpy reference give identical codes, NaN/inf/off-table included."""
    from gis_grid import cellindex as C

    if C._kernel is None:
        pytest.skip("the C kernel was not built here (no compiler); the numpy path is in use")
    rng = np.random.default_rng(11)
    seeds = np.column_stack([rng.uniform(117.50, 117.60, 300), rng.uniform(34.80, 34.90, 300)])
    region = shapely.box(117.50, 34.80, 117.60, 34.90)
    cells = [shapely.set_precision(shapely.intersection(c, region), 1e-7)
             for c in shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=region))]
    ci = C.CellIndex(cells, cell_exp=12)
    edges = shapely.get_coordinates(shapely.boundary(cells))
    t = rng.uniform(size=len(edges) - 1)
    n = C._PARALLEL_MIN + 1000  # large enough for the threaded split
    x = np.r_[rng.uniform(117.49, 117.61, n), edges[:-1, 0] + t * (edges[1:, 0] - edges[:-1, 0]),
              edges[:, 0], np.nan, np.inf, -np.inf, 1e300, 117.55]
    y = np.r_[rng.uniform(34.79, 34.91, n), edges[:-1, 1] + t * (edges[1:, 1] - edges[:-1, 1]),
              edges[:, 1], 34.85, 34.85, 34.85, 34.85, np.nan]
    args = (x, y, ci.x0, ci.y0, ci.inv, ci.nx, ci.ny, ci.label, ci.bcells, ci.seg, ci.side)
    compiled, reference = np.empty(len(x), ci.label.dtype), np.empty(len(x), ci.label.dtype)
    n1 = C._kernel.classify(*args, compiled)
    n2 = C._classify_numpy(*args, reference)
    assert n1 == n2 > 1000
    assert np.array_equal(compiled, reference)
    assert (compiled == C._NEEDS_EXACT).sum() > 100  # the on-edge points really reached the exact test
    # the batch path splits the work over threads; the seams must not change an answer
    assert np.array_equal(C._classify(*args), reference)


@pytest.mark.parametrize("table_dtype", [np.int8, np.int16, np.int32])
@pytest.mark.parametrize("idx_dtype", [np.int16, np.int32])
def test_take_matches_numpy_indexing_with_minus_one_as_the_sentinel(table_dtype, idx_dtype):
    from gis_grid import cellindex as C

    rng = np.random.default_rng(5)
    table = rng.integers(0, 100, 300).astype(table_dtype)
    idx = rng.integers(-1, 300, C._PARALLEL_MIN + 7).astype(idx_dtype)
    got = C.take(table, idx)
    assert got.dtype == table.dtype
    np.testing.assert_array_equal(got, table[idx])
