"""partition: integer allocation and exact coverages."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from gis_grid.partition import allocate, make_contiguous, node_coverage, spread_seeds, voronoi_partition

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend


@pytest.mark.parametrize("total,weights,minimum", [(228, [5, 1, 1, 30, 0.5, 7], 2), (217, np.arange(1, 112), 1),
                                                   (10, [1, 1, 1], 3), (7, [0, 0, 1], 0)])
def test_allocate_sums_and_minimums(total, weights, minimum):
    out = allocate(total, weights, minimum)
    assert out.sum() == total
    assert (out >= minimum).all()
    assert out.dtype.kind == "i"
    w = np.asarray(weights, float)
    share = minimum + w / w.sum() * (total - minimum * len(w))
    assert (np.abs(out - share) < 1).all()   # largest remainder: off by less than one


def test_allocate_is_proportional_and_rejects_impossible():
    np.testing.assert_array_equal(allocate(100, [1, 3], minimum=0), [25, 75])
    with pytest.raises(ValueError, match="at least 3"):
        allocate(5, [1, 1], minimum=3)


def _region():
    return shapely.Polygon([(0, 0), (5000, 0), (5200, 3000), (2500, 4200), (-300, 2800)])


def test_voronoi_partition_tiles_the_region():
    region = _region()
    rng = np.random.default_rng(1)
    seeds = spread_seeds(region, 9, rng)
    assert seeds.shape == (9, 2)
    assert shapely.contains_xy(region, seeds[:, 0], seeds[:, 1]).all()
    pieces = voronoi_partition(region, seeds)
    assert len(pieces) == 9
    assert all(p.geom_type == "Polygon" for p in pieces)          # contiguous
    assert abs(sum(p.area for p in pieces) - region.area) < 1e-6 * region.area
    assert shapely.coverage_is_valid(np.array(pieces, dtype=object), gap_width=0)


def test_node_coverage_fixes_t_junctions_and_slivers():
    # three pieces cut separately: b and c split the east half at x = 10 + tiny offsets,
    # so the west piece's edge has no vertex where b and c meet (T-junction)
    a = shapely.box(0, 0, 10, 10)
    b = shapely.box(10, 0, 20, 5.0000004)
    c = shapely.box(10, 5, 20, 10)            # overlaps b by a 0.4 micro sliver
    assert not shapely.coverage_is_valid(np.array([a, b, c], dtype=object))
    out = node_coverage([a, b, c], grid_size=0.001)
    arr = np.array(out, dtype=object)
    assert shapely.coverage_is_valid(arr)
    assert all(g.is_valid and g.geom_type == "Polygon" for g in out)
    assert abs(sum(g.area for g in out) - 200) < 1e-6
    assert shapely.union_all(arr).equals(shapely.box(0, 0, 20, 10))
    # the west piece now carries the T-junction vertex (10, 5)
    assert (np.abs(shapely.get_coordinates(out[0]) - [10, 5]).sum(1) < 1e-9).any()


def test_node_coverage_of_voronoi_pieces_is_valid():
    region = _region()
    rng = np.random.default_rng(3)
    pieces = voronoi_partition(region, spread_seeds(region, 12, rng))
    # perturb: round one piece to a coarser grid so its edges no longer match its neighbours'
    pieces[0] = shapely.set_precision(pieces[0], 0.37)
    assert not shapely.coverage_is_valid(np.array(pieces, dtype=object))
    out = node_coverage(pieces)
    assert len(out) == len(pieces)
    assert shapely.coverage_is_valid(np.array(out, dtype=object))
    assert abs(sum(g.area for g in out) - region.area) < 1e-6 * region.area


def test_make_contiguous_gives_fragments_to_neighbours():
    main = shapely.box(0, 0, 10, 10)
    frag = shapely.box(20, 0, 21, 1)
    other = shapely.box(10, 0, 20, 10)
    out = make_contiguous([shapely.MultiPolygon([main, frag]), other])
    assert out[0].equals(main)
    assert out[1].geom_type == "Polygon" and abs(out[1].area - 101) < 1e-6
