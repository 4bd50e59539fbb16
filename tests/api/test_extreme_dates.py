"""Dates at the edges of the calendar and hostile static names answer 4xx, never 500.

Every date parameter (``?at=``, ``from``/``to``, OGC ``datetime``) on every route that takes
one is sent the values an attacker tried (9999-12-31, 0001-01-01T00:00:00+08:00) and a few
more just past the accepted range; each must be a 400 that names that range.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import bearer, make_toy_store
from gis_grid import timebounds
from gis_grid.atlas.asof import parse_at
from gis_grid.errors import InvalidInputError
from gis_grid.incidents import aggregate
from gis_grid.incidents import features as inc_feat

G = "370402001001001"
# route -> the date parameters it takes
ROUTES = {
    "/locate?lon=117.505&lat=34.815": ("at",), f"/grids/{G}": ("at",), f"/grids/{G}/residents": ("at",),
    "/stats/summary": ("from", "to"), "/stats/divisions": ("from", "to", "at"), "/stats/departments": ("from", "to"),
    "/stats/categories": ("from", "to"), "/stats/assessment": ("from", "to"), "/stats/ranking": ("from", "to"),
    "/warnings": ("at",), "/incidents": ("from", "to", "at"), "/incidents/export.csv": ("from", "to", "at"),
    "/map/incidents": ("from", "to", "at"), "/map/incidents/heat.json": ("from", "to"),
    "/map/incidents/choropleth/grid.json": ("from", "to"), "/map/incidents/warnings.json": ("at",),
    "/ogc/collections/incidents/items": ("datetime",),
}
EXTREMES = ["9999-12-31", "0001-01-01T00:00:00+08:00", "0001-01-01", "2200-01-01", "1899-12-31T23:59:59+08:00",
            "9999-12-31T23:59:59Z"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = make_toy_store(tmp_path_factory.mktemp("dates") / "toy.gpkg")
    h = bearer(store, "grid_worker", G)  # reaches every route above (maps, cases, residents, locate)
    with TestClient(create_app(Settings(db=store.url)), headers=h, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("route", list(ROUTES))
def test_extreme_dates_are_400_naming_the_range(client, route):
    for param in ROUTES[route]:
        for value in EXTREMES + ([f"{EXTREMES[0]}/..", f"../{EXTREMES[1]}"] if param == "datetime" else []):
            if param == "warnings" and value.startswith(".."):
                continue
            url = route + ("&" if "?" in route else "?") + f"{param}={quote(value)}"
            if route == "/warnings" and param != "at":
                continue
            r = client.get(url)
            assert r.status_code == 400, (url, r.status_code, r.text[:300])
            assert timebounds.RANGE_TEXT in r.json()["detail"], (url, r.text[:300])


def test_dates_inside_the_range_still_work(client):
    for url in ("/incidents?from=1900-01-01&to=2199-12-31", f"/grids/{G}?at=2199-12-31",
                "/ogc/collections/incidents/items?datetime=1900-01-01/2199-12-31"):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:300])


@pytest.mark.parametrize("name", ["leaflet%00.js", "a" * 400, "a" * 300 + ".js", "x/" * 150 + "y.js"])
def test_hostile_static_names_are_404(tmp_path, name):
    store = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=store.url)), raise_server_exceptions=False) as c:
        r = c.get(f"/map/static/{name}")
    assert r.status_code == 404, (r.status_code, r.text[:200])


@pytest.mark.parametrize("parse", [parse_at, aggregate.parse_time, inc_feat.parse_datetime,
                                   lambda v: aggregate.parse_time(v, end=True)])
def test_library_parsers_refuse_out_of_range(parse):
    for value in EXTREMES:
        with pytest.raises(InvalidInputError, match="outside the dates"):
            parse(value)
