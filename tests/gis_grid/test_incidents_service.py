"""Cases in a store: auto-locate, atomic transitions, nothing half-written."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from common import make_toy_store
from gis_grid.atlas import Atlas
from gis_grid.errors import ConflictError, InvalidCoordinatesError, InvalidInputError, NotFoundError, PermissionDeniedError
from gis_grid.incidents import service

NOW = datetime(2016, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture()
def toy(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    yield store, Atlas.from_store(store)
    store.close()


def _create(store, atlas, **kw):
    args = dict(lon=117.505, lat=34.815, crs="EPSG:4490", category="dispute", reporter="张三", role="grid_worker",
                at=NOW - timedelta(days=1), now=NOW)
    args.update(kw)
    return service.create(store, atlas, **args)


def test_store_without_incidents_reads_empty(toy):
    store, _ = toy
    assert store.incidents().empty and store.incidents_version() == 0


def test_create_locates_and_stores(toy):
    store, atlas = toy
    c = _create(store, atlas)
    assert c.grid_code == "370402001001001" and c.building_id == 1  # inside building 1
    c2 = _create(store, atlas, lon=117.518, lat=34.802)  # in grid 4, away from its building
    assert c2.grid_code == "370402002001002" and c2.building_id is None
    df = store.incidents()
    assert sorted(df["id"]) == sorted([c.id, c2.id]) and store.incidents_version() == 2
    assert service.get(store, c.id) == c


def test_outside_is_refused_and_nothing_written(toy):
    store, atlas = toy
    with pytest.raises(InvalidCoordinatesError, match="outside"):
        _create(store, atlas, lon=117.60, lat=34.815)
    with pytest.raises(InvalidInputError, match="unknown category"):
        _create(store, atlas, category="aliens")
    with pytest.raises(InvalidInputError, match="future"):
        _create(store, atlas, at=NOW + timedelta(days=1))
    assert store.incidents().empty


def test_transitions_are_stored_and_bad_ones_change_nothing(toy):
    store, atlas = toy
    c = _create(store, atlas)
    t = NOW - timedelta(hours=20)
    service.transition(store, c.id, "register", actor="受理员", role="command_centre", at=t, now=NOW)
    before = store.incidents(ids=[c.id]).iloc[0].to_dict()
    for bad in (dict(action="handle", role="department"),                  # out of order
                dict(action="dispatch", role="department"),                # wrong role
                dict(action="dispatch", role="command_centre", at=NOW + timedelta(hours=1)),  # future
                dict(action="dispatch", role="command_centre", at=NOW - timedelta(days=2))):  # before previous
        kw = dict(actor="x", at=t + timedelta(hours=1), now=NOW)
        kw.update(bad)
        with pytest.raises((InvalidInputError, PermissionDeniedError)):  # the wrong role is a permission error
            service.transition(store, c.id, kw.pop("action"), **kw)
    assert store.incidents(ids=[c.id]).iloc[0].to_dict() == before
    d = service.transition(store, c.id, "dispatch", actor="派遣员", role="command_centre", at=t + timedelta(hours=1),
                           now=NOW)
    assert service.get(store, c.id).status == "dispatched" and service.get(store, c.id).deadline == d.deadline
    assert [e.action for e in service.get(store, c.id).events] == ["collect", "register", "dispatch"]


def test_unknown_and_stale(toy):
    store, atlas = toy
    with pytest.raises(NotFoundError):
        service.transition(store, "Enope", "register", actor="a", role="command_centre", now=NOW)
    c = _create(store, atlas)
    with pytest.raises(ConflictError):
        store.update_incident(service._row(c), expected_version=5)
