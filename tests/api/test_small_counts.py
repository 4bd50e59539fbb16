"""The subtraction attack through the API (issue 13, point 2): every card of the demo district,
as the command centre and as a planner (both under the 5-person threshold), and nothing hidden
comes back from a parent minus its children or from the whole system of sums."""
from __future__ import annotations

import pytest

from common import bearer
from gis_grid import stats
from small_count_attack import families, recovered, subtraction_leaks


@pytest.mark.parametrize("role", ["command_center", "planner"])
def test_no_card_gives_back_a_suppressed_count(client, demo_store_path, role):
    head = bearer(demo_store_path, role, "370402")
    atlas = client.app.state.holder.atlas
    codes = sorted(set(atlas.divisions["code"]) | set(atlas.grid_codes))
    cards = {}
    for code in codes:
        r = client.get(f"/grids/{code}", params={"geometry": "false"}, headers=head)
        assert r.status_code == 200, (code, r.text[:200])
        cards[code] = r.json()
    assert all(c["suppressed_below"] == 5 for c in cards.values())
    children = families(codes)
    hidden_somewhere = 0
    for group in stats.SPECIAL_GROUPS:
        shown = {code: card["statistics"]["special_groups"][group] for code, card in cards.items()}
        hidden_somewhere += sum(v is None for v in shown.values())
        assert not subtraction_leaks(shown, children), group
        assert not recovered(shown, children), group
    assert hidden_somewhere > 100   # the demo has small cells to protect: the check is not vacuous
