"""The subtraction attack on published counts, as an attacker with the whole hierarchy would run it.

The attacker knows every shown count, that every parent is the sum of its children (district >
streets > communities > base grids), that counts are whole and not negative, and that a hidden
count is at least 1 (zeros are never hidden). For each hidden count it solves two linear programmes
(smallest and largest value the system allows); the sum constraints of a tree are totally
unimodular, so both optima are whole numbers and a hidden count is recovered exactly when they
meet. Plain parent-minus-children subtraction, and any combination of overlapping divisions, are
special cases of this system.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.optimize import linprog

from gis_grid.suppression import tree_counts


def families(codes) -> dict[str, list[str]]:
    """Parent code -> child codes, for the published divisions (codes nest by prefix)."""
    _, children = tree_counts({c: 0 for c in codes if len(c) == 15})
    return children


def subtraction_leaks(shown: dict[str, int | None], children: dict[str, list[str]]) -> list[tuple]:
    """(parent, child, value): a shown parent with exactly one hidden child gives that child back."""
    out = []
    for parent, kids in children.items():
        hidden = [c for c in kids if shown[c] is None]
        if shown[parent] is not None and len(hidden) == 1:
            out.append((parent, hidden[0], shown[parent] - sum(shown[c] for c in kids if c != hidden[0])))
    return out


def bounds(shown: dict[str, int | None], children: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """(smallest, largest) value the whole system allows for every hidden count."""
    hidden = sorted(c for c, v in shown.items() if v is None)
    if not hidden:
        return {}
    # solve each group of hidden counts tied together by some family on its own (small programmes)
    root = {c: c for c in hidden}

    def find(c):
        while root[c] != c:
            root[c] = root[root[c]]
            c = root[c]
        return c

    rows = []
    for parent, kids in children.items():
        members = [c for c in [parent, *kids] if shown[c] is None]
        if not members:
            continue
        for m in members[1:]:
            root[find(m)] = find(members[0])
        # parent - sum(children) = 0, the shown ones moved to the right-hand side
        coef = {c: (1 if c == parent else -1) for c in members}
        rhs = -(shown[parent] or 0) + sum(shown[c] or 0 for c in kids)
        rows.append((coef, rhs))
    groups = defaultdict(list)
    for c in hidden:
        groups[find(c)].append(c)
    out = {}
    for members in groups.values():
        at = {c: i for i, c in enumerate(members)}
        eqs = [(coef, rhs) for coef, rhs in rows if next(iter(coef)) in at]
        a = np.zeros((len(eqs), len(members)))
        b = np.zeros(len(eqs))
        for i, (coef, rhs) in enumerate(eqs):
            for c, v in coef.items():
                a[i, at[c]] = v
            b[i] = rhs
        for c in members:
            cost = np.zeros(len(members))
            cost[at[c]] = 1
            lo = linprog(cost, A_eq=a, b_eq=b, bounds=(1, None), method="highs")
            hi = linprog(-cost, A_eq=a, b_eq=b, bounds=(1, None), method="highs")
            assert lo.status == 0 and hi.status in (0, 3), (c, lo.message, hi.message)
            out[c] = (round(lo.fun), float("inf") if hi.status == 3 else round(-hi.fun))
    return out


def recovered(shown: dict[str, int | None], children: dict[str, list[str]]) -> dict[str, int]:
    """Hidden counts the system pins to one value."""
    return {c: lo for c, (lo, hi) in bounds(shown, children).items() if lo == hi}
