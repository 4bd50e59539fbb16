"""Small-count suppression that survives subtraction (complementary suppression over the hierarchy).

Hiding each count below ``k`` on its own is undone by arithmetic: a community's published count
minus its grids' published counts is the one hidden grid. The divisions form a tree (district >
streets > communities > base grids) in which every parent is the sum of its children, so the rule
works on families (a parent and its children):

1. *Primary*: every count with ``0 < v < k`` is hidden.
2. *Complementary*, bottom-up: in a family whose parent is shown, the hidden children must be
   none, or at least two that hide each other: their sum, less 1 for each but one (a hidden
   count is at least 1: zeros are never hidden), is at least ``k``, so the family cannot bound
   any of them below ``k``. Otherwise more children are hidden, the smallest non-zero first (a
   hidden zero would be no cover: its own children show it is 0); if even all of them do not
   suffice, the parent is hidden too and the question moves up to its own family.
3. *Downward*: a hidden division whose children are all shown would be their sum; its smallest
   non-zero child is hidden too, and so on down to a base grid.

Afterwards no hidden count is the difference of shown ones, whatever combination of a parent
and its descendants an attacker subtracts (tests/gis_grid/test_suppression.py solves the whole
system of parent = sum of children for every hidden count on the demo district and finds
every one of them undetermined, and no small one bounded below ``k``).
"""
from __future__ import annotations

from collections import defaultdict

#: code lengths of the levels, top to bottom (district, street, community, base grid)
LEVEL_LENGTHS = (6, 9, 12, 15)


def tree_counts(grid_counts: dict[str, int]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Counts of every division above the given base grids (sums by code prefix), and each parent's children."""
    counts: dict[str, int] = {}
    children: dict[str, set[str]] = defaultdict(set)
    for code, v in grid_counts.items():
        for n in LEVEL_LENGTHS:
            counts[code[:n]] = counts.get(code[:n], 0) + int(v)
        for n, m in zip(LEVEL_LENGTHS[:-1], LEVEL_LENGTHS[1:]):
            children[code[:n]].add(code[:m])
    return counts, {p: sorted(c) for p, c in children.items()}


def _covers(cover: list[str], counts: dict[str, int], k: int) -> bool:
    """Hidden cells that hide each other: two or more, and each may be as large as ``k`` for all the
    family tells (the others at their least, 1, since zeros are never hidden)."""
    return len(cover) >= 2 and sum(counts[c] for c in cover) - (len(cover) - 1) >= k


def suppressed(grid_counts: dict[str, int], k: int) -> frozenset[str]:
    """The codes (of every level) whose count is hidden under threshold ``k`` (see the module's rule)."""
    if k <= 1:
        return frozenset()
    counts, children = tree_counts(grid_counts)
    hidden = {c for c, v in counts.items() if 0 < v < k}
    # bottom-up: families of communities first, then streets, then the district
    for n in reversed(LEVEL_LENGTHS[:-1]):
        for parent in (p for p in children if len(p) == n and p not in hidden):
            kids = children[parent]
            cover = [c for c in kids if c in hidden]
            if not cover:
                continue
            spare = sorted((c for c in kids if c not in hidden and counts[c] > 0), key=lambda c: (counts[c], c))
            while not _covers(cover, counts, k) and spare:
                cover.append(spare.pop(0))
            hidden.update(cover)
            if not _covers(cover, counts, k):
                hidden.add(parent)  # its children cannot hide each other: it joins its own parent's family
    # downward: a hidden division must keep a hidden child, or its children's sum shows it
    for n in LEVEL_LENGTHS[:-1]:
        for parent in sorted(c for c in hidden if len(c) == n):
            kids = children.get(parent, [])
            if kids and not any(c in hidden for c in kids):
                nonzero = [c for c in kids if counts[c] > 0] or kids
                hidden.add(min(nonzero, key=lambda c: (counts[c], c)))
    return frozenset(hidden)
