"""Impact reports and as-of atlases have time budgets: past one the work stops at its next step
(later steps never run) and the answer is a 503 with Retry-After naming the steps done."""
from __future__ import annotations

import time

import pytest

from common import make_toy_store
from test_planning_api import MOVED, WEST, planner_client


@pytest.fixture
def client(tmp_path):
    make_toy_store(tmp_path / "toy.gpkg").close()
    with planner_client(tmp_path / "toy.gpkg") as c:
        yield c


def _assert_stopped(r, what: str, budget: float):
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    body = r.json()
    assert body["title"] == "BudgetExceededError" and f"budget of {budget:g} s" in body["detail"]
    assert body["errors"]["what"] == what and body["errors"]["budget_s"] == budget
    return body["errors"]


def test_an_impact_report_past_its_budget_stops_before_its_next_step(client, monkeypatch):
    from gis_grid.planning import impact
    plan = client.post("/plans", json={"community": WEST, "grids": MOVED}).json()
    number_grids, ran = impact.number_grids, []

    def slow_numbering(*args, **kwargs):  # a step that outlasts the budget
        time.sleep(1.2)
        return number_grids(*args, **kwargs)

    monkeypatch.setattr(impact, "number_grids", slow_numbering)
    monkeypatch.setattr(impact, "staff", lambda *a, **k: ran.append("staff"))
    client.app.state.settings.impact_budget_s = 1.0
    tried = _assert_stopped(client.get(f"/plans/{plan['id']}/impact"), "the impact report", 1.0)
    assert tried["stopped_before"] == "assigning buildings"
    assert tried["steps_done"] == ["validating the plan", "numbering the grids"]
    assert ran == []  # the work really stopped: no later step ran
    monkeypatch.undo()
    assert client.get(f"/plans/{plan['id']}/impact").status_code == 200  # the budget is per request


def test_the_map_and_the_comparison_share_the_impact_budget(client):
    a = client.post("/plans", json={"community": WEST, "grids": MOVED}).json()["id"]
    b = client.post("/plans", json={"community": WEST, "grids": MOVED}).json()["id"]
    client.app.state.settings.impact_budget_s = 1e-6
    _assert_stopped(client.get(f"/plans/{a}/map"), "the impact report", 1e-6)
    _assert_stopped(client.get("/plans/compare", params={"a": a, "b": b}), "the impact report", 1e-6)


def test_an_asof_atlas_past_its_budget_is_a_503_and_is_not_cached(client):
    client.app.state.settings.asof_budget_s = 1e-6
    q = {"lon": 117.505, "lat": 34.815, "at": "2025-06-01"}
    tried = _assert_stopped(client.get("/locate", params=q), "building the atlas as of that date", 1e-6)
    assert tried["stopped_before"] == "reading the change history" and tried["steps_done"] == []
    client.app.state.settings.asof_budget_s = 60.0
    r = client.get("/locate", params=q)
    assert r.status_code == 200, r.text
